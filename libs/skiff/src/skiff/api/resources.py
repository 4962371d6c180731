"""The built-in resource types the API server serves.

Each :class:`ResourceInfo` knows its group, version, kind, plural and scope, the
schema definition that describes it, and the subresources it has. Schemas come
from ``kubernetes-validate``; only this thin table is written by hand.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_STORAGE_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
"""Marks the StorageClass that claims naming no class get (``"true"``)."""


def is_default_storage_class(sc: dict) -> bool:
    """Whether a StorageClass is marked as the default one."""
    annotations = (sc.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_STORAGE_CLASS_ANNOTATION) == "true"


PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
"""Holds a PersistentVolumeClaim that a pod still uses (StorageObjectInUseProtection)."""
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"
"""Holds a PersistentVolume that is still Bound (StorageObjectInUseProtection)."""


ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One REST resource (``pods``, ``deployments.apps``...)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    definition: str
    """Schema definition name, e.g. ``io.k8s.api.core.v1.Pod``."""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    has_status: bool = True
    """Whether ``status`` is only writable through the ``/status`` subresource."""
    verbs: tuple[str, ...] = ALL_VERBS
    field_selectors: tuple[str, ...] = field(default=())
    """Field paths, beyond ``metadata.name``/``metadata.namespace``, usable in fieldSelector."""
    custom: bool = False
    """A custom resource, served while its CustomResourceDefinition says so."""
    stored_in: str | None = None
    """The group whose resource of the same plural stores these objects, when not this
    one (events.k8s.io Events are core Events, as in kube)."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        return self.group_version

    @property
    def qualified(self) -> str:
        """``plural.group`` as used in messages and etcd keys (``deployments.apps``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def etcd_prefix(self, namespace: str | None = None) -> str:
        """Key prefix in etcd: ``/registry/<group>/<plural>/[<namespace>/]``."""
        group = self.group if self.stored_in is None else self.stored_in
        base = f"/registry/{group or 'core'}/{self.plural}/"
        if self.namespaced and namespace:
            return f"{base}{namespace}/"
        return base

    def etcd_key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.etcd_prefix()}{namespace}/{name}"
        return f"{self.etcd_prefix()}{name}"


def _r(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool,
    definition: str,
    **kw: object,
) -> ResourceInfo:
    return ResourceInfo(group, version, kind, plural, namespaced, definition, **kw)  # type: ignore[arg-type]


_CORE = "io.k8s.api.core.v1"
_INVOLVED = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

RESOURCES: tuple[ResourceInfo, ...] = (
    _r(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        f"{_CORE}.Namespace",
        short_names=("ns",),
        subresources=("status", "finalize"),
        field_selectors=("status.phase",),
    ),
    _r(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        f"{_CORE}.Pod",
        short_names=("po",),
        categories=("all",),
        subresources=(
            "status",
            "binding",
            "log",
            "exec",
            "attach",
            "portforward",
            "eviction",
            "ephemeralcontainers",
        ),
        field_selectors=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
    ),
    _r(
        "",
        "v1",
        "Node",
        "nodes",
        False,
        f"{_CORE}.Node",
        short_names=("no",),
        subresources=("status", "proxy"),
        field_selectors=("spec.unschedulable",),
    ),
    _r(
        "",
        "v1",
        "Service",
        "services",
        True,
        f"{_CORE}.Service",
        short_names=("svc",),
        categories=("all",),
        subresources=("status", "proxy"),
        field_selectors=("spec.clusterIP", "spec.type"),
    ),
    _r(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        True,
        f"{_CORE}.Endpoints",
        short_names=("ep",),
        has_status=False,
    ),
    _r(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        True,
        f"{_CORE}.ConfigMap",
        short_names=("cm",),
        has_status=False,
    ),
    _r(
        "",
        "v1",
        "Secret",
        "secrets",
        True,
        f"{_CORE}.Secret",
        has_status=False,
        field_selectors=("type",),
    ),
    _r(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        True,
        f"{_CORE}.ServiceAccount",
        short_names=("sa",),
        has_status=False,
        subresources=("token",),
    ),
    _r(
        "",
        "v1",
        "Event",
        "events",
        True,
        f"{_CORE}.Event",
        short_names=("ev",),
        has_status=False,
        field_selectors=_INVOLVED,
    ),
    _r(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        False,
        f"{_CORE}.PersistentVolume",
        short_names=("pv",),
        subresources=("status",),
    ),
    _r(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        f"{_CORE}.PersistentVolumeClaim",
        short_names=("pvc",),
        subresources=("status",),
    ),
    _r(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        True,
        f"{_CORE}.LimitRange",
        short_names=("limits",),
        has_status=False,
    ),
    _r(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        True,
        f"{_CORE}.ResourceQuota",
        short_names=("quota",),
        subresources=("status",),
    ),
    _r(
        "",
        "v1",
        "ComponentStatus",
        "componentstatuses",
        False,
        f"{_CORE}.ComponentStatus",
        short_names=("cs",),
        has_status=False,
        verbs=("get", "list"),
    ),
    _r(
        "",
        "v1",
        "PodTemplate",
        "podtemplates",
        True,
        f"{_CORE}.PodTemplate",
        has_status=False,
    ),
    _r(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        True,
        f"{_CORE}.ReplicationController",
        short_names=("rc",),
        categories=("all",),
        subresources=("status", "scale"),
        field_selectors=("status.replicas",),
    ),
    _r(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        True,
        "io.k8s.api.apps.v1.Deployment",
        short_names=("deploy",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _r(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        True,
        "io.k8s.api.apps.v1.ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        subresources=("status", "scale"),
        field_selectors=("status.replicas",),
    ),
    _r(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        "io.k8s.api.apps.v1.StatefulSet",
        short_names=("sts",),
        categories=("all",),
        subresources=("status", "scale"),
    ),
    _r(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        True,
        "io.k8s.api.apps.v1.DaemonSet",
        short_names=("ds",),
        categories=("all",),
        subresources=("status",),
    ),
    _r(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        True,
        "io.k8s.api.apps.v1.ControllerRevision",
        has_status=False,
    ),
    _r(
        "batch",
        "v1",
        "Job",
        "jobs",
        True,
        "io.k8s.api.batch.v1.Job",
        categories=("all",),
        subresources=("status",),
        field_selectors=("status.successful",),
    ),
    _r(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        True,
        "io.k8s.api.batch.v1.CronJob",
        short_names=("cj",),
        categories=("all",),
        subresources=("status",),
    ),
    _r(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        True,
        "io.k8s.api.coordination.v1.Lease",
        has_status=False,
    ),
    _r(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        True,
        "io.k8s.api.discovery.v1.EndpointSlice",
        has_status=False,
        field_selectors=("addressType",),
    ),
    # Reviews: created and answered, never stored (verbs: create only).
    _r(
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        False,
        "io.k8s.api.authentication.v1.TokenReview",
        verbs=("create",),
    ),
    _r(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        False,
        "io.k8s.api.authentication.v1.SelfSubjectReview",
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        False,
        "io.k8s.api.authorization.v1.SubjectAccessReview",
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        False,
        "io.k8s.api.authorization.v1.SelfSubjectAccessReview",
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        True,
        "io.k8s.api.authorization.v1.LocalSubjectAccessReview",
        verbs=("create",),
    ),
    _r(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        False,
        "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
        verbs=("create",),
    ),
    _r(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        False,
        "io.k8s.api.certificates.v1.CertificateSigningRequest",
        short_names=("csr",),
        subresources=("status", "approval"),
        field_selectors=("spec.signerName",),
    ),
    _r(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        True,
        "io.k8s.api.rbac.v1.Role",
        has_status=False,
    ),
    _r(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        True,
        "io.k8s.api.rbac.v1.RoleBinding",
        has_status=False,
    ),
    _r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        False,
        "io.k8s.api.rbac.v1.ClusterRole",
        has_status=False,
    ),
    _r(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        False,
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
        has_status=False,
    ),
    _r(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        True,
        "io.k8s.api.networking.v1.Ingress",
        short_names=("ing",),
        subresources=("status",),
    ),
    _r(
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        False,
        "io.k8s.api.networking.v1.IngressClass",
        has_status=False,
    ),
    _r(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        True,
        "io.k8s.api.networking.v1.NetworkPolicy",
        short_names=("netpol",),
        has_status=False,
    ),
    _r(
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        False,
        "io.k8s.api.node.v1.RuntimeClass",
        has_status=False,
    ),
    _r(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "FlowSchema",
        "flowschemas",
        False,
        "io.k8s.api.flowcontrol.v1.FlowSchema",
        subresources=("status",),
    ),
    _r(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        False,
        "io.k8s.api.flowcontrol.v1.PriorityLevelConfiguration",
        subresources=("status",),
    ),
    # autoscaling/v2 first: the version HorizontalPodAutoscalers are stored in.
    _r(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler",
        short_names=("hpa",),
        categories=("all",),
        subresources=("status",),
    ),
    _r(
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        True,
        "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler",
        short_names=("hpa",),
        categories=("all",),
        subresources=("status",),
    ),
    _r(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        "io.k8s.api.policy.v1.PodDisruptionBudget",
        short_names=("pdb",),
        subresources=("status",),
    ),
    _r(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        False,
        "io.k8s.api.scheduling.v1.PriorityClass",
        short_names=("pc",),
        has_status=False,
    ),
    _r(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        False,
        "io.k8s.api.storage.v1.StorageClass",
        short_names=("sc",),
        has_status=False,
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        False,
        "io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration",
        categories=("api-extensions",),
        has_status=False,
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        False,
        "io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration",
        categories=("api-extensions",),
        has_status=False,
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        False,
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicy",
        categories=("api-extensions",),
        subresources=("status",),
    ),
    _r(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        False,
        "io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicyBinding",
        categories=("api-extensions",),
        has_status=False,
    ),
    _r(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
        short_names=("crd", "crds"),
        categories=("api-extensions",),
        subresources=("status",),
    ),
    _r(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        False,
        "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService",
        categories=("api-extensions",),
        subresources=("status",),
    ),
    _r(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        True,
        "io.k8s.api.events.v1.Event",
        short_names=("ev",),
        has_status=False,
        stored_in="",
        field_selectors=(
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ),
    ),
)

API_PRIORITIES: dict[str, tuple[int, dict[str, int]]] = {
    "": (18000, {"v1": 1}),
    "apps": (17800, {"v1": 15}),
    "events.k8s.io": (17750, {"v1": 15}),
    "authentication.k8s.io": (17700, {"v1": 15}),
    "authorization.k8s.io": (17600, {"v1": 15}),
    "autoscaling": (17500, {"v2": 30, "v1": 15}),
    "batch": (17400, {"v1": 15}),
    "certificates.k8s.io": (17300, {"v1": 15}),
    "networking.k8s.io": (17200, {"v1": 15}),
    "policy": (17100, {"v1": 15}),
    "rbac.authorization.k8s.io": (17000, {"v1": 15}),
    "storage.k8s.io": (16800, {"v1": 15}),
    "apiextensions.k8s.io": (16700, {"v1": 15}),
    "admissionregistration.k8s.io": (16700, {"v1": 15}),
    "scheduling.k8s.io": (16600, {"v1": 15}),
    "coordination.k8s.io": (16500, {"v1": 15}),
    "node.k8s.io": (16300, {"v1": 15}),
    "discovery.k8s.io": (16200, {"v1": 15}),
    "flowcontrol.apiserver.k8s.io": (16100, {"v1": 21}),
}
"""Each built-in group's ``groupPriorityMinimum`` and its versions' ``versionPriority``,
kube-apiserver's table for its APIServices (the order of discovery)."""
CUSTOM_GROUP_PRIORITY = 1000
CUSTOM_VERSION_PRIORITY = 100
"""What kube's CRD registration gives every served version of a custom resource."""
AGGREGATOR_GROUP = "apiregistration.k8s.io"
"""The aggregator's own group: no APIService names it and discovery lists it first."""


def apiservice_name(group: str, version: str) -> str:
    """The APIService of a group version is named ``<version>.<group>`` (``v1.`` for core)."""
    return f"{version}.{group}"


_VERSION = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes' order: GA, then beta, then alpha, higher
    numbers first; names not shaped like a Kubernetes version last, alphabetically."""
    m = _VERSION.match(version)
    if m is None:
        return (3, 0, 0, version)
    level = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (level, -int(m.group(1)), -int(m.group(3) or 0), "")


def served_priority(group: str, version: str) -> tuple[int, int]:
    """(groupPriorityMinimum, versionPriority) of a group version served here."""
    group_priority, versions = API_PRIORITIES.get(group, (CUSTOM_GROUP_PRIORITY, {}))
    return group_priority, versions.get(version, CUSTOM_VERSION_PRIORITY)


def order_groups(entries: Iterable[tuple[str, str, int, int]]) -> dict[str, list[str]]:
    """(group, version, groupPriorityMinimum, versionPriority) → group → versions, in
    kube's ``/apis`` order (``SortedByGroupAndVersion``): the aggregator's group first,
    then groups in the order of their first APIService by priority (highest first) and
    name; a group's versions by priority, then Kubernetes' version order."""
    rows = sorted(
        entries, key=lambda e: (e[0] != AGGREGATOR_GROUP, -e[2], apiservice_name(e[0], e[1]))
    )
    out: dict[str, list[tuple[int, str]]] = {}
    for group, version, _, version_priority_ in rows:
        seen = out.setdefault(group, [])
        if all(v != version for _, v in seen):
            seen.append((version_priority_, version))
    return {
        g: [v for _, v in sorted(vs, key=lambda x: (-x[0], version_priority(x[1])))]
        for g, vs in out.items()
    }


class Registry:
    """Look-ups over the served resources by path, by kind and by etcd key.

    The built-in resources are fixed; custom resources come and go with their
    CustomResourceDefinitions (:meth:`add`, :meth:`remove`).
    """

    def __init__(self, resources: tuple[ResourceInfo, ...] = RESOURCES) -> None:
        self.builtin = resources
        self.resources = resources
        self._by_path = {(r.group, r.version, r.plural): r for r in resources}
        self._by_gvk = {(r.group, r.version, r.kind): r for r in resources}
        self._by_prefix: dict[str, ResourceInfo] = {}
        for r in resources:
            self._by_prefix.setdefault(r.etcd_prefix(), r)
        self._custom: dict[tuple[str, str], tuple[ResourceInfo, ...]] = {}

    def by_path(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_path.get((group, version, plural))

    def core(self, plural: str) -> ResourceInfo:
        """A core/v1 resource that is always served (``pods``, ``secrets``...)."""
        return self._by_path[("", "v1", plural)]

    def by_gvk(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_gvk.get((group, version, kind))

    def by_key(self, key: str) -> ResourceInfo | None:
        """The resource an etcd key belongs to (``/registry/apps/deployments/ns/x``); for a
        custom resource served in several versions, its storage version."""
        parts = key.split("/", 4)
        if len(parts) < 4:
            return None
        return self._by_prefix.get(f"/{parts[1]}/{parts[2]}/{parts[3]}/")

    def by_prefix(self, prefix: str) -> ResourceInfo | None:
        return self._by_prefix.get(prefix)

    def storage_for(self, info: ResourceInfo) -> ResourceInfo:
        """The version ``info``'s resource is stored in (the first one listed for a
        built-in resource, the CRD's storage version for a custom one)."""
        return self._by_prefix.get(info.etcd_prefix(), info)

    def groups(self) -> dict[str, list[str]]:
        """Group name → versions, in kube's discovery order (:func:`order_groups`)."""
        return order_groups(self.group_versions())

    def group_versions(self) -> list[tuple[str, str, int, int]]:
        """(group, version, groupPriorityMinimum, versionPriority) of each group version
        served here."""
        seen = {(r.group, r.version) for r in self.resources}
        return [(g, v, *served_priority(g, v)) for g, v in sorted(seen)]

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [r for r in self.resources if r.group == group and r.version == version]

    def custom(self) -> list[ResourceInfo]:
        """The custom resources served now (every served version)."""
        return [i for infos in self._custom.values() for i in infos]

    def set_custom(self, group: str, plural: str, infos: tuple[ResourceInfo, ...]) -> None:
        """Serve ``infos`` (one per served version, the storage version first) as the
        custom resource ``plural.group``, replacing what was served for it; ``()`` stops
        serving it. Built-in resources are never replaced."""
        if infos:
            self._custom[(group, plural)] = infos
        else:
            self._custom.pop((group, plural), None)
        self._rebuild()

    def _rebuild(self) -> None:
        custom = [i for infos in self._custom.values() for i in infos]
        by_path = {(r.group, r.version, r.plural): r for r in self.builtin}
        by_gvk = {(r.group, r.version, r.kind): r for r in self.builtin}
        by_prefix: dict[str, ResourceInfo] = {}
        for r in self.builtin:
            by_prefix.setdefault(r.etcd_prefix(), r)
        for r in custom:
            by_path.setdefault((r.group, r.version, r.plural), r)
            by_gvk.setdefault((r.group, r.version, r.kind), r)
        for infos in self._custom.values():
            by_prefix.setdefault(infos[0].etcd_prefix(), infos[0])
        served = set(by_path.values())
        self.resources = (*self.builtin, *(r for r in custom if r in served))
        self._by_path, self._by_gvk, self._by_prefix = by_path, by_gvk, by_prefix


REGISTRY = Registry()
