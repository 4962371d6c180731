"""The controller runtime: expectations, slow-start batches, owner indexes, workers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from skiff.api.errors import ApiError, Reason
from skiff.controller.batch import batch_sizes, slow_start_batch
from skiff.controller.controller import (
    Controller,
    ControllerContext,
    Reconciler,
    TerminalError,
)
from skiff.controller.expectations import Expectations
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controller.owners import controller_index, controller_ref


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_expectations_creations() -> None:
    e = Expectations()
    assert e.satisfied("ns/a")  # never expected anything: act
    e.expect_creations("ns/a", 3)
    assert not e.satisfied("ns/a")
    for _ in range(2):
        e.creation_observed("ns/a")
    assert not e.satisfied("ns/a") and e.pending("ns/a") == (1, 0)
    e.creation_observed("ns/a")
    assert e.satisfied("ns/a")
    e.creation_observed("ns/a")  # an extra add event: stays satisfied
    assert e.satisfied("ns/a")
    e.expect_creations("ns/a", 2)
    e.lower_creations("ns/a", 2)  # both failed: nothing to wait for
    assert e.satisfied("ns/a")


def test_expectations_deletions_count_once_per_object() -> None:
    e = Expectations()
    e.expect_deletions("ns/a", ["ns/p1", "ns/p2"])
    e.deletion_observed("ns/a", "ns/p1")
    e.deletion_observed("ns/a", "ns/p1")  # terminating, then gone: one deletion
    e.deletion_observed("ns/a", "ns/other")  # not one we deleted
    assert not e.satisfied("ns/a") and e.pending("ns/a") == (0, 1)
    e.deletion_observed("ns/a", "ns/p2")
    assert e.satisfied("ns/a")


def test_expectations_expire_and_delete() -> None:
    clock = Clock()
    e = Expectations(timeout=300, clock=clock)
    e.expect_creations("ns/a", 5)
    clock.t += 299
    assert not e.satisfied("ns/a")
    clock.t += 2
    assert e.satisfied("ns/a")  # a lost event must not wedge the controller
    e.expect_creations("ns/b", 1)
    e.delete("ns/b")
    assert e.satisfied("ns/b") and e.pending("ns/b") == (0, 0)


def test_batch_sizes() -> None:
    assert batch_sizes(0) == []
    assert batch_sizes(1) == [1]
    assert batch_sizes(10) == [1, 2, 4, 3]
    assert batch_sizes(30) == [1, 2, 4, 8, 15]
    assert sum(batch_sizes(500)) == 500
    assert batch_sizes(5, initial=4) == [4, 1]


async def test_slow_start_batch_stops_after_a_failing_batch() -> None:
    calls = 0

    async def fn() -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("boom")

    successes, error = await slow_start_batch(30, 1, fn)
    assert calls == 3  # batches of 1 and 2; the second failed
    assert successes == 2
    assert isinstance(error, RuntimeError)

    calls = 0
    successes, error = await slow_start_batch(7, 1, lambda: asyncio.sleep(0))
    assert (successes, error) == (7, None)


def test_controller_ref_and_index() -> None:
    pod = {
        "metadata": {
            "namespace": "ns",
            "name": "p",
            "ownerReferences": [
                {"kind": "Foo", "name": "f", "uid": "u1"},
                {"kind": "ReplicaSet", "name": "r", "uid": "u2", "controller": True},
            ],
        }
    }
    assert controller_ref(pod) == pod["metadata"]["ownerReferences"][1]
    assert controller_index(pod) == ["uid:u2"]
    orphan = {"metadata": {"namespace": "ns", "name": "o"}}
    assert controller_ref(orphan) is None
    assert controller_index(orphan) == ["orphan:ns"]


class Recording(Controller):
    name = "recording"

    def __init__(self, ctx: ControllerContext, outcomes: dict[str, object]) -> None:
        super().__init__(ctx, workers=2)
        self.outcomes = outcomes
        self.seen: list[str] = []
        self.running: set[str] = set()
        self.overlap = False

    async def reconcile(self, key: str) -> float | None:
        if key in self.running:
            self.overlap = True
        self.running.add(key)
        try:
            self.seen.append(key)
            await asyncio.sleep(0.01)
            out = self.outcomes.get(key)
            if isinstance(out, BaseException):
                raise out
            return out  # type: ignore[return-value]
        finally:
            self.running.discard(key)


async def until(check, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def test_worker_outcomes() -> None:
    fake = FakeApi()
    ctx = ControllerContext(fake, SharedInformers(fake))  # type: ignore[arg-type]
    c = Recording(
        ctx,
        {
            "ns/terminal": TerminalError("bad spec"),
            "ns/retry": ApiError(500, Reason.INTERNAL_ERROR, "try again"),
            "ns/later": 0.05,
        },
    )
    task = asyncio.create_task(c.run())
    try:
        for k in ("ns/ok", "ns/terminal", "ns/retry", "ns/later"):
            c.queue.add(k)
        c.queue.add("ns/ok")  # de-duplicated or re-queued, never two workers at once
        await until(
            lambda: c.seen.count("ns/retry") > 1 and c.seen.count("ns/later") >= 2,
            "a retry after back-off and a requeue after 50 ms",
        )
        assert not c.overlap
        assert c.seen.count("ns/terminal") == 1  # not retried
        assert c.queue.num_requeues("ns/terminal") == 0
        assert c.seen.count("ns/retry") > 1  # retried with back-off
        assert c.seen.count("ns/later") >= 2  # requeued after 50 ms
        assert c.queue.num_requeues("ns/ok") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Bare(Reconciler):
    """A reconciler without a ControllerContext, with its own span and retry log."""

    name = "bare"

    def __init__(self, outcomes: dict[str, object]) -> None:
        super().__init__(workers=2)
        self.outcomes = outcomes
        self.seen: list[str] = []
        self.spans: list[str] = []
        self.retried: list[tuple[str, str]] = []

    async def reconcile(self, key: str) -> float | None:
        self.seen.append(key)
        out = self.outcomes.get(key)
        if isinstance(out, BaseException):
            raise out
        return out  # type: ignore[return-value]

    @contextlib.contextmanager
    def reconcile_span(self, key: str) -> Iterator[None]:
        self.spans.append(key)
        yield

    def log_retry(self, key: str, error: Exception) -> None:
        self.retried.append((key, type(error).__name__))


async def test_reconciler_without_a_controller_context() -> None:
    r = Bare({"a": ValueError("flaky"), "b": TerminalError("bad"), "c": 0.05})
    assert r.queue.name == "bare" and r.workers == 2
    task = asyncio.create_task(r.run())  # no informers: the workers start at once
    try:
        for k in ("a", "b", "c", "d"):
            r.queue.add(k)
        await until(
            lambda: r.seen.count("a") > 1 and r.seen.count("c") >= 2 and "d" in r.seen,
            "retries, a requeue and a plain success",
        )
        assert r.spans.count("a") == r.seen.count("a") > 1  # hooks around every reconcile
        assert ("a", "ValueError") in r.retried and r.queue.num_requeues("a") > 1
        assert r.seen.count("b") == 1 and ("b", "TerminalError") not in r.retried
        assert r.seen.count("c") >= 2  # requeued after 50 ms
        assert r.seen.count("d") == 1  # None: done until added again
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
