"""GPUBinPacking: Skiff's own score plugin (kube-scheduler has none like it; there one
configures NodeResourcesFit's MostAllocated for the GPU resource and taints GPU nodes).

A pod that asks for GPUs scores a node by how full its GPUs would be with the pod there
(MostAllocated over the GPU resources): GPU pods pack onto nodes already running GPU work,
and nodes with all their GPUs free stay free for requests that need a whole node. A pod
that asks for none prefers nodes without GPUs, then GPU nodes already partly in use, so
that it does not take the CPU or memory an idle GPU node's next GPU pod needs.

Args: ``resources``, the names counted as GPUs; a name ending in ``/`` counts every
resource of that domain (the default, ``nvidia.com/``, so MIG devices count too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.scheduler.framework.interface import MAX_NODE_SCORE, CycleState, Handle, Status
from skiff.scheduler.types import NodeInfo

NAME = "GPUBinPacking"
DEFAULT_RESOURCES = ("nvidia.com/",)
_KEY = "PreScore" + NAME


class GPUBinPacking:
    """See the module's description."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle | None) -> None:
        raw = args.get("resources") or DEFAULT_RESOURCES
        if isinstance(raw, str) or not all(isinstance(r, str) and r for r in raw):
            raise ValueError(f"{NAME}: resources must be a list of resource names or domains")
        self._names = frozenset(r for r in raw if not r.endswith("/"))
        self._domains = tuple(r for r in raw if r.endswith("/"))

    def counts(self, name: str) -> bool:
        return name in self._names or name.startswith(self._domains)

    def _sum(self, values: Mapping[str, int]) -> int:
        return sum(v for n, v in values.items() if self.counts(n))

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        assert state.pod_info is not None
        state.write(_KEY, self._sum(state.pod_info.requests.scalar))
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        wanted: int = state.read(_KEY)
        total = self._sum(node_info.allocatable.scalar)
        used = self._sum(node_info.requested.scalar)
        if wanted:
            return min(used + wanted, total) * MAX_NODE_SCORE // total if total else 0
        if not total:
            return MAX_NODE_SCORE
        return min(used, total) * (MAX_NODE_SCORE // 2) // total
