"""An in-memory :class:`~.interface.Backend` with etcd's semantics, for fast unit tests.

One global revision counter; every write commits at the next revision, as etcd's do.
Each key keeps its create and mod revisions; the history of changes is kept until
:meth:`MemoryBackend.compact`, so reads at past revisions and watches from a past
revision work (and fail with :class:`~.interface.CompactedError` once compacted). Leases
expire on the injected clock, taking their keys with them. Not for production and not a
substitute for etcd in the tests that claim a feature works.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from .interface import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    StorageError,
    WatchEvent,
)


@dataclass(slots=True)
class _Lease:
    ttl: int
    expires: float
    keys: set[str] = field(default_factory=set)


class MemoryBackend:
    """Keys, revisions, history, watches and leases in one process (see the module doc)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.revision = 1  # etcd starts at 1 as well
        self.compacted = 0
        self._data: dict[str, KeyValue] = {}
        self._keys: list[str] = []  # sorted, for ranges
        self._history: list[WatchEvent] = []
        self._leases: dict[int, _Lease] = {}
        self._lease_ids = itertools.count(1)
        self._watchers: list[tuple[str, asyncio.Queue[list[WatchEvent] | None]]] = []
        self.closed = False

    # -- reads -----------------------------------------------------------------------

    def _at(self, key: str, revision: int) -> KeyValue | None:
        """The value of ``key`` as of ``revision`` (0: now), from the history."""
        self._expire()
        if revision == 0 or revision >= self.revision:
            return self._data.get(key)
        if revision < self.compacted:
            raise CompactedError(self.compacted)
        found: KeyValue | None = None
        create = 0
        for ev in self._history:
            if ev.revision > revision:
                break
            if ev.key != key:
                continue
            if ev.type is EventType.DELETE:
                found, create = None, 0
            else:
                create = ev.revision if ev.created or not create else create
                found = KeyValue(key, ev.value, ev.revision, create)
        return found

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self._at(key, revision)

    async def range(
        self, prefix: str, *, start: str | None = None, revision: int = 0, limit: int = 0
    ) -> tuple[list[KeyValue], int, bool]:
        self._expire()
        at = revision or self.revision
        if revision and revision < self.compacted:
            raise CompactedError(self.compacted)
        if revision and revision < self.revision:
            keys = sorted({ev.key for ev in self._history if ev.key.startswith(prefix)})
        else:
            keys = self._keys
        begin = bisect.bisect_left(keys, start or prefix)
        out: list[KeyValue] = []
        more = False
        for key in keys[begin:]:
            if not key.startswith(prefix):
                break
            kv = self._at(key, revision)
            if kv is None:
                continue
            if limit and len(out) == limit:
                more = True
                break
            out.append(kv)
        return out, at, more

    async def range_all(
        self, prefix: str, *, revision: int = 0, page: int = 2000
    ) -> tuple[list[KeyValue], int]:
        kvs, at, _ = await self.range(prefix, revision=revision)
        return kvs, at

    async def current_revision(self) -> int:
        return self.revision

    # -- writes ----------------------------------------------------------------------

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        self._expire()
        if key in self._data:
            raise KeyExistsError(key)
        if lease and lease not in self._leases:
            raise StorageError("etcdserver: requested lease not found")
        rev = self._commit([(key, value)], [])
        if lease:
            self._leases[lease].keys.add(key)
            self._data[key] = KeyValue(key, value, rev, rev, lease)
        return rev

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        self._check(key, expected_revision)
        return self._commit([(key, value)], [])

    async def delete(self, key: str, expected_revision: int) -> int:
        self._check(key, expected_revision)
        return self._commit([], [key])

    async def write_claiming(
        self,
        key: str,
        value: bytes | None,
        expected_revision: int,
        *,
        claim: Mapping[str, bytes] | None = None,
        release: Iterable[str] = (),
    ) -> int:
        self._expire()
        if expected_revision == 0:
            if key in self._data:
                raise KeyExistsError(key)
        else:
            self._check(key, expected_revision)
        claim = dict(claim or {})
        taken = next((k for k in claim if k in self._data), None)
        if taken is not None:
            raise KeyExistsError(taken)
        puts = [*claim.items()] + ([(key, value)] if value is not None else [])
        deletes = [k for k in release if k in self._data]
        if value is None:
            deletes.append(key)
        return self._commit(puts, deletes)

    def _check(self, key: str, expected_revision: int) -> None:
        self._expire()
        current = self._data.get(key)
        if current is None or current.mod_revision != expected_revision:
            raise ConflictError(key, current)

    def _commit(self, puts: list[tuple[str, bytes]], deletes: list[str]) -> int:
        """Apply one transaction at the next revision; tell the watchers."""
        if self.closed:
            raise StorageError("the backend is closed")
        self.revision += 1
        rev = self.revision
        batch: list[WatchEvent] = []
        for key, value in puts:
            old = self._data.get(key)
            create = old.create_revision if old is not None else rev
            self._data[key] = KeyValue(key, value, rev, create, old.lease if old else 0)
            if old is None:
                bisect.insort(self._keys, key)
            batch.append(WatchEvent(EventType.PUT, key, value, rev, old is None))
        for key in deletes:
            old = self._data.pop(key, None)
            if old is None:
                continue
            self._keys.remove(key)
            if old.lease and old.lease in self._leases:
                self._leases[old.lease].keys.discard(key)
            batch.append(WatchEvent(EventType.DELETE, key, old.value, rev, False))
        self._history.extend(batch)
        for prefix, queue in self._watchers:
            mine = [e for e in batch if e.key.startswith(prefix)]
            if mine:
                queue.put_nowait(mine)
        return rev

    async def compact(self, revision: int) -> None:
        if revision <= self.compacted:
            return
        self.compacted = min(revision, self.revision)
        self._history = [e for e in self._history if e.revision >= self.compacted]

    # -- leases ----------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        lease_id = next(self._lease_ids)
        self._leases[lease_id] = _Lease(ttl, self.clock() + ttl)
        return lease_id

    async def refresh_lease(self, lease_id: int) -> int:
        self._expire()
        lease = self._leases.get(lease_id)
        if lease is None:
            return 0
        lease.expires = self.clock() + lease.ttl
        return lease.ttl

    async def revoke_lease(self, lease_id: int) -> None:
        lease = self._leases.pop(lease_id, None)
        if lease is not None and lease.keys:
            self._commit([], sorted(lease.keys))

    def _expire(self) -> None:
        now = self.clock()
        for lease_id, lease in list(self._leases.items()):
            if lease.expires <= now:
                del self._leases[lease_id]
                if lease.keys:
                    self._commit([], sorted(lease.keys))

    # -- watch -----------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Past events from ``start_revision`` (if kept), then new ones as they commit."""
        if start_revision and start_revision < self.compacted:
            raise CompactedError(self.compacted)
        queue: asyncio.Queue[list[WatchEvent] | None] = asyncio.Queue()
        past = [
            e for e in self._history if e.revision >= start_revision and e.key.startswith(prefix)
        ]
        for _, group in itertools.groupby(past, key=lambda e: e.revision):
            queue.put_nowait(list(group))
        entry = (prefix, queue)
        self._watchers.append(entry)
        try:
            while (batch := await queue.get()) is not None:
                yield batch
            raise StorageError("the backend is closed")
        finally:
            self._watchers.remove(entry)

    async def close(self) -> None:
        """End every watch (they raise :class:`StorageError`, as a broken etcd stream does)."""
        self.closed = True
        for _, queue in self._watchers:
            queue.put_nowait(None)
