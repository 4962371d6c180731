"""The agent's loop on the shared controller runtime: a Node informer, one key (the whole
node set decides every route), reconcile = plan + apply; a node refused a route gets a
Warning event (``PodCIDRConflict``) once per reason."""

from __future__ import annotations

from typing import ClassVar

from skiff.controller.controller import Controller, ControllerContext
from skiff.netagent.linux import NodeNetwork
from skiff.netagent.routes import plan

KEY = "routes"


class NetAgent(Controller):
    """Keeps this node's routes to the other nodes' pod CIDRs and the masquerade rules."""

    name: ClassVar[str] = "skiff-netagent"

    def __init__(
        self,
        ctx: ControllerContext,
        network: NodeNetwork,
        *,
        node_name: str,
        cluster_cidr: str,
        resync: float = 60.0,
    ) -> None:
        super().__init__(ctx, workers=1)
        self.network = network
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.resync = resync
        self._reported: dict[str, str] = {}
        self.nodes = self.watch("nodes")
        self.nodes.add_handler(
            lambda _n: self.queue.add(KEY),
            lambda _o, _n: self.queue.add(KEY),
            lambda _n: self.queue.add(KEY),
        )
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        nodes = self.nodes.list()
        p = plan(nodes, self.node_name)
        changed, removed = await self.network.sync_routes(p.routes)
        await self.network.sync_masquerade(self.cluster_cidr)
        if changed or removed:
            self.log.info("routes synced", routes=len(p.routes), changed=changed, removed=removed)
        by_name = {n["metadata"]["name"]: n for n in nodes}
        for name, why in p.problems.items():
            if self._reported.get(name) != why and name in by_name:
                self._reported[name] = why
                self.log.error("node left out of the pod network", node=name, reason=why)
                self.events.emit(by_name[name], "Warning", "PodCIDRConflict", why)
        for name in list(self._reported):
            if name not in p.problems:
                del self._reported[name]
        return self.resync  # and now and then, in case someone removed a route
