"""Skiff's control plane under its own identities with least privilege, as kubeadm runs
Kubernetes': behind ``--authorization-mode=Node,RBAC``, the scheduler as
``system:kube-scheduler`` and the controller manager as
``system:kube-controller-manager`` with ``--use-service-account-credentials`` (each
controller writing as ``kube-system/<controller>`` with only its default role). Real
workloads go through every controller, and nothing is refused along the way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import until

from cluster import Cluster
from skiff.api.errors import ApiError

NS = "lp"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "least-privilege", secure=True)


@pytest.fixture(scope="module")
async def env(cluster: Cluster) -> AsyncIterator[HollowEnv]:
    identity = cluster.user_kubeconfig("system:kube-controller-manager")
    assert cluster.pki is not None
    manager = (
        "--use-service-account-credentials",
        f"--kubeconfig={identity}",
        f"--root-ca-file={cluster.pki / 'ca.crt'}",
    )
    async with hollow_env(cluster, NS, nodes=2, prefix="lp-", manager=manager) as env:
        yield env


def _deployment(name: str, replicas: int) -> dict:  # type: ignore[type-arg]
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "x"}]},
            },
        },
    }


async def _running(env: HollowEnv, selector: str, count: int) -> bool:
    pods = await env.client.list("pods", NS, label_selector=selector)
    running = [p for p in pods["items"] if (p.get("status") or {}).get("phase") == "Running"]
    return len(running) == count


async def test_workloads_run_through_every_controller(env: HollowEnv) -> None:
    c = env.client
    await c.create("deployments.apps", _deployment("web", 3), NS)
    await until(lambda: _running(env, "app=web", 3), timeout=60, what="3 web pods running")
    await c.create(
        "services",
        {
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
        NS,
    )

    async def endpoints() -> bool:
        slices = await c.list(
            "endpointslices.discovery.k8s.io", NS, label_selector="kubernetes.io/service-name=web"
        )
        try:
            eps = await c.get("endpoints", "web", NS)
        except ApiError:
            return False
        addresses = [a for s in eps.get("subsets") or [] for a in s.get("addresses") or []]
        return bool(slices["items"]) and len(addresses) == 3

    await until(endpoints, timeout=30, what="endpoints and slices of web")
    await c.create(
        "jobs.batch",
        {
            "metadata": {"name": "once"},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}
                }
            },
        },
        NS,
    )
    # Scale down, then delete: the ReplicaSet controller and the garbage collector.
    await c.patch("deployments.apps", "web", {"spec": {"replicas": 1}}, NS)
    await until(lambda: _running(env, "app=web", 1), timeout=60, what="web scaled to 1")
    await c.delete("deployments.apps", "web", NS)

    async def gone() -> bool:
        pods = await c.list("pods", NS, label_selector="app=web")
        rs = await c.list("replicasets.apps", NS)
        return not pods["items"] and not rs["items"]

    await until(gone, timeout=60, what="the deployment's ReplicaSets and pods collected")
    # A namespace empties and goes (namespace controller), with its default account
    # made first (service account controller).
    await c.create("namespaces", {"metadata": {"name": "lp-temp"}})

    async def default_account() -> bool:
        try:
            return bool(await c.get("serviceaccounts", "default", "lp-temp"))
        except ApiError:
            return False

    await until(default_account, timeout=30, what="default SA")
    await c.create("configmaps", {"metadata": {"name": "x"}}, "lp-temp")
    await c.delete("namespaces", "lp-temp")

    async def namespace_gone() -> bool:
        try:
            await c.get("namespaces", "lp-temp")
        except ApiError as e:
            return e.code == 404
        return False

    await until(namespace_gone, timeout=60, what="lp-temp deleted")


async def test_every_namespace_has_the_root_ca(env: HollowEnv, cluster: Cluster) -> None:
    assert cluster.pki is not None
    ca = (cluster.pki / "ca.crt").read_text()

    async def published(ns: str) -> bool:
        try:
            cm = await env.client.get("configmaps", "kube-root-ca.crt", ns)
        except ApiError:
            return False
        return cm["data"] == {"ca.crt": ca}

    await until(lambda: published(NS), timeout=20, what="kube-root-ca.crt in lp")
    await env.client.create("namespaces", {"metadata": {"name": "lp-ca"}})
    await until(lambda: published("lp-ca"), timeout=20, what="kube-root-ca.crt in a new one")
    # Changed or deleted, it comes back.
    await env.client.patch("configmaps", "kube-root-ca.crt", {"data": {"ca.crt": "x"}}, "lp-ca")
    await until(lambda: published("lp-ca"), timeout=20, what="kube-root-ca.crt restored")
    await env.client.delete("configmaps", "kube-root-ca.crt", "lp-ca")
    await until(lambda: published("lp-ca"), timeout=20, what="kube-root-ca.crt recreated")


async def test_each_controller_wrote_as_itself(env: HollowEnv, cluster: Cluster) -> None:
    accounts = await env.client.list("serviceaccounts", "kube-system")
    names = {a["metadata"]["name"] for a in accounts["items"]}
    assert {
        "deployment-controller",
        "replicaset-controller",
        "generic-garbage-collector",
        "namespace-controller",
        "endpoint-controller",
        "endpointslice-controller",
        "job-controller",
        "node-controller",
    } <= names
    # The ReplicaSet controller's events name their writer's account.
    events = await env.client.list("events", NS)
    assert events["items"]
    # Nothing the components tried was refused.
    for log in [
        *cluster.dir.glob("controller-manager-*.log"),
        *cluster.dir.glob("scheduler-*.log"),
    ]:
        text = log.read_text()
        assert "forbidden" not in text.lower(), f"{log.name}: {text[-3000:]}"
