"""Node selectors as kube 1.32's ``ValidateNodeSelector`` checks them (a volume's node
affinity, a pod's required node affinity): terms, operators and their values, label keys
and values, the one field selector (``metadata.name``); a pod's affinity (weights,
pod-affinity terms with their selectors, namespaces, label keys and topology key) and
topology spread constraints."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)

from ...validation import duplicate, forbidden, invalid, label_selector, not_supported, required
from .containers import dict_of, list_of

Obj = dict[str, Any]


def _requirement(req: Any, path: str, allow_invalid_values: bool) -> list[Cause]:
    """``ValidateNodeSelectorRequirement``."""
    req = dict_of(req)
    op, values = req.get("operator"), list_of(req.get("values"))
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if not values:
            detail = "must be specified when `operator` is 'In' or 'NotIn'"
            causes.append(required(f"{path}.values", detail))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            causes.append(forbidden(f"{path}.values", detail))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            detail = "must be specified single value when `operator` is 'Lt' or 'Gt'"
            causes.append(required(f"{path}.values", detail))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    key = str(req.get("key") or "")
    causes += [invalid(f"{path}.key", key, m) for m in is_qualified_name(key)]
    if not allow_invalid_values:
        for i, v in enumerate(values):
            causes += [invalid(f"{path}.values[{i}]", v, m) for m in is_valid_label_value(str(v))]
    return causes


def _field_requirement(req: Any, path: str) -> list[Cause]:
    """``ValidateNodeFieldSelectorRequirement``: only ``metadata.name`` In/NotIn one name."""
    req = dict_of(req)
    op, values = req.get("operator"), list_of(req.get("values"))
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            detail = (
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"
            )
            causes.append(required(f"{path}.values", detail))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        key = req.get("key") or ""
        causes.append(invalid(f"{path}.key", key, "not a valid field selector key"))
    else:
        for i, v in enumerate(values):
            causes += [invalid(f"{path}.values[{i}]", v, m) for m in is_dns1123_subdomain(str(v))]
    return causes


def node_selector_term(term: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    """``ValidateNodeSelectorTerm``."""
    term = dict_of(term)
    causes: list[Cause] = []
    for j, req in enumerate(list_of(term.get("matchExpressions"))):
        causes += _requirement(req, f"{path}.matchExpressions[{j}]", allow_invalid_values)
    for j, req in enumerate(list_of(term.get("matchFields"))):
        causes += _field_requirement(req, f"{path}.matchFields[{j}]")
    return causes


def node_selector(selector: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    """``ValidateNodeSelector``: at least one term, each valid."""
    terms = list_of(dict_of(selector).get("nodeSelectorTerms"))
    if not terms:
        detail = "must have at least one node selector term"
        return [required(f"{path}.nodeSelectorTerms", detail)]
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        causes += node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]", allow_invalid_values)
    return causes


_WEIGHT = "must be in the range 1-100"
SCHEDULE_ACTIONS = ["DoNotSchedule", "ScheduleAnyway"]
NODE_POLICIES = ["Honor", "Ignore"]
_NO_SELECTOR = "must not be specified when labelSelector is not set"


def _weight(term: Obj, path: str) -> list[Cause]:
    weight = term.get("weight", 0)
    if isinstance(weight, int) and not 0 < weight <= 100:
        return [invalid(f"{path}.weight", weight, _WEIGHT)]
    return []


def _label_names(keys: list[Any], path: str) -> list[Cause]:
    return [
        invalid(f"{path}[{i}]", k, m) for i, k in enumerate(keys) for m in is_qualified_name(str(k))
    ]


def _selector_keys(selector: Any) -> set[str]:
    selector = dict_of(selector)
    keys = set(dict_of(selector.get("matchLabels")))
    return keys | {dict_of(e).get("key") for e in list_of(selector.get("matchExpressions"))}


def _pod_affinity_term(term: Obj, path: str) -> list[Cause]:
    """``validatePodAffinityTerm``."""
    causes = label_selector(term.get("labelSelector"), f"{path}.labelSelector")
    causes += label_selector(term.get("namespaceSelector"), f"{path}.namespaceSelector")
    for name in list_of(term.get("namespaces")):
        causes += [invalid(f"{path}.namespace", name, m) for m in is_dns1123_label(str(name))]
    selector = term.get("labelSelector")
    match, mismatch = list_of(term.get("matchLabelKeys")), list_of(term.get("mismatchLabelKeys"))
    for key, keys in (("matchLabelKeys", match), ("mismatchLabelKeys", mismatch)):
        if keys and selector is None:
            causes.append(forbidden(f"{path}.{key}", _NO_SELECTOR))
        elif keys:
            causes += _label_names(keys, f"{path}.{key}")
    if selector is not None:  # kube's quirk: a key in matchLabels and an expression
        index = {k: i for i, k in enumerate(match)}
        seen = set(dict_of(dict_of(selector).get("matchLabels")))
        for expression in list_of(dict_of(selector).get("matchExpressions")):
            key = dict_of(expression).get("key")
            if key in index and key in seen:
                detail = "exists in both matchLabelKeys and labelSelector"
                causes.append(invalid(f"{path}[{index[key]}]", key, detail))
            seen.add(key)
    for i, key in enumerate(match):
        if key in mismatch:
            detail = "exists in both matchLabelKeys and mismatchLabelKeys"
            causes.append(invalid(f"{path}.matchLabelKeys[{i}]", key, detail))
    topology = str(term.get("topologyKey") or "")
    if not topology:
        causes.append(required(f"{path}.topologyKey", "can not be empty"))
    return causes + [
        invalid(f"{path}.topologyKey", topology, m) for m in is_qualified_name(topology)
    ]


def _pod_affinity(affinity: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    at = f"{path}.requiredDuringSchedulingIgnoredDuringExecution"
    for i, term in enumerate(
        list_of(affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    ):
        causes += _pod_affinity_term(dict_of(term), f"{at}[{i}]")
    at = f"{path}.preferredDuringSchedulingIgnoredDuringExecution"
    for j, term in enumerate(
        list_of(affinity.get("preferredDuringSchedulingIgnoredDuringExecution"))
    ):
        term = dict_of(term)
        causes += _weight(term, f"{at}[{j}]")
        causes += _pod_affinity_term(
            dict_of(term.get("podAffinityTerm")), f"{at}[{j}].podAffinityTerm"
        )
    return causes


def validate_affinity(affinity: Any, path: str) -> list[Cause]:
    """``validateAffinity``: node affinity (required terms, weighted preferences) and pod
    (anti-)affinity terms."""
    affinity = dict_of(affinity)
    causes: list[Cause] = []
    node = affinity.get("nodeAffinity")
    if isinstance(node, dict):
        at = f"{path}.nodeAffinity"
        required_terms = node.get("requiredDuringSchedulingIgnoredDuringExecution")
        if isinstance(required_terms, dict):
            causes += node_selector(
                required_terms, f"{at}.requiredDuringSchedulingIgnoredDuringExecution", True
            )
        at = f"{at}.preferredDuringSchedulingIgnoredDuringExecution"
        for i, term in enumerate(
            list_of(node.get("preferredDuringSchedulingIgnoredDuringExecution"))
        ):
            term = dict_of(term)
            causes += _weight(term, f"{at}[{i}]")
            causes += node_selector_term(term.get("preference"), f"{at}[{i}].preference", True)
    for key in ("podAffinity", "podAntiAffinity"):
        if isinstance(affinity.get(key), dict):
            causes += _pod_affinity(affinity[key], f"{path}.{key}")
    return causes


def validate_topology_spread(constraints: list[Any], path: str) -> list[Cause]:
    """``validateTopologySpreadConstraints``."""
    causes: list[Cause] = []
    for i, constraint in enumerate(constraints):
        c, at = dict_of(constraint), f"{path}[{i}]"
        skew = c.get("maxSkew", 0)
        if isinstance(skew, int) and skew <= 0:
            causes.append(invalid(f"{at}.maxSkew", skew, "must be greater than zero"))
        if not c.get("topologyKey"):
            causes.append(required(f"{at}.topologyKey", "can not be empty"))
        action = c.get("whenUnsatisfiable") or ""
        if action not in SCHEDULE_ACTIONS:
            causes.append(not_supported(f"{at}.whenUnsatisfiable", action, SCHEDULE_ACTIONS))
        for rest in constraints[i + 1 :]:
            rest = dict_of(rest)
            if (rest.get("topologyKey"), rest.get("whenUnsatisfiable")) == (
                c.get("topologyKey"),
                action,
            ):
                value = f"{{{c.get('topologyKey') or ''}, {action}}}"
                causes.append(duplicate(f"{at}.{{topologyKey, whenUnsatisfiable}}", value))
                break
        domains = c.get("minDomains")
        if isinstance(domains, int):
            if domains <= 0:
                causes.append(invalid(f"{at}.minDomains", domains, "must be greater than zero"))
            if action != "DoNotSchedule":
                detail = f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"
                causes.append(invalid(f"{at}.minDomains", domains, detail))
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            policy = c.get(key)
            if policy is not None and policy not in NODE_POLICIES:
                causes.append(not_supported(f"{at}.{key}", policy, NODE_POLICIES))
        keys = list_of(c.get("matchLabelKeys"))
        if keys:
            selector = c.get("labelSelector")
            if selector is None:
                causes.append(forbidden(f"{at}.matchLabelKeys", _NO_SELECTOR))
            in_selector = _selector_keys(selector)
            for j, key in enumerate(keys):
                causes += [
                    invalid(f"{at}.matchLabelKeys[{j}]", key, m)
                    for m in is_qualified_name(str(key))
                ]
                if key in in_selector:
                    detail = "exists in both matchLabelKeys and labelSelector"
                    causes.append(invalid(f"{at}.matchLabelKeys[{j}]", key, detail))
        causes += label_selector(c.get("labelSelector"), f"{at}.labelSelector")
    return causes
