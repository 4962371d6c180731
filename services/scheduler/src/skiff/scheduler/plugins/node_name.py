"""NodeName: a pod that names its node (``spec.nodeName``) fits that node only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.scheduler.framework.interface import CycleState, Handle, PreFilterResult, Status
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo

NAME = "NodeName"
ERR_REASON = "node(s) didn't match the requested node name"

_REJECT = Status.unresolvable(ERR_REASON, plugin=NAME)


class NodeName:
    """Filter out every node but the one in ``spec.nodeName``, if set."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        if not (pod.get("spec") or {}).get("nodeName"):
            return None, Status.skip()
        return None, None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        wanted = (pod.get("spec") or {}).get("nodeName")
        if not wanted or wanted == node_info.name:
            return None
        return _REJECT
