"""LimitRange and ResourceQuota validation, and the LimitRanger and ResourceQuota admission
plugins with an in-memory lister."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver.admission import Attributes, Operation
from skiff.apiserver.admission.limitranger import LimitRanger
from skiff.apiserver.admission.resourcequota import ResourceQuota
from skiff.apiserver.registry import strategy_for

PODS = REGISTRY.core("pods")
CONFIGMAPS = REGISTRY.core("configmaps")
CLAIMS = REGISTRY.core("persistentvolumeclaims")
LIMIT_RANGES = REGISTRY.core("limitranges")
QUOTAS = REGISTRY.core("resourcequotas")

Obj = dict[str, Any]


def messages(info: ResourceInfo, obj: Obj) -> list[str]:
    return [f"{c.field}: {c.message}" for c in strategy_for(info).validate(obj)]


def test_resource_quota_validation() -> None:
    quota = {"spec": {"hard": {"pods": "1.5", "cpu": "-1", "bogus": "1", "count/jobs.batch": "2"},
                      "scopes": ["Terminating", "NotTerminating", "Nope"]}}  # fmt: skip
    assert messages(QUOTAS, quota) == [
        'spec.hard[pods]: Invalid value: "1500m": must be an integer',
        'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0',
        'spec.hard[bogus]: Invalid value: "bogus": must be a standard resource for quota',
        'spec.scopes: Invalid value: "Nope": unsupported scope',
        "spec.scopes: Invalid value: [Terminating NotTerminating Nope]: conflicting scopes",
    ]


def test_limit_range_validation() -> None:
    lr = {"spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
         "default": {"cpu": "500m"}, "maxLimitRequestRatio": {"cpu": "500m"}},
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "Container"},
    ]}}  # fmt: skip
    assert messages(LIMIT_RANGES, lr) == [
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default '
        "value 500m",
        'spec.limits[0].maxLimitRequestRatio[cpu]: Invalid value: "500m": ratio 500m is less '
        "than 1",
        "spec.limits[1].default: Invalid value: map[cpu:1]: not supported when limit type is Pod",
        'spec.limits[2].type: Duplicate value: "Container"',
    ]


class Lister:
    """Objects by resource; ``update_status`` applies the mutation to the stored copy."""

    def __init__(self, *objects: tuple[ResourceInfo, Obj]) -> None:
        self.objects = list(objects)
        self.writes = 0

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj | None:
        return next((o for i, o in self.objects if i is info and o["metadata"]["name"] == name),
                    None)  # fmt: skip

    def list(self, info: ResourceInfo) -> list[Obj]:
        return [copy.deepcopy(o) for i, o in self.objects if i is info]

    async def update_status(
        self, info: ResourceInfo, namespace: str | None, name: str, mutate: Callable[[Obj], Obj]
    ) -> Obj:
        for n, (i, o) in enumerate(self.objects):
            if i is info and o["metadata"]["name"] == name:
                self.objects[n] = (i, mutate(copy.deepcopy(o)))
                self.writes += 1
                return self.objects[n][1]
        raise AssertionError(name)


def pod(*containers: Obj, name: str = "p") -> Obj:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"containers": list(containers)}}


def create(info: ResourceInfo, obj: Obj, **kw: Any) -> Attributes:
    return Attributes(Operation.CREATE, info, obj, namespace="ns", name=obj["metadata"]["name"],
                      **kw)  # fmt: skip


LIMITS = {
    "metadata": {"name": "l", "namespace": "ns"},
    "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "200m"}, "defaultRequest": {"cpu": "100m"},
         "max": {"cpu": "1"}, "min": {"cpu": "50m"}, "maxLimitRequestRatio": {"cpu": "4"}},
        {"type": "Pod", "max": {"cpu": "1500m"}},
        {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}},
    ]},
}  # fmt: skip


async def test_limit_ranger_defaults_then_checks() -> None:
    plugin = LimitRanger(Lister((LIMIT_RANGES, LIMITS)))
    b = {"name": "b", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}
    attrs = create(PODS, pod({"name": "a"}, b))
    await plugin.admit(attrs)
    await plugin.validate(attrs)
    assert attrs.obj is not None
    assert attrs.obj["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m"},
        "limits": {"cpu": "200m"},
    }
    assert attrs.obj["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container a; cpu limit for container a"
    )
    assert attrs.obj["status"]["qosClass"] == "Burstable"

    greedy = {"name": "c", "resources": {"requests": {"cpu": "10m", "memory": "2Gi"},
                                         "limits": {"cpu": "2", "memory": "2Gi"}}}  # fmt: skip
    attrs = create(PODS, pod(greedy))
    await plugin.admit(attrs)
    with pytest.raises(ApiError) as err:
        await plugin.validate(attrs)
    assert err.value.code == 403
    assert err.value.message == (
        'pods "p" is forbidden: [minimum cpu usage per Container is 50m, but request is 10m, '
        "maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio "
        "per Container is 4, but provided ratio is 200.000000, maximum cpu usage per Pod is "
        "1500m, but limit is 2]"
    )
    claim = {"metadata": {"name": "c"}, "spec": {"resources": {"requests": {"storage": "500Mi"}}}}
    with pytest.raises(ApiError) as err:
        await plugin.validate(create(CLAIMS, claim))
    assert err.value.message == (
        'persistentvolumeclaims "c" is forbidden: minimum storage usage per '
        "PersistentVolumeClaim is 1Gi, but request is 500Mi"
    )
    # A request above the default limit cannot get it: kube's validation refuses the pod.
    attrs = create(PODS, pod({"name": "d", "resources": {"requests": {"cpu": "500m"}}}))
    with pytest.raises(ApiError) as err:
        await plugin.admit(attrs)
    assert err.value.code == 422
    assert "must be less than or equal to cpu limit of 200m" in err.value.message


def quota(hard: Obj, used: Obj | None = None, **spec: Any) -> Obj:
    return {
        "metadata": {"name": "q", "namespace": "ns"},
        "spec": {"hard": hard, **spec},
        "status": {"hard": hard, "used": used if used is not None else {k: "0" for k in hard}},
    }


async def test_quota_charges_and_refuses_in_kubes_words() -> None:
    lister = Lister((QUOTAS, quota({"configmaps": "1", "pods": "5"})))
    plugin = ResourceQuota(lister)
    await plugin.validate(create(CONFIGMAPS, {"metadata": {"name": "a"}}))
    assert lister.list(QUOTAS)[0]["status"]["used"] == {"configmaps": "1", "pods": "0"}
    with pytest.raises(ApiError) as err:
        await plugin.validate(create(CONFIGMAPS, {"metadata": {"name": "b"}}))
    assert err.value.message == (
        'configmaps "b" is forbidden: exceeded quota: q, requested: configmaps=1, used: '
        "configmaps=1, limited: configmaps=1"
    )
    # A dry run is judged but not charged; an update that uses nothing more is not charged.
    writes = lister.writes
    await plugin.validate(create(PODS, pod({"name": "x"}), dry_run=True))
    cm = {"metadata": {"name": "a"}}
    await plugin.validate(Attributes(Operation.UPDATE, CONFIGMAPS, cm, cm, namespace="ns",
                                     name="a"))  # fmt: skip
    assert lister.writes == writes


async def test_quota_needs_a_count_and_stated_requests() -> None:
    unknown = quota({"requests.cpu": "1"}, used={})
    with pytest.raises(ApiError) as err:
        await ResourceQuota(Lister((QUOTAS, unknown))).validate(
            create(PODS, pod({"name": "a", "resources": {"requests": {"cpu": "1"}}}))
        )
    assert err.value.message == (
        'pods "p" is forbidden: status unknown for quota: q, resource: requests.cpu'
    )
    with pytest.raises(ApiError) as err:
        await ResourceQuota(Lister((QUOTAS, quota({"requests.cpu": "1"})))).validate(
            create(PODS, pod({"name": "a"}))
        )
    assert err.value.message == (
        'pods "p" is forbidden: failed quota: q: must specify requests.cpu for: a'
    )
    # A quota scoped to BestEffort pods does not limit a pod with requests.
    scoped = quota({"pods": "0"}, scopes=["BestEffort"])
    await ResourceQuota(Lister((QUOTAS, scoped))).validate(
        create(PODS, pod({"name": "a", "resources": {"requests": {"cpu": "1"}}}))
    )
