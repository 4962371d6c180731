"""The Job controller against an in-memory API that honours finalizers (informers real)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.errors import ApiError, Reason
from skiff.client.informer import copy_object
from skiff.client.rest import Obj, Res
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.job import (
    COMPLETION_INDEX,
    JOB_TRACKING_FINALIZER,
    ORPHAN_PREFIX,
    BackoffRecord,
    JobController,
    format_indexes,
    parse_indexes,
)

NS = "ns"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FinalizingApi(FakeApi):
    """FakeApi where an object with finalizers is only marked deleted, and goes when the
    last finalizer is removed (as the API server does). ``fail_finalizer_patches`` makes
    the next finalizer removals fail, as a crash right before them would."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_finalizer_patches = 0
        self.clock: Clock = Clock()

    async def delete(
        self,
        res: Res,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
        **kw: Any,
    ) -> Obj:
        key = f"{namespace}/{name}" if namespace else name
        cur = self.store(res).get(key)
        if cur is None or not cur["metadata"].get("finalizers"):
            return await super().delete(res, name, namespace, preconditions=preconditions, **kw)
        self.calls.append(("delete", self._plural_of(res), key))
        uid = (preconditions or {}).get("uid")
        if uid and uid != cur["metadata"]["uid"]:
            raise ApiError(409, Reason.CONFLICT, "Precondition failed: UID")
        if cur["metadata"].get("deletionTimestamp"):
            return copy_object(cur)
        new = copy_object(cur)
        new["metadata"]["deletionTimestamp"] = ts(self.clock())
        return self._put(self._plural_of(res), key, new)

    async def patch(self, res: Res, name: str, patch: Any, *a: Any, **kw: Any) -> Obj:
        if (
            self.fail_finalizer_patches > 0
            and kw.get("type") == "json"
            and any("finalizers" in op.get("path", "") for op in patch)
        ):
            self.fail_finalizer_patches -= 1
            raise ApiError(500, Reason.INTERNAL_ERROR, "injected patch failure")
        return self._finish(res, await super().patch(res, name, patch, *a, **kw))

    async def update(self, res: Res, obj: Obj, *a: Any, **kw: Any) -> Obj:
        return self._finish(res, await super().update(res, obj, *a, **kw))

    def _finish(self, res: Res, obj: Obj) -> Obj:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
            cur = self.store(res).pop(key)
            self._publish(self._plural_of(res), "DELETED", self._bump(copy_object(cur)))
        return obj

    @staticmethod
    def _plural_of(res: Res) -> str:
        from skiff.client.rest import _info

        return _info(res).plural


def job_obj(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}],
                },
            },
            **spec,
        },
    }


class Env:
    def __init__(self, fake: FinalizingApi, c: JobController, clock: Clock) -> None:
        self.fake = fake
        self.c = c
        self.clock = clock

    async def create(self, name: str, **spec: Any) -> dict[str, Any]:
        """A Job as the API server defaults it (selector on its uid, labels on pods)."""
        job = await self.fake.create("jobs", job_obj(name, **spec), NS)
        uid = job["metadata"]["uid"]
        spec_d = job["spec"]
        spec_d.setdefault("parallelism", 1)
        if "completions" not in spec and "parallelism" not in spec:
            spec_d["completions"] = 1
        spec_d.setdefault("backoffLimit", 6)
        spec_d.setdefault("completionMode", "NonIndexed")
        spec_d.setdefault("suspend", False)
        spec_d["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        spec_d["template"]["metadata"]["labels"].update(
            {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name}
        )
        return await self.fake.update("jobs", job, NS)

    async def sync(self, name: str) -> float | None:
        await self.settle()
        result = await self.c.reconcile(f"{NS}/{name}")
        await self.settle()
        return result

    async def settle(self) -> None:
        await self.fake.settle(self.c.jobs, self.c.pods)

    async def run_queue(self) -> None:
        """Process every queued key once (orphan finalizer removals among them)."""
        await self.settle()
        for _ in range(50):
            if not len(self.c.queue):
                return
            key = await self.c.queue.get()
            try:
                await self.c.reconcile(key)
            finally:
                self.c.queue.done(key)
            await self.settle()

    async def job(self, name: str) -> dict[str, Any]:
        return await self.fake.get("jobs", name, NS)

    def pods(self, *, active: bool | None = None) -> list[dict[str, Any]]:
        out = []
        for p in self.fake.list_objects("pods", NS):
            done = (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            gone = bool(p["metadata"].get("deletionTimestamp"))
            if active is None or active == (not done and not gone):
                out.append(p)
        return sorted(out, key=lambda p: p["metadata"]["name"])

    async def finish(self, pod: dict[str, Any], phase: str, *, at: float | None = None) -> None:
        """What a kubelet does when the container exits."""
        when = ts(self.clock.t if at is None else at)
        code = 0 if phase == "Succeeded" else 1
        status = {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "c",
                    "state": {"terminated": {"exitCode": code, "finishedAt": when}},
                }
            ],
        }
        await self.fake.patch("pods", pod["metadata"]["name"], {"status": status}, NS)

    def conditions(self, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {c["type"]: c for c in (job.get("status") or {}).get("conditions") or ()}

    def event_reasons(self) -> list[str]:
        return [e["reason"] for e in self.fake.list_objects("events", NS)]


@contextlib.asynccontextmanager
async def env(**kw: Any) -> AsyncIterator[Env]:
    fake = FinalizingApi()
    clock = fake.clock
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = JobController(ControllerContext(fake, informers, clock=clock), **kw)  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, c, clock)
    finally:
        await informers.stop()
        await c.stop()


async def test_creates_parallelism_pods_with_finalizer_and_owner() -> None:
    async with env() as e:
        job = await e.create("pi", completions=3, parallelism=2)
        await e.sync("pi")
        pods = e.pods()
        assert len(pods) == 2
        for p in pods:
            meta = p["metadata"]
            assert meta["name"].startswith("pi-")
            assert meta["finalizers"] == [JOB_TRACKING_FINALIZER]
            assert meta["labels"]["batch.kubernetes.io/job-name"] == "pi"
            assert meta["ownerReferences"] == [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": "pi",
                    "uid": job["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        status = (await e.job("pi"))["status"]
        assert status["active"] == 2 and status["ready"] == 0
        assert status["startTime"] == ts(e.clock.t)
        assert status["uncountedTerminatedPods"] == {}
        await e.sync("pi")
        assert len(e.pods()) == 2  # level-triggered: nothing more


async def test_completions_and_parallelism_run_to_complete() -> None:
    async with env() as e:
        await e.create("pi", completions=3, parallelism=2)
        await e.sync("pi")
        a, b = e.pods()
        await e.finish(a, "Succeeded")
        await e.sync("pi")  # counts a, creates one more: min(parallelism, remaining 2)
        assert len(e.pods(active=True)) == 2
        status = (await e.job("pi"))["status"]
        assert status["succeeded"] == 1 and status["uncountedTerminatedPods"] == {}
        a = await e.fake.get("pods", a["metadata"]["name"], NS)
        assert JOB_TRACKING_FINALIZER not in (a["metadata"].get("finalizers") or [])
        await e.finish(b, "Succeeded")
        await e.sync("pi")
        assert len(e.pods(active=True)) == 1  # only one completion left
        (c,) = e.pods(active=True)
        await e.finish(c, "Succeeded")
        await e.sync("pi")
        job = await e.job("pi")
        conds = e.conditions(job)
        assert conds["SuccessCriteriaMet"]["reason"] == "CompletionsReached"
        assert conds["Complete"]["status"] == "True"
        assert conds["Complete"]["message"] == "Reached expected number of succeeded pods"
        assert job["status"]["succeeded"] == 3 and job["status"].get("active", 0) == 0
        assert job["status"]["completionTime"] == ts(e.clock.t)
        assert len(e.pods()) == 3
        assert all(not p["metadata"].get("finalizers") for p in e.pods())
        await e.c.events.flush()
        assert "Completed" in e.event_reasons()
        assert e.event_reasons().count("SuccessfulCreate") == 3


async def test_no_completions_finishes_when_one_succeeds_and_the_rest_end() -> None:
    async with env() as e:
        await e.create("w", parallelism=2)
        await e.sync("w")
        a, b = e.pods()
        await e.finish(a, "Succeeded")
        await e.sync("w")
        assert len(e.pods(active=True)) == 1  # no new pod once one succeeded
        assert "Complete" not in e.conditions(await e.job("w"))
        await e.finish(b, "Succeeded")
        await e.sync("w")
        job = await e.job("w")
        assert e.conditions(job)["Complete"]["status"] == "True"
        assert job["status"]["succeeded"] == 2


async def test_counted_once_across_a_crash_before_finalizer_removal() -> None:
    async with env() as e:
        await e.create("x", completions=2, parallelism=2)
        await e.sync("x")
        a, _ = e.pods()
        await e.finish(a, "Succeeded")
        e.fake.fail_finalizer_patches = 1
        with pytest.raises(ApiError):
            await e.sync("x")
        # The uid is recorded, not counted: the finalizer is still on the pod.
        status = (await e.job("x"))["status"]
        assert status["uncountedTerminatedPods"] == {"succeeded": [a["metadata"]["uid"]]}
        assert status.get("succeeded", 0) == 0
        # A restarted controller (new expectations) finishes the job of the first.
        informers = SharedInformers(e.fake)  # type: ignore[arg-type]
        fresh = JobController(ControllerContext(e.fake, informers, clock=e.clock))  # type: ignore[arg-type]
        informers.start()
        try:
            await informers.wait_synced(timeout=5)
            await e.fake.settle(fresh.jobs, fresh.pods)
            await fresh.reconcile(f"{NS}/x")
            await e.fake.settle(fresh.jobs, fresh.pods)
            await fresh.reconcile(f"{NS}/x")
        finally:
            await informers.stop()
        status = (await e.job("x"))["status"]
        assert status["succeeded"] == 1
        assert status["uncountedTerminatedPods"] == {}
        assert len(e.pods()) == 2  # nothing recreated for the counted pod


async def test_stale_cache_after_finalizer_removal_does_not_count_twice() -> None:
    async with env() as e:
        await e.create("x", completions=3, parallelism=1)
        await e.sync("x")
        (a,) = e.pods()
        await e.finish(a, "Succeeded")
        await e.settle()
        e.fake.hold()  # our own writes stay invisible to the cache
        await e.c.reconcile(f"{NS}/x")
        written = (await e.job("x"))["status"]
        assert written["succeeded"] == 1
        # The cache still shows the finalizer and the old status. The controller knows
        # its write is not in the cache yet, and waits for it.
        assert await e.c.reconcile(f"{NS}/x") is None
        assert len(e.fake.writes("update/status", "jobs")) == 3
        # Without that knowledge, the status write is refused (stale resourceVersion),
        # and nothing is counted twice.
        e.c.own_writes.forget(f"{NS}/x")
        with pytest.raises(ApiError):
            await e.c.reconcile(f"{NS}/x")
        assert (await e.job("x"))["status"]["succeeded"] == 1
        e.fake.release()
        await e.sync("x")
        await e.sync("x")
        status = (await e.job("x"))["status"]
        assert status["succeeded"] == 1
        assert len(e.pods(active=True)) == 1  # the second completion's pod, once


async def test_failed_pods_back_off_then_backoff_limit_exceeded() -> None:
    async with env() as e:
        await e.create("f", backoffLimit=2)
        await e.sync("f")
        (p1,) = e.pods()
        await e.finish(p1, "Failed")
        delay = await e.sync("f")
        assert len(e.pods(active=True)) == 0  # back-off: 10 s after the failure
        assert delay is not None and 9.9 <= delay <= 10.0
        assert (await e.job("f"))["status"]["failed"] == 1
        e.clock.t += 10
        await e.sync("f")
        (p2,) = e.pods(active=True)
        await e.finish(p2, "Failed")
        delay = await e.sync("f")
        assert delay is not None and 19.9 <= delay <= 20.0  # doubled
        e.clock.t += 20
        await e.sync("f")
        (p3,) = e.pods(active=True)
        await e.finish(p3, "Failed")
        await e.sync("f")
        await e.sync("f")
        job = await e.job("f")
        conds = e.conditions(job)
        assert conds["FailureTarget"]["reason"] == "BackoffLimitExceeded"
        assert conds["Failed"]["reason"] == "BackoffLimitExceeded"
        assert conds["Failed"]["message"] == "Job has reached the specified backoff limit"
        assert job["status"]["failed"] == 3 and job["status"].get("active", 0) == 0
        assert "completionTime" not in job["status"]
        await e.c.events.flush()
        assert "BackoffLimitExceeded" in e.event_reasons()
        assert len(e.pods()) == 3


def test_backoff_delay_is_capped() -> None:
    rec = BackoffRecord(failures=10, last_failure=0.0)
    assert rec.remaining(0.0, 10, 360) == 360
    assert BackoffRecord(failures=3, last_failure=0.0).remaining(15.0, 10, 360) == 25
    assert BackoffRecord().remaining(0.0, 10, 360) == 0


async def test_active_deadline_deletes_pods_and_fails() -> None:
    async with env() as e:
        await e.create("d", parallelism=2, completions=4, activeDeadlineSeconds=30)
        delay = await e.sync("d")
        assert delay is not None and 29 <= delay <= 30
        assert len(e.pods(active=True)) == 2
        e.clock.t += 30
        await e.sync("d")
        # The pods are terminating (the finalizer holds them until counted as failed).
        job = await e.job("d")
        assert e.conditions(job)["FailureTarget"]["reason"] == "DeadlineExceeded"
        for _ in range(3):
            await e.sync("d")
        job = await e.job("d")
        conds = e.conditions(job)
        assert conds["Failed"]["reason"] == "DeadlineExceeded"
        assert conds["Failed"]["message"] == "Job was active longer than specified deadline"
        assert job["status"]["failed"] == 2 and job["status"].get("active", 0) == 0
        assert e.pods() == []  # deleted once the finalizers went


async def test_indexed_job_indexes_env_and_completed_indexes() -> None:
    async with env() as e:
        await e.create("ix", completions=3, parallelism=2, completionMode="Indexed")
        await e.sync("ix")
        pods = e.pods()
        assert sorted(p["metadata"]["annotations"][COMPLETION_INDEX] for p in pods) == ["0", "1"]
        for p in pods:
            ix = p["metadata"]["annotations"][COMPLETION_INDEX]
            assert p["metadata"]["labels"][COMPLETION_INDEX] == ix
            assert p["metadata"]["name"].startswith(f"ix-{ix}-")
            assert p["spec"]["hostname"] == f"ix-{ix}"
            assert p["spec"]["containers"][0]["env"] == [
                {
                    "name": "JOB_COMPLETION_INDEX",
                    "valueFrom": {
                        "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}
                    },
                }
            ]
        by_ix = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in pods}
        await e.finish(by_ix["1"], "Succeeded")
        await e.sync("ix")
        status = (await e.job("ix"))["status"]
        assert status["completedIndexes"] == "1" and status["succeeded"] == 1
        active = e.pods(active=True)
        assert sorted(p["metadata"]["annotations"][COMPLETION_INDEX] for p in active) == [
            "0",
            "2",
        ]
        await e.finish(by_ix["0"], "Failed")  # index 0 again, after back-off
        await e.sync("ix")
        e.clock.t += 10
        await e.sync("ix")
        active = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in e.pods(active=True)}
        assert sorted(active) == ["0", "2"]
        for p in active.values():
            await e.finish(p, "Succeeded")
        await e.sync("ix")
        await e.sync("ix")
        job = await e.job("ix")
        assert job["status"]["completedIndexes"] == "0-2"
        assert job["status"]["succeeded"] == 3 and job["status"]["failed"] == 1
        assert e.conditions(job)["Complete"]["status"] == "True"


def test_index_strings() -> None:
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6,7"
    assert format_indexes(set()) == ""
    assert parse_indexes("0-2,4,6,7", 7) == {0, 1, 2, 4, 6}
    assert parse_indexes("1,x,3-9", 5) == {1, 3, 4}


async def test_suspend_and_resume() -> None:
    async with env() as e:
        await e.create("s", completions=2, parallelism=2, suspend=True)
        await e.sync("s")
        job = await e.job("s")
        assert e.pods() == []
        assert "startTime" not in job["status"]
        cond = e.conditions(job)["Suspended"]
        assert (cond["status"], cond["reason"]) == ("True", "JobSuspended")
        await e.fake.patch("jobs", "s", {"spec": {"suspend": False}}, NS)
        await e.sync("s")
        job = await e.job("s")
        cond = e.conditions(job)["Suspended"]
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "False",
            "JobResumed",
            "Job resumed",
        )
        assert job["status"]["startTime"] == ts(e.clock.t)
        assert len(e.pods(active=True)) == 2
        # Suspending a running Job deletes its pods without counting them as failed.
        await e.fake.patch("jobs", "s", {"spec": {"suspend": True}}, NS)
        await e.sync("s")
        assert e.pods() == []
        job = await e.job("s")
        assert job["status"].get("failed", 0) == 0 and job["status"].get("active", 0) == 0
        assert e.conditions(job)["Suspended"]["status"] == "True"
        await e.c.events.flush()
        assert {"Suspended", "Resumed", "SuccessfulDelete"} <= set(e.event_reasons())


async def test_a_finished_job_with_a_ttl_is_left_to_the_ttl_controller() -> None:
    async with env() as e:
        await e.create("t", ttlSecondsAfterFinished=5)
        await e.sync("t")
        (p,) = e.pods()
        await e.finish(p, "Succeeded")
        await e.sync("t")
        await e.sync("t")
        assert e.conditions(await e.job("t"))["Complete"]["status"] == "True"
        assert await e.sync("t") is None  # no requeue for the TTL
        e.clock.t += 5
        assert await e.sync("t") is None
        # Deleting it is the ttl-after-finished controller's (test_ttlafterfinished.py).
        assert e.fake.keys("jobs") == [f"{NS}/t"]
        assert e.fake.writes("delete", "jobs") == []


async def test_orphan_pod_finalizer_is_removed_when_its_job_goes() -> None:
    async with env() as e:
        await e.create("o", parallelism=2, completions=2)
        await e.sync("o")
        assert all(p["metadata"]["finalizers"] for p in e.pods())
        await e.fake.delete("jobs", "o", NS)
        await e.run_queue()
        assert len(e.pods()) == 2  # the garbage collector's to delete
        assert all(not p["metadata"].get("finalizers") for p in e.pods())


async def test_deleted_running_pod_counts_as_failed_and_is_replaced() -> None:
    async with env() as e:
        await e.create("r", completions=1, backoffLimit=3)
        await e.sync("r")
        (p,) = e.pods()
        await e.fake.delete("pods", p["metadata"]["name"], NS)  # terminating, held
        await e.sync("r")
        status = (await e.job("r"))["status"]
        assert status["failed"] == 1
        assert [q["metadata"]["uid"] for q in e.pods()] != [p["metadata"]["uid"]]
        assert len(e.pods()) == 0  # gone once counted; its replacement waits 10 s
        e.clock.t += 10
        await e.sync("r")
        assert len(e.pods(active=True)) == 1


async def test_slow_cache_creates_no_duplicates() -> None:
    async with env() as e:
        await e.create("slow", completions=5, parallelism=3)
        await e.settle()
        e.fake.hold()
        await e.c.reconcile(f"{NS}/slow")
        assert len(e.fake.writes("create", "pods")) == 3
        for _ in range(3):
            with contextlib.suppress(ApiError):
                await e.c.reconcile(f"{NS}/slow")
        assert len(e.fake.writes("create", "pods")) == 3
        e.fake.release()
        await e.sync("slow")
        assert len(e.fake.writes("create", "pods")) == 3


async def test_adopts_orphan_pods_matching_a_manual_selector() -> None:
    async with env() as e:
        job = await e.fake.create(
            "jobs",
            job_obj(
                "m",
                completions=1,
                parallelism=1,
                manualSelector=True,
                selector={"matchLabels": {"app": "m"}},
            ),
            NS,
        )
        orphan = await e.fake.create(
            "pods",
            {
                "metadata": {"name": "stray", "labels": {"app": "m"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            NS,
        )
        await e.sync("m")
        got = await e.fake.get("pods", "stray", NS)
        assert got["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
        assert got["metadata"]["finalizers"] == [JOB_TRACKING_FINALIZER]
        assert len(e.pods()) == 1  # the adopted pod is the one running
        assert orphan["metadata"]["uid"] == got["metadata"]["uid"]


async def test_orphan_key_is_handled() -> None:
    async with env() as e:
        pod = await e.fake.create(
            "pods",
            {
                "metadata": {"name": "lone", "finalizers": [JOB_TRACKING_FINALIZER]},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            NS,
        )
        await e.settle()
        assert await e.c.reconcile(f"{ORPHAN_PREFIX}{NS}/lone") is None
        got = await e.fake.get("pods", "lone", NS)
        assert not got["metadata"].get("finalizers")
        assert got["metadata"]["uid"] == pod["metadata"]["uid"]


async def test_restart_policy_on_failure_counts_container_restarts() -> None:
    async with env() as e:
        await e.create("rs", backoffLimit=2)
        await e.fake.patch(
            "jobs", "rs", {"spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}}, NS
        )
        await e.sync("rs")
        (p,) = e.pods()
        status = {
            "phase": "Running",
            "containerStatuses": [{"name": "c", "restartCount": 2, "state": {"running": {}}}],
        }
        await e.fake.patch("pods", p["metadata"]["name"], {"status": status}, NS)
        for _ in range(3):
            await e.sync("rs")
        job = await e.job("rs")
        assert e.conditions(job)["Failed"]["reason"] == "BackoffLimitExceeded"
        assert e.pods() == []  # the restarting pod was deleted (and counted as failed)
        assert job["status"]["failed"] == 1


async def test_pod_replacement_policy_failed_waits_for_terminating_pods() -> None:
    async with env() as e:
        await e.create("prp", completions=1, podReplacementPolicy="Failed")
        await e.sync("prp")
        (p,) = e.pods()
        await e.fake.delete("pods", p["metadata"]["name"], NS)
        await e.sync("prp")
        job = await e.job("prp")
        assert job["status"]["terminating"] == 1
        assert len(e.pods()) == 1  # not replaced while it terminates; not counted failed
        assert job["status"].get("failed", 0) == 0
        await e.finish(p, "Failed")  # the kubelet reports the end
        await e.sync("prp")
        await e.sync("prp")
        job = await e.job("prp")
        assert job["status"]["failed"] == 1 and job["status"]["terminating"] == 0
