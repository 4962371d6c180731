"""The agent's controller against an in-memory API and a stand-in kernel: routes follow
the Node objects, a conflicting node gets one PodCIDRConflict event per reason."""

from __future__ import annotations

from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.netagent.agent import KEY, NetAgent


class Kernel:
    def __init__(self) -> None:
        self.routes: dict[str, str] = {}
        self.masquerade: list[str] = []

    async def sync_routes(self, wanted: dict[str, str]) -> tuple[int, int]:
        changed = len(set(wanted.items()) - set(self.routes.items()))
        removed = len(self.routes.keys() - wanted.keys())
        self.routes = dict(wanted)
        return changed, removed

    async def sync_masquerade(self, cidr: str) -> None:
        self.masquerade.append(cidr)


def node(name: str, cidr: str, ip: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"podCIDR": cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


async def test_routes_follow_nodes_and_conflicts_are_reported() -> None:
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    kernel = Kernel()
    agent = NetAgent(
        ControllerContext(fake, informers),  # type: ignore[arg-type]
        kernel,  # type: ignore[arg-type]
        node_name="a",
        cluster_cidr="10.244.0.0/16",
    )
    events: list[tuple[str, str]] = []
    agent.events.emit = lambda obj, t, reason, msg, action="": events.append(  # type: ignore[method-assign]
        (obj["metadata"]["name"], reason)
    )
    informers.start()
    try:
        await fake.create("nodes", node("a", "10.244.0.0/24", "192.168.1.1"))
        await fake.create("nodes", node("b", "10.244.1.0/24", "192.168.1.2"))
        await informers.wait_synced(timeout=5)
        await fake.settle(*agent.informers)
        assert await agent.reconcile(KEY) == agent.resync
        assert kernel.routes == {"10.244.1.0/24": "192.168.1.2"}
        assert kernel.masquerade == ["10.244.0.0/16"]
        await fake.create("nodes", node("c", "10.244.1.0/25", "192.168.1.3"))
        await fake.settle(*agent.informers)
        await agent.reconcile(KEY)
        await agent.reconcile(KEY)
        assert events == [("c", "PodCIDRConflict")]  # once, not at every sync
        await fake.delete("nodes", "b")
        await fake.settle(*agent.informers)
        await agent.reconcile(KEY)
        assert kernel.routes == {"10.244.1.0/25": "192.168.1.3"}  # c no longer overlaps
    finally:
        await informers.stop()


class Bridge(Kernel):
    def __init__(self) -> None:
        super().__init__()
        self.ports = 0
        self.deleted: list[str] = []

    async def bridge_ports(self, bridge: str) -> int:
        return self.ports

    async def delete_link(self, name: str) -> None:
        self.deleted.append(name)


async def test_the_add_on_writes_the_nodes_cni_configuration(tmp_path: Any) -> None:
    """For the node's own pod CIDR; a CIDR change re-creates an unused bridge and is
    refused (with an event) while pods still sit on it."""
    from skiff.cni import configured_subnet
    from skiff.netagent.cniconfig import CniConfig

    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    kernel = Bridge()
    conf = tmp_path / "net.d"
    cni = CniConfig(conf, network=kernel, ipam_dir=tmp_path / "ipam")  # type: ignore[arg-type]
    agent = NetAgent(
        ControllerContext(fake, informers),  # type: ignore[arg-type]
        kernel,  # type: ignore[arg-type]
        node_name="a",
        cluster_cidr="10.244.0.0/16",
        routes=False,
        cni=cni,
    )
    events: list[str] = []
    agent.events.emit = lambda obj, t, reason, msg, action="": events.append(reason)  # type: ignore[method-assign]
    informers.start()
    try:
        await fake.create("nodes", {"metadata": {"name": "a"}, "spec": {}})
        await informers.wait_synced(timeout=5)
        await fake.settle(*agent.informers)
        await agent.reconcile(KEY)
        assert configured_subnet(conf) is None  # no CIDR yet: no configuration, not Ready
        current = await fake.get("nodes", "a")
        current["spec"]["podCIDR"] = "10.244.3.0/24"  # node IPAM assigns it
        await fake.update("nodes", current)
        await fake.settle(*agent.informers)
        await agent.reconcile(KEY)
        assert configured_subnet(conf) == "10.244.3.0/24" and kernel.routes == {}
        current = await fake.get("nodes", "a")
        current["spec"]["podCIDR"] = "10.244.7.0/24"
        await fake.update("nodes", current)
        await fake.settle(*agent.informers)
        kernel.ports = 2
        assert await agent.reconcile(KEY) == 5.0  # refused while pods use the bridge
        assert configured_subnet(conf) == "10.244.3.0/24" and events == ["PodCIDRChangeRefused"]
        kernel.ports = 0
        await agent.reconcile(KEY)
        assert configured_subnet(conf) == "10.244.7.0/24" and kernel.deleted == ["skiff0"]
    finally:
        await informers.stop()
