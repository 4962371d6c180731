"""Kubernetes' default RBAC policy: the ClusterRoles and ClusterRoleBindings every
cluster starts with (kube's bootstrap policy, as documented under "Default roles and role
bindings"), created by the apiserver at start and kept up to date while they carry
``rbac.authorization.kubernetes.io/autoupdate: "true"``.

Rules are written as ``_r(verbs, groups, resources)``: space-separated verbs and
resources, and the API groups as a tuple (``CORE`` is the core group's ``""``).
"""

from __future__ import annotations

from typing import Any

CORE = ""
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING = "kubernetes.io/bootstrapping"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
RW = "create delete deletecollection patch update"
READ = "get list watch"
EVENTS = ((CORE, "events.k8s.io"), "events")


def _r(verbs: str, groups: tuple[str, ...], resources: str, names: str = "") -> dict[str, Any]:
    rule: dict[str, Any] = {"verbs": verbs.split(), "apiGroups": list(groups)}
    rule["resources"] = resources.split()
    if names:
        rule["resourceNames"] = names.split()
    return rule


def _urls(verbs: str, urls: str) -> dict[str, Any]:
    return {"verbs": verbs.split(), "nonResourceURLs": urls.split()}


def _events(verbs: str = "create patch update") -> dict[str, Any]:
    return _r(verbs, *EVENTS)


_VIEW = [
    _r(
        READ,
        (CORE,),
        "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
        "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
        "services/status",
    ),
    _r(
        READ,
        (CORE,),
        "bindings events limitranges namespaces/status pods/log pods/status "
        "replicationcontrollers/status resourcequotas resourcequotas/status",
    ),
    _r(READ, (CORE,), "namespaces"),
    _r(READ, ("discovery.k8s.io",), "endpointslices"),
    _r(
        READ,
        ("apps",),
        "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
        "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
        "statefulsets/scale statefulsets/status",
    ),
    _r(READ, ("autoscaling",), "horizontalpodautoscalers horizontalpodautoscalers/status"),
    _r(READ, ("batch",), "cronjobs cronjobs/status jobs jobs/status"),
    _r(READ, ("policy",), "poddisruptionbudgets poddisruptionbudgets/status"),
    _r(READ, ("networking.k8s.io",), "ingresses ingresses/status networkpolicies"),
]

_EDIT = [
    _r(
        READ,
        (CORE,),
        "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy",
    ),
    _r("impersonate", (CORE,), "serviceaccounts"),
    _r(RW, (CORE,), "pods pods/attach pods/exec pods/portforward pods/proxy"),
    _r("create", (CORE,), "pods/eviction"),
    _r(
        RW,
        (CORE,),
        "configmaps events persistentvolumeclaims replicationcontrollers "
        "replicationcontrollers/scale secrets serviceaccounts services services/proxy",
    ),
    _r("create", (CORE,), "serviceaccounts/token"),
    _r(
        RW,
        ("apps",),
        "daemonsets deployments deployments/rollback deployments/scale replicasets "
        "replicasets/scale statefulsets statefulsets/scale",
    ),
    _r(RW, ("autoscaling",), "horizontalpodautoscalers"),
    _r(RW, ("batch",), "cronjobs jobs"),
    _r(RW, ("policy",), "poddisruptionbudgets"),
    _r(RW, ("networking.k8s.io",), "ingresses networkpolicies"),
    _r(f"{RW} get list watch", ("coordination.k8s.io",), "leases"),
]

_ADMIN = [
    _r("create", ("authorization.k8s.io",), "localsubjectaccessreviews"),
    _r(f"{RW} get list watch", ("rbac.authorization.k8s.io",), "rolebindings roles"),
]

_REVIEWS = [
    _r("create", ("authentication.k8s.io",), "tokenreviews"),
    _r("create", ("authorization.k8s.io",), "subjectaccessreviews"),
]

_LEADER = [_r("create", ("coordination.k8s.io",), "leases")]

# name → (rules, aggregated label selector or None, labels beyond the bootstrapping one)
CLUSTER_ROLES: dict[str, tuple[list[dict[str, Any]], str | None, dict[str, str]]] = {
    "cluster-admin": ([_r("*", ("*",), "*"), _urls("*", "*")], None, {}),
    "admin": ([], "admin", {}),
    "edit": ([], "edit", {f"{AGGREGATE_TO}admin": "true"}),
    "view": ([], "view", {f"{AGGREGATE_TO}edit": "true"}),
    "system:aggregate-to-admin": (_ADMIN, None, {f"{AGGREGATE_TO}admin": "true"}),
    "system:aggregate-to-edit": (_EDIT, None, {f"{AGGREGATE_TO}edit": "true"}),
    "system:aggregate-to-view": (_VIEW, None, {f"{AGGREGATE_TO}view": "true"}),
    "system:auth-delegator": (_REVIEWS, None, {}),
    "system:basic-user": (
        [
            _r(
                "create",
                ("authorization.k8s.io",),
                "selfsubjectaccessreviews selfsubjectrulesreviews",
            ),
            _r("create", ("authentication.k8s.io",), "selfsubjectreviews"),
        ],
        None,
        {},
    ),
    "system:discovery": (
        [
            _urls(
                "get",
                "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz "
                "/version /version/",
            )
        ],
        None,
        {},
    ),
    "system:public-info-viewer": (
        [_urls("get", "/healthz /livez /readyz /version /version/")],
        None,
        {},
    ),
    "system:monitoring": (
        [
            _urls(
                "get",
                "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*",
            )
        ],
        None,
        {},
    ),
    "system:service-account-issuer-discovery": (
        [_urls("get", "/.well-known/openid-configuration /openid/v1/jwks")],
        None,
        {},
    ),
    "system:node-bootstrapper": (
        [_r("create get list watch", ("certificates.k8s.io",), "certificatesigningrequests")],
        None,
        {},
    ),
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": (
        [_r("create", ("certificates.k8s.io",), "certificatesigningrequests/nodeclient")],
        None,
        {},
    ),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": (
        [_r("create", ("certificates.k8s.io",), "certificatesigningrequests/selfnodeclient")],
        None,
        {},
    ),
    "system:kube-controller-manager": (
        [
            _events(),
            *_LEADER,
            _r("get update", ("coordination.k8s.io",), "leases", "kube-controller-manager"),
            _r("create", (CORE,), "secrets serviceaccounts"),
            _r("delete", (CORE,), "secrets"),
            _r("get", (CORE,), "configmaps namespaces secrets serviceaccounts"),
            _r("update", (CORE,), "secrets serviceaccounts"),
            *_REVIEWS,
            _r("list watch", ("*",), "*"),
            _r("create", (CORE,), "serviceaccounts/token"),
        ],
        None,
        {},
    ),
    "system:kube-scheduler": (
        [
            _events(),
            *_LEADER,
            _r("get update", ("coordination.k8s.io",), "leases", "kube-scheduler"),
            _r(READ, (CORE,), "nodes"),
            _r(f"delete {READ}", (CORE,), "pods"),
            _r("create", (CORE,), "bindings pods/binding"),
            _r("patch update", (CORE,), "pods/status"),
            _r(READ, (CORE,), "replicationcontrollers services"),
            _r(READ, ("apps", "extensions"), "replicasets"),
            _r(READ, ("apps",), "statefulsets"),
            _r(READ, ("policy",), "poddisruptionbudgets"),
            _r(READ, (CORE,), "persistentvolumeclaims persistentvolumes"),
            *_REVIEWS,
            _r(READ, ("storage.k8s.io",), "csinodes csidrivers csistoragecapacities"),
            _r(READ, (CORE,), "namespaces"),
        ],
        None,
        {},
    ),
    "system:volume-scheduler": (
        [
            _r(f"{READ} patch update", (CORE,), "persistentvolumes persistentvolumeclaims"),
            _r(READ, ("storage.k8s.io",), "storageclasses"),
        ],
        None,
        {},
    ),
    "system:kube-dns": ([_r("list watch", (CORE,), "endpoints services")], None, {}),
    "system:node-proxier": (
        [
            _r("list watch", (CORE,), "endpoints services"),
            _r(READ, (CORE,), "nodes"),
            _events(),
            _r("list watch", ("discovery.k8s.io",), "endpointslices"),
        ],
        None,
        {},
    ),
    "system:node": (
        [
            _r("create", ("authentication.k8s.io",), "tokenreviews"),
            _r(
                "create",
                ("authorization.k8s.io",),
                "localsubjectaccessreviews subjectaccessreviews",
            ),
            _r(READ, (CORE,), "services"),
            _r(f"create {READ}", (CORE,), "nodes"),
            _r("patch update", (CORE,), "nodes/status nodes"),
            _r("create patch update", (CORE,), "events"),
            _r(READ, (CORE,), "pods"),
            _r("create delete", (CORE,), "pods"),
            _r("patch update", (CORE,), "pods/status"),
            _r("create", (CORE,), "pods/eviction"),
            _r(READ, (CORE,), "configmaps secrets"),
            _r("get", (CORE,), "persistentvolumeclaims persistentvolumes endpoints"),
            _r("create get list watch", ("certificates.k8s.io",), "certificatesigningrequests"),
            _r("create delete get patch update", ("coordination.k8s.io",), "leases"),
            _r("get", ("storage.k8s.io",), "volumeattachments"),
            _r("create", (CORE,), "serviceaccounts/token"),
            _r("get patch update", (CORE,), "persistentvolumeclaims/status"),
            _r(READ, ("storage.k8s.io",), "csidrivers"),
            _r("create delete get patch update", ("storage.k8s.io",), "csinodes"),
            _r(READ, ("node.k8s.io",), "runtimeclasses"),
        ],
        None,
        {},
    ),
    "system:kubelet-api-admin": (
        [
            _r(READ, (CORE,), "nodes"),
            _r("proxy", (CORE,), "nodes"),
            _r("*", (CORE,), "nodes/log nodes/metrics nodes/proxy nodes/stats"),
        ],
        None,
        {},
    ),
    "system:persistent-volume-provisioner": (
        [
            _r(f"create delete {READ}", (CORE,), "persistentvolumes"),
            _r("get list update watch", (CORE,), "persistentvolumeclaims"),
            _r(READ, ("storage.k8s.io",), "storageclasses"),
            _r("watch", (CORE,), "events"),
            _events(),
        ],
        None,
        {},
    ),
}

# name → (role, subjects as (kind, name[, namespace]))
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[tuple[str, ...]]]] = {
    "cluster-admin": ("cluster-admin", [("Group", "system:masters")]),
    "system:basic-user": ("system:basic-user", [("Group", "system:authenticated")]),
    "system:discovery": ("system:discovery", [("Group", "system:authenticated")]),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        [("Group", "system:authenticated"), ("Group", "system:unauthenticated")],
    ),
    "system:monitoring": ("system:monitoring", [("Group", "system:monitoring")]),
    "system:service-account-issuer-discovery": (
        "system:service-account-issuer-discovery",
        [("Group", "system:serviceaccounts")],
    ),
    "system:kube-controller-manager": (
        "system:kube-controller-manager",
        [("User", "system:kube-controller-manager")],
    ),
    "system:kube-scheduler": ("system:kube-scheduler", [("User", "system:kube-scheduler")]),
    "system:volume-scheduler": ("system:volume-scheduler", [("User", "system:kube-scheduler")]),
    "system:kube-dns": ("system:kube-dns", [("ServiceAccount", "kube-dns", "kube-system")]),
    "system:node-proxier": ("system:node-proxier", [("User", "system:kube-proxy")]),
    "system:node": ("system:node", []),
}


def _meta(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {BOOTSTRAPPING: "rbac-defaults", **labels},
        "annotations": {AUTOUPDATE: "true"},
    }


def cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles as objects."""
    out = []
    for name, (rules, aggregate, labels) in CLUSTER_ROLES.items():
        role: dict[str, Any] = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, labels),
            "rules": rules,
        }
        if aggregate:
            role["aggregationRule"] = {
                "clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_TO}{aggregate}": "true"}}]
            }
        out.append(role)
    return out


def _subject(entry: tuple[str, ...]) -> dict[str, str]:
    kind, name, *ns = entry
    subject = {"kind": kind, "name": name}
    if ns:
        subject["namespace"] = ns[0]
    else:
        subject["apiGroup"] = "rbac.authorization.k8s.io"
    return subject


def cluster_role_bindings() -> list[dict[str, Any]]:
    """The default ClusterRoleBindings as objects."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, {}),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": role,
            },
            "subjects": [_subject(s) for s in subjects],
        }
        for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items()
    ]


def missing_rules(have: list[dict[str, Any]], want: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules of ``want`` that ``have`` lacks (kube's reconciliation adds only these, so
    rules an administrator added stay)."""
    return [r for r in want if r not in have]


def reconciled(current: dict[str, Any], default: dict[str, Any]) -> dict[str, Any] | None:
    """``current`` brought up to the default, or None when nothing is to change: objects
    without the autoupdate annotation are the administrator's and left alone."""
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE) != "true":
        return None
    out = dict(current)
    changed = False
    if default["kind"] in ("ClusterRole", "Role"):
        if "aggregationRule" in default:
            if current.get("aggregationRule") != default["aggregationRule"]:
                out["aggregationRule"] = default["aggregationRule"]
                changed = True
        else:
            missing = missing_rules(current.get("rules") or [], default["rules"])
            if missing:
                out["rules"] = [*(current.get("rules") or []), *missing]
                changed = True
    else:
        have = current.get("subjects") or []
        missing = [s for s in default["subjects"] if s not in have]
        if missing:
            out["subjects"] = [*have, *missing]
            changed = True
    labels = dict((current.get("metadata") or {}).get("labels") or {})
    want_labels = {**labels, **default["metadata"]["labels"]}
    if want_labels != labels:
        out["metadata"] = dict(current["metadata"], labels=want_labels)
        changed = True
    return out if changed else None
