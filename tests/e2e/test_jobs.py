"""The Job and CronJob controllers against a real apiserver, scheduler and hollow nodes.

Hollow nodes run pods but never finish them: the tests end a pod the way its kubelet
would, by writing ``phase`` and a terminated container state through ``pods/status``.

The controller manager runs on a clock moved by a file (``--clock-offset-file``): the
tests move its "now" to just after a chosen minute instead of waiting for real minutes
(the CronJob controller notices the jump within 0.2 s and syncs every CronJob). One
test runs a CronJob on the real clock, in a cluster of its own, and waits for a real
minute.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import Managers, PodTracker, until

from cluster import Cluster, start_cluster
from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "jobs"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
KUBECTL = os.environ.get("KUBECTL", "kubectl")
CONTROLLERS = "--controllers=job-controller,cronjob-controller,ttl-after-finished"
FINALIZER = "batch.kubernetes.io/job-tracking"


@pytest.fixture(scope="module")
def jc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "jobs")


@pytest.fixture(scope="module")
def clock_file(jc: Cluster) -> Path:
    path = jc.dir / "clock-offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
async def hollow(jc: Cluster, clock_file: Path) -> AsyncIterator[HollowEnv]:
    async with hollow_env(
        jc,
        NS,
        nodes=3,
        prefix="job-",
        shape=NodeShape(cpu="8", memory="16Gi"),
        manager=(CONTROLLERS, f"--clock-offset-file={clock_file}"),
        watch=[lambda client: PodTracker(client, NS)],
    ) as env:
        yield env


@pytest.fixture(scope="module")
def env(hollow: HollowEnv) -> tuple[ApiClient, PodTracker]:
    return hollow.client, hollow.watchers[0]


@pytest.fixture(scope="module")
def managers(hollow: HollowEnv) -> Managers:
    return hollow.managers


def pod_template(**spec: Any) -> dict[str, Any]:
    return {
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                }
            ],
            **spec,
        }
    }


def job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": pod_template(), **spec},
    }


def pods_of(tracker: PodTracker, uid: str) -> list[dict[str, Any]]:
    """The cached pods controlled by ``uid``, oldest first."""
    out = [
        p
        for p in tracker.informer.list()
        if any(
            r.get("uid") == uid and r.get("controller")
            for r in p["metadata"].get("ownerReferences") or ()
        )
    ]
    return sorted(out, key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))


def running(tracker: PodTracker, uid: str) -> list[dict[str, Any]]:
    return [
        p
        for p in pods_of(tracker, uid)
        if (p.get("status") or {}).get("phase") == "Running"
        and not p["metadata"].get("deletionTimestamp")
    ]


async def finish(client: ApiClient, pod: dict[str, Any], phase: str) -> None:
    """End a running pod as its kubelet would (exit code 0 or 1)."""
    when = rfc3339()
    code = 0 if phase == "Succeeded" else 1
    status = {
        "phase": phase,
        "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": when}],
        "containerStatuses": [
            {
                "name": "c",
                "image": "busybox",
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": when,
                        "finishedAt": when,
                    }
                },
            }
        ],
    }
    await client.patch(
        "pods", pod["metadata"]["name"], {"status": status}, NS, subresource="status"
    )


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def job_has(client: ApiClient, name: str, type_: str) -> Any:
    async def check() -> dict[str, Any] | None:
        obj = await client.get("jobs", name, NS)
        return obj if condition(obj, type_) else None

    return check


def kubectl_wait(jc: Cluster, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(jc.kubeconfig(0)), "-n", NS, "wait", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def waited(proc: subprocess.Popen[str], timeout: float = 40) -> str:
    out, _ = await asyncio.to_thread(proc.communicate, timeout=timeout)
    assert proc.returncode == 0, out
    return out


# -- Jobs ------------------------------------------------------------------------------


async def test_completions_with_parallelism_complete_and_kubectl_waits(
    jc: Cluster, env: tuple[ApiClient, PodTracker]
) -> None:
    client, tracker = env
    created = await client.create("jobs", job("pi", completions=3, parallelism=2), NS)
    uid = created["metadata"]["uid"]
    waiter = kubectl_wait(jc, "--for=condition=complete", "job/pi", "--timeout=60s")
    try:
        for _ in range(3):
            pod = (await until(lambda: running(tracker, uid), timeout=30, what="a running pod"))[0]
            assert len(running(tracker, uid)) <= 2
            await finish(client, pod, "Succeeded")
            await until(
                lambda p=pod: p["metadata"]["uid"] not in tracker.active[uid], what="pod seen done"
            )
        out = await waited(waiter)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert "job.batch/pi condition met" in out
    done = await client.get("jobs", "pi", NS)
    status = done["status"]
    assert status["succeeded"] == 3 and status.get("active", 0) == 0
    assert status["completionTime"] and status["uncountedTerminatedPods"] == {}
    assert condition(done, "SuccessCriteriaMet") is not None
    assert len(tracker.created[uid]) == 3  # never a pod more than needed
    assert tracker.max_active[uid] <= 2
    await until(
        lambda: all(
            FINALIZER not in (p["metadata"].get("finalizers") or []) for p in pods_of(tracker, uid)
        ),
        what="finalizers removed",
    )


async def test_failed_pods_are_retried_after_back_off_then_the_job_fails(
    jc: Cluster, env: tuple[ApiClient, PodTracker]
) -> None:
    client, tracker = env
    created = await client.create("jobs", job("flaky", backoffLimit=1), NS)
    uid = created["metadata"]["uid"]
    first = (await until(lambda: running(tracker, uid), timeout=30, what="first pod"))[0]
    failed_at = time.monotonic()
    await finish(client, first, "Failed")
    second = (
        await until(
            lambda: [
                p for p in running(tracker, uid) if p["metadata"]["uid"] != first["metadata"]["uid"]
            ],
            timeout=40,
            what="the replacement pod",
        )
    )[0]
    # Kubernetes' back-off: 10 s after the failure (timestamps are whole seconds).
    assert time.monotonic() - failed_at >= 8.5
    waiter = kubectl_wait(jc, "--for=condition=failed", "job/flaky", "--timeout=60s")
    try:
        await finish(client, second, "Failed")
        await waited(waiter)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    done = await client.get("jobs", "flaky", NS)
    failed = condition(done, "Failed")
    assert failed is not None and failed["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 2
    assert len(tracker.created[uid]) == 2


async def test_active_deadline_fails_the_job_and_deletes_its_pods(
    env: tuple[ApiClient, PodTracker],
) -> None:
    client, tracker = env
    created = await client.create(
        "jobs", job("slow", parallelism=2, completions=2, activeDeadlineSeconds=2), NS
    )
    uid = created["metadata"]["uid"]
    await until(lambda: len(running(tracker, uid)) == 2, timeout=30, what="two running pods")
    done = await until(job_has(client, "slow", "Failed"), timeout=30, what="Failed")
    assert condition(done, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert done["status"]["failed"] == 2 and done["status"].get("active", 0) == 0
    await until(lambda: pods_of(tracker, uid) == [], timeout=30, what="pods deleted")


async def test_indexed_job(env: tuple[ApiClient, PodTracker]) -> None:
    client, tracker = env
    created = await client.create(
        "jobs", job("idx", completions=3, parallelism=3, completionMode="Indexed"), NS
    )
    uid = created["metadata"]["uid"]
    pods = await until(
        lambda: len(running(tracker, uid)) == 3 and running(tracker, uid),
        timeout=30,
        what="three pods",
    )
    index_key = "batch.kubernetes.io/job-completion-index"
    indexes = sorted(p["metadata"]["annotations"][index_key] for p in pods)
    assert indexes == ["0", "1", "2"]
    for p in pods:
        ix = p["metadata"]["annotations"][index_key]
        assert p["metadata"]["name"].startswith(f"idx-{ix}-")
        assert p["spec"]["hostname"] == f"idx-{ix}"
        env_vars = {e["name"]: e for e in p["spec"]["containers"][0]["env"]}
        assert env_vars["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            f"metadata.annotations['{index_key}']"
        )
    by_ix = {p["metadata"]["annotations"][index_key]: p for p in pods}
    await finish(client, by_ix["2"], "Succeeded")
    await until(
        lambda: _status_field(client, "idx", "completedIndexes", "2"), what="completedIndexes 2"
    )
    await finish(client, by_ix["0"], "Succeeded")
    await finish(client, by_ix["1"], "Succeeded")
    done = await until(job_has(client, "idx", "Complete"), timeout=30, what="Complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3


async def _status_field(client: ApiClient, name: str, key: str, want: Any) -> bool:
    return ((await client.get("jobs", name, NS)).get("status") or {}).get(key) == want


async def test_suspend_and_resume(env: tuple[ApiClient, PodTracker]) -> None:
    client, tracker = env
    created = await client.create(
        "jobs", job("sus", parallelism=2, completions=4, suspend=True), NS
    )
    uid = created["metadata"]["uid"]
    suspended = await until(job_has(client, "sus", "Suspended"), what="Suspended")
    assert "startTime" not in suspended["status"] and pods_of(tracker, uid) == []
    await client.patch("jobs", "sus", {"spec": {"suspend": False}}, NS)
    await until(lambda: len(running(tracker, uid)) == 2, timeout=30, what="pods on resume")
    resumed = await client.get("jobs", "sus", NS)
    assert condition(resumed, "Suspended") is None and resumed["status"]["startTime"]
    await client.patch("jobs", "sus", {"spec": {"suspend": True}}, NS)
    await until(lambda: pods_of(tracker, uid) == [], timeout=30, what="pods deleted on suspend")
    again = await until(job_has(client, "sus", "Suspended"), what="Suspended again")
    assert again["status"].get("active", 0) == 0 and again["status"].get("failed", 0) == 0


async def test_ttl_after_finished_deletes_the_job(env: tuple[ApiClient, PodTracker]) -> None:
    client, tracker = env
    created = await client.create("jobs", job("ttl", ttlSecondsAfterFinished=1), NS)
    uid = created["metadata"]["uid"]
    pod = (await until(lambda: running(tracker, uid), timeout=30, what="pod"))[0]
    await finish(client, pod, "Succeeded")

    async def deleted() -> dict[str, Any] | None:
        obj = await client.get("jobs", "ttl", NS)
        return obj if obj["metadata"].get("deletionTimestamp") else None

    # The ttl-after-finished controller deletes it in the foreground, as Kubernetes does.
    gone = await until(deleted, timeout=30, what="the Job deleted by its TTL")
    assert "foregroundDeletion" in gone["metadata"]["finalizers"]
    # No garbage collector runs here to finish that: the Job stays Terminating and the
    # pod stays, but the pod's tracking finalizer no longer holds it.
    await until(
        lambda: all(not p["metadata"].get("finalizers") for p in pods_of(tracker, uid)),
        what="the finalizer removed",
    )


# -- CronJobs --------------------------------------------------------------------------


def set_clock(path: Path, fake_now: float) -> None:
    """Move the CronJob controller's "now" (a jump it notices within 0.2 s)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(fake_now - time.time()))
    tmp.replace(path)


def fake_now(path: Path) -> float:
    return time.time() + float(path.read_text() or 0)


def next_minute(path: Path, skip: int = 1) -> float:
    """A minute boundary ``skip`` minutes after the current fake minute."""
    return (int(fake_now(path)) // 60 + skip) * 60


def cronjob(name: str, schedule: str = "* * * * *", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": schedule,
            "jobTemplate": {
                "metadata": {"labels": {"cron": name}},
                "spec": {"template": pod_template()},
            },
            **spec,
        },
    }


async def cron_jobs(client: ApiClient, uid: str) -> list[str]:
    """Names of the Jobs controlled by the CronJob ``uid``, sorted."""
    items, _ = await client.list_all("jobs", NS)
    return sorted(
        j["metadata"]["name"]
        for j in items
        if any(r.get("uid") == uid for r in j["metadata"].get("ownerReferences") or ())
        and not j["metadata"].get("deletionTimestamp")
    )


def jobs_are(client: ApiClient, uid: str, want: list[str]) -> Any:
    async def check() -> bool:
        return await cron_jobs(client, uid) == want

    return check


async def start_cronjobs(
    client: ApiClient, clock_file: Path, *objs: dict[str, Any]
) -> tuple[list[str], float]:
    """Create CronJobs suspended, move the clock to just after a minute, then resume them:
    each runs once for that minute. (The fake clock is ahead of the API server's, so a
    CronJob created running would at once catch up with a time before its creation.)
    Returns the uids and the minute."""
    uids = []
    for obj in objs:
        obj["spec"]["suspend"] = True
        uids.append((await client.create("cronjobs", obj, NS))["metadata"]["uid"])
    minute = next_minute(clock_file, 2)
    set_clock(clock_file, minute + 1)
    for obj in objs:
        await client.patch("cronjobs", obj["metadata"]["name"], {"spec": {"suspend": False}}, NS)
    return uids, minute


async def test_cronjob_runs_on_schedule_and_keeps_history(
    env: tuple[ApiClient, PodTracker], clock_file: Path
) -> None:
    client, tracker = env
    (uid,), minute = await start_cronjobs(
        client, clock_file, cronjob("tick", successfulJobsHistoryLimit=1)
    )
    names = []
    for step in range(2):
        if step:
            minute = next_minute(clock_file, 2)
            set_clock(clock_file, minute + 1)
        name = f"tick-{int(minute) // 60}"
        names.append(name)
        await until(lambda n=name: _has_job(client, uid, n), timeout=20, what=f"job {name}")
        # The Job is created before the CronJob's status records it: wait for both.
        await until(
            lambda m=minute: _cron_status(
                client, "tick", lambda s: s.get("lastScheduleTime") == rfc3339(m)
            ),
            timeout=20,
            what="lastScheduleTime",
        )
        j = await client.get("jobs", name, NS)
        assert j["metadata"]["labels"]["cron"] == "tick"
        pod = (
            await until(
                lambda j=j: running(tracker, j["metadata"]["uid"]), timeout=30, what="its pod"
            )
        )[0]
        await finish(client, pod, "Succeeded")
        await until(job_has(client, name, "Complete"), timeout=30, what="Complete")
        await until(
            lambda: _cron_status(
                client, "tick", lambda s: not s.get("active") and s.get("lastSuccessfulTime")
            ),
            what="lastSuccessfulTime",
        )
    # successfulJobsHistoryLimit 1: the first Job is deleted.
    await until(jobs_are(client, uid, [names[1]]), timeout=20, what="history limit")
    await client.delete("cronjobs", "tick", NS)


async def _has_job(client: ApiClient, uid: str, name: str) -> bool:
    return name in await cron_jobs(client, uid)


async def _cron_status(client: ApiClient, name: str, pred: Any) -> bool:
    return bool(pred((await client.get("cronjobs", name, NS)).get("status") or {}))


async def _event(client: ApiClient, name: str, reason: str) -> bool:
    items, _ = await client.list_all("events", NS)
    return any(e.get("reason") == reason and e["involvedObject"].get("name") == name for e in items)


async def test_cronjob_forbid_then_replace(
    env: tuple[ApiClient, PodTracker], clock_file: Path
) -> None:
    client, _ = env
    (uid,), minute = await start_cronjobs(
        client, clock_file, cronjob("solo", concurrencyPolicy="Forbid")
    )
    first = f"solo-{int(minute) // 60}"
    await until(jobs_are(client, uid, [first]), timeout=20, what="the first job")
    set_clock(clock_file, minute + 61)  # the first is still running: Forbid skips
    await until(
        lambda: _event(client, "solo", "JobAlreadyActive"), timeout=20, what="JobAlreadyActive"
    )
    assert await cron_jobs(client, uid) == [first]
    # Replace: the time still due (minute + 60) starts at once, in place of the first.
    await client.patch("cronjobs", "solo", {"spec": {"concurrencyPolicy": "Replace"}}, NS)
    second = f"solo-{int(minute) // 60 + 1}"
    await until(jobs_are(client, uid, [second]), timeout=20, what="the replacement")
    status = (await client.get("cronjobs", "solo", NS))["status"]
    assert [a["name"] for a in status["active"]] == [second]
    await client.delete("cronjobs", "solo", NS)


async def test_restart_creates_no_duplicates_and_one_catch_up_run(
    env: tuple[ApiClient, PodTracker], managers: Managers, clock_file: Path
) -> None:
    client, tracker = env
    run = await client.create("jobs", job("run", completions=3, parallelism=2), NS)
    run_uid = run["metadata"]["uid"]
    (every, strict), minute = await start_cronjobs(
        client, clock_file, cronjob("every"), cronjob("strict", startingDeadlineSeconds=15)
    )
    m = int(minute) // 60
    await until(jobs_are(client, every, [f"every-{m}"]), timeout=20, what="every's job")
    await until(jobs_are(client, strict, [f"strict-{m}"]), timeout=20, what="strict's job")
    pods = await until(
        lambda: len(running(tracker, run_uid)) == 2 and running(tracker, run_uid),
        timeout=30,
        what="the Job's two pods",
    )

    managers.procs[-1].kill(signal.SIGKILL)
    # While no controller runs: a pod ends, and five scheduled minutes pass.
    await finish(client, pods[0], "Succeeded")
    set_clock(clock_file, minute + 5 * 60 + 20)
    managers.start(CONTROLLERS, f"--clock-offset-file={clock_file}")

    # One catch-up run, for the most recent time (not five of them).
    await until(
        jobs_are(client, every, [f"every-{m}", f"every-{m + 5}"]),
        timeout=30,
        what="one catch-up run",
    )
    # The Job: the pod that ended meanwhile is counted once and replaced once.
    done_uid = pods[0]["metadata"]["uid"]
    await until(lambda: done_uid not in tracker.active[run_uid], what="the ended pod seen")
    await until(lambda: len(running(tracker, run_uid)) == 2, timeout=30, what="its replacement")
    for p in running(tracker, run_uid):
        await finish(client, p, "Succeeded")
    done = await until(job_has(client, "run", "Complete"), timeout=30, what="run Complete")
    assert done["status"]["succeeded"] == 3
    assert len(tracker.created[run_uid]) == 3
    # Long since synced by the new leader: still no duplicate, and no run for the
    # CronJob whose starting deadline (15 s) the most recent time (20 s ago) is past.
    assert await cron_jobs(client, every) == [f"every-{m}", f"every-{m + 5}"]
    assert await cron_jobs(client, strict) == [f"strict-{m}"]
    for name in ("every", "strict"):
        await client.delete("cronjobs", name, NS)


async def _controller_manager_leads(client: ApiClient) -> bool:
    try:
        lease = await client.get(
            "leases.coordination.k8s.io", "kube-controller-manager", "kube-system"
        )
    except ApiError:
        return False
    return bool((lease.get("spec") or {}).get("holderIdentity"))


async def test_cronjob_runs_at_the_real_minute(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """No offset file: a ``*/1`` CronJob's Job comes at the next real minute boundary."""
    c = start_cluster(tmp_path_factory.mktemp("jobs-real-clock"))
    m = Managers(c)
    try:
        # The real clock, even where the environment would name an offset file.
        m.start("--controllers=cronjob-controller", env={"SKIFF_CLOCK_OFFSET_FILE": ""})
        async with ApiClient(c.url) as client:
            await client.create("namespaces", {"metadata": {"name": NS}})
            await until(lambda: _controller_manager_leads(client), timeout=30, what="a leader")
            await asyncio.sleep(1)  # its informers sync
            if time.time() % 60 > 55:  # leave the controller a few seconds before the minute
                await asyncio.sleep(61 - time.time() % 60)
            cj = await client.create("cronjobs", cronjob("minutely", "*/1 * * * *"), NS)
            uid = cj["metadata"]["uid"]
            created = datetime.fromisoformat(cj["metadata"]["creationTimestamp"]).timestamp()
            boundary = (int(created) // 60 + 1) * 60
            assert boundary - time.time() < 62

            async def first_job() -> dict[str, Any] | None:
                items, _ = await client.list_all("jobs", NS)
                return next((j for j in items if _controlled_by(j, uid)), None)

            job = await until(first_job, timeout=75, what="the CronJob's Job")
            seen = time.time()
        meta = job["metadata"]
        scheduled = datetime.fromisoformat(meta["annotations"][SCHEDULED_TIMESTAMP]).timestamp()
        assert scheduled % 60 == 0, meta["annotations"]
        assert scheduled == boundary
        assert meta["name"] == f"minutely-{boundary // 60}"
        job_created = datetime.fromisoformat(meta["creationTimestamp"]).timestamp()
        # Created at the boundary (timestamps are whole seconds), not early, not late.
        assert scheduled <= job_created <= scheduled + 3, (scheduled, job_created)
        assert seen - scheduled < 5, (scheduled, seen)
    finally:
        m.stop()
        c.stop()


def _controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(
        r.get("uid") == uid and r.get("controller")
        for r in obj["metadata"].get("ownerReferences") or ()
    )


async def test_invalid_schedule_is_refused(env: tuple[ApiClient, PodTracker]) -> None:
    client, _ = env
    for schedule, why in (
        ("61 * * * *", "end of range (61) above maximum (59): 61"),
        ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
        ("TZ=UTC * * * * *", "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ):
        with pytest.raises(ApiError) as e:
            await client.create("cronjobs", cronjob("bad", schedule=schedule), NS)
        assert e.value.code == 422, e.value
        assert why in e.value.message, e.value.message
    bad_zone = cronjob("bad", schedule="* * * * *")
    bad_zone["spec"]["timeZone"] = "Mars/Olympus"
    with pytest.raises(ApiError) as e:
        await client.create("cronjobs", bad_zone, NS)
    assert e.value.code == 422 and "spec.timeZone" in e.value.message
