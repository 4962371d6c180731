"""NodeResourcesFit and NodeResourcesBalancedAllocation (``plugins/noderesources``).

Fit filters out nodes whose allocatable resources, less what the pods on them (bound and
assumed) request, cannot hold the pod's requests: cpu, memory, ephemeral-storage, the pod
count and every extended resource (``nvidia.com/gpu``...). It scores with a strategy,
LeastAllocated by default. BalancedAllocation prefers nodes whose cpu and memory would be
used in equal proportions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from skiff.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    CycleState,
    Handle,
    PreFilterResult,
    Status,
)
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo, PodInfo

FIT_NAME = "NodeResourcesFit"
BALANCED_NAME = "NodeResourcesBalancedAllocation"
ERR_REASON_TOO_MANY_PODS = "Too many pods"

_FIT_PRE_FILTER_KEY = "PreFilter" + FIT_NAME
_FIT_PRE_SCORE_KEY = "PreScore" + FIT_NAME
_BALANCED_PRE_SCORE_KEY = "PreScore" + BALANCED_NAME

DEFAULT_RESOURCES: tuple[dict[str, Any], ...] = (
    {"name": "cpu", "weight": 1},
    {"name": "memory", "weight": 1},
)


def _least_allocated(requested: int, capacity: int) -> int:
    if requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def _most_allocated(requested: int, capacity: int) -> int:
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


_STRATEGIES: dict[str, Callable[[int, int], int]] = {
    "LeastAllocated": _least_allocated,
    "MostAllocated": _most_allocated,
}


def _resources(raw: Sequence[Mapping[str, Any]] | None) -> tuple[tuple[str, int], ...]:
    specs = raw or DEFAULT_RESOURCES
    return tuple((str(r["name"]), int(r.get("weight") or 1)) for r in specs)


def _cpu_memory_weights(resources: tuple[tuple[str, int], ...]) -> tuple[int, int] | None:
    names = dict(resources)
    if len(resources) == 2 and set(names) == {"cpu", "memory"}:
        return names["cpu"], names["memory"]
    return None


def _pod_request(pod: PodInfo, name: str, *, non_zero: bool) -> int:
    if non_zero and name == "cpu":
        return pod.non_zero_cpu
    if non_zero and name == "memory":
        return pod.non_zero_memory
    return pod.requests.get(name)


def _allocatable_and_requested(
    node: NodeInfo, name: str, pod_request: int, *, non_zero: bool
) -> tuple[int, int]:
    """``calculateResourceAllocatableRequest``: (0, 0) means "do not score this resource"."""
    requested = node.non_zero_requested if non_zero else node.requested
    if name == "cpu":
        return node.allocatable.milli_cpu, requested.milli_cpu + pod_request
    if name == "memory":
        return node.allocatable.memory, requested.memory + pod_request
    if pod_request == 0:
        return 0, 0
    if name == "ephemeral-storage":
        return node.allocatable.ephemeral_storage, node.requested.ephemeral_storage + pod_request
    return node.allocatable.scalar.get(name, 0), node.requested.scalar.get(name, 0) + pod_request


class NodeResourcesFit:
    """Filter on free resources; score by the configured strategy (LeastAllocated)."""

    name = FIT_NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        strategy = args.get("scoringStrategy") or {}
        kind = strategy.get("type") or "LeastAllocated"
        if kind not in _STRATEGIES:
            raise ValueError(f"{FIT_NAME}: scoring strategy {kind!r} is not supported")
        self._scorer = _STRATEGIES[kind]
        self._resources = _resources(strategy.get("resources"))
        self._cpu_memory = _cpu_memory_weights(self._resources)
        self._ignored = frozenset(args.get("ignoredResources") or ())
        self._ignored_groups = frozenset(args.get("ignoredResourceGroups") or ())

    def _ignore(self, name: str) -> bool:
        return name in self._ignored or name.split("/", 1)[0] in self._ignored_groups

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        assert state.pod_info is not None
        r = state.pod_info.requests
        # Extended resources are checked in name order so the reasons are stable.
        scalar = tuple(sorted((n, v) for n, v in r.scalar.items() if v and not self._ignore(n)))
        state.write(_FIT_PRE_FILTER_KEY, (r.milli_cpu, r.memory, r.ephemeral_storage, scalar))
        return None, None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        cpu, memory, storage, scalar = state.read(_FIT_PRE_FILTER_KEY)
        allocatable = node_info.allocatable
        requested = node_info.requested
        reasons: list[str] | None = None
        if len(node_info.pod_infos) + 1 > allocatable.pods:
            reasons = [ERR_REASON_TOO_MANY_PODS]
        if cpu and cpu > allocatable.milli_cpu - requested.milli_cpu:
            reasons = [*(reasons or ()), "Insufficient cpu"]
        if memory and memory > allocatable.memory - requested.memory:
            reasons = [*(reasons or ()), "Insufficient memory"]
        if storage and storage > allocatable.ephemeral_storage - requested.ephemeral_storage:
            reasons = [*(reasons or ()), "Insufficient ephemeral-storage"]
        if scalar:
            free, used = allocatable.scalar, requested.scalar
            for name, value in scalar:
                if value > free.get(name, 0) - used.get(name, 0):
                    reasons = [*(reasons or ()), f"Insufficient {name}"]
        if reasons is None:
            return None
        return Status.unschedulable(*reasons, plugin=FIT_NAME)

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        assert state.pod_info is not None
        pi = state.pod_info
        state.write(
            _FIT_PRE_SCORE_KEY,
            tuple((n, w, _pod_request(pi, n, non_zero=True)) for n, w in self._resources),
        )
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        scorer = self._scorer
        total = weights = 0
        if self._cpu_memory is not None:  # the default resources, without the generic loop
            cpu_weight, memory_weight = self._cpu_memory
            pi = state.pod_info
            allocatable = node_info.allocatable
            requested = node_info.non_zero_requested
            if allocatable.milli_cpu:
                cpu = requested.milli_cpu + pi.non_zero_cpu  # type: ignore[union-attr]
                total += scorer(cpu, allocatable.milli_cpu) * cpu_weight
                weights += cpu_weight
            if allocatable.memory:
                memory = requested.memory + pi.non_zero_memory  # type: ignore[union-attr]
                total += scorer(memory, allocatable.memory) * memory_weight
                weights += memory_weight
            return total // weights if weights else 0
        for name, weight, pod_request in state.read(_FIT_PRE_SCORE_KEY):
            allocatable, requested = _allocatable_and_requested(
                node_info, name, pod_request, non_zero=True
            )
            if allocatable:
                total += scorer(requested, allocatable) * weight
                weights += weight
        return total // weights if weights else 0


class NodeResourcesBalancedAllocation:
    """Score: 100 x (1 - the standard deviation of the requested/allocatable fractions)."""

    name = BALANCED_NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._resources = _resources(args.get("resources"))
        self._cpu_memory = _cpu_memory_weights(self._resources) is not None

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        assert state.pod_info is not None
        pi = state.pod_info
        requests = tuple((n, _pod_request(pi, n, non_zero=False)) for n, _ in self._resources)
        if not any(v for _, v in requests):
            # A best-effort pod would otherwise pile onto the most balanced node.
            return Status.skip()
        state.write(_BALANCED_PRE_SCORE_KEY, requests)
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        if self._cpu_memory:  # two fractions: std = |f1 - f2| / 2
            requests = state.pod_info.requests  # type: ignore[union-attr]
            allocatable = node_info.allocatable
            requested = node_info.requested
            if not allocatable.milli_cpu or not allocatable.memory:
                return MAX_NODE_SCORE
            cpu = min((requested.milli_cpu + requests.milli_cpu) / allocatable.milli_cpu, 1.0)
            memory = min((requested.memory + requests.memory) / allocatable.memory, 1.0)
            return int((1 - abs(cpu - memory) / 2) * MAX_NODE_SCORE)
        fractions: list[float] = []
        for name, pod_request in state.read(_BALANCED_PRE_SCORE_KEY):
            allocatable, requested = _allocatable_and_requested(
                node_info, name, pod_request, non_zero=False
            )
            if allocatable:
                fractions.append(min(requested / allocatable, 1.0))
        if len(fractions) == 2:
            std = abs(fractions[0] - fractions[1]) / 2
        elif len(fractions) > 2:
            mean = sum(fractions) / len(fractions)
            std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
        else:
            std = 0.0
        return int((1 - std) * MAX_NODE_SCORE)
