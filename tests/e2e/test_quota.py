"""LimitRanges and ResourceQuotas on a real cluster, driven by the real kubectl: the
LimitRanger and ResourceQuota admission plugins in the apiserver and the controller
manager's resourcequota-controller.

A real etcd, NATS and apiserver and a controller-manager process with the quota controller;
no nodes (quota counts pods whether they run or not).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from clusterenv import hollow_env, started_cluster
from test_kubectl import kubectl

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient

NS = "quota"

LIMITS = """
apiVersion: v1
kind: LimitRange
metadata: {name: limits}
spec:
  limits:
  - type: Container
    default: {cpu: 200m, memory: 128Mi}
    max: {cpu: "1"}
    min: {cpu: 50m}
  - type: PersistentVolumeClaim
    max: {storage: 2Gi}
"""


@pytest.fixture(scope="module")
def qc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "quota")


@pytest.fixture(scope="module")
async def env(qc: Cluster) -> AsyncIterator[ApiClient]:
    async with hollow_env(
        qc,
        NS,
        nodes=[],
        wait_nodes=False,
        scheduler=False,
        manager=("--controllers=resourcequota-controller",),
    ) as env:
        yield env.client


def _ctl(qc: Cluster, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return kubectl(qc.kubeconfig(), "-n", NS, *args, **kw)


def _wait(fn: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _used(qc: Cluster, name: str) -> dict[str, str]:
    out = _ctl(qc, "get", "quota", name, "-o", "json").stdout
    return (json.loads(out).get("status") or {}).get("used") or {}


def test_limit_range_defaults_and_bounds(qc: Cluster, env: ApiClient) -> None:
    _ctl(qc, "apply", "-f", "-", input=LIMITS)
    got = json.loads(_ctl(qc, "get", "limits", "limits", "-o", "json").stdout)
    item = got["spec"]["limits"][0]
    # Defaulted as kube's SetDefaults_LimitRangeItem: the default request is the default.
    assert item["defaultRequest"] == {"cpu": "200m", "memory": "128Mi"}
    _ctl(qc, "run", "plain", "--image=busybox", "--restart=Never")
    pod = json.loads(_ctl(qc, "get", "pod", "plain", "-o", "json").stdout)
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "200m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "128Mi"},
    }
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container plain; "
        "cpu, memory limit for container plain"
    )
    assert pod["status"]["qosClass"] == "Guaranteed"
    big = _ctl(qc, "run", "big", "--image=busybox", "--restart=Never",
               "--overrides", json.dumps({"spec": {"containers": [{
                   "name": "big", "image": "busybox",
                   "resources": {"limits": {"cpu": "2"}}}]}}), check=False)  # fmt: skip
    assert big.returncode != 0
    assert 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in (
        big.stderr
    )
    bad = _ctl(qc, "apply", "-f", "-", check=False,
               input=LIMITS.replace('min: {cpu: 50m}', 'min: {cpu: "2"}'))  # fmt: skip
    assert bad.returncode != 0
    assert "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max " \
        "value 1" in bad.stderr  # fmt: skip
    _ctl(qc, "delete", "pod", "plain", "--wait=false")


def test_quota_counts_refuses_and_releases(qc: Cluster, env: ApiClient) -> None:
    _ctl(qc, "create", "quota", "compute", "--hard=pods=2,requests.cpu=500m,limits.memory=1Gi")
    _wait(lambda: _used(qc, "compute").get("pods") is not None, "the controller's first count")
    table = _ctl(qc, "get", "quota", "compute").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    assert table[1].split()[2:] == ["pods:", "0/2,", "requests.cpu:", "0/500m", "limits.memory:",
                                    "0/1Gi"]  # fmt: skip
    for name in ("a", "b"):
        _ctl(qc, "run", name, "--image=busybox", "--restart=Never",
             "--overrides", json.dumps({"spec": {"containers": [{
                 "name": name, "image": "busybox",
                 "resources": {"requests": {"cpu": "100m"},
                               "limits": {"memory": "256Mi"}}}]}}))  # fmt: skip
    used = _used(qc, "compute")
    assert used["requests.cpu"] == "200m" and used["limits.memory"] == "512Mi"
    third = _ctl(qc, "run", "c", "--image=busybox", "--restart=Never", check=False)
    assert third.returncode != 0
    assert 'pods "c" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, ' \
        "limited: pods=2" in third.stderr  # fmt: skip
    # Deleting a pod gives its share back (the controller recounts).
    _ctl(qc, "delete", "pod", "a", "--grace-period=0", "--force")
    _wait(lambda: _used(qc, "compute").get("pods") == "1", "pods=1 after a delete")
    _ctl(qc, "run", "c", "--image=busybox", "--restart=Never")
    _ctl(qc, "delete", "pod", "b", "c", "--grace-period=0", "--force")
    _ctl(qc, "delete", "quota", "compute")


def test_quota_object_counts_and_missing_requests(qc: Cluster, env: ApiClient) -> None:
    _ctl(qc, "create", "quota", "objects", "--hard=configmaps=1,count/deployments.apps=0")
    _wait(lambda: "configmaps" in _used(qc, "objects"), "the objects quota's first count")
    _ctl(qc, "create", "configmap", "one")
    second = _ctl(qc, "create", "configmap", "two", check=False)
    assert "exceeded quota: objects, requested: configmaps=1, used: configmaps=1, " \
        "limited: configmaps=1" in second.stderr  # fmt: skip
    deploy = _ctl(qc, "create", "deployment", "web", "--image=busybox", check=False)
    assert "exceeded quota: objects, requested: count/deployments.apps=1" in deploy.stderr
    _ctl(qc, "delete", "configmap", "one")
    _wait(lambda: _used(qc, "objects").get("configmaps") == "0", "configmaps=0")
    _ctl(qc, "delete", "quota", "objects")

    _ctl(qc, "create", "quota", "strict", "--hard=limits.cpu=4")
    _wait(lambda: "limits.cpu" in _used(qc, "strict"), "the strict quota's first count")
    _ctl(qc, "delete", "limits", "limits")
    time.sleep(0.5)  # the apiserver's cache sees the LimitRange go
    bare = _ctl(qc, "run", "bare", "--image=busybox", "--restart=Never", check=False)
    assert 'pods "bare" is forbidden: failed quota: strict: must specify limits.cpu for: bare' \
        in bare.stderr  # fmt: skip
    _ctl(qc, "delete", "quota", "strict")


def test_kubectl_describe_quota(qc: Cluster, env: ApiClient) -> None:
    _ctl(qc, "create", "quota", "shown", "--hard=secrets=10")
    _wait(lambda: "secrets" in _used(qc, "shown"), "the shown quota's first count")
    out = _ctl(qc, "describe", "quota", "shown").stdout
    rows = [line.split() for line in out.splitlines()]
    assert ["Resource", "Used", "Hard"] in rows
    assert ["secrets", "0", "10"] in rows


async def test_concurrent_creates_never_pass_the_quota(qc: Cluster, env: ApiClient) -> None:
    """Eight ConfigMaps at once against configmaps=3: the charge is a compare-and-swap on
    the stored quota, so exactly three are admitted."""
    await asyncio.to_thread(_ctl, qc, "create", "quota", "race", "--hard=configmaps=3")
    await asyncio.to_thread(_wait, lambda: "configmaps" in _used(qc, "race"), "a first count")

    async def create(i: int) -> bool:
        try:
            await env.create("configmaps", {"metadata": {"name": f"race-{i}"}}, NS)
        except ApiError as e:
            assert e.code == 403 and "exceeded quota: race" in str(e)
            return False
        return True

    results = await asyncio.gather(*(create(i) for i in range(8)))
    assert sum(results) == 3
    assert _used(qc, "race")["configmaps"] == "3"
    await asyncio.to_thread(_ctl, qc, "delete", "quota", "race")
