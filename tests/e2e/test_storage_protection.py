"""Claims and volumes in use survive their delete: StorageObjectInUseProtection admission,
the pvc-protection and pv-protection controllers and the volume binder on a real cluster.

A real etcd, NATS, apiserver and scheduler, in-process hollow nodes (they run the pods and
confirm their deletion), and a controller-manager process with the binder and both
protection controllers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from clusterenv import hollow_env, started_cluster
from cmenv import until

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "storage"
CONTROLLERS = "--controllers=persistentvolume-binder,pvc-protection,pv-protection"
PVC_FINALIZER = "kubernetes.io/pvc-protection"
PV_FINALIZER = "kubernetes.io/pv-protection"
HOLD = 2.0
"""Seconds a protected object is watched to stay (the controllers act within milliseconds)."""


@pytest.fixture(scope="module")
def sp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "storage-protection")


@pytest.fixture(scope="module")
async def client(sp: Cluster) -> AsyncIterator[ApiClient]:
    async with hollow_env(
        sp,
        NS,
        nodes=2,
        prefix="sp-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        manager=(CONTROLLERS,),
    ) as env:
        client = env.client
        await until(lambda: _get(client, "storageclasses", "standard"), what="default class")
        yield client


async def _get(client: ApiClient, res: str, name: str, ns: str | None = None) -> Any:
    try:
        return await client.get(res, name, ns)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


def _gone(client: ApiClient, res: str, name: str, ns: str | None = None) -> Any:
    async def check() -> bool:
        return await _get(client, res, name, ns) is None

    return check


def claim(name: str, cls: str | None = "standard") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "1Gi"}},
    }
    if cls is not None:
        spec["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": spec,
    }


def volume(name: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, **meta},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "manual",
            "hostPath": {"path": f"/tmp/skiff-test-{name}"},
        },
    }


def pod(name: str, claim_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def _running_with_bound_claim(client: ApiClient, pod_name: str, claim_name: str) -> str:
    """Wait until the pod runs and its claim is bound; the volume's name."""

    async def ready() -> str | None:
        p = await client.get("pods", pod_name, NS)
        c = await client.get("persistentvolumeclaims", claim_name, NS)
        if (p.get("status") or {}).get("phase") != "Running":
            return None
        if (c.get("status") or {}).get("phase") != "Bound":
            return None
        return c["spec"]["volumeName"]

    return await until(ready, timeout=30, what=f"{pod_name} running with {claim_name} bound")


async def test_admission_adds_the_protection_finalizers(client: ApiClient) -> None:
    c = await client.create("persistentvolumeclaims", claim("plain", cls=""), NS)
    assert c["metadata"]["finalizers"] == [PVC_FINALIZER]
    body = claim("listed", cls="")
    body["metadata"]["finalizers"] = ["example.com/x", PVC_FINALIZER]
    c = await client.create("persistentvolumeclaims", body, NS)
    assert c["metadata"]["finalizers"] == ["example.com/x", PVC_FINALIZER]  # not twice
    pv = await client.create("persistentvolumes", volume("static"))
    assert pv["metadata"]["finalizers"] == [PV_FINALIZER]

    # A later server-side apply by the creator that leaves finalizers out keeps it: the
    # admission step's finalizer belongs to no field manager.
    applied = claim("applied", cls="")
    c = await client.create("persistentvolumeclaims", applied, NS, field_manager="t")
    assert c["metadata"]["finalizers"] == [PVC_FINALIZER]
    applied["metadata"]["labels"] = {"again": "yes"}
    c = await client.patch(
        "persistentvolumeclaims", "applied", applied, NS, type="apply", field_manager="t"
    )
    assert c["metadata"]["labels"] == {"again": "yes"}
    assert c["metadata"]["finalizers"] == [PVC_FINALIZER]

    # Unused, they go at once.
    for name in ("plain", "applied"):
        await client.delete("persistentvolumeclaims", name, NS)
        await until(_gone(client, "persistentvolumeclaims", name, NS), what=f"{name} gone")
    await client.delete("persistentvolumes", "static")
    await until(_gone(client, "persistentvolumes", "static"), what="the unbound volume gone")
    # Another party's finalizer still holds its claim, without ours.
    await client.delete("persistentvolumeclaims", "listed", NS)

    async def only_theirs() -> bool:
        c = await client.get("persistentvolumeclaims", "listed", NS)
        return c["metadata"].get("finalizers") == ["example.com/x"]

    await until(only_theirs, what="only the other finalizer left")
    await client.patch("persistentvolumeclaims", "listed", {"metadata": {"finalizers": None}}, NS)
    await until(_gone(client, "persistentvolumeclaims", "listed", NS), what="listed gone")


async def test_claim_in_use_outlives_its_delete_until_the_pod_goes(client: ApiClient) -> None:
    await client.create("persistentvolumeclaims", claim("data"), NS)
    await client.create("pods", pod("db", "data"), NS)
    pv_name = await _running_with_bound_claim(client, "db", "data")
    pv = await client.get("persistentvolumes", pv_name)
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["metadata"]["finalizers"] == [PV_FINALIZER]

    marked = await client.delete("persistentvolumeclaims", "data", NS)
    assert marked["metadata"].get("deletionTimestamp")
    await asyncio.sleep(HOLD)
    held = await client.get("persistentvolumeclaims", "data", NS)
    assert held["metadata"].get("deletionTimestamp")
    assert held["metadata"]["finalizers"] == [PVC_FINALIZER]
    assert held["status"]["phase"] == "Bound"
    kept = await client.get("persistentvolumes", pv_name)
    assert kept["status"]["phase"] == "Bound"
    assert not kept["metadata"].get("deletionTimestamp")
    # A second delete changes nothing.
    again = await client.delete("persistentvolumeclaims", "data", NS)
    assert again["metadata"]["deletionTimestamp"] == held["metadata"]["deletionTimestamp"]

    await client.delete("pods", "db", NS)
    await until(_gone(client, "pods", "db", NS), what="the pod gone")
    await until(_gone(client, "persistentvolumeclaims", "data", NS), what="the claim gone")
    # Released, then deleted under its reclaim policy Delete.
    await until(_gone(client, "persistentvolumes", pv_name), what="the volume deleted")


async def test_bound_volume_outlives_its_delete_until_released(client: ApiClient) -> None:
    await client.create("persistentvolumeclaims", claim("logs"), NS)
    await client.create("pods", pod("writer", "logs"), NS)
    pv_name = await _running_with_bound_claim(client, "writer", "logs")
    await client.delete("persistentvolumes", pv_name)
    await asyncio.sleep(HOLD)
    held = await client.get("persistentvolumes", pv_name)
    assert held["metadata"].get("deletionTimestamp")
    assert held["status"]["phase"] == "Bound"
    assert (await client.get("persistentvolumeclaims", "logs", NS))["status"]["phase"] == "Bound"

    # A finished pod no longer holds its claim.
    await client.delete("persistentvolumeclaims", "logs", NS)
    await client.patch(
        "pods", "writer", {"status": {"phase": "Succeeded"}}, NS, subresource="status"
    )
    await until(_gone(client, "persistentvolumeclaims", "logs", NS), what="the claim gone")
    await until(_gone(client, "persistentvolumes", pv_name), what="the released volume gone")
    await client.delete("pods", "writer", NS)
