"""Garbage collection, namespace deletion and default ServiceAccounts on a real cluster.

A real etcd, NATS, apiserver and scheduler, in-process hollow nodes, and a
controller-manager process running the garbage collector, the namespace,
ServiceAccount and ReplicaSet controllers (the ReplicaSet controller makes pods
with owner references, the way every workload does).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import Managers, until

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "gc"
CONTROLLERS = "--controllers=garbagecollector,namespace,serviceaccount,replicaset-controller"
KUBECTL = "kubectl"


@pytest.fixture(scope="module")
def cc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "gc")


@pytest.fixture(scope="module")
async def hollow(cc: Cluster) -> AsyncIterator[HollowEnv]:
    async with hollow_env(
        cc,
        NS,
        nodes=3,
        prefix="gc-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        manager=(CONTROLLERS,),
    ) as env:
        yield env


@pytest.fixture(scope="module")
def client(hollow: HollowEnv) -> ApiClient:
    return hollow.client


@pytest.fixture(scope="module")
def managers(hollow: HollowEnv) -> Managers:
    return hollow.managers


def replica_set(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ]
                },
            },
        },
    }


async def pods_of(client: ApiClient, app: str, ns: str = NS) -> list[dict[str, Any]]:
    page = await client.list("pods", ns, label_selector=f"app={app}")
    return page.get("items") or []


async def running_set(client: ApiClient, name: str, replicas: int, ns: str = NS) -> dict[str, Any]:
    """Create a ReplicaSet and wait until its pods run on hollow nodes."""
    rs = await client.create("replicasets", replica_set(name, replicas), ns)

    async def running() -> bool:
        pods = await pods_of(client, name, ns)
        return len(pods) == replicas and all(
            (p.get("status") or {}).get("phase") == "Running" for p in pods
        )

    await until(running, timeout=30, what=f"{replicas} running pods of {name}")
    return rs


async def gone(client: ApiClient, res: str, name: str, ns: str | None = NS) -> bool:
    try:
        await client.get(res, name, ns)
    except ApiError as e:
        if e.code == 404:
            return True
        raise
    return False


def owner_ref(obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        **kw,
    }


# -- propagation policies --------------------------------------------------------------


async def test_background_deletion_removes_pods(client: ApiClient) -> None:
    await running_set(client, "bg", 3)
    await client.delete("replicasets", "bg", NS, propagation_policy="Background")
    assert await gone(client, "replicasets", "bg")
    await until(
        lambda: _none(pods_of(client, "bg")), timeout=30, what="the pods of a deleted ReplicaSet"
    )


async def _none(coro: Any) -> bool:
    return not await coro


async def test_foreground_keeps_owner_until_pods_are_gone(client: ApiClient) -> None:
    await running_set(client, "fg", 3)
    deleted_rv: dict[str, int] = {}
    informers = [Informer(client, "pods", NS), Informer(client, "replicasets", NS)]
    for inf in informers:
        inf.add_handler(
            on_delete=lambda o: deleted_rv.__setitem__(
                o["metadata"]["name"], int(o["metadata"]["resourceVersion"])
            )
        )
    tasks = [asyncio.create_task(inf.run()) for inf in informers]
    try:
        for inf in informers:
            await inf.wait_synced(timeout=10)
        pod_names = {p["metadata"]["name"] for p in await pods_of(client, "fg")}
        await client.delete("replicasets", "fg", NS, propagation_policy="Foreground")
        rs = await client.get("replicasets", "fg", NS)  # still there, waiting
        assert rs["metadata"]["deletionTimestamp"]
        assert "foregroundDeletion" in rs["metadata"]["finalizers"]
        await until(lambda: gone(client, "replicasets", "fg"), timeout=30, what="the ReplicaSet")
        assert await pods_of(client, "fg") == []
        await until(lambda: "fg" in deleted_rv, what="the watch to show the RS deletion")
        rs_rv = deleted_rv["fg"]
        pod_rvs = [v for k, v in deleted_rv.items() if k in pod_names]
        assert len(pod_rvs) == 3
        assert max(pod_rvs) < rs_rv, "the ReplicaSet went before its pods"
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_orphan_deletion_leaves_pods_running(client: ApiClient) -> None:
    await running_set(client, "orph", 2)
    await client.delete("replicasets", "orph", NS, propagation_policy="Orphan")
    await until(lambda: gone(client, "replicasets", "orph"), timeout=30, what="the ReplicaSet")
    pods = await pods_of(client, "orph")
    assert len(pods) == 2
    for p in pods:
        assert not p["metadata"].get("ownerReferences")
        assert not p["metadata"].get("deletionTimestamp")
        assert p["status"]["phase"] == "Running"
    for p in pods:
        await client.delete("pods", p["metadata"]["name"], NS)


async def test_dependent_with_two_owners_survives_one(client: ApiClient) -> None:
    a = await client.create("configmaps", {"metadata": {"name": "owner-a"}}, NS)
    b = await client.create("configmaps", {"metadata": {"name": "owner-b"}}, NS)
    refs = [owner_ref(a), owner_ref(b)]
    await client.create("configmaps", {"metadata": {"name": "shared", "ownerReferences": refs}}, NS)
    await client.delete("configmaps", "owner-a", NS)

    async def only_b() -> bool:
        cm = await client.get("configmaps", "shared", NS)
        return [r["name"] for r in cm["metadata"].get("ownerReferences") or ()] == ["owner-b"]

    await until(only_b, timeout=30, what="the reference to owner-a removed")
    await client.delete("configmaps", "owner-b", NS)
    await until(lambda: gone(client, "configmaps", "shared"), timeout=30, what="shared collected")


async def test_owner_deleted_while_controller_manager_was_down(
    client: ApiClient, managers: Managers
) -> None:
    owner = await client.create("configmaps", {"metadata": {"name": "short-lived"}}, NS)
    await client.create(
        "configmaps",
        {"metadata": {"name": "left-behind", "ownerReferences": [owner_ref(owner)]}},
        NS,
    )
    await running_set(client, "down", 2)
    managers.procs[-1].stop()
    await client.delete("configmaps", "short-lived", NS)
    await client.delete("replicasets", "down", NS)
    await asyncio.sleep(0.5)
    assert not await gone(client, "configmaps", "left-behind")  # nobody collects it now
    assert len(await pods_of(client, "down")) == 2
    managers.start(CONTROLLERS)
    await until(
        lambda: gone(client, "configmaps", "left-behind"), timeout=30, what="the dangling dependent"
    )
    await until(lambda: _none(pods_of(client, "down")), timeout=30, what="the orphaned pods")


# -- kubectl ---------------------------------------------------------------------------


def kubectl(kubeconfig: Path, *args: str) -> str:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", NS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


async def test_kubectl_delete_cascades(client: ApiClient, cc: Cluster) -> None:
    kubeconfig = cc.kubeconfig(0)
    await running_set(client, "kc-bg", 2)
    await running_set(client, "kc-fg", 2)
    out = await asyncio.to_thread(kubectl, kubeconfig, "delete", "rs", "kc-bg")
    assert 'replicaset.apps "kc-bg" deleted' in out
    await until(lambda: _none(pods_of(client, "kc-bg")), timeout=30, what="kc-bg's pods")
    # Foreground: kubectl waits for the ReplicaSet, which waits for its pods.
    out = await asyncio.to_thread(
        kubectl, kubeconfig, "delete", "rs", "kc-fg", "--cascade=foreground", "--timeout=40s"
    )
    assert 'replicaset.apps "kc-fg" deleted' in out
    assert await gone(client, "replicasets", "kc-fg")
    assert await pods_of(client, "kc-fg") == []


# -- namespaces and ServiceAccounts ----------------------------------------------------


async def test_default_service_account(client: ApiClient) -> None:
    await client.create("namespaces", {"metadata": {"name": "gc-sa"}})
    sa = await until(
        lambda: _get(client, "serviceaccounts", "default", "gc-sa"), what="the default SA"
    )
    await client.delete("serviceaccounts", "default", "gc-sa")
    again = await until(
        lambda: _get(client, "serviceaccounts", "default", "gc-sa"), what="the default SA again"
    )
    assert again["metadata"]["uid"] != sa["metadata"]["uid"]


async def _get(client: ApiClient, res: str, name: str, ns: str | None) -> dict[str, Any] | None:
    try:
        return await client.get(res, name, ns)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


async def test_deleting_a_namespace_removes_its_content_then_itself(client: ApiClient) -> None:
    ns = "gc-doomed"
    await client.create("namespaces", {"metadata": {"name": ns}})
    await until(lambda: _get(client, "serviceaccounts", "default", ns), what="the default SA")
    await running_set(client, "web", 2, ns)
    await client.create("configmaps", {"metadata": {"name": "cm"}, "data": {"a": "b"}}, ns)
    await client.create("secrets", {"metadata": {"name": "s"}, "stringData": {"a": "b"}}, ns)
    # A pod no node takes, held by a finalizer: the namespace waits for it.
    held = {
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]},
        "spec": {
            "nodeSelector": {"nowhere": "true"},
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }
    await client.create("pods", held, ns)
    await client.delete("namespaces", ns)
    obj = await client.get("namespaces", ns)
    assert obj["status"]["phase"] == "Terminating"

    async def emptied() -> dict[str, Any] | None:
        for res in ("replicasets", "configmaps", "secrets", "serviceaccounts"):
            if (await client.list(res, ns)).get("items"):
                return None
        pods = (await client.list("pods", ns)).get("items") or []
        if [p["metadata"]["name"] for p in pods] != ["held"]:
            return None
        nso = await client.get("namespaces", ns)
        conds = {c["type"]: c for c in nso["status"].get("conditions") or ()}
        fin = conds.get("NamespaceFinalizersRemaining") or {}
        if "example.com/hold in 1 resource instances" not in fin.get("message", ""):
            return None
        return conds

    conds = await until(emptied, timeout=30, what="everything but the held pod deleted")
    assert conds["NamespaceContentRemaining"]["status"] == "True"
    assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    assert "pods. has" in conds["NamespaceContentRemaining"]["message"]
    assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
    # Nothing new may be created in a Terminating namespace.
    with pytest.raises(ApiError) as err:
        await client.create("configmaps", {"metadata": {"name": "late"}}, ns)
    assert err.value.code == 403
    assert any(c.reason == "NamespaceTerminating" for c in err.value.causes)
    # The SA controller does not bring the default ServiceAccount back.
    assert await _get(client, "serviceaccounts", "default", ns) is None
    await client.patch("pods", "held", {"metadata": {"finalizers": None}}, ns)
    await until(lambda: gone(client, "namespaces", ns, None), timeout=30, what="the namespace")
