"""The TTL-after-finished controller against the in-memory API (informers real)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from skiff.client.rest import Obj, Res
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.job import JobController
from skiff.controllers.manager import CONTROLLERS, resolve_controllers
from skiff.controllers.ttlafterfinished import TTLAfterFinishedController

NS = "ns"
T0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


class RecordingApi(FakeApi):
    """FakeApi that keeps the options of every delete."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.deletes: list[tuple[str, dict[str, Any]]] = []

    async def delete(self, res: Res, name: str, namespace: str | None = None, **kw: Any) -> Obj:
        self.deletes.append((name, kw))
        return await super().delete(res, name, namespace, **kw)


def job_obj(
    name: str, *, ttl: int | None, finished_at: float | None, type_: str = "Complete"
) -> dict[str, Any]:
    """A Job, finished (``type_`` True since ``finished_at``) unless ``finished_at`` is None."""
    spec: dict[str, Any] = {"template": {"spec": {"containers": [{"name": "c"}]}}}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    status: dict[str, Any] = {}
    if finished_at is not None:
        status["conditions"] = [
            {"type": type_, "status": "True", "lastTransitionTime": ts(finished_at)}
        ]
    meta = {"name": name}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


class Env:
    def __init__(
        self,
        fake: RecordingApi,
        c: TTLAfterFinishedController,
        clock: Clock,
        jobs: JobController | None,
    ) -> None:
        self.fake = fake
        self.c = c
        self.clock = clock
        self.jobs = jobs

    async def settle(self) -> None:
        await self.fake.settle(self.c.jobs)

    async def sync(self, name: str) -> float | None:
        await self.settle()
        return await self.c.reconcile(f"{NS}/{name}")

    async def queued(self) -> set[str]:
        """The keys the event handlers queued (taken off the queue)."""
        await self.settle()
        keys = set()
        while len(self.c.queue):
            key = await self.c.queue.get()
            self.c.queue.done(key)
            keys.add(key)
        return keys


@contextlib.asynccontextmanager
async def env(*, with_job_controller: bool = False) -> AsyncIterator[Env]:
    clock = Clock()
    fake = RecordingApi(clock)
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers, clock=clock)  # type: ignore[arg-type]
    c = TTLAfterFinishedController(ctx)
    jobs = JobController(ctx) if with_job_controller else None
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, c, clock, jobs)
    finally:
        await informers.stop()
        await c.stop()
        if jobs is not None:
            await jobs.stop()


def test_registered_as_kubernetes_names_it() -> None:
    spec = CONTROLLERS["ttl-after-finished-controller"]
    assert spec.enabled_by_default and spec.flag == "concurrent-ttl-after-finished-syncs"
    assert resolve_controllers(["ttl-after-finished"]) == ["ttl-after-finished-controller"]
    assert "ttl-after-finished-controller" in resolve_controllers(["*"])
    assert TTLAfterFinishedController.name == "ttl-after-finished-controller"


async def test_deletes_a_finished_job_in_the_foreground_once_its_ttl_passed() -> None:
    async with env() as e:
        job = await e.fake.create("jobs", job_obj("done", ttl=5, finished_at=T0), NS)
        assert await e.queued() == {f"{NS}/done"}  # finished, with a TTL: queued
        delay = await e.sync("done")
        assert delay is not None and 5 <= delay <= 5.1
        assert e.fake.deletes == []
        e.clock.t += 5
        assert await e.sync("done") is None
        assert e.fake.keys("jobs") == []
        ((name, opts),) = e.fake.deletes
        assert name == "done" and opts["propagation_policy"] == "Foreground"
        assert opts["preconditions"] == {
            "uid": job["metadata"]["uid"],
            "resourceVersion": job["metadata"]["resourceVersion"],
        }


async def test_failed_jobs_expire_too_and_late_ones_go_at_once() -> None:
    async with env() as e:
        await e.fake.create("jobs", job_obj("f", ttl=0, finished_at=T0 - 60, type_="Failed"), NS)
        assert await e.sync("f") is None
        assert e.fake.keys("jobs") == []


async def test_unfinished_without_ttl_or_being_deleted_are_left_alone() -> None:
    async with env() as e:
        await e.fake.create("jobs", job_obj("running", ttl=5, finished_at=None), NS)
        await e.fake.create("jobs", job_obj("kept", ttl=None, finished_at=T0), NS)
        going = job_obj("going", ttl=0, finished_at=T0)
        going["metadata"]["deletionTimestamp"] = ts(T0)
        await e.fake.create("jobs", going, NS)
        assert await e.queued() == set()
        e.clock.t += 3600
        for name in ("running", "kept", "going", "missing"):
            assert await e.sync(name) is None
        assert e.fake.deletes == []


async def test_a_ttl_changed_after_the_cache_is_read_again_before_deleting() -> None:
    async with env() as e:
        await e.fake.create("jobs", job_obj("t", ttl=5, finished_at=T0), NS)
        await e.settle()
        e.fake.hold()  # the cache still has ttl 5
        await e.fake.patch("jobs", "t", {"spec": {"ttlSecondsAfterFinished": 100}}, NS)
        e.clock.t += 10
        delay = await e.c.reconcile(f"{NS}/t")
        assert delay is not None and 90 <= delay <= 90.1  # from the fresh copy
        assert e.fake.deletes == [] and e.fake.keys("jobs") == [f"{NS}/t"]
        e.fake.release()


async def test_a_job_the_job_controller_completes_is_deleted_after_its_ttl() -> None:
    async with env(with_job_controller=True) as e:
        jobs = e.jobs
        assert jobs is not None
        job = job_obj("run", ttl=30, finished_at=None)
        job["spec"]["selector"] = {"matchLabels": {"app": "run"}}
        job["spec"]["template"]["metadata"] = {"labels": {"app": "run"}}
        job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
        await e.fake.create("jobs", job, NS)
        await e.fake.settle(jobs.jobs, jobs.pods)
        await jobs.reconcile(f"{NS}/run")
        await e.fake.settle(jobs.jobs, jobs.pods)
        (pod,) = e.fake.list_objects("pods", NS)
        await e.fake.patch("pods", pod["metadata"]["name"], {"status": {"phase": "Succeeded"}}, NS)
        for _ in range(3):
            await e.fake.settle(jobs.jobs, jobs.pods)
            assert await jobs.reconcile(f"{NS}/run") is None  # the Job controller never deletes
        assert e.fake.keys("jobs") == [f"{NS}/run"]
        delay = await e.sync("run")
        assert delay is not None and 30 <= delay <= 30.1
        e.clock.t += 30
        assert await e.sync("run") is None
        assert e.fake.keys("jobs") == []
