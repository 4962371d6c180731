"""Leader election on an in-memory Lease, with short timings: one leader at a time, a
clean stop hands over at once, a crashed leader's lease is taken only after it expired as
seen locally, and a leader that cannot renew stops its work by the renew deadline. The
real apiserver's side is in ``tests/e2e/test_leaderelection.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from skiff.api.errors import ApiError, Reason
from skiff.client.leaderelection import LEASES, LeaderElector
from skiff.controller.fake import FakeApi

TIMINGS = {"lease_duration": 1.0, "renew_deadline": 0.3, "retry_period": 0.05}


def elector(api: Any, identity: str) -> LeaderElector:
    return LeaderElector(api, "kube-system", "skiff-test", identity=identity, **TIMINGS)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


class Work:
    """The work a leader runs: records that it is leading until cancelled."""

    def __init__(self) -> None:
        self.running = False
        self.stopped = asyncio.Event()

    async def __call__(self) -> None:
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False
            self.stopped.set()


async def lease(api: FakeApi) -> dict[str, Any]:
    return (await api.get(LEASES, "skiff-test", "kube-system"))["spec"]


async def test_one_leader_and_a_clean_handover() -> None:
    api = FakeApi()
    a, b = elector(api, "a"), elector(api, "b")
    work_a, work_b = Work(), Work()
    task_a = asyncio.create_task(a.run(work_a))
    await until(lambda: work_a.running)
    task_b = asyncio.create_task(b.run(work_b))
    await until(lambda: b.observed_holder == "a")
    await asyncio.sleep(0.2)  # several of b's tries
    assert a.is_leader and not b.is_leader and not work_b.running
    spec = await lease(api)
    assert spec["holderIdentity"] == "a" and spec["leaseTransitions"] == 0
    assert spec["leaseDurationSeconds"] == 1

    # A clean stop releases the lease: b takes it at its next try, not after expiry.
    started = time.monotonic()
    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    assert not work_a.running and not a.is_leader
    await until(lambda: work_b.running)
    assert time.monotonic() - started < 0.9  # before the lease (1 s) could expire
    spec = await lease(api)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)


class Partition:
    """Wraps FakeApi; while ``cut`` is set, every call of this client fails (503)."""

    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.cut = False

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.api, name)

        async def call(*args: Any, **kw: Any) -> Any:
            if self.cut:
                raise ApiError(503, Reason.SERVICE_UNAVAILABLE, "connection refused")
            return await fn(*args, **kw)

        return call


async def test_a_leader_that_cannot_renew_stops_before_anyone_takes_over() -> None:
    api = FakeApi()
    a_client = Partition(api)
    a, b = elector(a_client, "a"), elector(api, "b")
    work_a, work_b = Work(), Work()
    task_a = asyncio.create_task(a.run(work_a))
    await until(lambda: work_a.running)
    task_b = asyncio.create_task(b.run(work_b))
    await until(lambda: b.observed_holder == "a")

    cut_at = time.monotonic()
    a_client.cut = True
    await work_a.stopped.wait()
    stopped_after = time.monotonic() - cut_at
    await until(lambda: work_b.running)
    taken_after = time.monotonic() - cut_at
    # a gives up by its renew deadline (0.3 s), before its lease (1 s) expires; b waits
    # for the lease to expire as it saw it (1 s without a renewal): they never overlap.
    assert stopped_after < 0.9
    assert taken_after >= 0.9
    assert stopped_after < taken_after
    assert (await lease(api))["holderIdentity"] == "b"
    for t in (task_a, task_b):
        t.cancel()
    await asyncio.gather(task_a, task_b, return_exceptions=True)


async def test_simultaneous_candidates_elect_exactly_one() -> None:
    api = FakeApi()
    electors = [elector(api, f"c{i}") for i in range(5)]
    works = [Work() for _ in electors]
    tasks = [asyncio.create_task(e.run(w)) for e, w in zip(electors, works, strict=True)]
    try:
        await until(lambda: any(w.running for w in works))
        await asyncio.sleep(0.3)
        assert sum(w.running for w in works) == 1
        assert sum(e.is_leader for e in electors) == 1
        leader = next(e for e in electors if e.is_leader)
        assert (await lease(api))["holderIdentity"] == leader.identity
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_work_that_fails_gives_the_lease_up_and_campaigns_again() -> None:
    api = FakeApi()
    e = elector(api, "a")
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("leader work crashed")
        await asyncio.Event().wait()

    task = asyncio.create_task(e.run(flaky))
    try:
        await until(lambda: runs == 2 and e.is_leader)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert (await lease(api))["holderIdentity"] == ""  # released on the clean stop


def test_health_fails_only_for_a_leader_whose_renewals_stopped() -> None:
    e = LeaderElector(None, "kube-system", "x", lease_duration=10)
    assert e.healthy()  # not leading
    e.is_leader = True
    e._observed_at = time.monotonic()
    assert e.healthy()
    e._observed_at -= 31  # the lease's 10 s and kube's 20 s of tolerance are over
    assert not e.healthy()
