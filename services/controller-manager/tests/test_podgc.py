"""The pod garbage collector against the in-memory API (informers real): pods of a node
that is gone are failed and force-deleted after the quarantine, unscheduled terminating
pods and terminating pods of out-of-service nodes at once, terminated pods beyond the
threshold oldest first."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from skiff.client.rest import Obj, Res
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi, running
from skiff.controllers.manager import CONTROLLERS, SERVICE_ACCOUNTS, resolve_controllers
from skiff.controllers.podgc import PodGCController

T0 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()


class Clock:
    t = T0

    def __call__(self) -> float:
        return self.t


class RecordingApi(FakeApi):
    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.deletes: list[tuple[str, dict[str, Any]]] = []
        self.status_patches: list[tuple[str, Obj]] = []

    async def delete(self, res: Res, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.deletes.append((name, kw))
        return await super().delete(res, name, namespace, **kw)

    async def patch(self, res: Res, name: str, patch: Any, namespace: str | None = None,
                    **kw: Any) -> Obj:  # fmt: skip
        if kw.get("subresource") == "status":
            self.status_patches.append((name, patch))
        return await super().patch(res, name, patch, namespace, **kw)


def pod(name: str, node: str = "", phase: str = "Running", created: int = 0, **meta: Any) -> Obj:
    stamp = datetime.fromtimestamp(T0 + created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "creationTimestamp": stamp, **meta},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": phase}}  # fmt: skip


def node(name: str, ready: bool = True, taints: list[Obj] | None = None) -> Obj:
    cond = {"type": "Ready", "status": "True" if ready else "False"}
    return {"metadata": {"name": name}, "spec": {"taints": taints or []},
            "status": {"conditions": [cond]}}  # fmt: skip


@contextlib.asynccontextmanager
async def env(
    threshold: int = 12_500,
) -> AsyncIterator[tuple[RecordingApi, PodGCController, Clock]]:
    clock = Clock()

    def make(ctx: ControllerContext) -> PodGCController:
        return PodGCController(ctx, terminated_pod_gc_threshold=threshold)

    async with running(make, RecordingApi(clock)) as (fake, c):
        yield fake, c, clock  # type: ignore[misc]


async def settle(fake: FakeApi, c: PodGCController) -> None:
    await fake.settle(c.pods)
    await fake.settle(c.nodes)


def test_registered_as_kubernetes_names_it() -> None:
    assert resolve_controllers(["podgc"]) == ["pod-garbage-collector-controller"]
    assert CONTROLLERS["pod-garbage-collector-controller"].enabled_by_default
    assert SERVICE_ACCOUNTS["pod-garbage-collector-controller"] == "pod-garbage-collector"


async def test_pods_of_a_deleted_node_are_failed_and_force_deleted_after_quarantine() -> None:
    async with env() as (fake, c, clock):
        await fake.create("nodes", node("alive"))
        await fake.create("pods", pod("kept", "alive"), "ns")
        await fake.create("pods", pod("orphan", "gone"), "ns")
        await settle(fake, c)
        await c.gc()
        assert fake.deletes == []  # in quarantine
        clock.t += 39
        await c.gc()
        assert fake.deletes == []
        clock.t += 2
        await c.gc()
        [(name, opts)] = fake.deletes
        assert name == "orphan" and opts["grace_period_seconds"] == 0
        assert opts["preconditions"]["uid"]
        [(patched, patch)] = fake.status_patches
        assert patched == "orphan" and patch["status"]["phase"] == "Failed"
        [cond] = patch["status"]["conditions"]
        assert (cond["type"], cond["reason"], cond["message"]) == (
            "DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists")  # fmt: skip
        assert fake.keys("pods") == ["ns/kept"]


async def test_a_node_back_before_the_quarantine_ends_keeps_its_pods() -> None:
    async with env() as (fake, c, clock):
        await fake.create("pods", pod("p", "late"), "ns")
        await settle(fake, c)
        await c.gc()
        await fake.create("nodes", node("late"))  # the cache learns of it later
        clock.t += 41
        await c.gc()
        assert fake.deletes == []


async def test_unscheduled_terminating_and_out_of_service_pods() -> None:
    async with env() as (fake, c, _clock):
        taint = {"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}
        await fake.create("nodes", node("down", ready=False, taints=[taint]))
        await fake.create("nodes", node("up"))
        stamp = {"deletionTimestamp": "2026-01-01T00:00:00Z"}
        await fake.create("pods", pod("unscheduled", **stamp), "ns")
        await fake.create("pods", pod("stuck", "down", **stamp), "ns")
        await fake.create("pods", pod("running", "down"), "ns")
        await fake.create("pods", pod("healthy", "up", **stamp), "ns")
        await settle(fake, c)
        await c.gc()
        assert sorted(n for n, _ in fake.deletes) == ["stuck", "unscheduled"]


async def test_terminated_pods_beyond_the_threshold_go_oldest_first() -> None:
    async with env(threshold=2) as (fake, c, _clock):
        await fake.create("nodes", node("n"))
        for i, phase in enumerate(["Succeeded", "Failed", "Succeeded", "Running"]):
            await fake.create("pods", pod(f"p{i}", "n", phase, created=i), "ns")
        evicted = pod("evicted", "n", "Failed", created=10)
        evicted["status"]["reason"] = "Evicted"
        await fake.create("pods", evicted, "ns")
        await settle(fake, c)
        await c.gc()
        assert [n for n, _ in fake.deletes] == ["evicted", "p0"]
        assert fake.status_patches == []  # already terminal
