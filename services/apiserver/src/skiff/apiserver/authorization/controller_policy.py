"""Kubernetes' default controller RBAC policy: one ``system:controller:<name>`` ClusterRole per
controller, bound to the ServiceAccount ``kube-system/<name>`` that the controller manager acts
as when it uses per-controller credentials, plus the namespaced Roles (bootstrap signer, token
cleaner, leader locking, ...) kube creates in ``kube-system`` and ``kube-public``.

Rules use the notation of :mod:`.policy`.
"""

from __future__ import annotations

from typing import Any

from .policy import CORE, READ, _events, _meta, _r, _subject

SA_NAMESPACE = "kube-system"
CONTROLLER_PREFIX = "system:controller:"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_VERSION = f"{RBAC_GROUP}/v1"

_APPS = ("apps", "extensions")
_RWL = "create delete get list patch update watch"

# service-account name → rules of its ClusterRole system:controller:<name>
CONTROLLER_ROLES: dict[str, list[dict[str, Any]]] = {
    "attachdetach-controller": [
        _r("list watch", (CORE,), "persistentvolumeclaims persistentvolumes"),
        _r(READ, (CORE,), "nodes"),
        _r("patch update", (CORE,), "nodes/status"),
        _r("list watch", (CORE,), "pods"),
        _events(),
        _r("create delete get list watch", ("storage.k8s.io",), "volumeattachments"),
        _r(READ, ("storage.k8s.io",), "csidrivers"),
        _r(READ, ("storage.k8s.io",), "csinodes"),
    ],
    "certificate-controller": [
        _r(f"delete {READ}", ("certificates.k8s.io",), "certificatesigningrequests"),
        _r(
            "update",
            ("certificates.k8s.io",),
            "certificatesigningrequests/approval certificatesigningrequests/status",
        ),
        _r(
            "approve",
            ("certificates.k8s.io",),
            "signers",
            "kubernetes.io/kube-apiserver-client-kubelet",
        ),
        _r(
            "sign",
            ("certificates.k8s.io",),
            "signers",
            "kubernetes.io/kube-apiserver-client kubernetes.io/kube-apiserver-client-kubelet "
            "kubernetes.io/kubelet-serving kubernetes.io/legacy-unknown",
        ),
        _r("create", ("authorization.k8s.io",), "subjectaccessreviews"),
        _events(),
    ],
    "clusterrole-aggregation-controller": [
        _r("escalate get list patch update watch", (RBAC_GROUP,), "clusterroles"),
    ],
    "cronjob-controller": [
        _r("get list update watch", ("batch",), "cronjobs"),
        _r(_RWL, ("batch",), "jobs"),
        _r("update", ("batch",), "cronjobs/status"),
        _r("update", ("batch",), "cronjobs/finalizers"),
        _r("delete list watch", (CORE,), "pods"),
        _events(),
    ],
    "daemon-set-controller": [
        _r(READ, _APPS, "daemonsets"),
        _r("update", _APPS, "daemonsets/status"),
        _r("update", _APPS, "daemonsets/finalizers"),
        _r("list watch", (CORE,), "nodes"),
        _r("create delete list patch watch", (CORE,), "pods"),
        _r("create", (CORE,), "pods/binding"),
        _r(_RWL, ("apps",), "controllerrevisions"),
        _events(),
    ],
    "deployment-controller": [
        _r("get list update watch", _APPS, "deployments"),
        _r("update", _APPS, "deployments/status"),
        _r("update", _APPS, "deployments/finalizers"),
        _r(_RWL, _APPS, "replicasets"),
        _r("get list update watch", (CORE,), "pods"),
        _events(),
    ],
    "disruption-controller": [
        _r(READ, _APPS, "deployments"),
        _r(READ, _APPS, "replicasets"),
        _r(READ, (CORE,), "replicationcontrollers"),
        _r(READ, ("policy",), "poddisruptionbudgets"),
        _r(READ, ("apps",), "statefulsets"),
        _r("update", ("policy",), "poddisruptionbudgets/status"),
        _r("patch update", (CORE,), "pods/status"),
        _r("get", ("*",), "*/scale"),
        _events(),
    ],
    "endpoint-controller": [
        _r(READ, (CORE,), "pods services"),
        _r("create delete get list update watch", (CORE,), "endpoints"),
        _r("create", (CORE,), "endpoints/restricted"),
        _events(),
    ],
    "endpointslice-controller": [
        _r(READ, (CORE,), "nodes pods services"),
        _r("update", (CORE,), "services/finalizers"),
        _r("create delete get list update watch", ("discovery.k8s.io",), "endpointslices"),
        _events(),
    ],
    "endpointslicemirroring-controller": [
        _r(READ, (CORE,), "endpoints services"),
        _r("update", (CORE,), "endpoints/finalizers"),
        _r("create delete get list update watch", ("discovery.k8s.io",), "endpointslices"),
        _events(),
    ],
    "ephemeral-volume-controller": [
        _r(READ, (CORE,), "pods"),
        _r("update", (CORE,), "pods/finalizers"),
        _r(f"create {READ}", (CORE,), "persistentvolumeclaims"),
        _events(),
    ],
    "expand-controller": [
        _r("get list patch update watch", (CORE,), "persistentvolumes"),
        _r("patch update", (CORE,), "persistentvolumeclaims/status"),
        _r(READ, (CORE,), "persistentvolumeclaims"),
        _events(),
    ],
    "generic-garbage-collector": [
        _r("delete get list patch update watch", ("*",), "*"),
        _events(),
    ],
    "horizontal-pod-autoscaler": [
        _r(READ, ("autoscaling",), "horizontalpodautoscalers"),
        _r("update", ("autoscaling",), "horizontalpodautoscalers/status"),
        _r("get update", ("*",), "*/scale"),
        _r("list watch", (CORE,), "pods"),
        _r("list watch", ("metrics.k8s.io",), "pods"),
        _r(READ, ("custom.metrics.k8s.io",), "*"),
        _r(READ, ("external.metrics.k8s.io",), "*"),
        _events(),
    ],
    "job-controller": [
        _r("get list patch update watch", ("batch",), "jobs"),
        _r("update", ("batch",), "jobs/status"),
        _r("update", ("batch",), "jobs/finalizers"),
        _r("create delete list patch watch", (CORE,), "pods"),
        _events(),
    ],
    "namespace-controller": [
        _r(f"delete {READ}", (CORE,), "namespaces"),
        _r("update", (CORE,), "namespaces/finalize namespaces/status"),
        _r(f"delete deletecollection {READ}", ("*",), "*"),
    ],
    # kube's taint-eviction controller runs with this service account too (no role of its own).
    "node-controller": [
        _r("delete get list patch update watch", (CORE,), "nodes"),
        _r("patch update", (CORE,), "nodes/status"),
        _r("patch update", (CORE,), "pods/status"),
        _r(f"delete {READ}", (CORE,), "pods"),
        _events(),
    ],
    "persistent-volume-binder": [
        _r("create delete get list update watch", (CORE,), "persistentvolumes"),
        _r("update", (CORE,), "persistentvolumes/status"),
        _r("get list update watch", (CORE,), "persistentvolumeclaims"),
        _r("update", (CORE,), "persistentvolumeclaims/status"),
        _r(f"create delete {READ}", (CORE,), "pods"),
        _r(READ, ("storage.k8s.io",), "storageclasses"),
        _r("list watch", (CORE,), "nodes"),
        _events(),
        _r("watch", (CORE,), "events"),
    ],
    "pod-garbage-collector": [
        _r("delete list watch", (CORE,), "pods"),
        _r(READ, (CORE,), "nodes"),
        _r("patch", (CORE,), "pods/status"),
    ],
    "pv-protection-controller": [
        _r("get list update watch", (CORE,), "persistentvolumes"),
        _events(),
    ],
    "pvc-protection-controller": [
        _r("get list update watch", (CORE,), "persistentvolumeclaims"),
        _r("update", (CORE,), "persistentvolumeclaims/status"),
        _r(READ, (CORE,), "pods"),
        _events(),
    ],
    "replicaset-controller": [
        _r("get list update watch", _APPS, "replicasets"),
        _r("update", _APPS, "replicasets/status"),
        _r("update", _APPS, "replicasets/finalizers"),
        _r("create delete list patch watch", (CORE,), "pods"),
        _events(),
    ],
    "replication-controller": [
        _r("get list update watch", (CORE,), "replicationcontrollers"),
        _r("update", (CORE,), "replicationcontrollers/status"),
        _r("update", (CORE,), "replicationcontrollers/finalizers"),
        _r("create delete list patch watch", (CORE,), "pods"),
        _events(),
    ],
    "resourcequota-controller": [
        _r("list watch", ("*",), "*"),
        _r("update", (CORE,), "resourcequotas/status"),
        _events(),
    ],
    "root-ca-cert-publisher": [
        _r("create update", (CORE,), "configmaps"),
        _events(),
    ],
    "service-account-controller": [
        _r("create", (CORE,), "serviceaccounts"),
        _events(),
    ],
    "service-controller": [
        _r(READ, (CORE,), "services"),
        _r("patch update", (CORE,), "services/status"),
        _r("list watch", (CORE,), "nodes"),
        _events(),
    ],
    "statefulset-controller": [
        _r("list watch", (CORE,), "pods"),
        _r(READ, ("apps",), "statefulsets"),
        _r("update", ("apps",), "statefulsets/status"),
        _r("update", ("apps",), "statefulsets/finalizers"),
        _r("create delete get patch update", (CORE,), "pods"),
        _r(_RWL, ("apps",), "controllerrevisions"),
        _r(f"create {READ}", (CORE,), "persistentvolumeclaims"),
        _r("delete update", (CORE,), "persistentvolumeclaims"),
        _r("update", (CORE,), "pods/finalizers"),
        _events(),
    ],
    "ttl-after-finished-controller": [
        _r(f"delete {READ}", ("batch",), "jobs"),
        _events(),
    ],
    # Skiff-only: the k3s-ServiceLB-like load-balancer controller.
    "service-lb-controller": [
        _r(READ, (CORE,), "services nodes pods"),
        _r(READ, ("discovery.k8s.io",), "endpointslices"),
        _r("patch update", (CORE,), "services/status"),
        _events(),
    ],
}

SKIFF_ADDITIONS: dict[str, list[dict[str, Any]]] = {
    # Skiff's binder also makes the default StorageClass when none is marked default
    # (what an add-on does in a kubeadm cluster).
    "persistent-volume-binder": [_r("create", ("storage.k8s.io",), "storageclasses")],
    # Skiff's approver also approves kubelets' serving certificates for their own names.
    "certificate-controller": [
        _r("approve", ("certificates.k8s.io",), "signers", "kubernetes.io/kubelet-serving")
    ],
}
"""Rules Skiff's controllers need beyond kube's roles, because they do a little more."""

_BOOTSTRAP_SIGNER = ("ServiceAccount", "bootstrap-signer", SA_NAMESPACE)


def _leader_locking() -> list[dict[str, Any]]:
    return [
        _r("create get list update watch", ("coordination.k8s.io",), "leases"),
        _r("create get list update watch", ("coordination.k8s.io",), "leasecandidates"),
    ]


# (namespace, role name) → rules
NAMESPACED_ROLES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("kube-public", "system:controller:bootstrap-signer"): [
        _r(READ, (CORE,), "configmaps"),
        _r("update", (CORE,), "configmaps", "cluster-info"),
        _events(),
    ],
    ("kube-system", "extension-apiserver-authentication-reader"): [
        _r(READ, (CORE,), "configmaps", "extension-apiserver-authentication"),
    ],
    ("kube-system", "system::leader-locking-kube-controller-manager"): _leader_locking(),
    ("kube-system", "system::leader-locking-kube-scheduler"): _leader_locking(),
    ("kube-system", "system:controller:bootstrap-signer"): [
        _r(READ, (CORE,), "secrets"),
    ],
    ("kube-system", "system:controller:cloud-provider"): [
        _r(f"create {READ}", (CORE,), "configmaps"),
    ],
    ("kube-system", "system:controller:token-cleaner"): [
        _r(f"delete {READ}", (CORE,), "secrets"),
        _events(),
    ],
}

# (namespace, binding name) → (role name, subjects as (kind, name[, namespace]))
NAMESPACED_BINDINGS: dict[tuple[str, str], tuple[str, list[tuple[str, ...]]]] = {
    ("kube-public", "system:controller:bootstrap-signer"): (
        "system:controller:bootstrap-signer",
        [_BOOTSTRAP_SIGNER],
    ),
    ("kube-system", "system::extension-apiserver-authentication-reader"): (
        "extension-apiserver-authentication-reader",
        [("User", "system:kube-controller-manager"), ("User", "system:kube-scheduler")],
    ),
    ("kube-system", "system::leader-locking-kube-controller-manager"): (
        "system::leader-locking-kube-controller-manager",
        [
            ("User", "system:kube-controller-manager"),
            ("ServiceAccount", "kube-controller-manager", SA_NAMESPACE),
            ("ServiceAccount", "leader-election-controller", SA_NAMESPACE),
        ],
    ),
    ("kube-system", "system::leader-locking-kube-scheduler"): (
        "system::leader-locking-kube-scheduler",
        [
            ("User", "system:kube-scheduler"),
            ("ServiceAccount", "kube-scheduler", SA_NAMESPACE),
        ],
    ),
    ("kube-system", "system:controller:bootstrap-signer"): (
        "system:controller:bootstrap-signer",
        [_BOOTSTRAP_SIGNER],
    ),
    ("kube-system", "system:controller:cloud-provider"): (
        "system:controller:cloud-provider",
        [("ServiceAccount", "cloud-provider", SA_NAMESPACE)],
    ),
    ("kube-system", "system:controller:token-cleaner"): (
        "system:controller:token-cleaner",
        [("ServiceAccount", "token-cleaner", SA_NAMESPACE)],
    ),
}


def controller_cluster_roles() -> list[dict[str, Any]]:
    """The ``system:controller:<name>`` ClusterRoles as objects."""
    return [
        {
            "apiVersion": RBAC_VERSION,
            "kind": "ClusterRole",
            "metadata": _meta(f"{CONTROLLER_PREFIX}{sa}", {}),
            "rules": [*rules, *SKIFF_ADDITIONS.get(sa, [])],
        }
        for sa, rules in CONTROLLER_ROLES.items()
    ]


def controller_cluster_role_bindings() -> list[dict[str, Any]]:
    """Each controller ClusterRole bound to the controller's ServiceAccount in kube-system."""
    return [
        {
            "apiVersion": RBAC_VERSION,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(f"{CONTROLLER_PREFIX}{sa}", {}),
            "roleRef": {
                "apiGroup": RBAC_GROUP,
                "kind": "ClusterRole",
                "name": f"{CONTROLLER_PREFIX}{sa}",
            },
            "subjects": [_subject(("ServiceAccount", sa, SA_NAMESPACE))],
        }
        for sa in CONTROLLER_ROLES
    ]


def _namespaced_meta(namespace: str, name: str) -> dict[str, Any]:
    return {**_meta(name, {}), "namespace": namespace}


def namespaced_roles() -> list[dict[str, Any]]:
    """The default namespaced Roles as objects."""
    return [
        {
            "apiVersion": RBAC_VERSION,
            "kind": "Role",
            "metadata": _namespaced_meta(namespace, name),
            "rules": rules,
        }
        for (namespace, name), rules in NAMESPACED_ROLES.items()
    ]


def namespaced_role_bindings() -> list[dict[str, Any]]:
    """The default namespaced RoleBindings as objects."""
    return [
        {
            "apiVersion": RBAC_VERSION,
            "kind": "RoleBinding",
            "metadata": _namespaced_meta(namespace, name),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role},
            "subjects": [_subject(s) for s in subjects],
        }
        for (namespace, name), (role, subjects) in NAMESPACED_BINDINGS.items()
    ]
