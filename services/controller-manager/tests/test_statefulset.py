"""The StatefulSet controller against an in-memory API (informers running for real)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.history import HISTORY_HASH_LABEL, compute_hash, safe_encode
from skiff.controllers.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    REVISION_LABEL,
    StatefulSetController,
    claim_owner_refs,
    parent_and_ordinal,
)

NS = "ns"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stateful_set(
    name: str, replicas: int, *, image: str = "busybox", claims: bool = True, **spec: Any
) -> dict[str, Any]:
    labels = {"app": name}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": f"{name}-svc",
            "selector": {"matchLabels": labels},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "c", "image": image}],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
            **spec,
        },
    }
    if claims:
        body["spec"]["volumeClaimTemplates"] = [
            {
                "metadata": {"name": "data", "labels": {"tier": "db"}},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
        ]
    return body


class Env:
    def __init__(self, fake: FakeApi, controller: StatefulSetController, clock: Clock) -> None:
        self.fake = fake
        self.c = controller
        self.clock = clock

    async def sync(self, name: str) -> float | None:
        await self.fake.settle(self.c.sets, self.c.pods, self.c.revisions, self.c.claims)
        return await self.c.reconcile(f"{NS}/{name}")

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.fake.list_objects("pods", NS)}

    def claims(self) -> list[str]:
        return sorted(c["metadata"]["name"] for c in self.fake.list_objects("pvc", NS))

    async def get(self, name: str) -> dict[str, Any]:
        return await self.fake.get("statefulsets", name, NS)

    async def run_pod(self, name: str, *, ready: bool = True) -> None:
        status = {
            "phase": "Running",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if ready else "False",
                    "lastTransitionTime": ts(self.clock.t),
                }
            ],
        }
        await self.fake.patch("pods", name, {"spec": {"nodeName": "n1"}, "status": status}, NS)

    async def run_all(self) -> None:
        for name, p in self.pods().items():
            if (p.get("status") or {}).get("phase") != "Running":
                await self.run_pod(name)

    async def converge(self, name: str, rounds: int = 20) -> None:
        """Sync and run every new pod until nothing changes."""
        for _ in range(rounds):
            before = len(self.fake.calls)
            await self.sync(name)
            await self.run_all()
            await self.sync(name)
            if len(self.fake.calls) == before:
                return
        raise AssertionError("the set does not converge")

    async def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        await self.fake.patch("statefulsets", name, {"spec": spec}, NS)


@contextlib.asynccontextmanager
async def env() -> AsyncIterator[Env]:
    fake = FakeApi()
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    controller = StatefulSetController(ControllerContext(fake, informers, clock=clock))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controller, clock)
    finally:
        await informers.stop()
        await controller.stop()


def test_names_and_hash() -> None:
    assert parent_and_ordinal({"metadata": {"name": "web-db-12"}}) == ("web-db", 12)
    assert parent_and_ordinal({"metadata": {"name": "web"}}) == ("", -1)
    h = compute_hash({"a": 1, "b": [1, 2]})
    assert h == compute_hash({"b": [1, 2], "a": 1}) and h != compute_hash({"a": 1}, 1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert safe_encode("0") == "b" * 0 + "bcdfghjklmnpqrstvwxz2456789"[ord("0") % 27]


async def test_ordered_ready_creates_one_at_a_time_with_identity_and_claims() -> None:
    async with env() as e:
        sts = await e.fake.create("statefulsets", stateful_set("web", 3), NS)
        await e.sync("web")
        assert list(e.pods()) == ["web-0"]
        assert e.claims() == ["data-web-0"]
        pod = e.pods()["web-0"]
        meta, spec = pod["metadata"], pod["spec"]
        assert spec["hostname"] == "web-0" and spec["subdomain"] == "web-svc"
        assert meta["labels"][POD_NAME_LABEL] == "web-0"
        assert meta["labels"][POD_INDEX_LABEL] == "0"
        assert meta["labels"]["app"] == "web"
        assert meta["labels"][REVISION_LABEL].startswith("web-")
        assert meta["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
        assert spec["volumes"] == [
            {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-0"}},
            {"name": "scratch", "emptyDir": {}},
        ]
        claim = await e.fake.get("pvc", "data-web-0", NS)
        assert claim["metadata"]["labels"] == {"tier": "db", "app": "web"}
        assert not claim["metadata"].get("ownerReferences")  # Retain
        assert claim["spec"]["resources"] == {"requests": {"storage": "1Gi"}}

        await e.sync("web")
        assert list(e.pods()) == ["web-0"]  # waits for web-0 to be Running and Ready
        await e.run_pod("web-0", ready=False)
        await e.sync("web")
        assert list(e.pods()) == ["web-0"]
        await e.run_pod("web-0")
        await e.sync("web")
        assert sorted(e.pods()) == ["web-0", "web-1"]
        await e.run_pod("web-1")
        await e.sync("web")
        await e.run_pod("web-2")
        await e.sync("web")
        assert sorted(e.pods()) == ["web-0", "web-1", "web-2"]
        assert e.claims() == ["data-web-0", "data-web-1", "data-web-2"]
        status = (await e.get("web"))["status"]
        assert status["replicas"] == 3 and status["readyReplicas"] == 3
        assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3
        assert (
            status["currentRevision"] == status["updateRevision"] == meta["labels"][REVISION_LABEL]
        )
        assert status["observedGeneration"] == 1 and status["collisionCount"] == 0
        revisions = e.fake.list_objects("controllerrevisions", NS)
        assert len(revisions) == 1
        rev = revisions[0]
        assert rev["revision"] == 1 and rev["metadata"]["labels"][HISTORY_HASH_LABEL]
        assert rev["data"]["spec"]["template"]["$patch"] == "replace"


async def test_parallel_creates_and_deletes_at_once() -> None:
    async with env() as e:
        await e.fake.create(
            "statefulsets", stateful_set("par", 4, podManagementPolicy="Parallel"), NS
        )
        await e.sync("par")
        assert sorted(e.pods()) == ["par-0", "par-1", "par-2", "par-3"]
        assert len(e.claims()) == 4
        await e.patch_spec("par", {"replicas": 1})
        await e.sync("par")
        assert sorted(e.pods()) == ["par-0"]  # not ready, deleted all the same
        assert len(e.claims()) == 4


async def test_scale_down_in_reverse_keeps_claims_and_reuses_them() -> None:
    async with env() as e:
        await e.fake.create("statefulsets", stateful_set("web", 3), NS)
        await e.converge("web")
        await e.patch_spec("web", {"replicas": 1})
        await e.sync("web")
        assert sorted(e.pods()) == ["web-0", "web-1"]  # the highest first, one at a time
        await e.sync("web")
        assert sorted(e.pods()) == ["web-0"]
        assert e.claims() == ["data-web-0", "data-web-1", "data-web-2"]
        await e.patch_spec("web", {"replicas": 3})
        await e.converge("web")
        assert sorted(e.pods()) == ["web-0", "web-1", "web-2"]
        assert e.fake.writes("create", "pvc") == ["data-web-0", "data-web-1", "data-web-2"]


async def test_scale_down_waits_for_unhealthy_and_terminating() -> None:
    async with env() as e:
        e.fake.graceful_pod_delete = True
        await e.fake.create("statefulsets", stateful_set("web", 3), NS)
        await e.converge("web")
        await e.patch_spec("web", {"replicas": 1})
        await e.sync("web")
        assert e.pods()["web-2"]["metadata"].get("deletionTimestamp")
        await e.sync("web")
        assert not e.pods()["web-1"]["metadata"].get("deletionTimestamp")  # web-2 terminates
        await e.fake.finish_deletion("pods", f"{NS}/web-2")
        await e.run_pod("web-0", ready=False)
        await e.sync("web")
        assert not e.pods()["web-1"]["metadata"].get("deletionTimestamp")  # web-0 unready
        await e.run_pod("web-0")
        await e.sync("web")
        assert e.pods()["web-1"]["metadata"].get("deletionTimestamp")


async def test_rolling_update_from_the_highest_ordinal_with_partition() -> None:
    async with env() as e:
        await e.fake.create("statefulsets", stateful_set("web", 4), NS)
        await e.converge("web")
        old = (await e.get("web"))["status"]["currentRevision"]
        template = (await e.get("web"))["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "busybox:2"
        await e.patch_spec(
            "web",
            {"template": template, "updateStrategy": {"rollingUpdate": {"partition": 2}}},
        )
        await e.sync("web")
        status = (await e.get("web"))["status"]
        new = status["updateRevision"]
        assert new != old and status["currentRevision"] == old
        assert sorted(e.pods()) == ["web-0", "web-1", "web-2"]  # web-3 went first
        await e.sync("web")
        pods = e.pods()
        assert pods["web-3"]["metadata"]["labels"][REVISION_LABEL] == new
        assert pods["web-3"]["spec"]["containers"][0]["image"] == "busybox:2"
        await e.sync("web")
        assert "web-2" in e.pods()  # waits for web-3 to be Ready
        await e.run_pod("web-3")
        await e.sync("web")
        assert "web-2" not in e.pods()
        await e.converge("web")
        revs = {n: p["metadata"]["labels"][REVISION_LABEL] for n, p in e.pods().items()}
        assert revs == {"web-0": old, "web-1": old, "web-2": new, "web-3": new}
        status = (await e.get("web"))["status"]
        assert status["currentRevision"] == old and status["updateRevision"] == new
        assert status["currentReplicas"] == 2 and status["updatedReplicas"] == 2
        # A deleted pod below the partition comes back at the current revision.
        await e.fake.delete("pods", "web-0", NS)
        await e.converge("web")
        assert e.pods()["web-0"]["metadata"]["labels"][REVISION_LABEL] == old
        # Partition 0 finishes the update; the current revision follows.
        await e.patch_spec("web", {"updateStrategy": {"rollingUpdate": {"partition": 0}}})
        await e.converge("web")
        assert {p["metadata"]["labels"][REVISION_LABEL] for p in e.pods().values()} == {new}
        status = (await e.get("web"))["status"]
        assert status["currentRevision"] == new and status["currentReplicas"] == 4
        assert e.claims() == ["data-web-0", "data-web-1", "data-web-2", "data-web-3"]


async def test_on_delete_updates_only_recreated_pods() -> None:
    async with env() as e:
        await e.fake.create(
            "statefulsets", stateful_set("web", 2, updateStrategy={"type": "OnDelete"}), NS
        )
        await e.converge("web")
        template = (await e.get("web"))["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "busybox:2"
        await e.patch_spec("web", {"template": template})
        await e.converge("web")
        assert len(e.fake.writes("delete", "pods")) == 0
        status = (await e.get("web"))["status"]
        assert status["updatedReplicas"] == 0 and status["currentReplicas"] == 2
        await e.fake.delete("pods", "web-1", NS)
        await e.converge("web")
        assert e.pods()["web-1"]["metadata"]["labels"][REVISION_LABEL] == status["updateRevision"]
        assert e.pods()["web-0"]["metadata"]["labels"][REVISION_LABEL] == status["currentRevision"]


async def test_failed_pod_is_recreated_with_the_same_name() -> None:
    async with env() as e:
        await e.fake.create("statefulsets", stateful_set("web", 2), NS)
        await e.converge("web")
        uid = e.pods()["web-0"]["metadata"]["uid"]
        await e.fake.patch("pods", "web-0", {"status": {"phase": "Failed"}}, NS)
        await e.sync("web")
        assert "web-0" not in e.pods()
        await e.sync("web")
        assert e.pods()["web-0"]["metadata"]["uid"] != uid
        assert e.fake.writes("create", "pvc") == ["data-web-0", "data-web-1"]


async def test_slow_cache_creates_no_duplicates() -> None:
    async with env() as e:
        await e.fake.create(
            "statefulsets", stateful_set("par", 3, podManagementPolicy="Parallel"), NS
        )
        await e.fake.settle(e.c.sets)
        e.fake.hold()
        await e.c.reconcile(f"{NS}/par")
        await e.c.reconcile(f"{NS}/par")
        assert sorted(e.fake.writes("create", "pods")) == ["par-0", "par-1", "par-2"]
        e.fake.release()
        await e.sync("par")
        assert sorted(e.fake.writes("create", "pods")) == ["par-0", "par-1", "par-2"]


async def test_retention_policy_delete_sets_claim_owners() -> None:
    async with env() as e:
        policy = {"whenDeleted": "Delete", "whenScaled": "Delete"}
        sts = await e.fake.create(
            "statefulsets", stateful_set("web", 2, persistentVolumeClaimRetentionPolicy=policy), NS
        )
        await e.converge("web")
        claim = await e.fake.get("pvc", "data-web-1", NS)
        assert [r["uid"] for r in claim["metadata"]["ownerReferences"]] == [sts["metadata"]["uid"]]
        pod_uid = e.pods()["web-1"]["metadata"]["uid"]
        await e.patch_spec("web", {"replicas": 1})
        await e.sync("web")
        claim = await e.fake.get("pvc", "data-web-1", NS)
        refs = claim["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"]) for r in refs] == [("Pod", pod_uid)]
        kept = await e.fake.get("pvc", "data-web-0", NS)
        assert [r["kind"] for r in kept["metadata"]["ownerReferences"]] == ["StatefulSet"]

    sts = {"metadata": {"name": "s", "uid": "S"}, "spec": {}}
    pod = {"metadata": {"name": "s-0", "uid": "P"}}
    refs = [
        {"kind": "StatefulSet", "name": "s", "uid": "S"},
        {"kind": "Pod", "name": "s-0", "uid": "P"},
        {"kind": "Pod", "name": "s-0", "uid": "earlier"},
        {"kind": "Foo", "name": "x", "uid": "X"},
    ]
    claim = {"metadata": {"ownerReferences": refs}}
    assert [r["uid"] for r in claim_owner_refs(claim, sts, pod, False)] == ["X"]
    sts["spec"] = {"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Delete"}}
    assert [r["uid"] for r in claim_owner_refs(claim, sts, pod, True)] == ["P", "X"]


async def test_rollback_reuses_the_revision_and_history_is_truncated() -> None:
    async with env() as e:
        await e.fake.create("statefulsets", stateful_set("web", 1, revisionHistoryLimit=1), NS)
        await e.converge("web")
        first = (await e.get("web"))["status"]["currentRevision"]
        for image in ("busybox:2", "busybox:3", "busybox"):
            template = (await e.get("web"))["spec"]["template"]
            template["spec"]["containers"][0]["image"] = image
            await e.patch_spec("web", {"template": template})
            await e.converge("web")
        status = (await e.get("web"))["status"]
        assert status["updateRevision"] == first == status["currentRevision"]
        revs = {
            r["metadata"]["name"]: r["revision"]
            for r in e.fake.list_objects("controllerrevisions", NS)
        }
        assert revs[first] == 4  # the rollback renumbered the first revision
        assert len(revs) == 2  # the live one and one of history


async def test_pods_of_other_names_are_not_adopted() -> None:
    async with env() as e:
        for name in ("web-0", "stranger"):
            await e.fake.create(
                "pods", {"metadata": {"name": name, "labels": {"app": "web"}}, "spec": {}}, NS
            )
        sts = await e.fake.create("statefulsets", stateful_set("web", 1, claims=False), NS)
        await e.sync("web")
        pods = e.pods()
        assert pods["web-0"]["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
        assert not pods["stranger"]["metadata"].get("ownerReferences")
        # The adopted web-0 gets its identity labels back.
        await e.sync("web")
        assert e.pods()["web-0"]["metadata"]["labels"][POD_NAME_LABEL] == "web-0"
