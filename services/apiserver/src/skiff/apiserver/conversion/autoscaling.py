"""HorizontalPodAutoscalers between autoscaling/v1 and autoscaling/v2, as kube's
``pkg/apis/autoscaling/v1/conversion.go`` (v2 has the internal type's shape, so it
stands for it here).

v1 has one target, ``targetCPUUtilizationPercentage``. What it cannot hold travels in
annotations, so that a v1 client's update keeps it: the other metrics
(``autoscaling.alpha.kubernetes.io/metrics``), the current metrics
(``…/current-metrics``), the conditions (``…/conditions``) and the behavior
(``…/behavior``). Metrics and statuses there are in v1's own (v2beta1-shaped) metric
types; the behavior is the internal type's Go encoding (field names as Go spells them).
A v1 object without any metric gets kube's implicit 80% CPU target.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from skiff.api.defaults import DEFAULT_CPU_UTILIZATION

Obj = dict[str, Any]

METRICS = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
ROUND_TRIP = (METRICS, BEHAVIOR, CURRENT_METRICS, CONDITIONS)
"""The annotations only conversion writes: dropped from every v2 object."""


_KIND = "HorizontalPodAutoscaler"


def convert(obj: Obj, version: str) -> Obj:
    """``obj`` (v1 or v2) in ``version``."""
    if version == "v1":
        return to_v1(obj)
    return to_v2(obj)


def drop_round_trip(meta: Obj) -> None:
    """Remove the conversion annotations from ``meta`` (kube's
    ``DropRoundTripHorizontalPodAutoscalerAnnotations``)."""
    annotations = meta.get("annotations")
    if isinstance(annotations, dict) and any(k in annotations for k in ROUND_TRIP):
        kept = {k: v for k, v in annotations.items() if k not in ROUND_TRIP}
        if kept:
            meta["annotations"] = kept
        else:
            del meta["annotations"]


def _go_json(value: Any) -> str:
    """``encoding/json``'s Marshal: compact, HTML characters escaped."""
    out = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _put(out: Obj, key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is None (a Go ``omitempty`` pointer)."""
    if value is not None:
        out[key] = value


def dict_of(v: Any) -> Obj:
    """``v`` if it is an object, else an empty one (for fields clients may send wrong)."""
    return v if isinstance(v, dict) else {}


def _ref(r: Any) -> Obj:
    r = dict_of(r)
    out = {"kind": r.get("kind", ""), "name": r.get("name", "")}
    _put(out, "apiVersion", r.get("apiVersion") or None)
    return out


def _is_cpu(m: Obj) -> bool:
    return m.get("type") == "Resource" and dict_of(m.get("resource")).get("name") == "cpu"


def _is_cpu_utilization(m: Obj) -> bool:
    """A CPU utilization target: what v1's ``targetCPUUtilizationPercentage`` holds."""
    return _is_cpu(m) and dict_of(m["resource"].get("target")).get("averageUtilization") is not None


# -- v2 → v1 -------------------------------------------------------------------------


def _spec_to_v1(m: Obj) -> Obj:
    """A v2 MetricSpec as v1's."""
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        o, t, mi = dict_of(o), dict_of(dict_of(o).get("target")), dict_of(dict_of(o).get("metric"))
        src: Obj = {
            "target": _ref(o.get("describedObject")),
            "metricName": mi.get("name", ""),
            "targetValue": t.get("value") or "0",
        }
        _put(src, "selector", mi.get("selector"))
        _put(src, "averageValue", t.get("averageValue"))
        out["object"] = src
    if (p := m.get("pods")) is not None:
        t, mi = dict_of(dict_of(p).get("target")), dict_of(dict_of(p).get("metric"))
        src = {"metricName": mi.get("name", ""), "targetAverageValue": t.get("averageValue") or "0"}
        _put(src, "selector", mi.get("selector"))
        out["pods"] = src
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            r, t = dict_of(r), dict_of(dict_of(r).get("target"))
            src = {"name": r.get("name", "")}
            _put(src, "targetAverageUtilization", t.get("averageUtilization"))
            _put(src, "targetAverageValue", t.get("averageValue"))
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        t, mi = dict_of(dict_of(e).get("target")), dict_of(dict_of(e).get("metric"))
        src = {"metricName": mi.get("name", "")}
        _put(src, "metricSelector", mi.get("selector"))
        _put(src, "targetValue", t.get("value"))
        _put(src, "targetAverageValue", t.get("averageValue"))
        out["external"] = src
    return out


def _status_to_v1(m: Obj) -> Obj:
    """A v2 MetricStatus as v1's."""
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        o, c, mi = dict_of(o), dict_of(dict_of(o).get("current")), dict_of(dict_of(o).get("metric"))
        st: Obj = {
            "target": _ref(o.get("describedObject")),
            "metricName": mi.get("name", ""),
            "currentValue": c.get("value") or "0",
        }
        _put(st, "selector", mi.get("selector"))
        _put(st, "averageValue", c.get("averageValue"))
        out["object"] = st
    if (p := m.get("pods")) is not None:
        c, mi = dict_of(dict_of(p).get("current")), dict_of(dict_of(p).get("metric"))
        st = {"metricName": mi.get("name", ""), "currentAverageValue": c.get("averageValue") or "0"}
        _put(st, "selector", mi.get("selector"))
        out["pods"] = st
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            r, c = dict_of(r), dict_of(dict_of(r).get("current"))
            st = {"name": r.get("name", "")}
            _put(st, "currentAverageUtilization", c.get("averageUtilization"))
            st["currentAverageValue"] = c.get("averageValue") or "0"
            if key == "containerResource":
                st["container"] = r.get("container", "")
            out[key] = st
    if (e := m.get("external")) is not None:
        c, mi = dict_of(dict_of(e).get("current")), dict_of(dict_of(e).get("metric"))
        st = {"metricName": mi.get("name", "")}
        _put(st, "metricSelector", mi.get("selector"))
        st["currentValue"] = c.get("value") or "0"
        _put(st, "currentAverageValue", c.get("averageValue"))
        out["external"] = st
    return out


def _condition(c: Any) -> Obj:
    c = dict_of(c)
    out = {"type": c.get("type", ""), "status": c.get("status", "")}
    for k in ("lastTransitionTime", "reason", "message"):
        _put(out, k, c.get(k) or None)
    return out


_RULES = (("stabilizationWindowSeconds", "StabilizationWindowSeconds"),
          ("selectPolicy", "SelectPolicy"))  # fmt: skip
_POLICY = (("type", "Type"), ("value", "Value"), ("periodSeconds", "PeriodSeconds"))


def _behavior_to_internal(b: Obj) -> Obj:
    """A v2 behavior as the internal type encodes (Go field names, nil as null)."""

    def rules(r: Any) -> Obj | None:
        if not isinstance(r, dict):
            return None
        out: Obj = {go: r.get(k) for k, go in _RULES}
        policies = r.get("policies")
        out["Policies"] = (
            [
                {go: dict_of(p).get(k, "" if k == "type" else 0) for k, go in _POLICY}
                for p in policies
            ]
            if isinstance(policies, list)
            else None
        )
        return out

    return {"ScaleUp": rules(b.get("scaleUp")), "ScaleDown": rules(b.get("scaleDown"))}


def to_v1(obj: Obj) -> Obj:
    """A v2 HorizontalPodAutoscaler as autoscaling/v1."""
    meta = copy.deepcopy(dict_of(obj.get("metadata")))
    spec, status = dict_of(obj.get("spec")), dict_of(obj.get("status"))
    metrics = [m for m in spec.get("metrics") or [] if isinstance(m, dict)]
    out_spec: Obj = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(out_spec, "minReplicas", spec.get("minReplicas"))
    out_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    for m in metrics:
        if _is_cpu_utilization(m):
            out_spec["targetCPUUtilizationPercentage"] = m["resource"]["target"][
                "averageUtilization"
            ]
            break
    out_status: Obj = {}
    _put(out_status, "observedGeneration", status.get("observedGeneration"))
    _put(out_status, "lastScaleTime", status.get("lastScaleTime"))
    out_status["currentReplicas"] = status.get("currentReplicas", 0)
    out_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    current = [m for m in status.get("currentMetrics") or [] if isinstance(m, dict)]
    for m in current:
        if _is_cpu(m):
            utilization = dict_of(dict_of(m["resource"]).get("current")).get("averageUtilization")
            _put(out_status, "currentCPUUtilizationPercentage", utilization)

    drop_round_trip(meta)
    notes: Obj = {}
    other = [_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if other:
        notes[METRICS] = _go_json(other)
    if current:
        notes[CURRENT_METRICS] = _go_json([_status_to_v1(m) for m in current])
    if isinstance(spec.get("behavior"), dict):
        notes[BEHAVIOR] = _go_json(_behavior_to_internal(spec["behavior"]))
    conditions = status.get("conditions") or []
    if conditions:
        notes[CONDITIONS] = _go_json([_condition(c) for c in conditions])
    if notes:
        meta["annotations"] = {**dict_of(meta.get("annotations")), **notes}
    return {
        "apiVersion": "autoscaling/v1",
        "kind": _KIND,
        "metadata": meta,
        "spec": out_spec,
        "status": out_status,
    }


# -- v1 → v2 -------------------------------------------------------------------------


def _target(type_: str, **values: Any) -> Obj:
    out: Obj = {"type": type_}
    for k, v in values.items():
        _put(out, k, v)
    return out


def _metric(name: Any, selector: Any) -> Obj:
    out: Obj = {"name": name if isinstance(name, str) else ""}
    _put(out, "selector", selector)
    return out


def _spec_to_v2(m: Obj) -> Obj:
    """A v1 MetricSpec (from the annotation) as v2's."""
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        o = dict_of(o)
        average = o.get("averageValue")
        out["object"] = {
            "describedObject": _ref(o.get("target")),
            "target": _target(
                "Value" if average is None else "AverageValue",
                value=o.get("targetValue") or "0",
                averageValue=average,
            ),
            "metric": _metric(o.get("metricName"), o.get("selector")),
        }
    if (p := m.get("pods")) is not None:
        p = dict_of(p)
        out["pods"] = {
            "metric": _metric(p.get("metricName"), p.get("selector")),
            "target": _target("AverageValue", averageValue=p.get("targetAverageValue") or "0"),
        }
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            r = dict_of(r)
            utilization = r.get("targetAverageUtilization")
            src: Obj = {
                "name": r.get("name", ""),
                "target": _target(
                    "AverageValue" if utilization is None else "Utilization",
                    averageValue=r.get("targetAverageValue"),
                    averageUtilization=utilization,
                ),
            }
            if key == "containerResource":
                src["container"] = r.get("container", "")
            out[key] = src
    if (e := m.get("external")) is not None:
        e = dict_of(e)
        value = e.get("targetValue")
        out["external"] = {
            "metric": _metric(e.get("metricName"), e.get("metricSelector")),
            "target": _target(
                "AverageValue" if value is None else "Value",
                value=value,
                averageValue=e.get("targetAverageValue"),
            ),
        }
    return out


def _current(**values: Any) -> Obj:
    out: Obj = {}
    for k, v in values.items():
        _put(out, k, v)
    return out


def _status_to_v2(m: Obj) -> Obj:
    """A v1 MetricStatus (from the annotation) as v2's."""
    out: Obj = {"type": m.get("type", "")}
    if (o := m.get("object")) is not None:
        o = dict_of(o)
        out["object"] = {
            "metric": _metric(o.get("metricName"), o.get("selector")),
            "current": _current(
                value=o.get("currentValue") or "0", averageValue=o.get("averageValue")
            ),
            "describedObject": _ref(o.get("target")),
        }
    if (p := m.get("pods")) is not None:
        p = dict_of(p)
        out["pods"] = {
            "metric": _metric(p.get("metricName"), p.get("selector")),
            "current": _current(averageValue=p.get("currentAverageValue") or "0"),
        }
    for key in ("resource", "containerResource"):
        if (r := m.get(key)) is not None:
            r = dict_of(r)
            st: Obj = {
                "name": r.get("name", ""),
                "current": _current(
                    averageValue=r.get("currentAverageValue") or "0",
                    averageUtilization=r.get("currentAverageUtilization"),
                ),
            }
            if key == "containerResource":
                st["container"] = r.get("container", "")
            out[key] = st
    if (e := m.get("external")) is not None:
        e = dict_of(e)
        out["external"] = {
            "metric": _metric(e.get("metricName"), e.get("metricSelector")),
            "current": _current(
                value=e.get("currentValue") or "0", averageValue=e.get("currentAverageValue")
            ),
        }
    return out


def _fold(d: Obj) -> Obj:
    """Keys matched as Go's decoder matches field names: without regard to case."""
    return {k.lower(): v for k, v in d.items()}


def _int32(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**31) <= v < 2**31:
        raise ValueError(v)
    return v


def _behavior_from_internal(raw: Any) -> Obj | None:
    """The internal type's encoding back as a v2 behavior; None when it is not well
    formed or empty (kube moves only well-formed data from the annotation)."""
    if not isinstance(raw, dict):
        return None

    def rules(r: Any) -> Obj | None:
        if r is None:
            return None
        r = _fold(dict_of(r) if isinstance(r, dict) else _bad(r))
        out: Obj = {}
        if (w := r.get("stabilizationwindowseconds")) is not None:
            out["stabilizationWindowSeconds"] = _int32(w)
        if (s := r.get("selectpolicy")) is not None:
            out["selectPolicy"] = s if isinstance(s, str) else _bad(s)
        policies = r.get("policies")
        if policies is not None:
            if not isinstance(policies, list):
                _bad(policies)
            out["policies"] = [_policy(p) for p in policies]
        return out

    try:
        folded = _fold(raw)
        up, down = rules(folded.get("scaleup")), rules(folded.get("scaledown"))
    except ValueError:
        return None
    if up is None and down is None:
        return None
    out: Obj = {}
    _put(out, "scaleUp", up)
    _put(out, "scaleDown", down)
    return out


def _policy(p: Any) -> Obj:
    p = _fold(p if isinstance(p, dict) else _bad(p))
    type_ = p.get("type", "")
    if not isinstance(type_, str):
        _bad(type_)
    return {
        "type": type_,
        "value": _int32(p.get("value", 0)),
        "periodSeconds": _int32(p.get("periodseconds", 0)),
    }


def _bad(v: Any) -> Any:
    raise ValueError(v)


def _from_annotation(annotations: Obj, key: str, each: Any) -> list[Obj] | None:
    """``each`` of the objects listed (as JSON) in an annotation; None when it is absent
    or not well formed."""
    items = _json_or_none(annotations.get(key))
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        return None
    try:
        return [each(i) for i in items]
    except (AttributeError, TypeError):
        return None


def to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HorizontalPodAutoscaler as v2."""
    meta = copy.deepcopy(dict_of(obj.get("metadata")))
    spec, status = dict_of(obj.get("spec")), dict_of(obj.get("status"))
    annotations = dict_of(meta.get("annotations"))
    out_spec: Obj = {"scaleTargetRef": _ref(spec.get("scaleTargetRef"))}
    _put(out_spec, "minReplicas", spec.get("minReplicas"))
    out_spec["maxReplicas"] = spec.get("maxReplicas", 0)
    metrics: list[Obj] = []
    if (cpu := spec.get("targetCPUUtilizationPercentage")) is not None:
        metrics = [_cpu_metric(cpu)]
    # Each annotation that is not well formed is ignored, as kube's decoder errors are.
    if (other := _from_annotation(annotations, METRICS, _spec_to_v2)) is not None:
        metrics = other + metrics  # the other metrics first, then the CPU target
    behavior = _behavior_from_internal(_json_or_none(annotations.get(BEHAVIOR)))
    current: list[Obj] = []
    if (cpu_now := status.get("currentCPUUtilizationPercentage")) is not None:
        current = [
            {"type": "Resource",
             "resource": {"name": "cpu", "current": {"averageUtilization": cpu_now}}}
        ]  # fmt: skip
    if (listed := _from_annotation(annotations, CURRENT_METRICS, _status_to_v2)) is not None:
        current = listed
    conditions = _from_annotation(annotations, CONDITIONS, _condition)
    if not metrics:
        metrics = [_cpu_metric(DEFAULT_CPU_UTILIZATION)]
    out_spec["metrics"] = metrics
    _put(out_spec, "behavior", behavior)
    drop_round_trip(meta)
    out_status: Obj = {}
    _put(out_status, "observedGeneration", status.get("observedGeneration"))
    _put(out_status, "lastScaleTime", status.get("lastScaleTime"))
    _put(out_status, "currentReplicas", status.get("currentReplicas") or None)
    out_status["desiredReplicas"] = status.get("desiredReplicas", 0)
    if current:
        out_status["currentMetrics"] = current
    _put(out_status, "conditions", conditions)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": _KIND,
        "metadata": meta,
        "spec": out_spec,
        "status": out_status,
    }


def _json_or_none(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _cpu_metric(utilization: Any) -> Obj:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization},
        },
    }
