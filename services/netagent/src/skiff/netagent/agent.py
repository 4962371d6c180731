"""The agent's loop on the shared controller runtime: a Node informer, one key (the whole
node set decides every route), reconcile = plan + apply; a node refused a route gets a
Warning event (``PodCIDRConflict``) once per reason. With a CNI folder it also writes this
node's CNI configuration for its own ``spec.podCIDR`` (the add-on's half of what the
kubelet does with ``--network-plugin kubenet``)."""

from __future__ import annotations

from typing import ClassVar

from skiff.controller.controller import Controller, ControllerContext
from skiff.netagent.cniconfig import CniConfig
from skiff.netagent.linux import NodeNetwork
from skiff.netagent.problems import ReportedProblems
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
        routes: bool = True,
        cni: CniConfig | None = None,
    ) -> None:
        super().__init__(ctx, workers=1)
        self.network = network
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self.resync = resync
        self.routes = routes
        self.cni = cni
        self.conflicts = ReportedProblems(
            self, reason="PodCIDRConflict", message="node left out of the pod network", field="node"
        )
        self.refusals = ReportedProblems(
            self, reason="PodCIDRChangeRefused", message="pod network not configured", field="node"
        )
        self.nodes = self.watch("nodes")
        self.nodes.add_handler(
            lambda _n: self.queue.add(KEY),
            lambda _o, _n: self.queue.add(KEY),
            lambda _n: self.queue.add(KEY),
        )
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        nodes = self.nodes.list()
        by_name = {n["metadata"]["name"]: n for n in nodes}
        me = by_name.get(self.node_name)
        retry = self.resync
        if self.cni is not None and me is not None:
            cidr = (me.get("spec") or {}).get("podCIDR") or ""
            problem = await self.cni.ensure(cidr) if cidr else ""
            self.refusals.report({self.node_name: problem} if problem else {}, by_name)
            if problem:
                retry = min(retry, 5.0)  # until the pods on the old range are gone
        if not self.routes:
            return retry
        p = plan(nodes, self.node_name)
        changed, removed = await self.network.sync_routes(p.routes)
        await self.network.sync_masquerade(self.cluster_cidr)
        if changed or removed:
            self.log.info("routes synced", routes=len(p.routes), changed=changed, removed=removed)
        self.conflicts.report(p.problems, by_name)
        return retry  # and now and then, in case someone removed a route
