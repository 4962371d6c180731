"""The pvc-protection and pv-protection controllers (with the volume binder) against an
in-memory API that honours finalizers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.manager import CONTROLLERS, resolve_controllers
from skiff.controllers.volumebinding import PersistentVolumeBinder
from skiff.controllers.volumeprotection import (
    PvcProtectionController,
    PvProtectionController,
    pod_uses_claim,
)

NS = "ns"
OTHER = "example.com/keep"


def claim(name: str, finalizers: list[str] | None = None, **meta: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name, **meta},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "standard",
        },
        "status": {"phase": "Pending"},
    }
    if finalizers is not None:
        body["metadata"]["finalizers"] = finalizers
    return body


def volume(name: str, phase: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": f"/srv/{name}"},
        },
        "status": {"phase": phase},
    }
    if finalizers is not None:
        body["metadata"]["finalizers"] = finalizers
    return body


def pod(name: str, *claims: str, node: str = "n1", phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [
                {"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}}
                for i, c in enumerate(claims)
            ]
            + [{"name": "scratch", "emptyDir": {}}],
        },
        "status": {"phase": phase},
    }


class Env:
    def __init__(self, fake: FakeApi, controllers: list[Controller]) -> None:
        self.fake = fake
        self.controllers = controllers

    def of(self, kind: type) -> Any:
        return next(c for c in self.controllers if isinstance(c, kind))

    async def settle(self) -> None:
        informers = {id(i): i for c in self.controllers for i in c.informers}
        await self.fake.settle(*informers.values())

    async def drain(self, rounds: int = 20) -> None:
        """Reconcile every queued key of every controller until all queues stay empty."""
        for _ in range(rounds):
            await self.settle()
            if not any(len(c.queue) for c in self.controllers):
                return
            for c in self.controllers:
                conflicts: list[str] = []
                while len(c.queue):
                    key = await c.queue.get()
                    try:
                        await c.reconcile(key)
                    except ApiError as err:
                        if err.code != 409:
                            raise
                        conflicts.append(key)  # again once the cache has caught up
                    finally:
                        c.queue.done(key)
                for key in conflicts:
                    c.queue.add(key)
        raise AssertionError("the controllers do not settle")

    async def claim(self, name: str) -> dict[str, Any] | None:
        return self.fake.store("pvc").get(f"{NS}/{name}")

    async def volume(self, name: str) -> dict[str, Any] | None:
        return self.fake.store("pv").get(name)


@contextlib.asynccontextmanager
async def env(*kinds: type) -> AsyncIterator[Env]:
    fake = FakeApi()
    fake.honor_finalizers = True
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers)  # type: ignore[arg-type]
    controllers = [k(ctx) for k in kinds]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controllers)
    finally:
        await informers.stop()
        for c in controllers:
            await c.stop()


def finalizers(obj: dict[str, Any] | None) -> list[str]:
    assert obj is not None
    return list(obj["metadata"].get("finalizers") or ())


def test_registered_under_kubernetes_names() -> None:
    assert resolve_controllers(["pvc-protection", "pv-protection"]) == [
        "persistentvolumeclaim-protection-controller",
        "persistentvolume-protection-controller",
    ]
    enabled = resolve_controllers(["*"])
    assert "persistentvolumeclaim-protection-controller" in enabled
    assert "persistentvolume-protection-controller" in enabled
    assert CONTROLLERS["persistentvolumeclaim-protection-controller"].factory is (
        PvcProtectionController
    )


def test_pod_uses_claim() -> None:
    c = {"metadata": {"name": "data", "namespace": NS}}

    def in_ns(p: dict[str, Any], ns: str = NS) -> dict[str, Any]:
        p["metadata"]["namespace"] = ns
        return p

    assert pod_uses_claim(in_ns(pod("p", "data")), c)
    assert pod_uses_claim(in_ns(pod("p", "data", phase="Pending")), c)
    assert pod_uses_claim(in_ns(pod("p", "other", "data")), c)
    assert not pod_uses_claim(in_ns(pod("p", "other")), c)
    assert not pod_uses_claim(in_ns(pod("p", "data"), "elsewhere"), c)
    assert not pod_uses_claim(in_ns(pod("p", "data", node="")), c)  # not scheduled
    assert not pod_uses_claim(in_ns(pod("p", "data", phase="Succeeded")), c)
    assert not pod_uses_claim(in_ns(pod("p", "data", phase="Failed")), c)


async def test_adds_the_finalizer_to_claims_without_it() -> None:
    async with env(PvcProtectionController) as e:
        await e.fake.create("pvc", claim("bare"), NS)
        await e.fake.create("pvc", claim("other", [OTHER]), NS)
        await e.fake.create("pvc", claim("done", [PVC_PROTECTION_FINALIZER]), NS)
        await e.drain()
        assert finalizers(await e.claim("bare")) == [PVC_PROTECTION_FINALIZER]
        assert finalizers(await e.claim("other")) == [OTHER, PVC_PROTECTION_FINALIZER]
        assert e.fake.writes("patch", "pvc") == [f"{NS}/bare", f"{NS}/other"]


async def test_unused_claim_goes_at_once() -> None:
    async with env(PvcProtectionController) as e:
        await e.fake.create("pvc", claim("data", [PVC_PROTECTION_FINALIZER]), NS)
        # Pods that do not hold it: another claim, not scheduled, finished, elsewhere.
        await e.fake.create("pods", pod("other", "else"), NS)
        await e.fake.create("pods", pod("pending", "data", node=""), NS)
        await e.fake.create("pods", pod("done", "data", phase="Succeeded"), NS)
        await e.fake.create("pods", pod("far", "data"), "elsewhere")
        await e.drain()
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        assert await e.claim("data") is None


async def test_claim_stays_while_a_pod_uses_it_until_the_pod_is_deleted() -> None:
    async with env(PvcProtectionController) as e:
        await e.fake.create("pvc", claim("data", [OTHER, PVC_PROTECTION_FINALIZER]), NS)
        await e.fake.create("pods", pod("web", "data"), NS)
        await e.drain()
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        held = await e.claim("data")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert finalizers(held) == [OTHER, PVC_PROTECTION_FINALIZER]
        # A status update of the pod requeues the claim, which stays.
        await e.fake.patch("pods", "web", {"status": {"conditions": []}}, NS)
        await e.drain()
        assert finalizers(await e.claim("data")) == [OTHER, PVC_PROTECTION_FINALIZER]

        await e.fake.delete("pods", "web", NS)
        await e.drain()
        # Only our finalizer went: the other one keeps the claim.
        assert finalizers(await e.claim("data")) == [OTHER]


async def test_claim_goes_when_its_pod_terminates() -> None:
    async with env(PvcProtectionController) as e:
        await e.fake.create("pvc", claim("data", [PVC_PROTECTION_FINALIZER]), NS)
        await e.fake.create("pods", pod("a", "data"), NS)
        await e.fake.create("pods", pod("b", "data"), NS)
        await e.drain()
        await e.fake.delete("pvc", "data", NS)
        await e.fake.patch("pods", "a", {"status": {"phase": "Succeeded"}}, NS)
        await e.drain()
        assert await e.claim("data") is not None  # b still runs
        await e.fake.patch("pods", "b", {"status": {"phase": "Failed"}}, NS)
        await e.drain()
        assert await e.claim("data") is None


async def test_live_list_finds_a_pod_the_cache_has_not_seen() -> None:
    async with env(PvcProtectionController) as e:
        c = e.of(PvcProtectionController)
        await e.fake.create("pvc", claim("data", [PVC_PROTECTION_FINALIZER]), NS)
        await e.fake.create("pods", pod("seen", "data"), NS)
        await e.drain()
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        # A pod the API has but the cache does not (yet): only a live list finds it.
        unseen = pod("unseen", "data")
        unseen["metadata"].update(namespace=NS, uid="u-1", resourceVersion="1")
        e.fake.store("pods")[f"{NS}/unseen"] = unseen
        await e.fake.delete("pods", "seen", NS)
        await e.drain()
        assert finalizers(await e.claim("data")) == [PVC_PROTECTION_FINALIZER]
        assert e.fake.writes("patch", "pvc") == []
        # Once it is gone from the API too, the claim goes.
        del e.fake.store("pods")[f"{NS}/unseen"]
        c.queue.add(f"{NS}/data")
        await e.drain()
        assert await e.claim("data") is None


async def test_a_concurrent_finalizer_change_is_not_lost() -> None:
    async with env(PvcProtectionController) as e:
        c = e.of(PvcProtectionController)
        await e.fake.create("pvc", claim("data", [PVC_PROTECTION_FINALIZER]), NS)
        await e.drain()
        await e.fake.delete("pvc", "data", NS)
        await e.settle()
        # Someone adds a finalizer the cache has not seen yet... (allowed before deletion
        # in the apiserver; here written behind the controller's back)
        live = e.fake.store("pvc")[f"{NS}/data"]
        live["metadata"]["finalizers"] = [PVC_PROTECTION_FINALIZER, OTHER]
        with pytest.raises(ApiError) as err:
            await c.reconcile(f"{NS}/data")
        assert err.value.code == 409  # the patch's test failed: retried with back-off
        assert finalizers(await e.claim("data")) == [PVC_PROTECTION_FINALIZER, OTHER]


async def test_adds_the_finalizer_to_volumes_without_it() -> None:
    async with env(PvProtectionController) as e:
        await e.fake.create("pv", volume("bare", "Available"))
        await e.fake.create("pv", volume("held", "Available", [PV_PROTECTION_FINALIZER]))
        await e.drain()
        assert finalizers(await e.volume("bare")) == [PV_PROTECTION_FINALIZER]
        assert e.fake.writes("patch", "pv") == ["bare"]


async def test_bound_volume_stays_until_it_is_released() -> None:
    async with env(PvProtectionController) as e:
        await e.fake.create("pv", volume("free", "Available", [PV_PROTECTION_FINALIZER]))
        await e.fake.create("pv", volume("used", "Bound", [PV_PROTECTION_FINALIZER]))
        await e.drain()
        await e.fake.delete("pv", "free")
        await e.fake.delete("pv", "used")
        await e.drain()
        assert await e.volume("free") is None
        held = await e.volume("used")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        await e.fake.patch("pv", "used", {"status": {"phase": "Released"}}, subresource="status")
        await e.drain()
        assert await e.volume("used") is None


async def test_deleting_a_claim_under_a_running_pod_keeps_its_data() -> None:
    """The binder with both protections: the provisioned volume (reclaim policy Delete)
    outlives the claim's delete while the pod runs; both go once the pod is deleted."""
    async with env(PersistentVolumeBinder, PvcProtectionController, PvProtectionController) as e:
        c = await e.fake.create("pvc", claim("data"), NS)
        await e.fake.create("pods", pod("web", "data"), NS)
        await e.drain()
        pv_name = f"pvc-{c['metadata']['uid']}"
        pv = await e.volume(pv_name)
        assert pv is not None and pv["status"]["phase"] == "Bound"
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        assert finalizers(pv) == [PV_PROTECTION_FINALIZER]
        assert finalizers(await e.claim("data")) == [PVC_PROTECTION_FINALIZER]

        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        held = await e.claim("data")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        kept = await e.volume(pv_name)
        assert kept is not None and kept["status"]["phase"] == "Bound"
        assert not kept["metadata"].get("deletionTimestamp")
        assert e.fake.writes("delete", "pv") == []

        # Deleting the bound volume directly does not remove it either.
        await e.fake.delete("pv", pv_name)
        await e.drain()
        assert await e.volume(pv_name) is not None

        await e.fake.delete("pods", "web", NS)
        await e.drain()
        assert await e.claim("data") is None
        assert await e.volume(pv_name) is None


async def test_claim_released_after_its_pod_deletes_its_volume() -> None:
    async with env(PersistentVolumeBinder, PvcProtectionController, PvProtectionController) as e:
        phases: list[str] = []

        def seen(pv: dict[str, Any]) -> None:
            phases.append((pv.get("status") or {}).get("phase", ""))

        e.of(PersistentVolumeBinder).volumes.add_handler(seen, lambda _o, n: seen(n), seen)
        c = await e.fake.create("pvc", claim("data"), NS)
        await e.fake.create("pods", pod("web", "data"), NS)
        await e.drain()
        pv_name = f"pvc-{c['metadata']['uid']}"
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        await e.fake.patch("pods", "web", {"status": {"phase": "Succeeded"}}, NS)
        await e.drain()
        assert await e.claim("data") is None
        assert await e.volume(pv_name) is None
        # The binder marked it Released before deleting it, so pv-protection let it go.
        assert phases[-1] == "Released"
        assert e.fake.writes("delete", "pv") == [pv_name]
