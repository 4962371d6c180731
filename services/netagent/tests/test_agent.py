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
