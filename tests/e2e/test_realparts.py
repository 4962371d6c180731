"""Under make test a missing real part fails the tests that need it; elsewhere it skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from runtime import REQUIRE_ENV, needs


def test_missing_part_skips_outside_make_test() -> None:
    mark = needs("no-such-tool-skiff", env={})
    assert mark.args == (True,) and "no-such-tool-skiff" in mark.kwargs["reason"]


def test_missing_part_fails_under_make_test() -> None:
    with pytest.raises(RuntimeError, match="no-such-tool-skiff"):
        needs("no-such-tool-skiff", env={REQUIRE_ENV: "1"})
    with pytest.raises(RuntimeError, match="/nonexistent/cni/bridge"):
        needs(paths=(Path("/nonexistent/cni/bridge"),), env={REQUIRE_ENV: "1"})


def test_present_parts_run() -> None:
    assert needs("sh", env={REQUIRE_ENV: "1"}).args == (False,)


# Which Debian package gives each tool the tests name (kubectl is the machine's own 1.32,
# which the tests use as a user would; it is not installed by make).
PACKAGE_OF = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "iptables": "iptables",
    "iptables-restore": "iptables",
    "ip": "iproute2",
    "conntrack": "conntrack",
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "nats-server": "nats-server",
    "curl": "curl",
    "cni-plugins": "containernetworking-plugins",
}
GIVEN = {"kubectl", "sh"}


def test_make_deps_installs_every_part_a_test_needs() -> None:
    """A fresh machine has only what ``make deps`` installs: every tool a test module names
    in ``needs(...)`` must come from a package in the Makefile's DEB_PACKAGES (a new
    dependency added to a test but not to the Makefile passes on a warm machine only)."""
    import re

    from runtime import CONTAINERD

    root = Path(__file__).resolve().parents[2]
    make = (root / "Makefile").read_text()
    block = re.search(r"^DEB_PACKAGES := (.*?)(?<!\\)\n", make, re.M | re.S)
    assert block is not None
    packages = set(block.group(1).replace("\\\n", " ").split())
    named: set[str] = set()
    for module in Path(__file__).parent.glob("test_*.py"):
        for call in re.findall(r"needs\((.*?)\)\n", module.read_text(), re.S):
            tools, _, paths = call.partition("paths=")
            named |= set(re.findall(r'"([a-z][\w.-]*)"', tools))
            if "*CONTAINERD" in tools:
                named |= set(CONTAINERD)
            if "CNI_PLUGINS" in paths:
                named.add("cni-plugins")
    named -= {"no-such-tool-skiff"} | GIVEN
    unknown = named - PACKAGE_OF.keys()
    assert not unknown, f"say which Debian package gives {sorted(unknown)}"
    missing = {PACKAGE_OF[t] for t in named} - packages
    assert not missing, f"make deps does not install {sorted(missing)}"
    assert "conntrack" in named  # the proxy's UDP clean-up is among them
