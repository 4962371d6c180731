"""TaintToleration: taints repel pods that do not tolerate them (``plugins/tainttoleration``).

Filter: a node with a NoSchedule or NoExecute taint the pod does not tolerate is rejected
(a node whose Ready condition is not True carries a not-ready/unreachable taint, see
:class:`~skiff.scheduler.types.NodeInfo`). Score: fewer untolerated PreferNoSchedule
taints is better.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.taints import Toleration
from skiff.scheduler.framework.interface import CycleState, Handle, Status, default_normalize_score
from skiff.scheduler.types import NodeInfo

NAME = "TaintToleration"

_PRE_SCORE_KEY = "PreScore" + NAME


class TaintToleration:
    """Filter on NoSchedule/NoExecute taints, score on PreferNoSchedule taints."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        taints = node_info.hard_taints
        if not taints:
            return None
        assert state.pod_info is not None
        tolerations = state.pod_info.tolerations
        for taint in taints:
            if not any(t.tolerates(taint) for t in tolerations):
                return Status.unresolvable(
                    f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}", plugin=NAME
                )
        return None

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        if not any(n.soft_taints for n in nodes):
            # Every node would score the same; the ranking does not change without us.
            return Status.skip()
        assert state.pod_info is not None
        state.write(
            _PRE_SCORE_KEY,
            tuple(t for t in state.pod_info.tolerations if t.effect in ("", "PreferNoSchedule")),
        )
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        tolerations: tuple[Toleration, ...] = state.get(_PRE_SCORE_KEY, ())
        return sum(
            1 for taint in node_info.soft_taints if not any(t.tolerates(taint) for t in tolerations)
        )

    def normalize_scores(
        self, state: CycleState, pod: dict[str, Any], scores: list[int]
    ) -> Status | None:
        default_normalize_score(scores, reverse=True)
        return None
