"""The admission chain (order, enable/disable flags, unknown names) and each plugin, with
an in-memory lister instead of the watch cache."""

from __future__ import annotations

import re
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver.__main__ import parse_args
from skiff.apiserver.admission import (
    DEFAULT_ON_PLUGINS,
    ORDERED_PLUGINS,
    Attributes,
    Chain,
    Handler,
    Operation,
    enabled_plugins,
    new_chain,
)
from skiff.apiserver.admission.defaultingressclass import DefaultIngressClass
from skiff.apiserver.admission.defaultstorageclass import DefaultStorageClass
from skiff.apiserver.admission.namespacelifecycle import NamespaceLifecycle
from skiff.apiserver.admission.priority import Priority
from skiff.apiserver.admission.runtimeclass import RuntimeClass
from skiff.apiserver.admission.storageobjectinuseprotection import StorageObjectInUseProtection
from skiff.apiserver.server import Settings

KUBE_ORDER = [
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "PodSecurity",
    "Priority",
    "DefaultStorageClass",
    "StorageObjectInUseProtection",
    "RuntimeClass",
    "DefaultIngressClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
]


def info(group: str, version: str, plural: str) -> ResourceInfo:
    found = REGISTRY.by_path(group, version, plural)
    assert found is not None
    return found


PODS = info("", "v1", "pods")
CLAIMS = info("", "v1", "persistentvolumeclaims")
CONFIGMAPS = info("", "v1", "configmaps")
NAMESPACES = info("", "v1", "namespaces")
PRIORITY_CLASSES = info("scheduling.k8s.io", "v1", "priorityclasses")
STORAGE_CLASSES = info("storage.k8s.io", "v1", "storageclasses")


class FakeLister:
    """Objects by (resource, name); ``get`` counts look-ups."""

    def __init__(self, *objects: tuple[ResourceInfo, dict[str, Any]]) -> None:
        self.objects = [(i, o) for i, o in objects]
        self.gets: list[str] = []

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Any:
        self.gets.append(name)
        return next(
            (o for i, o in self.objects if i is info and o["metadata"]["name"] == name), None
        )

    def list(self, info: ResourceInfo) -> list[dict[str, Any]]:
        return [o for i, o in self.objects if i is info]


def create(resource: ResourceInfo, obj: dict[str, Any], namespace: str | None = "ns") -> Attributes:
    return Attributes(
        Operation.CREATE, resource, obj, namespace=namespace, name=obj["metadata"]["name"]
    )


# -- the chain ---------------------------------------------------------------------------


def test_plugins_are_kubes_and_on_by_default_as_in_kube() -> None:
    assert list(ORDERED_PLUGINS) == KUBE_ORDER
    default = [n for n in KUBE_ORDER if n not in ("NodeRestriction", "ServiceAccount")]
    assert DEFAULT_ON_PLUGINS == set(default)
    assert enabled_plugins() == default
    assert new_chain(enabled_plugins(), FakeLister()).names == default
    assert enabled_plugins(enable="NodeRestriction,ServiceAccount") == KUBE_ORDER


def test_enable_and_disable() -> None:
    assert enabled_plugins(disable="Priority, DefaultStorageClass") == [
        "NamespaceLifecycle",
        "LimitRanger",
        "PodSecurity",
        "StorageObjectInUseProtection",
        "RuntimeClass",
        "DefaultIngressClass",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]
    # Enabling one that is on by default changes nothing; the order is always kube's.
    assert enabled_plugins(
        enable=[
            "StorageObjectInUseProtection",
            "NamespaceLifecycle",
            "NodeRestriction",
            "ServiceAccount",
        ]
    ) == (KUBE_ORDER)
    assert new_chain(reversed(KUBE_ORDER), FakeLister()).names == KUBE_ORDER
    assert enabled_plugins(disable=KUBE_ORDER) == []


def test_unknown_names_are_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown admission plugins: AlwaysPullImages") as e:
        enabled_plugins(enable="AlwaysPullImages")
    for name in KUBE_ORDER:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="unknown admission plugins: Nope"):
        new_chain(["Nope"], FakeLister())
    with pytest.raises(ValueError, match="both enabled and disabled: Priority"):
        enabled_plugins(enable="Priority", disable="Priority")


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = parse_args(["--disable-admission-plugins", "Priority,DefaultStorageClass"])
    assert s.disable_admission_plugins == ("Priority", "DefaultStorageClass")
    assert s.admission_plugins() == [
        "NamespaceLifecycle",
        "LimitRanger",
        "PodSecurity",
        "StorageObjectInUseProtection",
        "RuntimeClass",
        "DefaultIngressClass",
        "MutatingAdmissionWebhook",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionWebhook",
        "ResourceQuota",
    ]
    monkeypatch.setenv("SKIFF_DISABLE_ADMISSION_PLUGINS", "NamespaceLifecycle")
    default = [n for n in KUBE_ORDER if n not in ("NodeRestriction", "ServiceAccount")]
    assert parse_args([]).admission_plugins() == default[1:]
    assert Settings().admission_plugins() == default
    with pytest.raises(SystemExit):
        parse_args(["--enable-admission-plugins", "AlwaysDeny"])


class Mutator(Handler):
    operations = frozenset({Operation.CREATE})

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name  # type: ignore[misc]
        self.log = log

    async def admit(self, attrs: Attributes) -> None:
        self.log.append(f"admit {self.name}")


class Validator(Handler):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name  # type: ignore[misc]
        self.log = log

    async def validate(self, attrs: Attributes) -> None:
        self.log.append(f"validate {self.name}")


class Both(Mutator, Validator):
    operations = frozenset(Operation)


async def test_chain_runs_mutators_then_validators_in_order() -> None:
    log: list[str] = []
    chain = Chain([Validator("v1", log), Mutator("m1", log), Both("b", log), Mutator("m2", log)])
    attrs = create(CONFIGMAPS, {"metadata": {"name": "x"}})
    await chain.admit(attrs)
    await chain.validate(attrs)
    assert log == ["admit m1", "admit b", "admit m2", "validate v1", "validate b"]
    log.clear()
    attrs.operation = Operation.DELETE  # the Mutators handle CREATE only
    await chain.admit(attrs)
    assert log == ["admit b"]


# -- NamespaceLifecycle ------------------------------------------------------------------


async def test_namespace_lifecycle() -> None:
    live = {"metadata": {"name": "ns"}}
    gone = {"metadata": {"name": "old", "deletionTimestamp": "2024-01-01T00:00:00Z"}}
    plugin = NamespaceLifecycle(FakeLister((NAMESPACES, live), (NAMESPACES, gone)))
    await plugin.admit(create(CONFIGMAPS, {"metadata": {"name": "a"}}))
    with pytest.raises(ApiError) as e:
        await plugin.admit(create(CONFIGMAPS, {"metadata": {"name": "a"}}, "missing"))
    assert e.value.code == 404
    with pytest.raises(ApiError) as e:
        await plugin.admit(create(CONFIGMAPS, {"metadata": {"name": "late"}}, "old"))
    assert e.value.code == 403
    assert e.value.message == (
        'configmaps "late" is forbidden: unable to create new content in namespace old '
        "because it is being terminated"
    )
    assert e.value.causes[0].reason == "NamespaceTerminating"
    # Cluster-scoped objects have no namespace to check; only creates are checked.
    await plugin.admit(create(NAMESPACES, {"metadata": {"name": "n"}}, None))
    assert not plugin.handles(Operation.UPDATE) and not plugin.handles(Operation.DELETE)


# -- Priority ----------------------------------------------------------------------------


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


async def test_priority_from_the_named_class() -> None:
    high = {"metadata": {"name": "high"}, "value": 1000, "preemptionPolicy": "Never"}
    plugin = Priority(FakeLister((PRIORITY_CLASSES, high)))
    pod = _pod(priorityClassName="high")
    await plugin.admit(create(PODS, pod))
    assert pod["spec"]["priority"] == 1000 and pod["spec"]["preemptionPolicy"] == "Never"
    pod = _pod(priorityClassName="high", priority=1000)  # the same value may be given
    await plugin.admit(create(PODS, pod))
    with pytest.raises(ApiError) as e:
        await plugin.admit(create(PODS, _pod(priorityClassName="high", priority=5)))
    assert e.value.code == 403 and "priority admission controller computed 1000" in e.value.message
    with pytest.raises(ApiError) as e:
        await plugin.admit(create(PODS, _pod(priorityClassName="nope")))
    assert e.value.code == 403 and "no PriorityClass with name nope was found" in e.value.message


async def test_priority_global_default_or_zero() -> None:
    pod = _pod()
    await Priority(FakeLister()).admit(create(PODS, pod))
    assert pod["spec"] == {"priority": 0}
    default = {"metadata": {"name": "dflt"}, "value": 7, "globalDefault": True}
    other = {"metadata": {"name": "other"}, "value": 9}
    lister = FakeLister((PRIORITY_CLASSES, other), (PRIORITY_CLASSES, default))
    pod = _pod()
    await Priority(lister).admit(create(PODS, pod))
    assert pod["spec"] == {
        "priority": 7,
        "priorityClassName": "dflt",
        "preemptionPolicy": "PreemptLowerPriority",
    }
    cm = {"metadata": {"name": "c"}}
    await Priority(lister).admit(create(CONFIGMAPS, cm))
    assert cm == {"metadata": {"name": "c"}}


# -- DefaultStorageClass -----------------------------------------------------------------


def _sc(name: str, created: str, default: bool) -> dict[str, Any]:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
        "provisioner": "x",
    }


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, "newer"),
        ({"storageClassName": ""}, ""),  # asks for no class
        ({"storageClassName": "fast"}, "fast"),
    ],
)
async def test_default_storage_class(spec: dict[str, Any], want: str) -> None:
    lister = FakeLister(
        (STORAGE_CLASSES, _sc("older", "2024-01-01T00:00:00Z", True)),
        (STORAGE_CLASSES, _sc("newer", "2024-02-01T00:00:00Z", True)),
        (STORAGE_CLASSES, _sc("plain", "2024-03-01T00:00:00Z", False)),
    )
    claim = {"metadata": {"name": "c"}, "spec": dict(spec)}
    await DefaultStorageClass(lister).admit(create(CLAIMS, claim))
    assert claim["spec"]["storageClassName"] == want


async def test_no_default_storage_class_leaves_the_claim() -> None:
    claim: dict[str, Any] = {"metadata": {"name": "c"}, "spec": {}}
    await DefaultStorageClass(FakeLister()).admit(create(CLAIMS, claim))
    assert "storageClassName" not in claim["spec"]


# -- DefaultIngressClass -----------------------------------------------------------------


def _ic(name: str, created: str, default: bool) -> dict[str, Any]:
    annotations = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"controller": "example.com/ingress"}}  # fmt: skip


@pytest.mark.parametrize(
    ("ingress", "want"),
    [
        ({"spec": {}}, "b-newer"),
        ({"spec": {"ingressClassName": "mine"}}, "mine"),
        ({"metadata": {"annotations": {"kubernetes.io/ingress.class": "old"}}, "spec": {}}, None),
    ],
)
async def test_default_ingress_class(ingress: dict[str, Any], want: str | None) -> None:
    classes = info("networking.k8s.io", "v1", "ingressclasses")
    lister = FakeLister(
        (classes, _ic("a-older", "2024-01-01T00:00:00Z", True)),
        (classes, _ic("b-newer", "2024-02-01T00:00:00Z", True)),
        (classes, _ic("c-same", "2024-02-01T00:00:00Z", True)),  # a tie: the first by name
        (classes, _ic("plain", "2024-03-01T00:00:00Z", False)),
    )
    obj = {"metadata": {"name": "i", **ingress.get("metadata", {})}, "spec": dict(ingress["spec"])}
    await DefaultIngressClass(lister).admit(
        create(info("networking.k8s.io", "v1", "ingresses"), obj)
    )
    assert obj["spec"].get("ingressClassName") == want


# -- RuntimeClass ------------------------------------------------------------------------

GVISOR = {
    "metadata": {"name": "gvisor"},
    "handler": "runsc",
    "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
    "scheduling": {
        "nodeSelector": {"sandbox": "gvisor"},
        "tolerations": [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def _sandboxed_pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"runtimeClassName": "gvisor", **spec}}


async def _runtime_class(pod: dict[str, Any]) -> None:
    plugin = RuntimeClass(FakeLister((info("node.k8s.io", "v1", "runtimeclasses"), GVISOR)))
    attrs = create(REGISTRY.core("pods"), pod)
    await plugin.admit(attrs)
    await plugin.validate(attrs)


async def test_runtime_class_brings_overhead_and_scheduling() -> None:
    pod = _sandboxed_pod(nodeSelector={"zone": "a"})
    await _runtime_class(pod)
    assert pod["spec"]["overhead"] == {"cpu": "250m", "memory": "120Mi"}
    assert pod["spec"]["nodeSelector"] == {"zone": "a", "sandbox": "gvisor"}
    assert pod["spec"]["tolerations"] == GVISOR["scheduling"]["tolerations"]
    same = _sandboxed_pod(overhead={"cpu": "0.25", "memory": "120Mi"})  # equal quantities
    await _runtime_class(same)


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        (_sandboxed_pod(runtimeClassName="kata"), 'pod rejected: RuntimeClass "kata" not found'),
        (_sandboxed_pod(overhead={"cpu": "1"}),
         "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"),
        (_sandboxed_pod(nodeSelector={"sandbox": "kata"}),
         "conflict: runtimeClass.scheduling.nodeSelector[sandbox] = gvisor; "
         "pod.spec.nodeSelector[sandbox] = kata"),
        ({"metadata": {"name": "p"}, "spec": {"overhead": {"cpu": "1"}}},
         "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead"),
    ],
)  # fmt: skip
async def test_runtime_class_refusals(pod: dict[str, Any], message: str) -> None:
    with pytest.raises(ApiError) as e:
        await _runtime_class(pod)
    assert (e.value.code, e.value.message) == (403, f'pods "p" is forbidden: {message}')


# -- StorageObjectInUseProtection --------------------------------------------------------


@pytest.mark.parametrize(
    ("plural", "before", "after"),
    [
        ("persistentvolumeclaims", None, ["kubernetes.io/pvc-protection"]),
        ("persistentvolumeclaims", ["x"], ["x", "kubernetes.io/pvc-protection"]),
        ("persistentvolumeclaims", ["kubernetes.io/pvc-protection"], None),
        ("persistentvolumes", None, ["kubernetes.io/pv-protection"]),
        ("persistentvolumes", ["kubernetes.io/pv-protection", "x"], None),
        ("pods", None, None),
        ("configmaps", ["x"], None),
    ],
)
async def test_storage_object_in_use_protection(
    plural: str, before: list[str] | None, after: list[str] | None
) -> None:
    meta: dict = {"name": "o"} if before is None else {"name": "o", "finalizers": list(before)}
    await StorageObjectInUseProtection().admit(create(info("", "v1", plural), {"metadata": meta}))
    assert meta.get("finalizers") == (after if after is not None else before)


async def test_service_account_admission() -> None:
    from skiff.apiserver.admission.serviceaccount import MOUNT_PATH, ServiceAccount

    sas = info("", "v1", "serviceaccounts")
    pods = info("", "v1", "pods")
    lister = FakeLister(
        (sas, {"metadata": {"name": "default"}, "imagePullSecrets": [{"name": "reg"}]}),
        (sas, {"metadata": {"name": "quiet"}, "automountServiceAccountToken": False}),
    )
    plugin = ServiceAccount(lister)
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": "i"}],
            "containers": [
                {"name": "a"},
                {"name": "b", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
            ],
        },
    }
    await plugin.admit(create(pods, pod))
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    assert spec["imagePullSecrets"] == [{"name": "reg"}]
    (volume,) = spec["volumes"]
    assert re.fullmatch(r"kube-api-access-[bcdfghjklmnpqrstvwxz2456789]{5}", volume["name"])
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mount = {"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}
    assert spec["initContainers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][0]["volumeMounts"] == [mount]
    assert spec["containers"][1]["volumeMounts"] == [{"name": "mine", "mountPath": MOUNT_PATH}]
    # The account opts out; the pod opts out; a missing account is refused.
    quiet = {"metadata": {"name": "q"}, "spec": {"serviceAccountName": "quiet", "containers": []}}
    await plugin.admit(create(pods, quiet))
    assert "volumes" not in quiet["spec"]
    off = {"metadata": {"name": "o"}, "spec": {"automountServiceAccountToken": False}}
    await plugin.admit(create(pods, off))
    assert "volumes" not in off["spec"]
    missing = {"metadata": {"name": "m"}, "spec": {"serviceAccountName": "nobody"}}
    with pytest.raises(ApiError) as e:
        await plugin.admit(create(pods, missing))
    assert e.value.code == 403
    assert e.value.message == (
        'pods "m" is forbidden: error looking up service account ns/nobody: serviceaccount '
        '"nobody" not found'
    )
    # Mirror pods are the kubelet's.
    mirror = {"metadata": {"name": "s", "annotations": {"kubernetes.io/config.mirror": "x"}}}
    await plugin.admit(create(pods, mirror))
    assert "spec" not in mirror or "serviceAccountName" not in mirror.get("spec", {})
