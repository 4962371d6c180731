"""The node IPAM controller's range allocator (``pkg/controller/nodeipam``).

Every node without ``spec.podCIDR`` gets the next free ``/24`` (``/64`` for IPv6) of
the cluster CIDR, one per configured family, written to ``spec.podCIDR`` and
``spec.podCIDRs``. A range is never handed out twice: before the first allocation
the allocator marks every range already held by a node (so a restart loses nothing),
and a range returns to the pool only when its node is deleted. Ranges outside the
cluster CIDR (set by hand, or by a kubelet flag) are left as they are.

Settings are a :class:`NodeIpamSettings`, which the controller manager fills from its
flags (see ``__main__``):

- ``--cluster-cidr``: comma-separated, at most one per IP family; default
  ``10.244.0.0/16``.
- ``--node-cidr-mask-size`` (single-stack), or ``--node-cidr-mask-size-ipv4`` /
  ``-ipv6``: default 24 and 64.
- ``--allocate-node-cidrs``: the controller runs only when true (the default here).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.client.informer import wait_synced
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_MASK_IPV4 = 24
DEFAULT_MASK_IPV6 = 64
MAX_PREFIX_DIFFERENCE = 16
"""A cluster CIDR holds at most 2**16 node ranges (``cidrset``'s limit)."""
FULL_RETRY_SECONDS = 30.0
"""How long a node waits for a range to be freed when the cluster CIDR is full."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CidrSetFullError(Exception):
    """Every node range of the cluster CIDR is in use."""


class CidrSet:
    """The node-sized subnets of one cluster CIDR, each handed out once (``cidrset.CidrSet``).

    Allocation goes round the ranges from where the last one ended, as Kubernetes
    does, so a range just released is not reused at once.
    """

    def __init__(self, cluster: Network, mask: int) -> None:
        if mask < cluster.prefixlen or mask > cluster.max_prefixlen:
            raise ValueError(
                f"node CIDR mask /{mask} does not fit the cluster CIDR {cluster} "
                f"(/{cluster.prefixlen}..{cluster.max_prefixlen})"
            )
        if mask - cluster.prefixlen > MAX_PREFIX_DIFFERENCE:
            raise ValueError(
                f"cluster CIDR {cluster} with node mask /{mask}: the mask may be at most "
                f"{MAX_PREFIX_DIFFERENCE} bits longer than the cluster CIDR's"
            )
        self.cluster = cluster
        self.mask = mask
        self.size = 1 << (mask - cluster.prefixlen)
        self._step = 1 << (cluster.max_prefixlen - mask)
        self._used: set[int] = set()
        self._next = 0

    @property
    def used(self) -> int:
        return len(self._used)

    def _subnet(self, index: int) -> Network:
        base = int(self.cluster.network_address) + index * self._step
        return ipaddress.ip_network((base, self.mask))

    def _indices(self, cidr: Network) -> range | None:
        """The node ranges ``cidr`` overlaps (None when it is outside the cluster CIDR)."""
        if cidr.version != self.cluster.version or not cidr.subnet_of(self.cluster):  # type: ignore[arg-type]
            return None
        offset = int(cidr.network_address) - int(self.cluster.network_address)
        first = offset // self._step
        last = (offset + cidr.num_addresses - 1) // self._step
        return range(first, last + 1)

    def contains(self, cidr: Network) -> bool:
        return self._indices(cidr) is not None

    def allocate_next(self) -> Network:
        """The next free node range, now in use; :class:`CidrSetFullError` when none is left."""
        for i in range(self.size):
            index = (self._next + i) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return self._subnet(index)
        raise CidrSetFullError(f"no remaining CIDRs in {self.cluster} for /{self.mask} ranges")

    def occupy(self, cidr: Network) -> bool:
        """Mark ``cidr`` in use; False when it lies outside the cluster CIDR."""
        indices = self._indices(cidr)
        if indices is None:
            return False
        self._used.update(indices)
        return True

    def release(self, cidr: Network) -> None:
        indices = self._indices(cidr)
        if indices is not None:
            self._used.difference_update(indices)


def parse_cluster_cidrs(
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
    mask_size: int | None = None,
    mask_size_ipv4: int | None = None,
    mask_size_ipv6: int | None = None,
) -> list[CidrSet]:
    """The cluster CIDRs (comma-separated) and their node masks; ValueError if invalid."""
    raw = cluster_cidr or DEFAULT_CLUSTER_CIDR
    nets: list[Network] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=True))
        except ValueError as e:
            raise ValueError(f"--cluster-cidr: invalid CIDR {part!r}: {e}") from e
    if not nets:
        raise ValueError("--cluster-cidr names no CIDR")
    if len(nets) > 2 or len({n.version for n in nets}) != len(nets):
        raise ValueError(f"--cluster-cidr: at most one CIDR per IP family, got {raw!r}")
    if mask_size is not None and len(nets) > 1:
        raise ValueError(
            "--node-cidr-mask-size is for single-stack clusters: "
            "use --node-cidr-mask-size-ipv4/-ipv6"
        )
    sets = []
    for net in nets:
        own = mask_size_ipv4 if net.version == 4 else mask_size_ipv6
        default = DEFAULT_MASK_IPV4 if net.version == 4 else DEFAULT_MASK_IPV6
        mask = own if own is not None else mask_size if mask_size is not None else default
        sets.append(CidrSet(net, mask))
    return sets


@dataclass(frozen=True, slots=True)
class NodeIpamSettings:
    """kube-controller-manager's node IPAM flags (``NodeIPAMControllerConfiguration``)."""

    allocate_node_cidrs: bool = True
    cluster_cidr: str = DEFAULT_CLUSTER_CIDR
    node_cidr_mask_size: int | None = None
    node_cidr_mask_size_ipv4: int | None = None
    node_cidr_mask_size_ipv6: int | None = None

    def cidr_sets(self) -> list[CidrSet]:
        """Fresh allocation state for these CIDRs; ValueError if the settings are invalid."""
        return parse_cluster_cidrs(
            self.cluster_cidr,
            self.node_cidr_mask_size,
            self.node_cidr_mask_size_ipv4,
            self.node_cidr_mask_size_ipv6,
        )


def node_pod_cidrs(node: Obj) -> list[str]:
    """``spec.podCIDRs``, or ``[spec.podCIDR]`` from older writers."""
    spec = node.get("spec") or {}
    cidrs = [c for c in spec.get("podCIDRs") or () if c]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [spec["podCIDR"]]
    return cidrs


class NodeIpamController(Controller):
    """Assigns ``spec.podCIDR`` / ``podCIDRs`` to new nodes from the cluster CIDR."""

    name: ClassVar[str] = "node-ipam-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        settings: NodeIpamSettings | None = None,
        cidr_sets: list[CidrSet] | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        if cidr_sets is None:
            cidr_sets = (settings or NodeIpamSettings()).cidr_sets()
        self.cidr_sets = cidr_sets
        self.nodes = self.watch("nodes")
        self.assigned: dict[str, tuple[str, list[Network]]] = {}
        """node name → (uid, ranges held in the sets for it): allocated here or occupied."""
        self._rebuilt = False
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)

    # -- allocation state ----------------------------------------------------------------

    def rebuild(self) -> None:
        """Mark the ranges of every cached node in use (before any allocation)."""
        for node in self.nodes.list():
            self._occupy(node)
        self._rebuilt = True
        self.log.info(
            "node CIDR allocations rebuilt",
            cluster_cidrs=[str(s.cluster) for s in self.cidr_sets],
            used=[s.used for s in self.cidr_sets],
        )

    def _set_for(self, cidr: Network) -> CidrSet | None:
        for s in self.cidr_sets:
            if s.contains(cidr):
                return s
        return None

    def _occupy(self, node: Obj) -> None:
        """Hold the ranges ``node`` has (releasing any other range held for it)."""
        meta = node["metadata"]
        name, uid = meta["name"], meta.get("uid", "")
        nets: list[Network] = []
        for raw in node_pod_cidrs(node):
            try:
                nets.append(ipaddress.ip_network(raw, strict=False))
            except ValueError:
                self.log.warning("node has an invalid pod CIDR", node=name, pod_cidr=raw)
        held = self.assigned.get(name)
        if held is not None and held[1] == nets and held[0] == uid:
            return
        self._release(name)
        kept: list[Network] = []
        for net in nets:
            s = self._set_for(net)
            if s is None:
                continue  # outside the cluster CIDR: not ours to manage
            s.occupy(net)
            kept.append(net)
        if kept:
            self.assigned[name] = (uid, kept)

    def _release(self, name: str) -> None:
        held = self.assigned.pop(name, None)
        if held is None:
            return
        for net in held[1]:
            s = self._set_for(net)
            if s is not None:
                s.release(net)

    # -- event handlers ------------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        if not node_pod_cidrs(node):
            self.enqueue(node)
        elif self._rebuilt:
            self._occupy(node)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._node_deleted(old)
            self._node_added(new)
            return
        if node_pod_cidrs(old) != node_pod_cidrs(new) or not node_pod_cidrs(new):
            self._node_added(new)

    def _node_deleted(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        held = self.assigned.get(name)
        if held is not None and held[0] == node["metadata"].get("uid", ""):
            self._release(name)
            self.log.info("released node CIDR", node=name, pod_cidrs=[str(n) for n in held[1]])
            # Nodes waiting for a free range may get this one.
            for other in self.nodes.list():
                if not node_pod_cidrs(other):
                    self.enqueue(other)

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Rebuild the allocations from the synced cache, then run the workers."""
        await wait_synced(*self.informers)
        if not self._rebuilt:
            self.rebuild()
        await super().run()

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        if node is None:
            return None
        if not self._rebuilt:
            self.rebuild()
        if node_pod_cidrs(node):
            self._occupy(node)
            return None
        meta = node["metadata"]
        uid = meta.get("uid", "")
        held = self.assigned.get(key)
        if held is not None and held[0] != uid:
            self._release(key)  # a namesake's ranges, still waiting for its delete event
            held = None
        if held is None:
            try:
                nets = self._allocate()
            except CidrSetFullError as e:
                self.log.warning("cannot allocate a node CIDR", node=key, error=str(e))
                self.events.emit(
                    _node_ref(node),
                    "Normal",
                    "CIDRNotAvailable",
                    f"Node {key} status is now: CIDRNotAvailable",
                )
                return FULL_RETRY_SECONDS
            self.assigned[key] = (uid, nets)
        else:
            nets = held[1]
        cidrs = [str(n) for n in nets]
        await self._patch(node, cidrs)
        self.log.info("allocated node CIDR", node=key, pod_cidrs=cidrs)
        return None

    def _allocate(self) -> list[Network]:
        nets: list[Network] = []
        try:
            for s in self.cidr_sets:
                nets.append(s.allocate_next())
        except CidrSetFullError:
            for net in nets:
                self._set_for(net).release(net)  # type: ignore[union-attr]
            raise
        return nets

    async def _patch(self, node: Obj, cidrs: list[str]) -> None:
        """Set the ranges unless the node changed since the cache saw it (then retry)."""
        meta = node["metadata"]
        ops: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta.get("uid", "")},
            # JSON patch cannot test that podCIDR is absent: the resourceVersion stands in,
            # so a range set meanwhile by someone else is never overwritten.
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
        ]
        if not isinstance(node.get("spec"), dict):
            ops.append({"op": "add", "path": "/spec", "value": {}})
        ops.append({"op": "add", "path": "/spec/podCIDR", "value": cidrs[0]})
        ops.append({"op": "add", "path": "/spec/podCIDRs", "value": cidrs})
        try:
            await self.client.patch("nodes", meta["name"], ops, type="json")
        except ApiError as e:
            if e.code == 404:
                self._release(meta["name"])
                return
            if e.code == 422 and "test failed" in e.message:
                raise ApiError(
                    409, Reason.CONFLICT, f"node {meta['name']} changed meanwhile"
                ) from e
            raise


def _node_ref(node: Obj) -> Obj:
    return {"kind": "Node", "apiVersion": "v1", "metadata": node["metadata"]}
