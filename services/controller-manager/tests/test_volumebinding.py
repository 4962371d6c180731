"""The PersistentVolume binder and hostPath provisioner against an in-memory API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.volumebinding import (
    ANN_BIND_COMPLETED,
    ANN_PROVISIONED_BY,
    PROVISIONER,
    PersistentVolumeBinder,
    volume_satisfies,
)

NS = "ns"


def claim(name: str, size: str = "1Gi", cls: str | None = "standard", **spec: Any) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
            **spec,
        },
        "status": {"phase": "Pending"},
    }
    if cls is not None:
        body["spec"]["storageClassName"] = cls
    return body


def volume(name: str, size: str, cls: str = "", policy: str = "Retain", **spec: Any) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"size": size}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
            "persistentVolumeReclaimPolicy": policy,
            "storageClassName": cls,
            "hostPath": {"path": f"/srv/{name}"},
            **spec,
        },
        "status": {"phase": "Pending"},
    }


class Env:
    def __init__(self, fake: FakeApi, controller: PersistentVolumeBinder) -> None:
        self.fake = fake
        self.c = controller

    async def settle(self) -> None:
        await self.fake.settle(self.c.claims, self.c.volumes)

    async def drain(self, rounds: int = 10) -> None:
        """Reconcile every queued key until the queue stays empty."""
        for _ in range(rounds):
            await self.settle()
            if not len(self.c.queue):
                return
            while len(self.c.queue):
                key = await self.c.queue.get()
                try:
                    await self.c.reconcile(key)
                finally:
                    self.c.queue.done(key)
        raise AssertionError("the binder does not settle")

    async def claim(self, name: str) -> dict[str, Any]:
        return await self.fake.get("pvc", name, NS)

    async def volume(self, name: str) -> dict[str, Any]:
        return await self.fake.get("pv", name)


@contextlib.asynccontextmanager
async def env(**kw: Any) -> AsyncIterator[Env]:
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    controller = PersistentVolumeBinder(ControllerContext(fake, informers), **kw)  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controller)
    finally:
        await informers.stop()
        await controller.stop()


async def test_provisions_a_host_path_volume_and_binds() -> None:
    async with env(base_dir="/tmp/pvs/") as e:
        c = await e.fake.create("pvc", claim("data", "2Gi"), NS)
        await e.drain()
        uid = c["metadata"]["uid"]
        pv = await e.volume(f"pvc-{uid}")
        spec = pv["spec"]
        assert spec["hostPath"] == {"path": f"/tmp/pvs/{uid}", "type": "DirectoryOrCreate"}
        assert spec["capacity"] == {"storage": "2Gi"}
        assert spec["accessModes"] == ["ReadWriteOnce"]
        assert spec["persistentVolumeReclaimPolicy"] == "Delete"
        assert spec["storageClassName"] == "standard"
        assert spec["claimRef"]["uid"] == uid and spec["claimRef"]["name"] == "data"
        assert pv["metadata"]["annotations"][ANN_PROVISIONED_BY] == PROVISIONER
        assert pv["status"]["phase"] == "Bound"
        bound = await e.claim("data")
        assert bound["spec"]["volumeName"] == f"pvc-{uid}"
        assert bound["metadata"]["annotations"][ANN_BIND_COMPLETED] == "yes"
        assert bound["status"] == {
            "phase": "Bound",
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "2Gi"},
        }
        writes = len(e.fake.calls)
        e.c.queue.add(f"claim:{NS}/data")
        e.c.queue.add(f"volume:pvc-{uid}")
        await e.drain()
        assert len(e.fake.calls) == writes  # level-triggered: nothing left to do

        # Deleting the claim releases the volume, and Delete removes it.
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        assert e.fake.list_objects("pv") == []


async def test_binds_the_smallest_fitting_existing_volume() -> None:
    async with env() as e:
        await e.fake.create("pv", volume("small", "500Mi"))
        await e.fake.create("pv", volume("medium", "5Gi"))
        await e.fake.create("pv", volume("large", "50Gi"))
        await e.fake.create("pv", volume("other-class", "2Gi", cls="fast"))
        await e.drain()
        assert (await e.volume("medium"))["status"]["phase"] == "Available"
        await e.fake.create("pvc", claim("data", "1Gi", cls=""), NS)
        await e.drain()
        assert (await e.claim("data"))["spec"]["volumeName"] == "medium"
        assert (await e.volume("medium"))["status"]["phase"] == "Bound"
        assert len(e.fake.list_objects("pv")) == 4  # nothing provisioned
        # No class at all: nothing fits, and "" never provisions.
        await e.fake.create("pvc", claim("huge", "100Gi", cls=""), NS)
        await e.drain()
        assert (await e.claim("huge"))["status"]["phase"] == "Pending"
        # Retain: the released volume stays, Released.
        await e.fake.delete("pvc", "data", NS)
        await e.drain()
        assert (await e.volume("medium"))["status"]["phase"] == "Released"


async def test_finishes_a_binding_interrupted_by_a_restart() -> None:
    async with env() as e:
        c = await e.fake.create("pvc", claim("data"), NS)
        uid = c["metadata"]["uid"]
        pv = volume(f"pvc-{uid}", "1Gi", cls="standard", policy="Delete")
        pv["spec"]["claimRef"] = {"namespace": NS, "name": "data", "uid": uid}
        await e.fake.create("pv", pv)
        await e.drain()
        assert (await e.claim("data"))["spec"]["volumeName"] == f"pvc-{uid}"
        assert len(e.fake.writes("create", "pv")) == 1  # found again, not provisioned twice


async def test_bound_claim_loses_its_volume() -> None:
    async with env() as e:
        await e.fake.create("pvc", claim("data"), NS)
        await e.drain()
        name = (await e.claim("data"))["spec"]["volumeName"]
        await e.fake.delete("pv", name)
        await e.drain()
        assert (await e.claim("data"))["status"]["phase"] == "Lost"


async def test_only_configured_classes_are_provisioned() -> None:
    async with env(classes=frozenset({"local-path"})) as e:
        await e.fake.create("pvc", claim("a", cls="standard"), NS)
        await e.fake.create("pvc", claim("b", cls="local-path"), NS)
        await e.drain()
        assert not (await e.claim("a"))["spec"].get("volumeName")
        assert (await e.claim("b"))["spec"]["volumeName"].startswith("pvc-")


def test_volume_satisfies() -> None:
    c = claim("c", "1Gi", cls="", selector={"matchLabels": {"size": "2Gi"}})
    assert volume_satisfies(volume("v", "2Gi"), c)
    assert not volume_satisfies(volume("v", "512Mi"), claim("c", "1Gi", cls=""))
    assert not volume_satisfies(volume("v", "5Gi"), c)  # the selector
    rwx = claim("c", "1Gi", cls="", accessModes=["ReadWriteMany"])
    assert not volume_satisfies(volume("v", "2Gi"), rwx)
    block = claim("c", "1Gi", cls="", volumeMode="Block")
    assert not volume_satisfies(volume("v", "2Gi"), block)


def storage_class(name: str, mode: str, provisioner: str = PROVISIONER, **meta: Any) -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, **meta},
        "provisioner": provisioner,
        "volumeBindingMode": mode,
    }


def pod_using(name: str, claim_name: str, node: str = "") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def test_wait_for_first_consumer_provisions_on_the_pods_node() -> None:
    async with env() as e:
        await e.fake.create("storageclasses", storage_class("local", "WaitForFirstConsumer"))
        await e.fake.create(
            "nodes", {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "host-1"}}}
        )
        c = await e.fake.create("pvc", claim("data", cls="local"), NS)
        await e.drain()
        assert list(e.fake.store("pv").values()) == []  # no consumer yet: nothing provisioned
        await e.c.events.flush()
        reasons = {ev.get("reason") for ev in e.fake.store("events").values()}
        assert "WaitForFirstConsumer" in reasons
        await e.fake.create("pods", pod_using("p", "data"), NS)  # not scheduled yet
        await e.fake.settle(e.c.pods)
        await e.drain()
        assert list(e.fake.store("pv").values()) == []
        await e.fake.patch("pods", "p", {"spec": {"nodeName": "n1"}}, NS)
        await e.fake.settle(e.c.pods)
        await e.drain()
        pv = await e.volume(f"pvc-{c['metadata']['uid']}")
        terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
        assert terms == [
            {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["host-1"]}
                ]
            }
        ]
        assert (await e.claim("data"))["spec"]["volumeName"] == pv["metadata"]["name"]


async def test_selected_node_annotation_and_foreign_provisioners() -> None:
    async with env() as e:
        await e.fake.create("storageclasses", storage_class("local", "WaitForFirstConsumer"))
        await e.fake.create("storageclasses", storage_class("ebs", "Immediate", "ebs.csi.aws.com"))
        body = claim("picked", cls="local")
        body["metadata"]["annotations"] = {"volume.kubernetes.io/selected-node": "n7"}
        c = await e.fake.create("pvc", body, NS)
        await e.fake.create("pvc", claim("theirs", cls="ebs"), NS)
        await e.drain()
        pv = await e.volume(f"pvc-{c['metadata']['uid']}")
        expr = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]
        assert expr["matchExpressions"][0]["values"] == ["n7"]  # no such node: its name
        assert len(list(e.fake.store("pv").values())) == 1  # the ebs claim is another provisioner's


async def test_default_class_created_once() -> None:
    async with env() as e:
        await e.c.ensure_default_class()
        sc = await e.fake.get("storageclasses", "standard")
        assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
        assert sc["provisioner"] == PROVISIONER
        annotations = sc["metadata"]["annotations"]
        assert annotations["storageclass.kubernetes.io/is-default-class"] == "true"
        await e.fake.settle(e.c.storage_classes)
        await e.c.ensure_default_class()
        assert len(list(e.fake.store("storageclasses").values())) == 1


async def test_wait_for_first_consumer_binds_a_local_volume_of_its_node() -> None:
    async with env() as e:
        await e.fake.create("storageclasses", storage_class("local", "WaitForFirstConsumer"))
        for n in ("n1", "n2"):
            await e.fake.create(
                "nodes", {"metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}}
            )
        term = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}
        affinity = {"required": {"nodeSelectorTerms": [{"matchExpressions": [term]}]}}
        await e.fake.create("pv", volume("disk-n1", "5Gi", cls="local", nodeAffinity=affinity))
        await e.drain()  # the volume becomes Available first
        await e.fake.create("pvc", claim("on-n2", cls="local"), NS)
        await e.fake.create("pvc", claim("on-n1", cls="local"), NS)
        await e.fake.create("pods", pod_using("p2", "on-n2", node="n2"), NS)
        await e.fake.create("pods", pod_using("p1", "on-n1", node="n1"), NS)
        await e.fake.settle(e.c.pods, e.c.nodes)
        await e.drain()
        assert (await e.claim("on-n1"))["spec"]["volumeName"] == "disk-n1"
        other = (await e.claim("on-n2"))["spec"]["volumeName"]
        assert other.startswith("pvc-")  # n2 is not admitted by disk-n1: provisioned there
