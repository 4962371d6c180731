"""The pod network's CNI configuration: written whole, read back, and found."""

from __future__ import annotations

from pathlib import Path

from skiff.cni import bridge_conflist, configured_subnet, has_config, write_conflist


def test_written_whole_and_read_back(tmp_path: Path) -> None:
    conf = bridge_conflist("10.244.2.0/24", ipam_dir=tmp_path / "ipam", masquerade=False)
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap", "firewall"]
    assert not conf["plugins"][0]["ipMasq"]
    assert not has_config(tmp_path / "net.d") and configured_subnet(tmp_path / "net.d") is None
    out = write_conflist(tmp_path / "net.d", conf)
    assert [f.name for f in out.parent.iterdir()] == ["10-skiff.conflist"]  # no temp left
    assert has_config(out.parent) and configured_subnet(out.parent) == "10.244.2.0/24"
    out.write_text("{not json")
    assert configured_subnet(out.parent) is None
