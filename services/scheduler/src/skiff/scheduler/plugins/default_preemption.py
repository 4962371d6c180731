"""DefaultPreemption: the PostFilter that looks for pods to evict (``plugins/defaultpreemption``).

For every node where removing lower-priority pods could help (its Filter status is
Unschedulable, not UnschedulableAndUnresolvable), a dry run removes all of them, checks
that the pod then fits, and adds back as many as still fit, most important first. The
node needing the least disruption is proposed (nominated node and victims); the scheduler
evicts the victims and sets the pod's ``nominatedNodeName``. A nominated pod whose node
still has lower-priority pods terminating does not preempt again. When no node qualifies
the status explains why, as ``preemption: 0/N nodes are available: ...``.
PodDisruptionBudgets and other pods' nominations are not considered.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from skiff.scheduler.framework.interface import (
    Code,
    CycleState,
    Handle,
    NodeToStatus,
    PostFilterResult,
    Status,
    failure_message,
    is_success,
)
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo, PodInfo

NAME = "DefaultPreemption"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_ELIGIBLE_NEVER = "not eligible due to preemptionPolicy=Never."
NOT_ELIGIBLE_TERMINATING = "not eligible due to a terminating pod on the nominated node."

_INT32_OFFSET = 2**31


def _importance(pod: PodInfo) -> tuple[int, str]:
    # MoreImportantPod: higher priority, then the earlier start (no start time = latest).
    return (-pod.priority, pod.start_time or "\uffff")


class DefaultPreemption:
    """Propose victims whose eviction would let the pod fit a node."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._handle = handle
        self._min_percentage = int(args.get("minCandidateNodesPercentage", 10))
        self._min_absolute = int(args.get("minCandidateNodesAbsolute", 100))
        self._rng = random.Random()

    def _num_candidates(self, num_nodes: int) -> int:
        return min(max(num_nodes * self._min_percentage // 100, self._min_absolute), num_nodes)

    def post_filter(
        self,
        state: CycleState,
        pod: dict[str, Any],
        snapshot: Snapshot,
        statuses: NodeToStatus,
    ) -> tuple[PostFilterResult | None, Status | None]:
        pi = state.pod_info
        assert pi is not None
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return None, Status.unschedulable(f"preemption: {NOT_ELIGIBLE_NEVER}", plugin=NAME)
        # Already nominated, and lower-priority pods there are still terminating: the room
        # is on its way; preempting again would evict more (PodEligibleToPreemptOthers).
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        if nominated and (info := snapshot.get(nominated)) is not None:
            for other in info.pod_infos.values():
                if other.pod["metadata"].get("deletionTimestamp") and other.priority < pi.priority:
                    return None, Status.unschedulable(
                        f"preemption: {NOT_ELIGIBLE_TERMINATING}", plugin=NAME
                    )
        nodes = snapshot.node_infos
        if not nodes:
            return None, Status.as_error("no nodes available", plugin=NAME)

        not_helpful = Status.unresolvable(NOT_HELPFUL, plugin=NAME)
        results: dict[str, Status] = {}
        candidates: list[tuple[NodeInfo, list[PodInfo]]] = []
        # Dry runs are costly: like kube-scheduler, start at a random node and stop once
        # enough candidates are found (10% of the nodes, at least 100).
        wanted = self._num_candidates(len(nodes))
        offset = self._rng.randrange(len(nodes))
        for node in nodes[offset:] + nodes[:offset]:
            if len(candidates) >= wanted:
                break
            if statuses.get(node.name).code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                results[node.name] = not_helpful
                continue
            victims, status = self.select_victims(state, pi, node)
            if status is not None:
                results[node.name] = status
            else:
                candidates.append((node, victims))

        if not candidates:
            message = failure_message(len(nodes), NodeToStatus(results, not_helpful))
            return PostFilterResult(nominated_node_name=""), Status.unschedulable(
                f"preemption: {message}", plugin=NAME
            )
        node, victims = min(candidates, key=lambda c: self._cost(c[1]))
        return PostFilterResult(node.name, victims), None

    def select_victims(
        self, state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> tuple[list[PodInfo], Status | None]:
        """The fewest, least important lower-priority pods to evict from ``node``."""
        potential = [p for p in node.pod_infos.values() if p.priority < pod.priority]
        if not potential:
            return [], Status.unresolvable(NO_VICTIMS, plugin=NAME)
        handle = self._handle
        node = node.clone()
        state = state.clone()
        for victim in potential:
            node.remove_pod(victim.key)
            handle.run_pre_filter_extension_remove_pod(state, pod, victim, node)
        status = handle.run_filter_plugins(state, pod.pod, node)
        if not is_success(status):
            assert status is not None
            return [], status
        victims: list[PodInfo] = []
        for candidate in sorted(potential, key=_importance):
            node.add_pod(candidate)
            handle.run_pre_filter_extension_add_pod(state, pod, candidate, node)
            if not is_success(handle.run_filter_plugins(state, pod.pod, node)):
                node.remove_pod(candidate.key)
                handle.run_pre_filter_extension_remove_pod(state, pod, candidate, node)
                victims.append(candidate)
        return victims, None

    @staticmethod
    def _cost(victims: list[PodInfo]) -> tuple[int, int, int]:
        # pickOneNodeForPreemption: lowest top victim priority, lowest priority sum, fewest.
        if not victims:
            return (-_INT32_OFFSET, 0, 0)
        return (
            max(v.priority for v in victims),
            sum(v.priority + _INT32_OFFSET for v in victims),
            len(victims),
        )
