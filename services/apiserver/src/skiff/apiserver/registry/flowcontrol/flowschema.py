"""FlowSchemas (kube's ``pkg/registry/flowcontrol/flowschema`` and
``pkg/apis/flowcontrol/validation``): precedence 1…10000 (1 only for ``exempt``), a
priority level named, the distinguisher method, and each rule's subjects, resource and
non-resource rules in kube's words and paths; the mandatory ``exempt`` and ``catch-all``
keep their fixed spec. Status conditions are checked for duplicates.
"""

from __future__ import annotations

import json
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_dns1123_subdomain

from ...flowcontrol.bootstrap import MANDATORY_FLOW_SCHEMAS
from ...validation import INVALID, NOT_SUPPORTED, forbidden, invalid, not_supported, required
from ..strategy import Obj, Strategy

MAX_PRECEDENCE = 10000
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch"]
DISTINGUISHERS = ["ByNamespace", "ByUser"]
SUBJECT_KINDS = ["Group", "ServiceAccount", "User"]
_NS_INTRO = "each member of this list must be '*' or a DNS-1123 label; "


def go_strings(values: list[Any]) -> str:
    """A ``[]string`` as Go's ``%#v`` prints it in field errors."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def _invalid_list(path: str, values: list[Any], detail: str) -> Cause:
    return Cause(path, f"Invalid value: {go_strings(values)}: {detail}", INVALID)


def _strs(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _verbs(verbs: list[Any], path: str) -> list[Cause]:
    if not verbs:
        return [required(path, "verbs must contain at least one value")]
    if "*" in verbs:
        if len(verbs) > 1:
            return [_invalid_list(path, verbs, "if '*' is present, must not specify other verbs")]
        return []
    if not set(verbs) <= set(VERBS):
        listed = ", ".join(json.dumps(v) for v in VERBS)
        value = go_strings(verbs)
        return [
            Cause(path, f"Unsupported value: {value}: supported values: {listed}", NOT_SUPPORTED)
        ]
    return []


def non_resource_url(url: str, path: str) -> Cause | None:
    """``ValidateNonResourceURLPath``."""
    if not url:
        return invalid(path, url, "must not be empty")
    if url == "/":
        return None
    if not url.startswith("/"):
        return invalid(path, url, "must start with slash")
    if " " in url:
        return invalid(path, url, "must not contain white-space")
    if "//" in url:
        return invalid(path, url, "must not contain double slash")
    stars = url.count("*")
    if stars > 1 or (stars == 1 and url[-2:] != "/*"):
        return invalid(path, url, "wildcard can only do suffix matching")
    return None


def _resource_rule(rule: Obj, path: str) -> list[Cause]:
    causes = _verbs(_strs(rule.get("verbs")), f"{path}.verbs")
    for key, what in (("apiGroups", "api group"), ("resources", "resource")):
        values = _strs(rule.get(key))
        if not values:
            causes.append(
                required(f"{path}.{key}", f"resource rules must supply at least one {what}")
            )
        elif len(values) > 1 and "*" in values:
            detail = f"if '*' is present, must not specify other {what}s"
            causes.append(_invalid_list(f"{path}.{key}", values, detail))
    namespaces = _strs(rule.get("namespaces"))
    if not namespaces and not rule.get("clusterScope"):
        causes.append(
            required(
                f"{path}.namespaces",
                "resource rules that are not cluster scoped must supply at least one namespace",
            )
        )
    elif "*" in namespaces:
        if len(namespaces) > 1:
            detail = "if '*' is present, must not specify other namespaces"
            causes.append(_invalid_list(f"{path}.namespaces", namespaces, detail))
    else:
        for i, ns in enumerate(namespaces):
            causes += [
                invalid(f"{path}.namespaces[{i}]", ns, _NS_INTRO + m)
                for m in is_dns1123_label(str(ns))
            ]
    return causes


def _non_resource_rule(rule: Obj, path: str) -> list[Cause]:
    causes = _verbs(_strs(rule.get("verbs")), f"{path}.verbs")
    urls = _strs(rule.get("nonResourceURLs"))
    if not urls:
        causes.append(
            required(f"{path}.nonResourceURLs", "nonResourceURLs must contain at least one value")
        )
    elif "*" in urls:
        if len(urls) > 1:
            detail = "if '*' is present, must not specify other non-resource URLs"
            causes.append(_invalid_list(f"{path}.nonResourceURLs", urls, detail))
    else:
        for i, url in enumerate(urls):
            if (cause := non_resource_url(str(url), f"{path}.nonResourceURLs[{i}]")) is not None:
                causes.append(cause)
    return causes


_OTHERS = {
    "user": "user is forbidden when subject kind is not 'User'",
    "group": "group is forbidden when subject kind is not 'Group'",
    "serviceAccount": "serviceAccount is forbidden when subject kind is not 'ServiceAccount'",
}
_KIND_FIELDS = {"ServiceAccount": "serviceAccount", "User": "user", "Group": "group"}


def _subject(subject: Obj, path: str) -> list[Cause]:
    kind = subject.get("kind") or ""
    key = _KIND_FIELDS.get(kind)
    if key is None:
        return [not_supported(f"{path}.kind", kind, SUBJECT_KINDS)]
    causes: list[Cause] = []
    body = subject.get(key)
    if not isinstance(body, dict):
        causes.append(required(f"{path}.{key}", f"{key} is required when subject kind is '{kind}'"))
    elif key == "serviceAccount":
        name, namespace = body.get("name") or "", body.get("namespace") or ""
        if not name:
            causes.append(required(f"{path}.{key}.name"))
        elif name != "*":
            causes += [invalid(f"{path}.{key}.name", name, m) for m in is_dns1123_subdomain(name)]
        if namespace:
            causes += [
                invalid(f"{path}.{key}.namespace", namespace, m)
                for m in is_dns1123_label(namespace)
            ]
        else:
            causes.append(
                required(f"{path}.{key}.namespace", "must specify namespace for service account")
            )
    elif not body.get("name"):
        causes.append(required(f"{path}.{key}.name"))
    others = [k for k in ("serviceAccount", "user", "group") if k != key]
    causes += [forbidden(f"{path}.{k}", _OTHERS[k]) for k in others if subject.get(k) is not None]
    return causes


def _rule(rule: Obj, path: str) -> list[Cause]:
    subjects = _strs(rule.get("subjects"))
    causes: list[Cause] = []
    if not subjects:
        causes.append(required(f"{path}.subjects", "subjects must contain at least one value"))
    for i, s in enumerate(subjects):
        causes += _subject(s if isinstance(s, dict) else {}, f"{path}.subjects[{i}]")
    resources, urls = _strs(rule.get("resourceRules")), _strs(rule.get("nonResourceRules"))
    if not resources and not urls:
        causes.append(
            required(path, "at least one of resourceRules and nonResourceRules has to be non-empty")
        )
    for i, r in enumerate(resources):
        causes += _resource_rule(r if isinstance(r, dict) else {}, f"{path}.resourceRules[{i}]")
    for i, r in enumerate(urls):
        causes += _non_resource_rule(
            r if isinstance(r, dict) else {}, f"{path}.nonResourceRules[{i}]"
        )
    return causes


def validate_spec(name: str, spec: Obj) -> list[Cause]:
    """``ValidateFlowSchemaSpec``."""
    causes: list[Cause] = []
    precedence = spec.get("matchingPrecedence") or 0
    if precedence <= 0:
        causes.append(invalid("spec.matchingPrecedence", precedence, "must be a positive value"))
    if precedence > MAX_PRECEDENCE:
        causes.append(
            invalid(
                "spec.matchingPrecedence", precedence, f"must not be greater than {MAX_PRECEDENCE}"
            )
        )
    if precedence == 1 and name != "exempt":
        causes.append(
            invalid(
                "spec.matchingPrecedence",
                precedence,
                "only the schema named 'exempt' may have matchingPrecedence 1",
            )
        )
    method = spec.get("distinguisherMethod")
    if isinstance(method, dict) and method.get("type") not in DISTINGUISHERS:
        listed = ", ".join(json.dumps(d) for d in DISTINGUISHERS)
        value = (
            f"flowcontrol.FlowDistinguisherMethod{{Type:{json.dumps(method.get('type') or '')}}}"
        )
        causes.append(
            Cause(
                "spec.distinguisherMethod.type",
                f"Unsupported value: {value}: supported values: {listed}",
                NOT_SUPPORTED,
            )
        )
    level = (spec.get("priorityLevelConfiguration") or {}).get("name") or ""
    if level:
        causes += [
            invalid("spec.priorityLevelConfiguration.name", level, m)
            for m in is_dns1123_subdomain(level)
        ]
    else:
        causes.append(
            required("spec.priorityLevelConfiguration.name", "must reference a priority level")
        )
    for i, rule in enumerate(_strs(spec.get("rules"))):
        causes += _rule(rule if isinstance(rule, dict) else {}, f"spec.rules[{i}]")
    return causes


def validate_conditions(status: Any, path: str = "status") -> list[Cause]:
    """The status conditions of a FlowSchema or priority level: a type each, no type twice."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, c in enumerate(_strs((status or {}).get("conditions"))):
        ctype = (c or {}).get("type") or ""
        if ctype in seen:
            causes.append(
                Cause(
                    f"{path}.conditions[{i}].type",
                    f"Duplicate value: {json.dumps(ctype)}",
                    "FieldValueDuplicate",
                )
            )
        seen.add(ctype)
        if not ctype:
            causes.append(required(f"{path}.conditions[{i}].type", "must not be empty"))
    return causes


def same_spec(a: Obj, b: Obj) -> bool:
    """Go's ``Semantic.DeepEqual`` on specs: an empty list is a missing one."""
    return _normal(a) == _normal(b)


def _normal(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items() if x not in (None, [], {}, False)}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    return v


class FlowSchemaStrategy(Strategy):
    """Spec changes bump ``metadata.generation`` (generically); ``/status`` writes only
    the conditions (the apiserver's own Dangling condition)."""

    def validate(self, obj: Obj) -> list[Cause]:
        name = (obj.get("metadata") or {}).get("name") or ""
        spec = obj.get("spec") or {}
        causes = validate_spec(name, spec)
        mandatory = MANDATORY_FLOW_SCHEMAS.get(name)
        if mandatory is not None and not same_spec(spec, mandatory["spec"]):
            causes.append(invalid("spec", spec, f"spec of '{name}' must equal the fixed value"))
        return causes + validate_conditions(obj.get("status"))
