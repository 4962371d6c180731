"""PodSecurity admission: the Pod Security Standards' checks and words, and the plugin's
enforce/warn behaviour for pods and workload templates."""

from __future__ import annotations

from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver.admission import Attributes, Operation
from skiff.apiserver.admission.podsecurity import PodSecurity, violations


def info(group: str, version: str, plural: str) -> ResourceInfo:
    found = REGISTRY.by_path(group, version, plural)
    assert found is not None
    return found


PODS = info("", "v1", "pods")
DEPLOYMENTS = info("apps", "v1", "deployments")
CRONJOBS = info("batch", "v1", "cronjobs")
NAMESPACES = info("", "v1", "namespaces")

RESTRICTED_OK: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "busybox",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
        }
    ],
    "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
}


class Namespaces:
    """A lister holding one namespace with the given labels."""

    def __init__(self, **labels: str) -> None:
        self.labels = {f"pod-security.kubernetes.io/{k}": v for k, v in labels.items()}

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Any:
        assert info is NAMESPACES
        return {"metadata": {"name": name, "labels": self.labels}}

    def list(self, info: ResourceInfo) -> list[dict[str, Any]]:
        return []


def pod(spec: dict[str, Any], **annotations: str) -> dict[str, Any]:
    return {"metadata": {"name": "p", "annotations": annotations}, "spec": spec}


def test_an_empty_pod_passes_baseline_and_breaks_restricted() -> None:
    spec = {"containers": [{"name": "app", "image": "busybox"}]}
    assert violations("baseline", spec) == []
    assert violations("privileged", spec) == []
    assert violations("restricted", spec) == [
        'allowPrivilegeEscalation != false (container "app" must set '
        "securityContext.allowPrivilegeEscalation=false)",
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true)',
        'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type '
        'to "RuntimeDefault" or "Localhost")',
        'unrestricted capabilities (container "app" must set '
        'securityContext.capabilities.drop=["ALL"])',
    ]
    assert violations("restricted", RESTRICTED_OK) == []


def test_baseline_words() -> None:
    spec = {
        "hostNetwork": True,
        "hostPID": True,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        "containers": [
            {
                "name": "a",
                "securityContext": {
                    "privileged": True,
                    "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]},
                    "procMount": "Unmasked",
                    "seccompProfile": {"type": "Unconfined"},
                },
                "ports": [{"containerPort": 80, "hostPort": 8080}],
            },
            {"name": "b", "securityContext": {"privileged": True}},
        ],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    }
    assert violations("baseline", spec) == [
        "host namespaces (hostNetwork=true, hostPID=true)",
        'privileged (containers "a", "b" must not set securityContext.privileged=true)',
        'non-default capabilities (container "a" must not include "SYS_ADMIN" in '
        "securityContext.capabilities.add)",
        'hostPath volumes (volume "root")',
        'hostPort (container "a" uses hostPort 8080)',
        'procMount (container "a" must not set securityContext.procMount to "Unmasked")',
        'seccompProfile (container "a" must not set securityContext.seccompProfile.type to '
        '"Unconfined")',
        "forbidden sysctls (kernel.msgmax)",
    ]


def test_restricted_volume_types_and_root() -> None:
    spec = {
        **RESTRICTED_OK,
        "securityContext": {**RESTRICTED_OK["securityContext"], "runAsUser": 0},
        "volumes": [{"name": "nfs", "nfs": {"server": "x", "path": "/"}}],
    }
    assert violations("restricted", spec) == [
        'restricted volume types (volume "nfs" uses restricted volume type "nfs")',
        "runAsUser=0 (pod must not set runAsUser=0)",
    ]


async def test_enforce_refuses_a_pod_with_kubes_message() -> None:
    plugin = PodSecurity(Namespaces(enforce="baseline"))
    spec = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    attrs = Attributes(Operation.CREATE, PODS, pod(spec), namespace="ns", name="p", warnings=[])
    with pytest.raises(ApiError) as err:
        await plugin.validate(attrs)
    assert err.value.code == 403
    assert err.value.message == (
        'pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true)'
    )
    # A mirror pod, an update and a namespace without labels are left alone.
    mirror = pod(spec, **{"kubernetes.io/config.mirror": "x"})
    await plugin.validate(Attributes(Operation.CREATE, PODS, mirror, namespace="ns", name="p"))
    await plugin.validate(Attributes(Operation.UPDATE, PODS, pod(spec), namespace="ns", name="p"))
    await PodSecurity(Namespaces()).validate(attrs)
    await PodSecurity(Namespaces(enforce="privileged")).validate(attrs)


async def test_warn_admits_with_a_warning_and_templates_warn_for_enforce() -> None:
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    warnings: list[str] = []
    plugin = PodSecurity(Namespaces(warn="restricted", enforce="baseline"))
    await plugin.validate(
        Attributes(Operation.CREATE, PODS, pod(spec), namespace="ns", name="p", warnings=warnings)
    )
    assert len(warnings) == 1
    assert warnings[0].startswith('would violate PodSecurity "restricted:latest": ')

    bad = {"hostNetwork": True, "containers": [{"name": "c"}]}
    deploy = {"metadata": {"name": "d"}, "spec": {"template": {"spec": bad}}}
    warnings = []
    await plugin.validate(
        Attributes(
            Operation.UPDATE, DEPLOYMENTS, deploy, namespace="ns", name="d", warnings=warnings
        )
    )
    assert [w.split(":")[0] for w in warnings] == [
        'would violate PodSecurity "restricted',
        'would violate PodSecurity "baseline',
    ]
    cron = {"metadata": {"name": "c"},
            "spec": {"jobTemplate": {"spec": {"template": {"spec": bad}}}}}  # fmt: skip
    warnings = []
    await PodSecurity(Namespaces(enforce="baseline")).validate(
        Attributes(Operation.CREATE, CRONJOBS, cron, namespace="ns", name="c", warnings=warnings)
    )
    assert warnings == [
        'would violate PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'
    ]


async def test_audit_annotates_the_audit_event() -> None:
    spec = {"containers": [{"name": "c", "image": "busybox"}]}
    notes: dict[str, str] = {}
    plugin = PodSecurity(Namespaces(audit="restricted", enforce="baseline"))
    attrs = Attributes(
        Operation.CREATE, PODS, pod(spec), namespace="ns", name="p", audit_annotations=notes
    )
    await plugin.validate(attrs)
    assert notes["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
    assert notes["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
    )
