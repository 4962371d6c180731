"""HorizontalPodAutoscalers (kube's ``pkg/registry/autoscaling/horizontalpodautoscaler``
and ``pkg/apis/autoscaling/validation``), served as autoscaling/v2 and v1 and stored as
v2: the strategy works on the v2 form (which the store converts a v1 request into).

A create starts with an empty status; main-resource writes keep the status and
``/status`` writes keep the spec (the generic strategy's rules). Validation is kube's
``ValidateHorizontalPodAutoscaler`` in its words and paths: replica bounds, the scale
target, each metric (one source, matching its type, with a target of the right kind) and
the scaling behavior.
"""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_valid_path_segment_name
from skiff.api.quantity import canonical, parse_quantity

from ...conversion.autoscaling import dict_of, drop_round_trip
from ...validation import forbidden, invalid, not_supported, required
from ..core.resourcenames import container_resource_name
from ..strategy import Obj, Strategy

MAX_PERIOD_SECONDS = 1800
MAX_STABILIZATION_WINDOW_SECONDS = 3600
SOURCE_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
SELECT_POLICIES = ["Disabled", "Max", "Min"]
POLICY_TYPES = ["Percent", "Pods"]
TARGET_TYPES = ("Utilization", "Value", "AverageValue")
_FIELD_OF = {"Object": "object", "Pods": "pods", "Resource": "resource",
             "External": "external", "ContainerResource": "containerResource"}  # fmt: skip
_SOURCE_ORDER = ("object", "external", "pods", "resource", "containerResource")


def cross_version_reference(ref: Any, path: str) -> list[Cause]:
    """``ValidateCrossVersionObjectReference``: kind and name, each a path segment."""
    ref = dict_of(ref)
    causes: list[Cause] = []
    for key in ("kind", "name"):
        value = ref.get(key) or ""
        if not value:
            causes.append(required(f"{path}.{key}"))
        causes += [invalid(f"{path}.{key}", value, m) for m in is_valid_path_segment_name(value)]
    return causes


def _metric_identifier(metric: Any, path: str) -> list[Cause]:
    name = dict_of(metric).get("name") or ""
    if not name:
        return [required(f"{path}.name", "must specify a metric name")]
    return [invalid(f"{path}.name", name, m) for m in is_valid_path_segment_name(name)]


def _positive_quantity(raw: Any, path: str) -> list[Cause]:
    value = parse_quantity(raw)
    if value is not None and value <= 0:
        return [invalid(path, canonical(raw), "must be positive")]
    return []


def _metric_target(target: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    type_ = target.get("type") or ""
    if not type_:
        causes.append(required(f"{path}.type", "must specify a metric target type"))
    if type_ not in TARGET_TYPES:
        causes.append(
            invalid(f"{path}.type", type_, "must be either Utilization, Value, or AverageValue")
        )
    for key in ("value", "averageValue"):
        if target.get(key) is not None:
            causes += _positive_quantity(target[key], f"{path}.{key}")
    utilization = target.get("averageUtilization")
    if isinstance(utilization, int) and utilization < 1:
        causes.append(invalid(f"{path}.averageUtilization", utilization, "must be greater than 0"))
    return causes


def _resource_source(src: dict[str, Any], path: str, container: bool) -> list[Cause]:
    causes: list[Cause] = []
    name = src.get("name") or ""
    if not name:
        causes.append(required(f"{path}.name", "must specify a resource name"))
    elif container:
        causes += container_resource_name(name, f"{path}.name")
    if container:
        c = src.get("container") or ""
        if not c:
            causes.append(required(f"{path}.container", "must specify a container"))
        causes += [invalid(f"{path}.container", c, m) for m in (is_dns1123_label(c) if c else [])]
    target = dict_of(src.get("target"))
    causes += _metric_target(target, f"{path}.target")
    utilization, average = target.get("averageUtilization"), target.get("averageValue")
    if utilization is None and average is None:
        causes.append(
            required(
                f"{path}.target.averageUtilization",
                "must set either a target raw value or a target utilization",
            )
        )
    if utilization is not None and average is not None:
        causes.append(
            forbidden(
                f"{path}.target.averageValue",
                "may not set both a target raw value and a target utilization",
            )
        )
    return causes


def _source(kind: str, src: dict[str, Any], path: str) -> list[Cause]:
    """The rules of one metric source."""
    if kind in ("resource", "containerResource"):
        return _resource_source(src, path, kind == "containerResource")
    causes: list[Cause] = []
    if kind == "object":
        causes += cross_version_reference(src.get("describedObject"), f"{path}.describedObject")
    causes += _metric_identifier(src.get("metric"), f"{path}.metric")
    target = dict_of(src.get("target"))
    causes += _metric_target(target, f"{path}.target")
    value, average = target.get("value"), target.get("averageValue")
    if kind == "object" and value is None and average is None:
        causes.append(
            required(
                f"{path}.target.averageValue", "must set either a target value or averageValue"
            )
        )
    elif kind == "external":
        if value is None and average is None:
            causes.append(
                required(
                    f"{path}.target.averageValue",
                    "must set either a target value for metric or a per-pod target",
                )
            )
        if value is not None and average is not None:
            causes.append(
                forbidden(
                    f"{path}.target.value",
                    "may not set both a target value for metric and a per-pod target",
                )
            )
    elif kind == "pods" and average is None:
        causes.append(
            required(f"{path}.target.averageValue", "must specify a positive target averageValue")
        )
    return causes


def _metric_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    """``validateMetricSpec``, with kube's quirks: an unknown type is reported twice, and
    only the first source present (in kube's fixed order) is checked."""
    causes: list[Cause] = []
    type_ = spec.get("type") or ""
    if not type_:
        causes.append(required(f"{path}.type", "must specify a metric source type"))
    if type_ not in SOURCE_TYPES:
        causes.append(not_supported(f"{path}.type", type_, SOURCE_TYPES))
    present = [k for k in _SOURCE_ORDER if spec.get(k) is not None]
    if present:
        causes += _source(present[0], dict_of(spec[present[0]]), f"{path}.{present[0]}")
    expected = _FIELD_OF.get(type_, "")
    if expected:
        if spec.get(expected) is None:
            causes.append(
                required(
                    f"{path}.{expected}", "must populate information for the given metric source"
                )
            )
    else:
        causes.append(not_supported(f"{path}.type", type_, SOURCE_TYPES))
    if len(present) != 1:
        causes += [
            forbidden(f"{path}.{k}", "must populate the given metric source only")
            for k in present
            if k != expected
        ]
    return causes


def _metrics(metrics: list[Any], path: str, min_replicas: Any) -> list[Cause]:
    causes: list[Cause] = []
    for i, m in enumerate(metrics):
        causes += _metric_spec(dict_of(m), f"{path}[{i}]")
    types = {dict_of(m).get("type") for m in metrics}
    if min_replicas == 0 and not types & {"Object", "External"}:
        causes.append(
            forbidden(
                path,
                "must specify at least one Object or External metric to "
                "support scaling to zero replicas",
            )
        )
    return causes


def _scaling_rules(rules: Any, path: str) -> list[Cause]:
    if not isinstance(rules, dict):
        return []
    causes: list[Cause] = []
    window = rules.get("stabilizationWindowSeconds")
    if isinstance(window, int) and window < 0:
        causes.append(
            invalid(
                f"{path}.stabilizationWindowSeconds",
                window,
                "must be greater than or equal to zero",
            )
        )
    if isinstance(window, int) and window > MAX_STABILIZATION_WINDOW_SECONDS:
        causes.append(
            invalid(
                f"{path}.stabilizationWindowSeconds",
                window,
                f"must be less than or equal to {MAX_STABILIZATION_WINDOW_SECONDS}",
            )
        )
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        causes.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    policies = rules.get("policies") or []
    if not policies:
        causes.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, p in enumerate(policies):
        p, at = dict_of(p), f"{path}.policies[{i}]"
        if p.get("type") not in POLICY_TYPES:
            causes.append(not_supported(f"{at}.type", p.get("type") or "", POLICY_TYPES))
        value, period = p.get("value") or 0, p.get("periodSeconds") or 0
        if value <= 0:
            causes.append(invalid(f"{at}.value", value, "must be greater than zero"))
        if period <= 0:
            causes.append(invalid(f"{at}.periodSeconds", period, "must be greater than zero"))
        if period > MAX_PERIOD_SECONDS:
            causes.append(
                invalid(
                    f"{at}.periodSeconds",
                    period,
                    f"must be less than or equal to {MAX_PERIOD_SECONDS}",
                )
            )
    return causes


def validate_spec(spec: dict[str, Any], min_replicas_lower_bound: int = 1) -> list[Cause]:
    """``validateHorizontalPodAutoscalerSpec`` of a v2 spec."""
    causes: list[Cause] = []
    low, high = spec.get("minReplicas"), spec.get("maxReplicas") or 0
    if isinstance(low, int) and low < min_replicas_lower_bound:
        causes.append(
            invalid(
                "spec.minReplicas",
                low,
                f"must be greater than or equal to {min_replicas_lower_bound}",
            )
        )
    if high < 1:
        causes.append(invalid("spec.maxReplicas", high, "must be greater than 0"))
    if isinstance(low, int) and high < low:
        causes.append(
            invalid("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`")
        )
    causes += cross_version_reference(spec.get("scaleTargetRef"), "spec.scaleTargetRef")
    causes += _metrics(spec.get("metrics") or [], "spec.metrics", low)
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        causes += _scaling_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
        causes += _scaling_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown")
    return causes


def validate_status(status: dict[str, Any]) -> list[Cause]:
    """``ValidateHorizontalPodAutoscalerStatusUpdate``: replica counts not negative."""
    return [
        invalid(f"status.{key}", status[key], "must be greater than or equal to 0")
        for key in ("currentReplicas", "desiredReplicas")
        if isinstance(status.get(key), int) and status[key] < 0
    ]


class HorizontalPodAutoscalerStrategy(Strategy):
    """The v2 (stored) form's rules. ``minReplicas: 0`` needs the HPAScaleToZero gate,
    off in 1.32, unless the object already had it."""

    initial_status = {"desiredReplicas": 0}

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        # v2 keeps none of the annotations v1 conversion writes.
        drop_round_trip(obj["metadata"])

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_spec(dict_of(obj.get("spec")))

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        bound = 0 if dict_of(old.get("spec")).get("minReplicas") == 0 else 1
        return validate_spec(dict_of(obj.get("spec")), bound) + validate_status(
            dict_of(obj.get("status"))
        )
