"""NodePorts: a pod's host ports must be free on the node (``plugins/nodeports``).

A port bound on 0.0.0.0 conflicts with the same protocol/port on any IP, and the other
way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.scheduler.framework.interface import CycleState, Handle, PreFilterResult, Status
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo

NAME = "NodePorts"
ERR_REASON = "node(s) didn't have free ports for the requested pod ports"

_REJECT = Status.unschedulable(ERR_REASON, plugin=NAME)


class NodePorts:
    """Filter out nodes where a requested host port is taken."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        assert state.pod_info is not None
        if not state.pod_info.host_ports:
            return None, Status.skip()
        return None, None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        if not node_info.used_ports:
            return None
        assert state.pod_info is not None
        for ip, protocol, port in state.pod_info.host_ports:
            if node_info.port_conflict(ip, protocol, port):
                return _REJECT
        return None
