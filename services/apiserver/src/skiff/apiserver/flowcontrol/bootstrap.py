"""API Priority and Fairness' bootstrap configuration (kube's
``k8s.io/apiserver/pkg/apis/flowcontrol/bootstrap``): the mandatory ``exempt`` and
``catch-all`` priority levels and flow schemas, and the suggested ones every 1.32 cluster
starts with. Each carries ``apf.kubernetes.io/autoupdate-spec: "true"``.
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

AUTO_UPDATE = "apf.kubernetes.io/autoupdate-spec"
EXEMPT = "exempt"
CATCH_ALL = "catch-all"
API_VERSION = "flowcontrol.apiserver.k8s.io/v1"

_MASTERS, _NODES = "system:masters", "system:nodes"
_UNAUTHENTICATED, _AUTHENTICATED = "system:unauthenticated", "system:authenticated"
_KCM, _SCHEDULER = "system:kube-controller-manager", "system:kube-scheduler"


def _pl(name: str, spec: Obj) -> Obj:
    return {
        "apiVersion": API_VERSION,
        "kind": "PriorityLevelConfiguration",
        "metadata": {"name": name, "annotations": {AUTO_UPDATE: "true"}},
        "spec": spec,
    }


def _limited(shares: int, lendable: int, queues: int = 0, hand: int = 0) -> Obj:
    response: Obj = {"type": "Reject"}
    if queues:
        response = {
            "type": "Queue",
            "queuing": {"queues": queues, "handSize": hand, "queueLengthLimit": 50},
        }
    return {
        "type": "Limited",
        "limited": {
            "nominalConcurrencyShares": shares,
            "lendablePercent": lendable,
            "limitResponse": response,
        },
    }


def _fs(name: str, level: str, precedence: int, method: str, rules: Obj) -> Obj:
    spec: Obj = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence}
    if method:
        spec["distinguisherMethod"] = {"type": method}
    spec["rules"] = [rules]
    return {
        "apiVersion": API_VERSION,
        "kind": "FlowSchema",
        "metadata": {"name": name, "annotations": {AUTO_UPDATE: "true"}},
        "spec": spec,
    }


def _groups(*names: str) -> list[Obj]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[Obj]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system(*names: str) -> list[Obj]:
    return [
        {"kind": "ServiceAccount", "serviceAccount": {"name": n, "namespace": "kube-system"}}
        for n in names
    ]


def _resources(verbs: list[str], groups: list[str], resources: list[str], cluster: bool) -> Obj:
    rule: Obj = {"verbs": verbs, "apiGroups": groups, "resources": resources, "namespaces": ["*"]}
    if cluster:
        rule["clusterScope"] = True
    return rule


_ALL_RESOURCES = _resources(["*"], ["*"], ["*"], True)
_ALL_URLS = {"verbs": ["*"], "nonResourceURLs": ["*"]}
_LEASES = _resources(["get", "create", "update"], ["coordination.k8s.io"], ["leases"], False)


def _everything(subjects: list[Obj]) -> Obj:
    return {
        "subjects": subjects,
        "resourceRules": [_ALL_RESOURCES],
        "nonResourceRules": [_ALL_URLS],
    }


MANDATORY_PRIORITY_LEVELS: dict[str, Obj] = {
    CATCH_ALL: _pl(CATCH_ALL, _limited(5, 0)),
    EXEMPT: _pl(
        EXEMPT, {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}
    ),
}
SUGGESTED_PRIORITY_LEVELS: dict[str, Obj] = {
    "system": _pl("system", _limited(30, 33, 64, 6)),
    "node-high": _pl("node-high", _limited(40, 25, 64, 6)),
    "leader-election": _pl("leader-election", _limited(10, 0, 16, 4)),
    "workload-high": _pl("workload-high", _limited(40, 50, 128, 6)),
    "workload-low": _pl("workload-low", _limited(100, 90, 128, 6)),
    "global-default": _pl("global-default", _limited(20, 50, 128, 6)),
}
MANDATORY_FLOW_SCHEMAS: dict[str, Obj] = {
    EXEMPT: _fs(EXEMPT, EXEMPT, 1, "", _everything(_groups(_MASTERS))),
    CATCH_ALL: _fs(
        CATCH_ALL,
        CATCH_ALL,
        10000,
        "ByUser",
        _everything(_groups(_UNAUTHENTICATED, _AUTHENTICATED)),
    ),
}
SUGGESTED_FLOW_SCHEMAS: dict[str, Obj] = {
    "system-nodes": _fs("system-nodes", "system", 500, "ByUser", _everything(_groups(_NODES))),
    "system-node-high": _fs("system-node-high", "node-high", 400, "ByUser", {
        "subjects": _groups(_NODES),
        "resourceRules": [_resources(["*"], [""], ["nodes", "nodes/status"], True),
                          _resources(["*"], ["coordination.k8s.io"], ["leases"], False)]}),
    "probes": _fs("probes", EXEMPT, 2, "", {
        "subjects": _groups(_UNAUTHENTICATED, _AUTHENTICATED),
        "nonResourceRules": [{"verbs": ["get"],
                              "nonResourceURLs": ["/healthz", "/readyz", "/livez"]}]}),
    "system-leader-election": _fs("system-leader-election", "leader-election", 100, "ByUser", {
        "subjects": [*_users(_KCM, _SCHEDULER), *_kube_system("*")],
        "resourceRules": [_LEASES]}),
    "workload-leader-election": _fs("workload-leader-election", "leader-election", 200, "ByUser", {
        "subjects": _kube_system("*"),
        "resourceRules": [
            _resources(["get", "create", "update"], [""], ["endpoints", "configmaps"], False),
            _LEASES]}),
    "endpoint-controller": _fs("endpoint-controller", "workload-high", 150, "ByUser", {
        "subjects": [*_users(_KCM),
                     *_kube_system("endpoint-controller", "endpointslicemirroring-controller")],
        "resourceRules": [_resources(["get", "create", "update"], [""], ["endpoints"], False)]}),
    "kube-controller-manager": _fs("kube-controller-manager", "workload-high", 800, "ByNamespace",
                                   _everything(_users(_KCM))),
    "kube-scheduler": _fs("kube-scheduler", "workload-high", 800, "ByNamespace",
                          _everything(_users(_SCHEDULER))),
    "kube-system-service-accounts": _fs("kube-system-service-accounts", "workload-high", 900,
                                        "ByNamespace", _everything(_kube_system("*"))),
    "service-accounts": _fs("service-accounts", "workload-low", 9000, "ByUser",
                            _everything(_groups("system:serviceaccounts"))),
    "global-default": _fs("global-default", "global-default", 9900, "ByUser",
                          _everything(_groups(_UNAUTHENTICATED, _AUTHENTICATED))),
}  # fmt: skip

WANTED_NAMES = frozenset(
    [
        *MANDATORY_PRIORITY_LEVELS,
        *SUGGESTED_PRIORITY_LEVELS,
        *MANDATORY_FLOW_SCHEMAS,
        *SUGGESTED_FLOW_SCHEMAS,
    ]
)


def fresh(obj: Obj) -> Obj:
    """A copy of a bootstrap object to write."""
    return copy.deepcopy(obj)
