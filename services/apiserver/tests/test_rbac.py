"""RBAC rule matching, role resolution and escalation coverage, on in-memory roles."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.authorization import Authorizer, forbidden
from skiff.apiserver.authorization.attributes import RequestAttributes
from skiff.apiserver.authorization.escalation import compact, missing
from skiff.apiserver.authorization.policy import cluster_role_bindings, cluster_roles, reconciled
from skiff.apiserver.authorization.rbac import (
    ROLE_BINDINGS,
    ROLES,
    RBACAuthorizer,
    rule_allows,
)

JANE = UserInfo("jane", groups=("dev", "system:authenticated"))


class Cache:
    def __init__(self, objects: dict[Any, list[dict[str, Any]]]) -> None:
        self.objects = objects

    def get(self, info, namespace, name):  # type: ignore[no-untyped-def]
        for o in self.objects.get(info, []):
            if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace:
                return o
        return None

    def list(self, info, namespace=None):  # type: ignore[no-untyped-def]
        return [
            o
            for o in self.objects.get(info, [])
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]


def res(verb: str, resource: str, *, group: str = "", ns: str = "", name: str = "", sub: str = ""):  # type: ignore[no-untyped-def]
    return RequestAttributes(
        JANE,
        verb,
        True,
        api_group=group,
        resource=resource,
        subresource=sub,
        namespace=ns,
        name=name,
    )


@pytest.mark.parametrize(
    "rule,attrs,allowed",
    [
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, res("get", "pods"), True),
        (
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            res("delete", "x", group="y"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            res("get", "pods", sub="log"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]},
            res("get", "pods", sub="log"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["pods"]},
            res("get", "pods"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a"]},
            res("get", "cm", name="b"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["cm"], "resourceNames": ["a"]},
            res("list", "cm"),
            False,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/api/*"]},
            RequestAttributes(JANE, "get", False, path="/api/v1"),
            True,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/api"]},
            RequestAttributes(JANE, "get", False, path="/api/v1"),
            False,
        ),
    ],
)
def test_rule_allows(rule: dict[str, Any], attrs: RequestAttributes, allowed: bool) -> None:
    assert rule_allows(rule, attrs) is allowed


def test_bindings_by_user_group_and_service_account() -> None:
    role = {
        "metadata": {"name": "r", "namespace": "team"},
        "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}],
    }
    bindings = [
        {
            "metadata": {"name": "b", "namespace": "team"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [
                {"kind": "Group", "name": "dev"},
                {"kind": "ServiceAccount", "name": "sa"},
            ],
        },
    ]
    rbac = RBACAuthorizer(Cache({ROLES: [role], ROLE_BINDINGS: bindings}))  # type: ignore[arg-type]
    assert rbac.authorize(res("list", "pods", ns="team"))[0]
    assert not rbac.authorize(res("list", "pods", ns="other"))[0]
    sa = UserInfo("system:serviceaccount:team:sa")
    a = RequestAttributes(sa, "list", True, resource="pods", namespace="team")
    allowed, reason = rbac.authorize(a)
    assert allowed and reason.startswith('RBAC: allowed by RoleBinding "b" in namespace "team"')


def test_masters_and_modes() -> None:
    rbac = RBACAuthorizer(Cache({}))  # type: ignore[arg-type]
    authz = Authorizer(("RBAC",), rbac)
    root = UserInfo("root", groups=("system:masters",))
    assert authz.authorize(RequestAttributes(root, "delete", True, resource="nodes"))[0]
    assert not authz.authorize(res("get", "pods", ns="x"))[0]
    assert Authorizer(("AlwaysAllow",)).authorize(res("get", "pods"))[0]
    with pytest.raises(ValueError, match="unknown authorization mode"):
        Authorizer(("ABAC",))


def test_forbidden_messages() -> None:
    e = forbidden(res("get", "deployments", group="apps", ns="d", name="web"))
    assert e.message == (
        'deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments" in '
        'API group "apps" in the namespace "d"'
    )
    e = forbidden(RequestAttributes(JANE, "get", False, path="/metrics"))
    assert e.message == 'forbidden: User "jane" cannot get path "/metrics"'


def test_escalation_coverage() -> None:
    owner = [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]},
        {"verbs": ["get"], "nonResourceURLs": ["/healthz/*"]},
    ]
    assert missing(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]) == []
    assert (
        missing(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes/status"]}]) == []
    )
    asked = {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}
    assert missing(owner, [asked]) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}
    ]
    any_name = {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}
    assert len(missing(owner, [any_name])) == 1
    one_name = dict(any_name, resourceNames=["a"])
    assert missing(owner, [one_name]) == []
    assert missing(owner, [{"verbs": ["get"], "nonResourceURLs": ["/healthz/ping"]}]) == []
    assert compact({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}) == (
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}'
    )


def test_default_policy_is_kept_up_to_date() -> None:
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    bindings = {b["metadata"]["name"]: b for b in cluster_role_bindings()}
    assert roles["cluster-admin"]["rules"][0] == {
        "verbs": ["*"],
        "apiGroups": ["*"],
        "resources": ["*"],
    }
    assert bindings["cluster-admin"]["subjects"] == [
        {"kind": "Group", "name": "system:masters", "apiGroup": "rbac.authorization.k8s.io"}
    ]
    assert roles["view"]["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}
    ]
    # An old copy missing a rule gets it; one an administrator took over is left alone.
    stale = dict(roles["system:kube-dns"], rules=[])
    assert reconciled(stale, roles["system:kube-dns"])["rules"] == roles["system:kube-dns"]["rules"]
    mine = dict(stale, metadata={"name": "system:kube-dns", "annotations": {}})
    assert reconciled(mine, roles["system:kube-dns"]) is None
    assert reconciled(roles["system:kube-dns"], roles["system:kube-dns"]) is None
