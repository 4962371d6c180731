"""The ReplicaSet controller against an in-memory API (informers running for real)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.controller.controller import ControllerContext, TerminalError
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.replicaset import ReplicaSetController, ReplicationControllerController

NS = "ns"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def template(labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }


def replica_set(name: str, replicas: int, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template(labels),
            **spec,
        },
    }


class Env:
    def __init__(self, fake: FakeApi, controller: ReplicaSetController, clock: Clock) -> None:
        self.fake = fake
        self.c = controller
        self.clock = clock

    async def sync(self, name: str) -> float | None:
        """Let the cache catch up with what was delivered, then reconcile once."""
        await self.fake.settle(self.c.sets, self.c.pods)
        return await self.c.reconcile(f"{NS}/{name}")

    def pods(self, owner: str | None = None) -> list[dict[str, Any]]:
        out = []
        for p in self.fake.list_objects("pods", NS):
            refs = p["metadata"].get("ownerReferences") or []
            if owner is None or any(r["name"] == owner and r.get("controller") for r in refs):
                out.append(p)
        return out

    async def get(self, name: str) -> dict[str, Any]:
        return await self.fake.get(self.c.resource, name, NS)

    async def set_replicas(self, name: str, n: int) -> None:
        await self.fake.patch(self.c.resource, name, {"spec": {"replicas": n}}, NS)

    async def run_pod(self, name: str, *, node: str = "n1", ready_at: float | None = None) -> None:
        """What a kubelet does: scheduled, Running and Ready."""
        await self.fake.patch("pods", name, {"spec": {"nodeName": node}}, NS)
        at = self.clock.t if ready_at is None else ready_at
        status = {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts(at)}],
        }
        await self.fake.patch("pods", name, {"status": status}, NS)


@contextlib.asynccontextmanager
async def env(
    cls: type[ReplicaSetController] = ReplicaSetController, **kw: Any
) -> AsyncIterator[Env]:
    fake = FakeApi()
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    controller = cls(ControllerContext(fake, informers, clock=clock), **kw)  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controller, clock)
    finally:
        await informers.stop()
        await controller.stop()


async def test_creates_missing_pods_from_template() -> None:
    async with env() as e:
        rs = await e.fake.create("replicasets", replica_set("web", 3, {"app": "web"}), NS)
        assert await e.sync("web") is None
        pods = e.pods("web")
        assert len(pods) == 3
        for p in pods:
            assert p["metadata"]["name"].startswith("web-")
            assert p["metadata"]["labels"] == {"app": "web"}
            assert p["spec"]["containers"][0]["image"] == "busybox"
            assert p["metadata"]["ownerReferences"] == [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "web",
                    "uid": rs["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        await e.sync("web")
        assert len(e.pods("web")) == 3  # level-triggered: nothing more to do
        status = (await e.get("web"))["status"]
        assert status["replicas"] == 3 and status["observedGeneration"] == 1
        assert status["fullyLabeledReplicas"] == 3 and "readyReplicas" not in status


async def test_slow_cache_creates_no_duplicates() -> None:
    async with env() as e:
        await e.fake.create("replicasets", replica_set("web", 3, {"app": "web"}), NS)
        await e.fake.settle(e.c.sets)
        e.fake.hold()  # the watch falls behind: the cache shows no pods
        await e.sync("web")
        assert len(e.fake.writes("create", "pods")) == 3
        for _ in range(3):
            # Expectations unmet: nothing created. The cached set is stale too: its status
            # write conflicts, and is retried once on a fresh read.
            await e.c.reconcile(f"{NS}/web")
        assert len(e.fake.writes("create", "pods")) == 3
        assert e.c.expectations.pending(f"{NS}/web") == (3, 0)
        e.fake.release()
        await e.sync("web")
        assert e.c.expectations.satisfied(f"{NS}/web")
        assert len(e.fake.writes("create", "pods")) == 3
        assert len(e.pods("web")) == 3


async def test_burst_limit_and_slow_start() -> None:
    async with env(burst_replicas=5) as e:
        await e.fake.create("replicasets", replica_set("web", 12, {"app": "web"}), NS)
        await e.sync("web")
        assert len(e.pods("web")) == 5
        await e.sync("web")
        assert len(e.pods("web")) == 10
        await e.sync("web")
        assert len(e.pods("web")) == 12


async def test_scale_down_deletes_in_rank_order() -> None:
    async with env() as e:
        await e.fake.create("replicasets", replica_set("web", 4, {"app": "web"}), NS)
        await e.sync("web")
        names = sorted(p["metadata"]["name"] for p in e.pods("web"))
        await e.run_pod(names[0], node="n1")
        await e.run_pod(names[1], node="n2")
        await e.fake.patch("pods", names[2], {"spec": {"nodeName": "n3"}}, NS)  # Pending
        # names[3] stays unscheduled
        await e.set_replicas("web", 2)
        await e.sync("web")
        left = sorted(p["metadata"]["name"] for p in e.pods("web"))
        assert left == names[:2]  # the unscheduled and the pending pod went first
        await e.set_replicas("web", 1)
        await e.run_pod(names[0], node="n1", ready_at=e.clock.t - 100)  # ready for longer
        await e.sync("web")
        assert [p["metadata"]["name"] for p in e.pods("web")] == [names[0]]


async def test_graceful_deletion_counts_once() -> None:
    async with env() as e:
        e.fake.graceful_pod_delete = True
        await e.fake.create("replicasets", replica_set("web", 3, {"app": "web"}), NS)
        await e.sync("web")
        for i, p in enumerate(e.pods("web")):
            await e.run_pod(p["metadata"]["name"], node=f"n{i}")
        await e.set_replicas("web", 1)
        await e.fake.settle(e.c.sets, e.c.pods)
        e.fake.hold()
        await e.c.reconcile(f"{NS}/web")
        assert len(e.fake.writes("delete", "pods")) == 2
        await e.c.reconcile(f"{NS}/web")
        assert len(e.fake.writes("delete", "pods")) == 2  # waiting to see the two go
        e.fake.release()
        await e.sync("web")
        # Terminating pods are not active: the set is satisfied, and replaces nothing.
        assert e.c.expectations.satisfied(f"{NS}/web")
        assert len(e.fake.writes("delete", "pods")) == 2
        assert len(e.fake.writes("create", "pods")) == 3
        for p in e.pods("web"):
            if p["metadata"].get("deletionTimestamp"):
                await e.fake.finish_deletion("pods", f"{NS}/{p['metadata']['name']}")
        await e.sync("web")
        assert len(e.pods("web")) == 1
        assert (await e.get("web"))["status"]["replicas"] == 1


async def test_adopts_orphans_and_releases_pods_that_stop_matching() -> None:
    async with env() as e:
        for i in range(2):
            await e.fake.create(
                "pods",
                {"metadata": {"name": f"orphan-{i}", "labels": {"app": "web"}}, "spec": {}},
                NS,
            )
        await e.fake.create(
            "pods", {"metadata": {"name": "stranger", "labels": {"app": "db"}}, "spec": {}}, NS
        )
        rs = await e.fake.create("replicasets", replica_set("web", 3, {"app": "web"}), NS)
        await e.sync("web")
        owned = {p["metadata"]["name"] for p in e.pods("web")}
        assert {"orphan-0", "orphan-1"} <= owned and len(owned) == 3
        assert "stranger" not in owned
        assert len(e.fake.writes("create", "pods")) == 4  # three orphans made by us + 1 pod
        # Relabel an owned pod: released (kept, without our reference), and replaced.
        await e.fake.patch("pods", "orphan-0", {"metadata": {"labels": {"app": "other"}}}, NS)
        await e.sync("web")
        released = await e.fake.get("pods", "orphan-0", NS)
        assert not released["metadata"].get("ownerReferences")
        await e.sync("web")
        owned = {p["metadata"]["name"] for p in e.pods("web")}
        assert len(owned) == 3 and "orphan-0" not in owned
        for p in e.pods("web"):
            assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]


async def test_adoption_from_a_stale_cache_conflicts() -> None:
    async with env() as e:
        await e.fake.create(
            "pods", {"metadata": {"name": "orphan", "labels": {"app": "web"}}, "spec": {}}, NS
        )
        await e.fake.create("replicasets", replica_set("web", 1, {"app": "web"}), NS)
        await e.fake.settle(e.c.sets, e.c.pods)
        e.fake.hold()
        # Another controller takes the orphan first; our cache does not know yet.
        other = {"apiVersion": "v1", "kind": "Foo", "name": "f", "uid": "x", "controller": True}
        await e.fake.patch("pods", "orphan", {"metadata": {"ownerReferences": [other]}}, NS)
        with pytest.raises(ApiError) as err:
            await e.c.reconcile(f"{NS}/web")
        assert err.value.code == 409
        assert (await e.fake.get("pods", "orphan", NS))["metadata"]["ownerReferences"] == [other]
        assert e.fake.writes("create", "pods") == ["orphan"]  # no pod created on an error
        e.fake.release()
        await e.sync("web")
        assert len(e.pods("web")) == 1 and e.pods("web")[0]["metadata"]["name"] != "orphan"


async def test_inactive_and_foreign_pods_do_not_count() -> None:
    async with env() as e:
        other = {"apiVersion": "v1", "kind": "Foo", "name": "f", "uid": "x", "controller": True}
        await e.fake.create(
            "pods",
            {
                "metadata": {
                    "name": "foreign",
                    "labels": {"app": "web"},
                    "ownerReferences": [other],
                },
                "spec": {},
            },
            NS,
        )
        await e.fake.create("replicasets", replica_set("web", 2, {"app": "web"}), NS)
        await e.sync("web")
        mine = sorted(p["metadata"]["name"] for p in e.pods("web"))
        assert len(mine) == 2
        foreign = await e.fake.get("pods", "foreign", NS)
        assert foreign["metadata"]["ownerReferences"] == [other]  # never adopted
        await e.fake.patch("pods", mine[0], {"status": {"phase": "Failed"}}, NS)
        await e.sync("web")
        assert (
            len([p for p in e.pods("web") if (p.get("status") or {}).get("phase") != "Failed"]) == 2
        )
        assert len(e.pods("web")) == 3  # the failed pod is left for the GC / user


async def test_status_counts_and_min_ready_seconds() -> None:
    async with env() as e:
        labels = {"app": "web", "tier": "front"}
        await e.fake.create(
            "replicasets",
            replica_set("web", 2, {"app": "web"}, minReadySeconds=10, template=template(labels)),
            NS,
        )
        await e.sync("web")
        for p in e.pods("web"):
            await e.run_pod(p["metadata"]["name"])
        requeue = await e.sync("web")
        status = (await e.get("web"))["status"]
        assert status["readyReplicas"] == 2 and "availableReplicas" not in status  # omitempty
        assert status["fullyLabeledReplicas"] == 2
        assert requeue is not None and 9.9 <= requeue <= 10.2
        e.clock.t += 10
        assert await e.sync("web") is None
        status = (await e.get("web"))["status"]
        assert status["availableReplicas"] == 2
        # A pod missing a template label still counts, but not as fully labeled.
        name = e.pods("web")[0]["metadata"]["name"]
        await e.fake.patch("pods", name, {"metadata": {"labels": {"tier": None}}}, NS)
        await e.set_replicas("web", 2)
        await e.sync("web")
        status = (await e.get("web"))["status"]
        assert status["replicas"] == 2 and status["fullyLabeledReplicas"] == 1
        rs = await e.get("web")
        assert status["observedGeneration"] == rs["metadata"]["generation"]


async def test_create_failure_sets_replica_failure() -> None:
    async with env() as e:
        e.fake.fail_creates = 2
        await e.fake.create("replicasets", replica_set("web", 5, {"app": "web"}), NS)
        await e.fake.settle(e.c.sets)
        with pytest.raises(ApiError, match="injected"):
            await e.c.reconcile(f"{NS}/web")
        # Batch 1 failed: nothing else was tried, and nothing is expected.
        assert len(e.fake.writes("create", "pods")) == 1
        assert e.c.expectations.satisfied(f"{NS}/web")
        await e.fake.settle(e.c.sets)
        status = (await e.get("web"))["status"]
        cond = status["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == (
            "ReplicaFailure",
            "True",
            "FailedCreate",
        )
        with pytest.raises(ApiError):
            await e.sync("web")
        await e.sync("web")
        await e.sync("web")
        assert len(e.pods("web")) == 5
        assert "conditions" not in (await e.get("web"))["status"]


async def test_missing_set_and_invalid_selector() -> None:
    async with env() as e:
        e.c.expectations.expect_creations(f"{NS}/gone", 3)
        assert await e.sync("gone") is None
        assert e.c.expectations.pending(f"{NS}/gone") == (0, 0)
        bad = replica_set("bad", 1, {"app": "x"})
        bad["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Nope"}]}
        await e.fake.create("replicasets", bad, NS)
        with pytest.raises(TerminalError):
            await e.sync("bad")
        assert e.fake.writes("create", "pods") == []


async def test_replication_controller() -> None:
    async with env(ReplicationControllerController) as e:
        rc = {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": template({"app": "legacy"}),
            },
        }
        await e.fake.create("replicationcontrollers", rc, NS)
        await e.sync("legacy")
        pods = e.pods("legacy")
        assert len(pods) == 2
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert (ref["apiVersion"], ref["kind"]) == ("v1", "ReplicationController")
        assert (await e.get("legacy"))["status"]["replicas"] == 0  # status from before manage
        await e.sync("legacy")
        assert (await e.get("legacy"))["status"]["replicas"] == 2
