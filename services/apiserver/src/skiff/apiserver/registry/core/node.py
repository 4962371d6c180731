"""Nodes (kube's ``pkg/registry/core/node``): a kubelet registers its node with the
status it observed, so a create keeps ``status``. Validated as kube 1.32's
``ValidateNode``/``ValidateNodeUpdate``: taints (reported under ``metadata.taints``, as
kube does), capacity and allocatable quantities, pod CIDRs (one per family, set once), a
provider ID set once, no duplicate addresses."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_qualified_name, is_valid_label_value

from ...validation import duplicate, forbidden, invalid, not_supported, required
from ..strategy import Obj, Strategy
from .containers import dict_of, list_of
from .resourcenames import quantity_value

TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]  # kube's order
_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_POD_CIDR_CHANGE = 'node updates may not change podCIDR except from "" to valid'


def validate_taints(taints: list[Any], path: str) -> list[Cause]:
    """``validateNodeTaints``: qualified keys, label values, an effect, unique by key
    and effect."""
    causes: list[Cause] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(taints):
        taint, at = dict_of(taint), f"{path}[{i}]"
        key, value = str(taint.get("key") or ""), str(taint.get("value") or "")
        causes += [invalid(f"{at}.key", key, m) for m in is_qualified_name(key)]
        errs = is_valid_label_value(value)
        if errs:
            causes.append(invalid(f"{at}.value", value, ";".join(errs)))
        effect = taint.get("effect") or ""
        if not effect:
            causes.append(required(f"{at}.effect"))
        elif effect not in TAINT_EFFECTS:
            causes.append(not_supported(f"{at}.effect", effect, TAINT_EFFECTS))
        if (effect, key) in seen:
            dup = duplicate(at, taint)
            detail = f"{dup.message}: taints must be unique by key and effect pair"
            causes.append(Cause(at, detail, dup.reason))
            continue
        seen.add((effect, key))
    return causes


def _resources(status: Obj) -> list[Cause]:
    """``ValidateNodeResources``: capacity and allocatable as resource quantities."""
    causes: list[Cause] = []
    for part in ("capacity", "allocatable"):
        for name, raw in dict_of(status.get(part)).items():
            causes += quantity_value(str(name), raw, f"status.{part}[{name}]")
    return causes


def _pod_cidrs(cidrs: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    families: list[int] = []
    for i, value in enumerate(cidrs):
        try:
            families.append(ipaddress.ip_network(str(value), strict=False).version)
        except ValueError:
            causes.append(invalid(f"spec.podCIDRs[{i}]", value, _CIDR))
    if len(cidrs) > 1:
        if len(cidrs) > 2 or len(set(families)) != len(families):
            detail = "may specify no more than one CIDR for each IP family"
            causes.append(invalid("spec.podCIDRs", cidrs, detail))
        seen: set[str] = set()
        for i, value in enumerate(cidrs):
            if value in seen:
                causes.append(duplicate(f"spec.podCIDRs[{i}]", value))
            seen.add(value)
    return causes


class NodeStrategy(Strategy):
    keep_status_on_create = True

    def validate(self, obj: Obj) -> list[Cause]:
        spec = dict_of(obj.get("spec"))
        causes = validate_taints(list_of(spec.get("taints")), "metadata.taints")
        causes += _resources(dict_of(obj.get("status")))
        return causes + _pod_cidrs(list_of(spec.get("podCIDRs")))

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_of(obj.get("spec")), dict_of(old.get("spec"))
        causes = _resources(dict_of(obj.get("status")))
        seen: list[Any] = []
        for i, address in enumerate(list_of(dict_of(obj.get("status")).get("addresses"))):
            if address in seen:
                causes.append(duplicate(f"status.addresses[{i}]", address))
            seen.append(address)
        old_cidrs, cidrs = list_of(old_spec.get("podCIDRs")), list_of(spec.get("podCIDRs"))
        if old_cidrs:
            if len(old_cidrs) != len(cidrs):
                causes.append(forbidden("spec.podCIDRs", _POD_CIDR_CHANGE))
            else:
                changed = sum(1 for a, b in zip(old_cidrs, cidrs, strict=True) if a != b)
                causes += [forbidden("spec.podCIDRs", _POD_CIDR_CHANGE)] * changed
        old_provider = old_spec.get("providerID") or ""
        if old_provider and old_provider != (spec.get("providerID") or ""):
            detail = 'node updates may not change providerID except from "" to valid'
            causes.append(forbidden("spec.providerID", detail))
        causes += validate_taints(list_of(spec.get("taints")), "metadata.taints")
        if spec.get("externalID") != old_spec.get("externalID"):
            causes.append(forbidden("spec.externalID", "may not be updated"))
        return causes
