"""The Pod printer (``printPod``): Ready, Status, Restarts, IP, Node, Readiness Gates.

The Status cell is the pod's aggregate reason, as ``kubectl get pods`` shows it: the
phase or ``status.reason``, replaced by the first init container still blocking
(``Init:1/3``, ``Init:CrashLoopBackOff``), then by the main containers' waiting or
terminated reasons, then ``Terminating``. Restartable (sidecar) init containers count
towards Ready and Restarts like main containers once the pod is initialized.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from skiff.apiserver.printers.common import (
    AGE_COL,
    CORE,
    NAME_COL,
    NONE,
    Cells,
    Col,
    TablePrinter,
    has_condition,
    human_duration,
    timestamp,
    translate_timestamp_since,
)


@dataclass(slots=True)
class _Restarts:
    """A restart count and the latest ``lastState.terminated.finishedAt`` seen."""

    count: int = 0
    last: float = 0.0

    def add(self, count: int, finished: float | None) -> None:
        self.count += count
        if finished is not None and finished > self.last:
            self.last = finished

    def cell(self, now: float) -> str:
        if self.count and self.last:
            return f"{self.count} ({human_duration(now - self.last)} ago)"
        return str(self.count)


class _InitScan:
    """What the init container statuses say about a pod."""

    __slots__ = ("ready", "reason", "restarts", "sidecar_restarts")

    def __init__(self) -> None:
        self.reason: str | None = None  # set while an init container still blocks the pod
        self.restarts = _Restarts()  # of every init container
        self.sidecar_restarts = _Restarts()  # of restartable ones only
        self.ready = 0  # started and ready restartable init containers


def _restartable(container: dict | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _last_finished(cs: dict) -> float | None:
    last_term = (cs.get("lastState") or {}).get("terminated")
    return timestamp(last_term.get("finishedAt")) if last_term else None


def _initial_reason(status: dict, conditions: list[dict]) -> str:
    reason = status.get("reason") or status.get("phase") or ""
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    return reason


def _init_blocking_reason(cs: dict, index: int, count: int) -> str:
    """The Status of a pod whose init container ``cs`` (``index`` of ``count``) blocks it."""
    state = cs.get("state") or {}
    terminated = state.get("terminated")
    waiting = state.get("waiting")
    if terminated is not None:
        if terminated.get("reason"):
            return "Init:" + terminated["reason"]
        if terminated.get("signal"):
            return f"Init:Signal:{terminated['signal']}"
        return f"Init:ExitCode:{terminated.get('exitCode') or 0}"
    if waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
        return "Init:" + waiting["reason"]
    return f"Init:{index}/{count}"


def _scan_init_containers(init_specs: list[dict], statuses: Iterable[dict]) -> _InitScan:
    """Walk init container statuses up to the first one that blocks the pod."""
    init_by_name = {c.get("name", ""): c for c in init_specs}
    scan = _InitScan()
    for i, cs in enumerate(statuses):
        count = cs.get("restartCount") or 0
        finished = _last_finished(cs)
        scan.restarts.add(count, finished)
        sidecar = _restartable(init_by_name.get(cs.get("name", "")))
        if sidecar:
            scan.sidecar_restarts.add(count, finished)
        terminated = (cs.get("state") or {}).get("terminated")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                scan.ready += 1
            continue
        scan.reason = _init_blocking_reason(cs, i, len(init_specs))
        break
    return scan


def _container_reason(state: dict) -> str | None:
    """A main container's waiting or terminated reason; ``None`` when it has none."""
    waiting = state.get("waiting")
    terminated = state.get("terminated")
    if waiting is not None and waiting.get("reason"):
        return waiting["reason"]
    if terminated is None:
        return None
    if terminated.get("reason"):
        return terminated["reason"]
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode') or 0}"


def _scan_containers(
    statuses: list[dict], restarts: _Restarts, reason: str
) -> tuple[str, int, bool]:
    """Walk main container statuses, last first: (reason, ready count, any running+ready)."""
    ready = 0
    has_running = False
    for cs in reversed(statuses):
        restarts.add(cs.get("restartCount") or 0, _last_finished(cs))
        state = cs.get("state") or {}
        container_reason = _container_reason(state)
        if container_reason is not None:
            reason = container_reason
        elif cs.get("ready") and state.get("running") is not None:
            has_running = True
            ready += 1
    return reason, ready, has_running


def _deletion_reason(meta: dict, status: dict, reason: str) -> str:
    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            return "Unknown"
        if (status.get("phase") or "") not in ("Succeeded", "Failed"):
            return "Terminating"
    return reason


def _pod_ip(status: dict) -> str:
    pod_ips = status.get("podIPs")
    return (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE


def _readiness_gates(spec: dict, conditions: list[dict]) -> str:
    """``true/total`` over ``spec.readinessGates``, ``<none>`` without gates."""
    gates = spec.get("readinessGates")
    if not gates:
        return NONE
    by_type: dict[str, str] = {}
    for c in conditions:
        by_type.setdefault(c.get("type", ""), c.get("status", ""))
    true_count = sum(1 for g in gates if by_type.get(g.get("conditionType", "")) == "True")
    return f"{true_count}/{len(gates)}"


def _print_pod(pod: dict, now: float) -> Cells:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    init_specs = spec.get("initContainers") or []

    total = len(spec.get("containers") or ())
    if init_specs:
        total += sum(1 for c in init_specs if _restartable(c))
    reason = _initial_reason(status, conditions)
    init = _scan_init_containers(init_specs, status.get("initContainerStatuses") or ())
    ready = init.ready
    restarts = init.restarts
    if init.reason is not None:
        reason = init.reason
    if init.reason is None or has_condition(conditions, "Initialized"):
        restarts = init.sidecar_restarts
        reason, ready_main, has_running = _scan_containers(
            status.get("containerStatuses") or [], restarts, reason
        )
        ready += ready_main
        if reason == "Completed" and has_running:
            reason = "Running" if has_condition(conditions, "Ready") else "NotReady"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        _deletion_reason(meta, status, reason),
        restarts.cell(now),
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        _pod_ip(status),
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        _readiness_gates(spec, conditions),
    ]


_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def _pod_conditions(pod: dict) -> list[dict] | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("", "Pod"): TablePrinter(
        (
            NAME_COL,
            Col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            Col("Status", "string", "The aggregate status of the containers in this pod."),
            Col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when "
                "the last container in this pod has restarted.",
            ),
            AGE_COL,
            Col("IP", "string", (CORE + "PodStatus", "podIP"), 1),
            Col("Node", "string", (CORE + "PodSpec", "nodeName"), 1),
            Col("Nominated Node", "string", (CORE + "PodStatus", "nominatedNodeName"), 1),
            Col("Readiness Gates", "string", (CORE + "PodSpec", "readinessGates"), 1),
        ),
        _print_pod,
        _pod_conditions,
    ),
}
