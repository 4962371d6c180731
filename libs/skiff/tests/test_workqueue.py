"""Work queue semantics (client-go's): de-duplication, one worker per key, back-off."""

from __future__ import annotations

import asyncio
import time

import pytest

from skiff.client.workqueue import ShutDown, WorkQueue


async def test_dedup_and_order() -> None:
    q: WorkQueue[str] = WorkQueue()
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]


async def test_key_added_while_processing_comes_back_after_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    k = await q.get()
    q.add("a")  # while processing: must not be handed to another worker now
    assert len(q) == 0
    q.done(k)
    assert len(q) == 1 and await q.get() == "a"


async def test_add_after_and_rate_limited() -> None:
    q: WorkQueue[str] = WorkQueue()
    t0 = time.monotonic()
    q.add_after("later", 0.1)
    assert await asyncio.wait_for(q.get(), 2) == "later"
    assert time.monotonic() - t0 >= 0.09
    q.done("later")
    for _ in range(4):
        q.add_rate_limited("x")
    assert q.num_requeues("x") == 4
    q.forget("x")
    assert q.num_requeues("x") == 0


async def test_waiting_workers_wake_and_shutdown() -> None:
    q: WorkQueue[int] = WorkQueue()
    got: list[int] = []

    async def worker() -> None:
        try:
            while True:
                k = await q.get()
                got.append(k)
                q.done(k)
        except ShutDown:
            return

    workers = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0.01)
    for i in range(10):
        q.add(i)
    await asyncio.sleep(0.05)
    q.shut_down()
    await asyncio.wait_for(asyncio.gather(*workers), 2)
    assert sorted(got) == list(range(10))
    with pytest.raises(ShutDown):
        await q.get()
