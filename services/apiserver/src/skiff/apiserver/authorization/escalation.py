"""RBAC escalation prevention (kube's ``pkg/registry/rbac``): a user may create or change
a Role or ClusterRole only with rules they hold themselves (or the ``escalate`` verb on
it), and bind a role only if they hold all its rules (or the ``bind`` verb on it).
``system:masters`` may do both. So nobody grants more than they have."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api.errors import ApiError, Reason

from ..admission import Attributes, Operation
from ..authentication.user import MASTERS, UserInfo
from . import Authorizer
from .attributes import RequestAttributes
from .rbac import CLUSTER_ROLES, GROUP, ROLES

Obj = dict[str, Any]
ROLE_KINDS = {"roles": ROLES, "clusterroles": CLUSTER_ROLES}
BINDING_KINDS = ("rolebindings", "clusterrolebindings")


def _atoms(rule: Obj) -> Iterable[Obj]:
    """A rule broken into one verb on one resource (and name), or one URL (BreakdownRule)."""
    verbs = rule.get("verbs") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                names = rule.get("resourceNames") or []
                if names:
                    for name in names:
                        yield {
                            "apiGroups": [group],
                            "resources": [resource],
                            "resourceNames": [name],
                            "verbs": [verb],
                        }
                else:
                    yield {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
    for url in rule.get("nonResourceURLs") or []:
        for verb in verbs:
            yield {"nonResourceURLs": [url], "verbs": [verb]}


def _has(values: list[str], value: str) -> bool:
    return "*" in values or value in values


def _covers(owner: Obj, atom: Obj) -> bool:
    """Whether ``owner`` allows everything the single permission ``atom`` asks for."""
    if not _has(owner.get("verbs") or [], atom["verbs"][0]):
        return False
    if "nonResourceURLs" in atom:
        url = atom["nonResourceURLs"][0]
        return any(
            u == "*" or u == url or (u.endswith("*") and url.startswith(u[:-1]))
            for u in owner.get("nonResourceURLs") or []
        )
    if not _has(owner.get("apiGroups") or [], atom["apiGroups"][0]):
        return False
    resource = atom["resources"][0]
    resources = owner.get("resources") or []
    if not _has(resources, resource):
        _, slash, sub = resource.partition("/")
        if not (slash and f"*/{sub}" in resources):
            return False
    owner_names = owner.get("resourceNames") or []
    if not owner_names:
        return True
    names = atom.get("resourceNames") or []
    return bool(names) and names[0] in owner_names


def missing(owner_rules: list[Obj], requested: list[Obj]) -> list[Obj]:
    """The single permissions of ``requested`` that no owner rule covers."""
    out = []
    for rule in requested:
        for atom in _atoms(rule):
            if not any(_covers(o, atom) for o in owner_rules) and atom not in out:
                out.append(atom)
    return out


def compact(rule: Obj) -> str:
    """kube's ``PolicyRule.CompactString``: ``{APIGroups:["apps"], Resources:[...], ...}``."""
    parts = []
    for key, label in (
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("resourceNames", "ResourceNames"),
        ("verbs", "Verbs"),
    ):
        if rule.get(key):
            parts.append(f"{label}:[{' '.join(_quote(v) for v in rule[key])}]")
    return "{" + ", ".join(parts) + "}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _forbidden(attrs: Attributes, user: UserInfo, why: str) -> ApiError:
    qualified = f"{attrs.info.plural}.{GROUP}"
    return ApiError(
        403,
        Reason.FORBIDDEN,
        f'{qualified} "{attrs.name}" is forbidden: {why}',
        kind=attrs.info.plural,
        name=attrs.name,
        group=GROUP,
    )


def _not_held(user: UserInfo, rules: list[Obj]) -> str:
    groups = " ".join(_quote(g) for g in user.groups)
    lines = "\n".join(compact(r) for r in rules)
    return (
        f'user "{user.name}" (groups=[{groups}]) is attempting to grant RBAC permissions not '
        f"currently held:\n{lines}"
    )


def _may(
    authorizer: Authorizer, user: UserInfo, verb: str, plural: str, ns: str, name: str
) -> bool:
    a = RequestAttributes(
        user, verb, True, api_group=GROUP, resource=plural, namespace=ns, name=name
    )
    return authorizer.authorize(a)[0]


def check(authorizer: Authorizer, attrs: Attributes) -> None:
    """Nothing, or the 403 for a role or binding write that would escalate."""
    user = attrs.user
    plural = attrs.info.plural
    if (
        user is None
        or attrs.info.group != GROUP
        or attrs.operation not in (Operation.CREATE, Operation.UPDATE)
        or MASTERS in user.groups
        or authorizer.rbac is None
        or "AlwaysAllow" in authorizer.modes
    ):
        return
    obj, old = attrs.obj or {}, attrs.old or {}
    ns = attrs.namespace or "" if plural in ("roles", "rolebindings") else ""
    if plural in ROLE_KINDS:
        if (
            old
            and old.get("rules") == obj.get("rules")
            and (old.get("aggregationRule") == obj.get("aggregationRule"))
        ):
            return
        if _may(authorizer, user, "escalate", plural, ns, attrs.name):
            return
        if obj.get("aggregationRule"):
            raise _forbidden(
                attrs, user, "must have cluster-admin privileges to use the aggregationRule"
            )
        lacking = missing(authorizer.rbac.rules_for(user, ns), obj.get("rules") or [])
        if lacking:
            raise _forbidden(attrs, user, _not_held(user, lacking))
        return
    if plural in BINDING_KINDS:
        if old and old.get("subjects") == obj.get("subjects"):
            return
        ref = obj.get("roleRef") or {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        role_plural = "clusterroles" if kind == "ClusterRole" else "roles"
        if _may(authorizer, user, "bind", role_plural, ns, name):
            return
        role = authorizer.rbac.lister.get(
            ROLE_KINDS[role_plural], ns if role_plural == "roles" else None, name
        )
        if role is None:
            raise _forbidden(attrs, user, f'{role_plural}.{GROUP} "{name}" not found')
        lacking = missing(authorizer.rbac.rules_for(user, ns), role.get("rules") or [])
        if lacking:
            raise _forbidden(attrs, user, _not_held(user, lacking))
