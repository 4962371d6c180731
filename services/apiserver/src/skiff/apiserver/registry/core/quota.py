"""LimitRanges and ResourceQuotas: kube's validation (``ValidateLimitRange``,
``ValidateResourceQuota``), with its messages and field paths."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from skiff.api.errors import Cause
from skiff.api.quantity import canonical as _q
from skiff.api.quantity import parse_quantity
from skiff.api.resourcequota import SCOPES, is_integer

from ..strategy import Obj, Strategy

_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_STANDARD_QUOTA = {
    "pods", "services", "replicationcontrollers", "resourcequotas", "secrets", "configmaps",
    "persistentvolumeclaims", "cpu", "memory", "ephemeral-storage", "requests.cpu",
    "requests.memory", "requests.storage", "requests.ephemeral-storage", "limits.cpu",
    "limits.memory", "limits.ephemeral-storage", "services.nodeports", "services.loadbalancers",
}  # fmt: skip
_STANDARD = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}
_LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")
_CONFLICTS = (("Terminating", "NotTerminating"), ("BestEffort", "NotBestEffort"))


def _resource_name(name: str, path: str) -> list[Cause]:
    """kube's validateResourceName: a qualified name; unprefixed ones must be standard."""
    prefix, slash, base = name.rpartition("/")
    ok = bool(_QUALIFIED.fullmatch(base)) and len(base) <= 63
    ok = ok and (not slash or (bool(_PREFIX.fullmatch(prefix)) and len(prefix) <= 253))
    if not ok:
        return [Cause(path, f"Invalid value: \"{name}\": name part must consist of alphanumeric "
                            "characters, '-', '_' or '.', and must start and end with an "
                            "alphanumeric character")]  # fmt: skip
    if not slash and not (name in _STANDARD or name.startswith("hugepages-")):
        return [Cause(path, f'Invalid value: "{name}": must be a standard resource type or '
                            "fully qualified")]  # fmt: skip
    return []


def _quota_resource_name(name: str, path: str) -> list[Cause]:
    """kube's ValidateResourceQuotaResourceName."""
    if "/" in name:
        prefix, _, base = name.rpartition("/")
        if not prefix or not _QUALIFIED.fullmatch(base):
            return _resource_name(name, path)
        return []
    standard = name in _STANDARD_QUOTA or name.startswith(("hugepages-", "requests.hugepages-"))
    if not standard:
        return [Cause(path, f'Invalid value: "{name}": must be a standard resource for quota')]
    return []


def _quota_values(values: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, raw in (values or {}).items():
        where = f"{path}[{name}]"
        causes += _quota_resource_name(name, where)
        value = parse_quantity(raw)
        if value is None:
            continue
        if value < 0:
            causes.append(Cause(where, f'Invalid value: "{_q(raw)}": must be greater than or '
                                       "equal to 0"))  # fmt: skip
        elif is_integer(name) and value != value.to_integral_value():
            causes.append(Cause(where, f'Invalid value: "{_q(raw)}": must be an integer'))
    return causes


def _scopes(spec: Obj) -> list[Cause]:
    causes: list[Cause] = []
    scopes = spec.get("scopes") or []
    for scope in scopes:
        if scope not in SCOPES:
            causes.append(Cause("spec.scopes", f'Invalid value: "{scope}": unsupported scope'))
    for a, b in _CONFLICTS:
        if a in scopes and b in scopes:
            shown = "[" + " ".join(scopes) + "]"
            causes.append(Cause("spec.scopes", f"Invalid value: {shown}: conflicting scopes"))
    for i, req in enumerate((spec.get("scopeSelector") or {}).get("matchExpressions") or []):
        path = f"spec.scopeSelector.matchExpressions[{i}]"
        scope, op, values = req.get("scopeName"), req.get("operator"), req.get("values") or []
        if scope not in SCOPES:
            causes.append(Cause(f"{path}.scopeName",
                                f'Invalid value: "{scope}": unsupported scope'))  # fmt: skip
        if op in ("In", "NotIn") and not values:
            why = "must be at least one value when `operator` is 'In' or 'NotIn'"
            causes.append(Cause(f"{path}.values", f"Required value: {why} for scope selector"))
        elif op in ("Exists", "DoesNotExist") and values:
            why = "must be no value when `operator` is 'Exist' or 'DoesNotExist'"
            causes.append(Cause(f"{path}.values", f"Invalid value: {why} for scope selector"))
        elif op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            causes.append(Cause(f"{path}.operator", f'Unsupported value: "{op}": supported '
                                'values: "DoesNotExist", "Exists", "In", "NotIn"'))  # fmt: skip
        elif scope != "PriorityClass" and scope in SCOPES and op != "Exists":
            causes.append(Cause(f"{path}.operator", f'Invalid value: "{op}": must be \'Exist\' '
                                "when scope is any of ResourceQuotaScopeTerminating, "
                                "ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, "
                                "ResourceQuotaScopeNotBestEffort or "
                                "ResourceQuotaScopeCrossNamespacePodAffinity"))  # fmt: skip
    return causes


class ResourceQuotaStrategy(Strategy):
    """ResourceQuotas: hard limits in the spec; ``status`` is the quota controller's and the
    ResourceQuota admission's."""

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        return (
            _quota_values(spec.get("hard"), "spec.hard")
            + _scopes(spec)
            + _quota_values(status.get("hard"), "status.hard")
            + _quota_values(status.get("used"), "status.used")
        )


def _limit_item(i: int, item: Obj) -> list[Cause]:
    path = f"spec.limits[{i}]"
    causes: list[Cause] = []
    kind = item.get("type") or ""
    if kind not in _LIMIT_TYPES and "/" not in kind:
        causes.append(Cause(f"{path}.type", f'Unsupported value: "{kind}": supported values: '
                            '"Container", "PersistentVolumeClaim", "Pod"'))  # fmt: skip
    maps: dict[str, dict[str, Decimal]] = {}
    raws: dict[str, dict[str, Any]] = {}
    for field in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        given = item.get(field) or {}
        if kind == "Pod" and field in ("default", "defaultRequest") and given:
            shown = "map[" + " ".join(f"{k}:{_q(v)}" for k, v in sorted(given.items())) + "]"
            causes.append(Cause(f"{path}.{field}", f"Invalid value: {shown}: not supported "
                                "when limit type is Pod"))  # fmt: skip
            continue
        raws[field], maps[field] = given, {}
        for name, raw in given.items():
            causes += _resource_name(name, f"{path}.{field}[{name}]")
            value = parse_quantity(raw)
            if value is not None:
                maps[field][name] = value
    mn, mx, df = maps.get("min", {}), maps.get("max", {}), maps.get("default", {})
    dr, ratio = maps.get("defaultRequest", {}), maps.get("maxLimitRequestRatio", {})

    def bad(field: str, k: str, shown: str, why: str) -> None:
        causes.append(Cause(f"{path}.{field}[{k}]", f'Invalid value: "{shown}": {why}'))

    for k in sorted(set().union(*maps.values())):
        lo, hi = _q(raws.get("min", {}).get(k)), _q(raws.get("max", {}).get(k))
        dflt, req = (
            _q(raws.get("default", {}).get(k)),
            _q(raws.get("defaultRequest", {}).get(k)),
        )
        r = _q(raws.get("maxLimitRequestRatio", {}).get(k))
        if k in mn and k in mx and mn[k] > mx[k]:
            bad("min", k, lo, f"min value {lo} is greater than max value {hi}")
        if k in dr and k in mn and mn[k] > dr[k]:
            bad("defaultRequest", k, req, f"min value {lo} is greater than default request "
                f"value {req}")  # fmt: skip
        if k in dr and k in mx and dr[k] > mx[k]:
            bad("defaultRequest", k, req, f"default request value {req} is greater than max "
                f"value {hi}")  # fmt: skip
        if k in dr and k in df and dr[k] > df[k]:
            bad("defaultRequest", k, req, f"default request value {req} is greater than "
                f"default limit value {dflt}")  # fmt: skip
        if k in df and k in mn and mn[k] > df[k]:
            bad("default", k, lo, f"min value {lo} is greater than default value {dflt}")
        if k in df and k in mx and df[k] > mx[k]:
            bad("default", k, hi, f"default value {dflt} is greater than max value {hi}")
        if k in ratio and ratio[k] < 1:
            bad("maxLimitRequestRatio", k, r, f"ratio {r} is less than 1")
        if k in ratio and k in mn and k in mx and mn[k] > 0 and ratio[k] > mx[k] / mn[k]:
            bad("maxLimitRequestRatio", k, r, f"ratio {r} is greater than max/min = "
                f"{float(mx[k] / mn[k]):f}")  # fmt: skip
    return causes


class LimitRangeStrategy(Strategy):
    """LimitRanges: per-type min/max/default/defaultRequest/maxLimitRequestRatio."""

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        seen: set[str] = set()
        for i, item in enumerate((obj.get("spec") or {}).get("limits") or []):
            kind = item.get("type") or ""
            if kind in seen:
                causes.append(Cause(f"spec.limits[{i}].type", f'Duplicate value: "{kind}"'))
            seen.add(kind)
            causes += _limit_item(i, item)
        return causes
