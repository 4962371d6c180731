"""The scheduling queue: priority order, back-off, unschedulable pods moved by events."""

from __future__ import annotations

import asyncio

import pytest

from skiff.scheduler import queue as q
from skiff.scheduler.queue import SchedulingQueue


def _pod(name: str, priority: int = 0, created: str = "2026-01-01T00:00:00Z") -> dict:
    return {
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": created},
        "spec": {"priority": priority},
    }


async def test_priority_then_age() -> None:
    sq = SchedulingQueue()
    sq.add(_pod("old-low", 0, "2026-01-01T00:00:00Z"))
    sq.add(_pod("new-low", 0, "2026-01-01T00:00:05Z"))
    sq.add(_pod("high", 100, "2026-01-01T00:00:09Z"))
    order = [(await sq.pop()).key for _ in range(3)]
    assert order == ["ns/high", "ns/old-low", "ns/new-low"]


async def test_unschedulable_waits_for_an_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "INITIAL_BACKOFF", 0.01)
    sq = SchedulingQueue()
    sq.add(_pod("p"))
    qp = await sq.pop()
    sq.failed(qp, unschedulable=True)
    assert sq.depth()["unschedulable"] == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sq.pop(), 0.1)
    sq.move_all("NodeAdd")
    assert (await asyncio.wait_for(sq.pop(), 1)).key == "ns/p"


async def test_event_during_attempt_is_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "INITIAL_BACKOFF", 0.01)
    sq = SchedulingQueue()
    sq.add(_pod("p"))
    qp = await sq.pop()
    sq.move_all("NodeAdd")  # a node appeared while the attempt ran
    sq.failed(qp, unschedulable=True)
    assert (await asyncio.wait_for(sq.pop(), 1)).key == "ns/p"


async def test_errors_back_off_and_deleted_pods_vanish(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(q, "INITIAL_BACKOFF", 0.05)
    sq = SchedulingQueue()
    sq.add(_pod("a"))
    sq.add(_pod("b", created="2026-01-01T00:00:01Z"))
    a = await sq.pop()
    sq.failed(a, unschedulable=False)
    b = await sq.pop()
    assert b.key == "ns/b"
    sq.done(b)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert (await asyncio.wait_for(sq.pop(), 1)).key == "ns/a"
    assert loop.time() - t0 >= 0.03
    sq.add(_pod("c"))
    sq.delete(_pod("c"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sq.pop(), 0.1)
