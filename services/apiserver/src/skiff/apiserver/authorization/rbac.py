"""The RBAC authorizer (kube's ``plugin/pkg/auth/authorizer/rbac``): a request is allowed
when a rule of a role bound to its user allows it. ClusterRoleBindings grant their
ClusterRole everywhere; RoleBindings grant a Role, or a ClusterRole, in their namespace.
There are no deny rules. Roles and bindings are read from the watch cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from skiff.api.resources import REGISTRY, ResourceInfo

from ..authentication.user import UserInfo, service_account_user
from .attributes import RequestAttributes

Obj = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"


def _rbac(plural: str) -> ResourceInfo:
    info = REGISTRY.by_path(GROUP, "v1", plural)
    assert info is not None
    return info


ROLES, ROLE_BINDINGS = _rbac("roles"), _rbac("rolebindings")
CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS = _rbac("clusterroles"), _rbac("clusterrolebindings")
RBAC_RESOURCES = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)
MEMO_SIZE = 10_000


class Lister:
    """What RBAC reads (the watch cache): ``get`` and ``list`` per resource."""

    def __init__(self, cache) -> None:  # type: ignore[no-untyped-def]
        self.cache = cache

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj | None:
        return self.cache.get(info, namespace, name)

    def list(self, info: ResourceInfo, namespace: str | None = None) -> list[Obj]:
        return self.cache.list(info, namespace)

    def generation(self) -> tuple[int, ...]:
        """Changes whenever a role or binding changes."""
        return tuple(self.cache.of(i).generation for i in RBAC_RESOURCES)


def applies_to(subject: Obj, user: UserInfo, namespace: str) -> bool:
    """Whether a binding's subject is this user (kube's ``appliesToUser``)."""
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return bool(ns) and user.name == service_account_user(ns, str(name))
    return False


def rule_allows(rule: Obj, a: RequestAttributes) -> bool:
    """Whether one PolicyRule allows the request (kube's ``RuleAllows``)."""
    verbs = rule.get("verbs") or []
    if "*" not in verbs and a.verb not in verbs:
        return False
    if not a.resource_request:
        return any(
            u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
            for u in rule.get("nonResourceURLs") or []
        )
    groups = rule.get("apiGroups") or []
    if "*" not in groups and a.api_group not in groups:
        return False
    if not _resource_matches(rule.get("resources") or [], a):
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def _resource_matches(resources: list[str], a: RequestAttributes) -> bool:
    combined = a.combined_resource
    for r in resources:
        if r == "*" or r == combined:
            return True
        if a.subresource and r == f"*/{a.subresource}":
            return True
    return False


@dataclass(frozen=True, slots=True)
class Grant:
    """Rules that apply to a user, and where they came from (for reasons and reviews)."""

    binding_kind: str
    binding: str
    namespace: str
    role_kind: str
    role: str
    rules: list[Obj]

    def describe(self, subject: str) -> str:
        where = f' in namespace "{self.namespace}"' if self.namespace else ""
        return (
            f'RBAC: allowed by {self.binding_kind} "{self.binding}"{where} of {self.role_kind} '
            f'"{self.role}" to {subject}'
        )


class RBACAuthorizer:
    """Decides from the roles and bindings in the cache."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister
        self._memo: dict[tuple[str, tuple[str, ...], str], list[Grant]] = {}
        self._memo_generation: tuple[int, ...] | None = None

    def grants(self, user: UserInfo, namespace: str) -> list[Grant]:
        """Every role bound to ``user`` that applies in ``namespace`` ("" = cluster),
        remembered until a role or binding changes (each request would otherwise walk
        every binding)."""
        generation = self.lister.generation() if hasattr(self.lister, "generation") else None
        if generation is None or generation != self._memo_generation:
            self._memo.clear()
            self._memo_generation = generation
        key = (user.name, user.groups, namespace)
        found = self._memo.get(key) if generation is not None else None
        if found is None:
            found = list(self._walk(user, namespace))
            if generation is not None:
                if len(self._memo) >= MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = found
        return found

    def _walk(self, user: UserInfo, namespace: str) -> Iterator[Grant]:
        for b in self.lister.list(CLUSTER_ROLE_BINDINGS):
            grant = self._grant(b, user, "")
            if grant is not None:
                yield grant
        if namespace:
            for b in self.lister.list(ROLE_BINDINGS, namespace):
                grant = self._grant(b, user, namespace)
                if grant is not None:
                    yield grant

    def _grant(self, binding: Obj, user: UserInfo, namespace: str) -> Grant | None:
        if not any(applies_to(s, user, namespace) for s in binding.get("subjects") or []):
            return None
        ref = binding.get("roleRef") or {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            role = self.lister.get(CLUSTER_ROLES, None, name)
        elif kind == "Role" and namespace:
            role = self.lister.get(ROLES, namespace, name)
        else:
            return None
        if role is None:
            return None
        return Grant(
            "RoleBinding" if namespace else "ClusterRoleBinding",
            binding["metadata"]["name"],
            namespace,
            str(kind),
            name,
            list(role.get("rules") or []),
        )

    def authorize(self, a: RequestAttributes) -> tuple[bool, str]:
        """(allowed, reason)."""
        for grant in self.grants(a.user, a.namespace):
            for rule in grant.rules:
                if rule_allows(rule, a):
                    return True, grant.describe(_subject_of(a.user))
        return False, ""

    def rules_for(self, user: UserInfo, namespace: str) -> list[Obj]:
        """Every rule that applies to ``user`` in ``namespace`` (SelfSubjectRulesReview)."""
        return [rule for g in self.grants(user, namespace) for rule in g.rules]


def _subject_of(user: UserInfo) -> str:
    return f'User "{user.name}"'
