"""Printers of the ``autoscaling`` group: HorizontalPodAutoscalers, printed from the v2
form whichever version was asked for (kube prints the internal type)."""

from __future__ import annotations

from typing import Any

from skiff.api.quantity import canonical
from skiff.apiserver.conversion.autoscaling import dict_of, to_v2
from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    NONE,
    UNKNOWN,
    UNSET,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
    to_int,
)

_SHOWN = 2
_NIL = "<nil>"  # Go's String() of a nil *Quantity


def _q(value: Any) -> str:
    return _NIL if value is None else canonical(value)


def _parts(key: str, spec: dict, status: dict | None) -> tuple[dict, dict | None]:
    """A metric's target, and its current values (None: the status has none for it)."""
    target = dict_of(dict_of(spec.get(key)).get("target"))
    if status is None or status.get(key) is None:
        return target, None
    return target, dict_of(dict_of(status[key]).get("current"))


def _resource_cell(key: str, spec: dict, status: dict | None) -> str:
    """A Resource or ContainerResource metric: ``cpu: 50%/80%`` or ``memory: 1Gi/2Gi``."""
    target, current = _parts(key, spec, status)
    name = dict_of(spec.get(key)).get("name", "")
    if target.get("averageValue") is not None:
        shown = UNKNOWN if current is None else _q(current.get("averageValue"))
        return f"{name}: {shown}/{_q(target['averageValue'])}"
    utilization = (current or {}).get("averageUtilization")
    shown = UNKNOWN if utilization is None else f"{utilization}%"
    goal = target.get("averageUtilization")
    return f"{name}: {shown}/{'<auto>' if goal is None else f'{goal}%'}"


def _valued_cell(key: str, spec: dict, status: dict | None) -> str:
    """An External or Object metric: ``current/target``, ``(avg)`` for per-pod targets."""
    target, current = _parts(key, spec, status)
    if target.get("averageValue") is not None:
        average = (current or {}).get("averageValue")
        shown = UNKNOWN if average is None else _q(average)
        return f"{shown}/{_q(target['averageValue'])} (avg)"
    shown = UNKNOWN if current is None else _q(current.get("value"))
    return f"{shown}/{_q(target.get('value'))}"


def format_metrics(specs: list[Any], statuses: list[Any]) -> str:
    """kube's ``formatHPAMetrics``: each metric's current and target value, statuses
    matched by index, two shown and ``+ N more...``."""
    if not specs:
        return NONE
    cells = []
    for i, raw in enumerate(specs):
        spec = dict_of(raw)
        status = dict_of(statuses[i]) if i < len(statuses) else None
        kind = spec.get("type")
        if kind in ("External", "Object"):
            cells.append(_valued_cell(kind.lower(), spec, status))
        elif kind == "Pods":
            target, current = _parts("pods", spec, status)
            shown = UNKNOWN if current is None else _q(current.get("averageValue"))
            cells.append(f"{shown}/{_q(target.get('averageValue'))}")
        elif kind in ("Resource", "ContainerResource"):
            cells.append(_resource_cell(kind[0].lower() + kind[1:], spec, status))
        else:
            cells.append("<unknown type>")
    shown = ", ".join(cells[:_SHOWN])
    return f"{shown} + {len(cells) - _SHOWN} more..." if len(cells) > _SHOWN else shown


def _print_hpa(obj: dict, now: float) -> Cells:
    if obj.get("apiVersion") == "autoscaling/v1":
        obj = to_v2(obj)
    spec, status = dict_of(obj.get("spec")), dict_of(obj.get("status"))
    ref = dict_of(spec.get("scaleTargetRef"))
    low = spec.get("minReplicas")
    return [
        name_of(obj),
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        format_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
        UNSET if low is None else str(low),
        to_int(spec.get("maxReplicas")),
        to_int(status.get("currentReplicas")),
        age(obj, now),
    ]


# kube describes these columns with autoscaling/v2beta1's field documentation.
_REFERENCE_DOC = (
    "scaleTargetRef points to the target resource to scale, and is used to the pods for "
    "which metrics should be collected, as well as to actually change the replica count."
)
_TARGETS_DOC = (
    "metrics contains the specifications for which to use to calculate the desired replica "
    "count (the maximum replica count across all metrics will be used).  The desired replica "
    "count is calculated multiplying the ratio between the target value and the current value "
    "by the current number of pods.  Ergo, metrics used must decrease as the pod count is "
    "increased, and vice-versa.  See the individual metric source types for more information "
    "about how each type of metric must respond."
)
_MIN_DOC = (
    "minReplicas is the lower limit for the number of replicas to which the autoscaler can "
    "scale down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature "
    "gate HPAScaleToZero is enabled and at least one Object or External metric is "
    "configured.  Scaling is active as long as at least one metric value is available."
)
_MAX_DOC = (
    "maxReplicas is the upper limit for the number of replicas to which the autoscaler can "
    "scale up. It cannot be less that minReplicas."
)
_REPLICAS_DOC = (
    "currentReplicas is current number of replicas of pods managed by this autoscaler, as "
    "last seen by the autoscaler."
)

_HPA = TablePrinter(
    (
        NAME_COL,
        Col("Reference", "string", _REFERENCE_DOC),
        Col("Targets", "string", _TARGETS_DOC),
        Col("MinPods", "string", _MIN_DOC),
        Col("MaxPods", "string", _MAX_DOC),
        Col("Replicas", "string", _REPLICAS_DOC),
        AGE_COL,
    ),
    _print_hpa,
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("autoscaling", "HorizontalPodAutoscaler"): _HPA,
}
