"""The kubelet's pod network state without touching the host's links: not ready until a
pod CIDR is known; a CIDR change re-addresses a bridge nobody uses, and is refused while
pod sandboxes still hold addresses of the old range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from skiff.kubelet import network
from skiff.kubelet.containerd_setup import RuntimePaths
from skiff.kubelet.network import NOT_INITIALIZED, PodNetwork, gateway


class Links:
    """Stands in for ``ip``: the bridge's addresses, and the links deleted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> None:
        self.addresses = addresses
        self.deleted: list[str] = []
        monkeypatch.setattr(network, "bridge_addresses", lambda _bridge: list(self.addresses))
        monkeypatch.setattr(network.subprocess, "run", self.run)

    def run(self, args: list[str], **_: Any) -> Any:
        assert args[:3] == ["ip", "link", "del"], args
        self.deleted.append(args[3])
        self.addresses = []


def subnet(paths: RuntimePaths) -> str:
    conf = json.loads((paths.cni_conf_dir / "10-skiff.conflist").read_text())
    return conf["plugins"][0]["ipam"]["ranges"][0][0]["subnet"]


def test_not_ready_until_a_pod_cidr_is_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Links(monkeypatch, [])
    paths = RuntimePaths(tmp_path)
    net = PodNetwork(paths)
    assert not net.ready and net.problem == NOT_INITIALIZED
    assert net.status_message() == (
        "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:Network plugin returns error: "
        "cni config uninitialized"
    )
    assert not (paths.cni_conf_dir / "10-skiff.conflist").exists()
    assert net.configure("10.244.1.0/24", 0)
    assert net.ready and net.cidr == "10.244.1.0/24" and subnet(paths) == "10.244.1.0/24"


def test_a_change_re_addresses_a_bridge_nobody_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = Links(monkeypatch, ["10.244.0.1/24"])  # an earlier run's range
    paths = RuntimePaths(tmp_path)
    (paths.base / "cni" / "ipam" / "skiff").mkdir(parents=True)
    net = PodNetwork(paths)
    assert net.configure("10.244.1.0/24", 0)
    assert links.deleted == ["skiff0"]
    assert not (paths.base / "cni" / "ipam").exists()  # the old range's leases are gone
    assert subnet(paths) == "10.244.1.0/24"


def test_a_change_is_refused_while_pods_use_the_old_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = Links(monkeypatch, ["10.244.0.1/24"])
    paths = RuntimePaths(tmp_path)
    net = PodNetwork(paths)
    assert net.configure("10.244.0.0/24", 2)  # the bridge already fits: nothing to change
    assert net.ready and links.deleted == []
    assert not net.configure("10.244.1.0/24", 2)
    assert not net.ready and links.deleted == []
    assert "2 pod sandbox(es) still use bridge skiff0 at 10.244.0.1/24" in net.problem
    assert subnet(paths) == "10.244.0.0/24"  # nothing half-applied
    # Once the old pods are gone, the change goes through.
    assert net.configure("10.244.1.0/24", 0)
    assert links.deleted == ["skiff0"] and subnet(paths) == "10.244.1.0/24"


def test_an_invalid_cidr_is_not_ready(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Links(monkeypatch, [])
    net = PodNetwork(RuntimePaths(tmp_path))
    assert not net.configure("10.244.1.0/33", 0)
    assert net.problem == "invalid pod CIDR '10.244.1.0/33'"


def test_gateway() -> None:
    assert gateway("10.244.3.0/24") == "10.244.3.1/24"


def test_with_a_network_add_on_ready_only_once_its_configuration_appears(tmp_path: Path) -> None:
    """``--network-plugin cni``: the kubelet writes nothing and waits for the add-on."""
    conf = tmp_path / "etc-cni"
    paths = RuntimePaths(tmp_path / "rt", conf)
    net = PodNetwork(paths, plugin="cni")
    assert not net.configure("10.244.3.0/24", 0) and net.problem == NOT_INITIALIZED
    assert not conf.exists() or not any(conf.iterdir())  # nothing written by the kubelet
    conf.mkdir()
    (conf / ".10-skiff.conflist.tmp").write_text("{}")  # half-written: not a configuration
    assert not net.configure("10.244.3.0/24", 0)
    (conf / "10-skiff.conflist").write_text("{}")
    assert net.configure("10.244.3.0/24", 0) and net.ready and net.cidr == "10.244.3.0/24"
    assert paths.cni_conf_dir == conf
