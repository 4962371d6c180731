"""Unit tests of the watch cache's groups (no etcd or NATS: events are applied directly)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver import watchcache as wc
from skiff.apiserver.watchcache import Event, WatchCache

PODS = REGISTRY.by_path("", "v1", "pods")


class _NoNats:
    def jetstream(self) -> None:
        return None


def _cache() -> WatchCache:
    return WatchCache(None, _NoNats())  # type: ignore[arg-type]


def _pod(name: str, rev: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(rev),
            "labels": labels or {},
        }
    }


def _apply(cache: WatchCache, etype: str, obj: dict[str, Any], rev: int) -> None:
    key = PODS.etcd_key("ns", obj["metadata"]["name"])
    cache.of(PODS).apply(Event(etype, obj, rev, key))
    cache.revision = rev


def _app(obj: dict[str, Any]) -> bool:
    return obj["metadata"].get("labels", {}).get("app") == "web"


async def test_one_render_per_event_for_a_group() -> None:
    cache = _cache()
    rendered: list[int] = []

    def render(e: Event) -> tuple[str, str]:
        rendered.append(e.revision)
        return (e.type, e.obj["metadata"]["name"])

    watches = [cache.watch(PODS, 0, ("k",), _app, render) for _ in range(50)]
    _apply(cache, "ADDED", _pod("a", 1, {"app": "web"}), 1)
    _apply(cache, "ADDED", _pod("b", 2), 2)  # filtered out for the group
    for w in watches:
        assert await w.next(1) == [("ADDED", "a")]
    assert rendered == [1]


async def test_selector_transitions() -> None:
    cache = _cache()
    w = cache.watch(PODS, 0, ("k",), _app, lambda e: (e.type, e.revision))
    _apply(cache, "ADDED", _pod("a", 1), 1)
    _apply(cache, "MODIFIED", _pod("a", 2, {"app": "web"}), 2)
    _apply(cache, "MODIFIED", _pod("a", 3, {"app": "web"}), 3)
    _apply(cache, "MODIFIED", _pod("a", 4), 4)
    assert await w.next(1) == [("ADDED", 2), ("MODIFIED", 3), ("DELETED", 4)]


async def test_backlog_and_too_old() -> None:
    cache = _cache()
    for i in range(1, 6):
        _apply(cache, "ADDED", _pod(f"p{i}", i, {"app": "web"}), i)
    w = cache.watch(PODS, 3, ("k",), _app, lambda e: e.revision)
    assert await w.next(1) == [4, 5]
    cache.of(PODS).start_revision = 3
    with pytest.raises(ApiError) as e:
        cache.watch(PODS, 2, ("k",), _app, lambda e: e.revision)
    assert e.value.code == 410


async def test_timeout_returns_empty_and_close_returns_none() -> None:
    cache = _cache()
    w = cache.watch(PODS, 0, ("k",), _app, lambda e: e.revision)
    assert await w.next(0.05) == []
    assert w.caught_up()
    asyncio.get_running_loop().call_later(0.05, w.close)
    assert await w.next(5) is None


async def test_slow_watch_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wc, "MAX_LAG", 10)
    cache = _cache()
    slow = cache.watch(PODS, 0, ("k",), lambda o: True, lambda e: e.revision)
    fast = cache.watch(PODS, 0, ("k",), lambda o: True, lambda e: e.revision)
    group = fast.group
    for i in range(1, 30):
        _apply(cache, "ADDED", _pod(f"p{i}", i), i)
        fast.take()
    group.trim()
    assert slow.closed and not fast.closed
    assert len(group.items) < 10
    assert await slow.next(1) is None


async def test_follow_feeds_the_cache_from_a_storage_backend() -> None:
    from skiff.apiserver.storage.memory import MemoryBackend

    backend = MemoryBackend()
    key = PODS.etcd_key("ns", "a")
    await backend.create(key, b'{"metadata": {"name": "a", "namespace": "ns"}}')
    cache = WatchCache(backend, None)
    feed = asyncio.create_task(cache.follow(backend))
    try:
        await cache.ready.wait()
        assert [o["metadata"]["name"] for o in cache.list(PODS, "ns")] == ["a"]
        w = cache.watch(PODS, cache.revision, ("k",), lambda o: True, lambda e: e.type)
        rev = await backend.update(key, b'{"metadata": {"name": "a", "x": 1}}', cache.revision)
        await backend.create("/skiff/elsewhere", b"{}")  # not a resource: revision only
        await backend.delete(key, rev)
        other = await backend.create(PODS.etcd_key("ns", "b"), b'{"metadata": {"name": "b"}}')
        assert await cache.wait_for(other, 1)
        assert await w.next(1) == ["MODIFIED", "DELETED", "ADDED"]
        assert cache.get(PODS, "ns", "a") is None
        assert cache.get(PODS, "ns", "b") == {
            "metadata": {"name": "b", "resourceVersion": str(other)}
        }
    finally:
        feed.cancel()


async def test_a_failing_group_is_closed_and_the_others_go_on() -> None:
    """A group whose rendering raises has its watches closed (clients watch again); the
    other groups and the cache itself carry on."""
    cache = _cache()

    def broken(e: Event) -> Any:
        raise ValueError("cannot render")

    bad = cache.watch(PODS, 0, ("bad",), _app, broken)
    good = cache.watch(PODS, 0, ("good",), _app, lambda e: e.obj["metadata"]["name"])
    _apply(cache, "ADDED", _pod("a", 1, {"app": "web"}), 1)
    assert await good.next(1) == ["a"]
    assert await bad.next(1) is None  # closed
    _apply(cache, "ADDED", _pod("b", 2, {"app": "web"}), 2)
    assert await good.next(1) == ["b"]
    assert ("bad",) not in cache.of(PODS).groups
