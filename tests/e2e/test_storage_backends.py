"""The storage Backend contract, run against the real etcd and the in-memory backend alike,
so that the in-memory one the apiserver's unit tests use behaves as etcd does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cluster import Cluster
from skiff.apiserver.storage import (
    Backend,
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
)
from skiff.apiserver.storage.etcd import EtcdBackend
from skiff.apiserver.storage.memory import MemoryBackend


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(Path(tmp_path_factory.mktemp("backend-etcd")))
    c.start_etcd()
    try:
        yield c
    finally:
        if c.etcd is not None:
            c.etcd.stop()


@pytest.fixture(params=["etcd", "memory"])
async def backend(request: pytest.FixtureRequest, etcd: Cluster) -> AsyncIterator[Backend]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    b = EtcdBackend(etcd.etcd_endpoint)
    await b.connect()
    try:
        yield b
    finally:
        await b.close()


async def test_create_update_delete_and_revisions(backend: Backend, request) -> None:  # type: ignore[no-untyped-def]
    p = f"/t/{request.node.callspec.id}/crud/"
    r1 = await backend.create(p + "a", b"1")
    with pytest.raises(KeyExistsError) as taken:
        await backend.create(p + "a", b"x")
    assert taken.value.key == p + "a"
    r2 = await backend.update(p + "a", b"2", r1)
    assert r2 > r1
    with pytest.raises(ConflictError) as stale:
        await backend.update(p + "a", b"3", r1)
    assert stale.value.current is not None and stale.value.current.mod_revision == r2
    kv = await backend.get(p + "a")
    assert kv is not None and (kv.value, kv.mod_revision, kv.create_revision) == (b"2", r2, r1)
    old = await backend.get(p + "a", revision=r1)
    assert old is not None and old.value == b"1"
    r3 = await backend.delete(p + "a", r2)
    assert await backend.get(p + "a") is None
    assert await backend.current_revision() >= r3


async def test_range_pages_and_past_revisions(backend: Backend, request) -> None:  # type: ignore[no-untyped-def]
    p = f"/t/{request.node.callspec.id}/range/"
    revs = [await backend.create(p + k, k.encode()) for k in ("a", "b", "c")]
    kvs, at, more = await backend.range(p, limit=2)
    assert [kv.key for kv in kvs] == [p + "a", p + "b"] and more and at >= revs[-1]
    kvs, _, more = await backend.range(p, start=p + "b\0", revision=at)
    assert [kv.key for kv in kvs] == [p + "c"] and not more
    await backend.delete(p + "b", revs[1])
    kvs, _, _ = await backend.range(p, revision=revs[2])
    assert [kv.value for kv in kvs] == [b"a", b"b", b"c"]  # as it was
    kvs, _ = await backend.range_all(p)
    assert [kv.key for kv in kvs] == [p + "a", p + "c"]


async def test_write_claiming_is_all_or_nothing(backend: Backend, request) -> None:  # type: ignore[no-untyped-def]
    p = f"/t/{request.node.callspec.id}/claim/"
    await backend.create(p + "ip/1", b"taken")
    with pytest.raises(KeyExistsError) as e:
        await backend.write_claiming(p + "svc", b"s", 0, claim={p + "ip/1": b"svc"})
    assert e.value.key == p + "ip/1"
    assert await backend.get(p + "svc") is None  # nothing written
    rev = await backend.write_claiming(p + "svc", b"s", 0, claim={p + "ip/2": b"svc"})
    rev2 = await backend.write_claiming(p + "svc", None, rev, release=[p + "ip/2"])
    assert rev2 > rev
    assert await backend.get(p + "svc") is None and await backend.get(p + "ip/2") is None


async def _take(events, n: int) -> list:  # type: ignore[no-untyped-def]
    out: list = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(anext(events), 5))
    return out


async def test_watch_replays_then_follows_and_compaction(backend: Backend, request) -> None:  # type: ignore[no-untyped-def]
    p = f"/t/{request.node.callspec.id}/watch/"
    r1 = await backend.create(p + "a", b"1")
    r2 = await backend.update(p + "a", b"2", r1)
    events = backend.watch(p, r1)
    seen = await _take(events, 2)  # replayed (etcd may batch them; batches are no contract)
    assert [(e.type, e.value, e.revision, e.created) for e in seen] == [
        (EventType.PUT, b"1", r1, True),
        (EventType.PUT, b"2", r2, False),
    ]
    r3 = await backend.delete(p + "a", r2)
    seen = await _take(events, 1)  # followed
    assert [(e.type, e.value, e.revision) for e in seen] == [(EventType.DELETE, b"2", r3)]
    await events.aclose()
    await backend.compact(r3)
    with pytest.raises(CompactedError):
        await anext(backend.watch(p, r1))
    with pytest.raises(CompactedError):
        await backend.get(p + "a", revision=r1)


async def test_memory_leases_expire_with_their_keys() -> None:
    """etcd's lease expiry takes seconds; the in-memory backend follows its clock."""
    clock = Clock()
    b = MemoryBackend(clock)
    lease = await b.grant_lease(15)
    await b.create("/leader", b"me", lease=lease)
    events = b.watch("/leader", 0)
    assert (await anext(events))[0].type is EventType.PUT
    clock.t += 10
    assert await b.refresh_lease(lease) == 15
    clock.t += 14
    assert await b.get("/leader") is not None
    clock.t += 2
    assert await b.get("/leader") is None  # expired: the key went with it
    assert (await anext(events))[0].type is EventType.DELETE
    assert await b.refresh_lease(lease) <= 0
    other = await b.grant_lease(15)
    await b.create("/leader", b"you", lease=other)
    await b.revoke_lease(other)
    assert await b.get("/leader") is None


async def test_etcd_leases(backend: Backend) -> None:
    lease = await backend.grant_lease(30)
    key = f"/t/lease/{lease}"
    await backend.create(key, b"x", lease=lease)
    assert await backend.refresh_lease(lease) > 0
    await backend.revoke_lease(lease)
    assert await backend.get(key) is None
