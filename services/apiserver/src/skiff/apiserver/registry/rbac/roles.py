"""Roles, ClusterRoles, RoleBindings and ClusterRoleBindings as kube 1.32's
``pkg/apis/rbac/validation`` checks them: rules with verbs and either resources (with API
groups) or, cluster-wide only, non-resource URLs; aggregation selectors; bindings to a
Role or ClusterRole of the RBAC group by a valid name, subjects of the three kinds, and a
``roleRef`` that never changes."""

from __future__ import annotations

import json
from typing import Any

from skiff.api.errors import ApiError, Cause
from skiff.api.names import is_dns1123_subdomain, is_valid_path_segment_name
from skiff.api.selectors import selector_from_dict

from ...validation import invalid, label_selector, not_supported, required
from ..core.containers import dict_of, list_of
from ..strategy import Obj, Strategy

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ["ServiceAccount", "User", "Group"]


def go_strings(values: list[Any]) -> str:
    """A ``[]string`` as Go's ``%#v`` prints it."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def _rule(rule: Obj, namespaced: bool, path: str) -> list[Cause]:
    """``ValidatePolicyRule``."""
    causes: list[Cause] = []
    if not list_of(rule.get("verbs")):
        causes.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = list_of(rule.get("nonResourceURLs"))
    if urls:
        shown = go_strings(urls)
        if namespaced:
            detail = "namespaced rules cannot apply to non-resource URLs"
            causes.append(Cause(f"{path}.nonResourceURLs", f"Invalid value: {shown}: {detail}"))
        if any(list_of(rule.get(k)) for k in ("apiGroups", "resources", "resourceNames")):
            detail = "rules cannot apply to both regular resources and non-resource URLs"
            causes.append(Cause(f"{path}.nonResourceURLs", f"Invalid value: {shown}: {detail}"))
        return causes
    if not list_of(rule.get("apiGroups")):
        detail = "resource rules must supply at least one api group"
        causes.append(required(f"{path}.apiGroups", detail))
    if not list_of(rule.get("resources")):
        detail = "resource rules must supply at least one resource"
        causes.append(required(f"{path}.resources", detail))
    return causes


def _rules(obj: Obj, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(list_of(obj.get("rules"))):
        causes += _rule(dict_of(rule), namespaced, f"rules[{i}]")
    return causes


def _aggregation(rule: Any) -> list[Cause]:
    if rule is None:
        return []
    path = "aggregationRule.clusterRoleSelectors"
    selectors = list_of(dict_of(rule).get("clusterRoleSelectors"))
    if not selectors:
        detail = "at least one clusterRoleSelector required if aggregationRule is non-nil"
        return [required(path, detail)]
    causes: list[Cause] = []
    for i, selector in enumerate(selectors):
        errs = label_selector(selector, f"{path}[{i}]")
        causes += errs
        try:
            selector_from_dict(selector)
        except ApiError:
            causes.append(invalid(f"{path}[{i}]", "null", "invalid label selector."))
    return causes


class RoleStrategy(Strategy):
    """Roles and ClusterRoles (a Role's rules may not name non-resource URLs)."""

    def validate(self, obj: Obj) -> list[Cause]:
        namespaced = self.info.kind == "Role"
        causes = _rules(obj, namespaced)
        if not namespaced:
            causes += _aggregation(obj.get("aggregationRule"))
        return causes


def _subject(subject: Obj, namespaced: bool, path: str) -> list[Cause]:
    """``ValidateRoleBindingSubject``."""
    name, kind, group = subject.get("name") or "", subject.get("kind"), subject.get("apiGroup")
    causes = [] if name else [required(f"{path}.name")]
    if kind == "ServiceAccount":
        if name:
            causes += [invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(name)]
        if group:
            causes.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not subject.get("namespace"):
            causes.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            causes.append(not_supported(f"{path}.apiGroup", group or "", [RBAC_GROUP]))
    else:
        causes.append(not_supported(f"{path}.kind", kind or "", SUBJECT_KINDS))
    return causes


def go_role_ref(ref: Obj) -> str:
    """An ``rbac.RoleRef`` as Go's ``%#v`` prints it."""
    fields = ", ".join(
        f"{go}:{json.dumps(str(ref.get(key) or ''))}"
        for go, key in (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name"))
    )
    return f"rbac.RoleRef{{{fields}}}"


class RoleBindingStrategy(Strategy):
    """RoleBindings and ClusterRoleBindings."""

    def validate(self, obj: Obj) -> list[Cause]:
        namespaced = self.info.kind == "RoleBinding"
        ref = dict_of(obj.get("roleRef"))
        causes: list[Cause] = []
        group = ref.get("apiGroup") or ""
        if group != RBAC_GROUP:
            causes.append(not_supported("roleRef.apiGroup", group, [RBAC_GROUP]))
        kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
        if ref.get("kind") not in kinds:
            causes.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
        name = ref.get("name") or ""
        if not name:
            causes.append(required("roleRef.name"))
        else:
            causes += [invalid("roleRef.name", name, m) for m in is_valid_path_segment_name(name)]
        for i, subject in enumerate(list_of(obj.get("subjects"))):
            causes += _subject(dict_of(subject), namespaced, f"subjects[{i}]")
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        ref, old_ref = dict_of(obj.get("roleRef")), dict_of(old.get("roleRef"))
        if any(ref.get(k) != old_ref.get(k) for k in ("apiGroup", "kind", "name")):
            causes.append(
                Cause("roleRef", f"Invalid value: {go_role_ref(ref)}: cannot change roleRef")
            )
        return causes
