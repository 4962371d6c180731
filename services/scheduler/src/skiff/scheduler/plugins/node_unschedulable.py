"""NodeUnschedulable: cordoned nodes (``spec.unschedulable``) take no new pods.

A pod that tolerates the ``node.kubernetes.io/unschedulable:NoSchedule`` taint is let
through, as DaemonSet pods are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.taints import TAINT_UNSCHEDULABLE, Taint, tolerates_taint
from skiff.scheduler.framework.interface import CycleState, Handle, Status
from skiff.scheduler.types import NodeInfo

NAME = "NodeUnschedulable"
ERR_REASON_UNSCHEDULABLE = "node(s) were unschedulable"

_TAINT = Taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
_REJECT = Status.unresolvable(ERR_REASON_UNSCHEDULABLE, plugin=NAME)


class NodeUnschedulable:
    """Filter out nodes with ``spec.unschedulable: true``."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        if not node_info.unschedulable:
            return None
        assert state.pod_info is not None
        if tolerates_taint(state.pod_info.tolerations, _TAINT):
            return None
        return _REJECT
