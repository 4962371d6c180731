"""The CronJob controller against an in-memory API, on a fake clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.clock import OffsetClock
from skiff.controllers.cronjob import SCHEDULED_TIMESTAMP, CronJobController

NS = "ns"


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.t = at("2025-01-01T10:02:00")

    def __call__(self) -> float:
        return self.t


def cronjob(name: str, schedule: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "concurrencyPolicy": "Allow",
            "suspend": False,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {"labels": {"app": name}, "annotations": {"note": "x"}},
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [{"name": "c", "image": "busybox"}],
                        }
                    }
                },
            },
            **spec,
        },
    }


class Env:
    def __init__(self, fake: FakeApi, c: CronJobController, clock: Clock) -> None:
        self.fake = fake
        self.c = c
        self.clock = clock

    async def create(self, name: str, schedule: str, **spec: Any) -> dict[str, Any]:
        """A CronJob created at the clock's current time."""
        await self.fake.create("cronjobs", cronjob(name, schedule, **spec), NS)
        return await self.fake.patch(
            "cronjobs", name, {"metadata": {"creationTimestamp": ts(self.clock.t)}}, NS
        )

    async def sync(self, name: str) -> float | None:
        await self.fake.settle(self.c.cronjobs, self.c.jobs)
        result = await self.c.reconcile(f"{NS}/{name}")
        await self.fake.settle(self.c.cronjobs, self.c.jobs)
        return result

    def jobs(self) -> list[dict[str, Any]]:
        return sorted(self.fake.list_objects("jobs", NS), key=lambda j: j["metadata"]["name"])

    def job_names(self) -> list[str]:
        return [j["metadata"]["name"] for j in self.jobs()]

    async def cj(self, name: str) -> dict[str, Any]:
        return await self.fake.get("cronjobs", name, NS)

    async def finish(self, job: str, *, ok: bool = True) -> None:
        """What the Job controller does when the Job ends."""
        status: dict[str, Any] = {
            "startTime": ts(self.clock.t - 30),
            "conditions": [
                {"type": "Complete" if ok else "Failed", "status": "True"},
            ],
        }
        if ok:
            status["completionTime"] = ts(self.clock.t)
        await self.fake.patch("jobs", job, {"status": status}, NS)

    async def events(self) -> list[tuple[str, str]]:
        await self.c.events.flush()
        return [(e["reason"], e["message"]) for e in self.fake.list_objects("events", NS)]


@contextlib.asynccontextmanager
async def env(**kw: Any) -> AsyncIterator[Env]:
    fake = FakeApi()
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers, clock=clock)  # type: ignore[arg-type]
    c = CronJobController(ctx, local_tz=UTC, **kw)
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, c, clock)
    finally:
        await informers.stop()
        await c.stop()


def minutes(text: str) -> int:
    return int(at(text)) // 60


async def test_creates_the_job_at_the_scheduled_time() -> None:
    async with env() as e:
        cj = await e.create("hello", "*/5 * * * *")
        e.clock.t = at("2025-01-01T10:03:00")
        delay = await e.sync("hello")
        assert e.jobs() == []
        assert delay is not None and abs(delay - 120.1) < 0.01
        e.clock.t = at("2025-01-01T10:05:30")
        delay = await e.sync("hello")
        assert delay is not None and abs(delay - 270.1) < 0.01
        (job,) = e.jobs()
        meta = job["metadata"]
        assert meta["name"] == f"hello-{minutes('2025-01-01T10:05:00')}"
        assert meta["labels"] == {"app": "hello"}
        assert meta["annotations"] == {"note": "x", SCHEDULED_TIMESTAMP: "2025-01-01T10:05:00Z"}
        assert meta["ownerReferences"] == [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "name": "hello",
                "uid": cj["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
        status = (await e.cj("hello"))["status"]
        assert status["lastScheduleTime"] == "2025-01-01T10:05:00Z"
        assert [(r["kind"], r["name"], r["uid"]) for r in status["active"]] == [
            ("Job", meta["name"], meta["uid"])
        ]
        await e.sync("hello")
        assert len(e.jobs()) == 1  # level-triggered: the time is processed
        assert ("SuccessfulCreate", f"Created job {meta['name']}") in await e.events()


async def test_finished_job_leaves_active_and_sets_last_successful_time() -> None:
    async with env() as e:
        await e.create("hello", "*/5 * * * *")
        e.clock.t = at("2025-01-01T10:05:01")
        await e.sync("hello")
        (name,) = e.job_names()
        e.clock.t = at("2025-01-01T10:06:00")
        await e.finish(name)
        await e.sync("hello")
        status = (await e.cj("hello"))["status"]
        assert "active" not in status
        assert status["lastSuccessfulTime"] == "2025-01-01T10:06:00Z"
        assert ("SawCompletedJob", f"Saw completed job: {name}, condition: Complete") in (
            await e.events()
        )


async def test_one_catch_up_run_after_an_outage() -> None:
    async with env() as e:
        await e.create("hello", "*/5 * * * *")
        e.clock.t = at("2025-01-01T10:05:01")
        await e.sync("hello")
        e.clock.t = at("2025-01-01T13:07:10")  # 37 scheduled times missed
        await e.sync("hello")
        assert e.job_names() == [
            f"hello-{minutes('2025-01-01T10:05:00')}",
            f"hello-{minutes('2025-01-01T13:05:00')}",
        ]
        assert (await e.cj("hello"))["status"]["lastScheduleTime"] == "2025-01-01T13:05:00Z"
        assert "TooManyMissedTimes" not in [r for r, _ in await e.events()]


async def test_too_many_missed_times_warns_and_still_runs_once() -> None:
    async with env() as e:
        await e.create("often", "* * * * *")
        e.clock.t = at("2025-01-03T10:02:30")
        await e.sync("often")
        assert e.job_names() == [f"often-{minutes('2025-01-03T10:02:00')}"]
        assert (
            "TooManyMissedTimes",
            "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or "
            "check clock skew",
        ) in await e.events()


async def test_no_run_past_the_starting_deadline() -> None:
    async with env() as e:
        await e.create("late", "*/5 * * * *", startingDeadlineSeconds=60)
        e.clock.t = at("2025-01-01T10:07:00")  # 10:05 is two minutes late
        delay = await e.sync("late")
        assert e.jobs() == []
        assert delay is not None and abs(delay - 180.1) < 0.01
        e.clock.t = at("2025-01-01T10:10:30")
        await e.sync("late")
        assert e.job_names() == [f"late-{minutes('2025-01-01T10:10:00')}"]


async def test_forbid_skips_while_a_job_runs() -> None:
    async with env() as e:
        await e.create("f", "* * * * *", concurrencyPolicy="Forbid")
        e.clock.t = at("2025-01-01T10:03:01")
        await e.sync("f")
        (first,) = e.job_names()
        e.clock.t = at("2025-01-01T10:04:01")
        await e.sync("f")
        assert e.job_names() == [first]
        assert (
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid",
        ) in await e.events()
        await e.finish(first)
        await e.sync("f")
        # As Kubernetes: 10:04 was deferred, not skipped; without startingDeadlineSeconds
        # it starts as soon as the running one is done.
        assert e.job_names() == [first, f"f-{minutes('2025-01-01T10:04:00')}"]


async def test_replace_deletes_the_running_job() -> None:
    async with env() as e:
        await e.create("r", "* * * * *", concurrencyPolicy="Replace")
        e.clock.t = at("2025-01-01T10:03:01")
        await e.sync("r")
        (first,) = e.job_names()
        e.clock.t = at("2025-01-01T10:04:01")
        await e.sync("r")
        second = f"r-{minutes('2025-01-01T10:04:00')}"
        assert e.job_names() == [second]
        active = (await e.cj("r"))["status"]["active"]
        assert [a["name"] for a in active] == [second]
        assert ("SuccessfulDelete", f"Deleted job {first}") in await e.events()


async def test_allow_runs_concurrently_and_warns_when_jobs_pile_up() -> None:
    async with env(active_jobs_warning=2) as e:
        await e.create("a", "* * * * *")
        for minute in range(3, 7):
            e.clock.t = at(f"2025-01-01T10:0{minute}:01")
            await e.sync("a")
        assert len(e.jobs()) == 4
        assert len((await e.cj("a"))["status"]["active"]) == 4
        warnings = [m for r, m in await e.events() if r == "TooManyActiveJobs"]
        assert warnings and warnings[0].startswith("More than 2 jobs are active at once")


async def test_history_limits_delete_the_oldest_finished_jobs() -> None:
    async with env() as e:
        await e.create("h", "* * * * *", successfulJobsHistoryLimit=2, failedJobsHistoryLimit=1)
        names = []
        for minute in range(3, 8):
            e.clock.t = at(f"2025-01-01T10:0{minute}:01")
            await e.sync("h")
            name = f"h-{minutes(f'2025-01-01T10:0{minute}:00')}"
            names.append(name)
            await e.finish(name, ok=minute not in (4, 6))
        e.clock.t = at("2025-01-01T10:07:30")
        await e.sync("h")
        await e.sync("h")
        # Succeeded: 10:03, 10:05, 10:07 → the two newest stay; failed: 10:04, 10:06 → 10:06.
        assert e.job_names() == [names[2], names[3], names[4]]


async def test_suspended_cronjob_starts_nothing() -> None:
    async with env() as e:
        await e.create("s", "* * * * *", suspend=True)
        e.clock.t = at("2025-01-01T10:05:01")
        assert await e.sync("s") is None
        assert e.jobs() == []
        await e.fake.patch("cronjobs", "s", {"spec": {"suspend": False}}, NS)
        await e.sync("s")
        assert e.job_names() == [f"s-{minutes('2025-01-01T10:05:00')}"]


async def test_time_zone() -> None:
    async with env() as e:
        e.clock.t = at("2024-12-31T23:00:00")
        await e.create("tz", "0 9 * * *", timeZone="Asia/Tokyo")
        e.clock.t = at("2025-01-01T00:00:05")  # 09:00:05 in Tokyo
        await e.sync("tz")
        (job,) = e.jobs()
        assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2025-01-01T09:00:00+09:00"
        await e.fake.patch("cronjobs", "tz", {"spec": {"timeZone": "Mars/Olympus"}}, NS)
        assert await e.sync("tz") is None
        assert (
            "UnknownTimeZone",
            'invalid timeZone: "Mars/Olympus": unknown time zone Mars/Olympus',
        ) in await e.events()


async def test_unparseable_and_never_matching_schedules_warn() -> None:
    async with env() as e:
        await e.create("bad", "61 * * * *")
        assert await e.sync("bad") is None
        await e.create("never", "0 0 30 2 *")
        assert await e.sync("never") is None
        reasons = {r for r, _ in await e.events()}
        assert {"UnparseableSchedule", "InvalidSchedule"} <= reasons
        assert e.jobs() == []


async def test_a_job_created_before_a_crash_is_taken_over_not_duplicated() -> None:
    async with env() as e:
        cj = await e.create("c", "*/5 * * * *")
        name = f"c-{minutes('2025-01-01T10:05:00')}"
        # A previous leader created the Job, then died before writing the status.
        await e.fake.create(
            "jobs",
            {
                "metadata": {
                    "name": name,
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "CronJob",
                            "name": "c",
                            "uid": cj["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": {},
            },
            NS,
        )
        e.clock.t = at("2025-01-01T10:05:01")
        await e.sync("c")
        await e.sync("c")
        assert e.job_names() == [name]
        status = (await e.cj("c"))["status"]
        assert [a["name"] for a in status["active"]] == [name]
        assert status["lastScheduleTime"] == "2025-01-01T10:05:00Z"
        assert "SuccessfulCreate" not in [r for r, _ in await e.events()]


async def test_stale_cache_creates_no_duplicate() -> None:
    async with env() as e:
        await e.create("c", "*/5 * * * *")
        await e.fake.settle(e.c.cronjobs, e.c.jobs)
        e.clock.t = at("2025-01-01T10:05:01")
        e.fake.hold()  # neither the new Job nor the status write reach the cache
        await e.c.reconcile(f"{NS}/c")
        await e.c.reconcile(f"{NS}/c")  # knows its write is not in the cache: waits
        assert len(e.fake.writes("create", "jobs")) == 1
        for _ in range(3):
            # As a restarted controller would, reading a stale cache.
            e.c.own_writes.forget(f"{NS}/c")
            with contextlib.suppress(Exception):
                await e.c.reconcile(f"{NS}/c")
        e.fake.release()
        await e.sync("c")
        assert len(e.jobs()) == 1
        assert len(e.fake.writes("create", "jobs")) == 4  # tried again: 409 each time


async def test_missing_active_job_is_dropped() -> None:
    async with env() as e:
        await e.create("m", "*/5 * * * *")
        e.clock.t = at("2025-01-01T10:05:01")
        await e.sync("m")
        (name,) = e.job_names()
        await e.fake.delete("jobs", name, NS)
        await e.sync("m")
        assert "active" not in (await e.cj("m"))["status"]
        assert ("MissingJob", f"Active job went missing: {name}") in await e.events()


async def test_offset_clock_and_jump_detection(tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("0")
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    base = Clock()
    clock = OffsetClock(base, offset)
    ctx = ControllerContext(fake, informers, clock=clock)  # type: ignore[arg-type]
    c = CronJobController(ctx, clock_check_interval=0.2)
    assert c.ctx.clock() == base.t
    informers.start()
    task = asyncio.create_task(c._watch_clock())
    try:
        await informers.wait_synced(timeout=5)
        await fake.create("cronjobs", cronjob("j", "* * * * *"), NS)
        await fake.settle(c.cronjobs)
        while len(c.queue):  # drop the add event's key
            c.queue.done(await c.queue.get())
        offset.write_text("3600")
        async with asyncio.timeout(5):
            while not len(c.queue):
                await asyncio.sleep(0.05)
        assert c.ctx.clock() == base.t + 3600
        assert await c.queue.get() == f"{NS}/j"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
