"""The apiserver's in-memory watch cache, fed from the NATS event stream.

On start it lists ``/registry/`` from etcd at one revision R, then consumes the
stream from the first message after R. It holds the current objects of every
resource and a window of recent events per resource, serves lists and watches
from them, and lets a reader wait until it has reached a given revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from prometheus_client import Gauge

from skiff import tracing
from skiff.api.errors import gone
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver.storage import Backend, KeyValue, WatchEvent
from skiff.apiserver.storage.codec import decode
from skiff.log import get_logger

from . import eventstream as ev

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.watchcache")

CACHE_REVISION = Gauge("skiff_watch_cache_revision", "Latest etcd revision applied to the cache")
WATCHERS = Gauge("skiff_watchers", "Open watches served from the cache")

Filter = Callable[[dict[str, Any]], bool]
Observer = Callable[[dict[str, dict[str, Any]]], None]
Render = Callable[["Event"], Any]


@dataclass(slots=True)
class Event:
    """A change to one object, as served to watchers."""

    type: str
    obj: dict[str, Any]
    revision: int
    key: str
    prev: dict[str, Any] | None = None
    trace: dict[str, str] | None = None
    _json: bytes | None = None

    def json_line(self) -> bytes:
        """``{"type":…,"object":…}\\n``, serialized once and shared by all watchers."""
        if self._json is None:
            line: dict[str, Any] = {"type": self.type, "object": self.obj}
            if self.trace and "traceparent" in self.trace:
                # The write's trace context, so that watchers can link their work to it
                # (clients that do not know the field ignore it).
                line["traceparent"] = self.trace["traceparent"]
            self._json = orjson.dumps(line) + b"\n"
        return self._json


MAX_LAG = 10_000
"""A watch this many events behind its group is cut off (it re-watches), as kube-apiserver does."""
COALESCE_PER_WATCHER = 0.00002
MAX_COALESCE = 0.02


class WatchGroup:
    """The watches of one resource that share a filter and an output form.

    Each event is filtered and rendered once per group, not once per watch. Rendered
    items stay in the group's log until every member has taken them. Members are woken
    together, at most once per window, which grows with the number of members (20 µs
    each, at most 20 ms): with many watchers, one write per event per stream costs more
    than the events themselves.
    """

    def __init__(self, key: tuple[Any, ...], filt: Filter, render: Render) -> None:
        self.key = key
        self.filter = filt
        self.render = render
        self.items: list[Any] = []
        self.base = 0
        self.members: set[Watch] = set()
        self._wakeup: asyncio.Future[None] | None = None
        self._flush: asyncio.Handle | None = None
        self._trim_at = 1024

    @property
    def end(self) -> int:
        """Absolute index just past the newest item."""
        return self.base + len(self.items)

    def seen_as(self, event: Event) -> Event | None:
        """The event as this group's filter sees it (None: not its business)."""
        new_match = self.filter(event.obj)
        if event.type == ev.DELETED:
            return event if new_match else None
        old_match = event.prev is not None and self.filter(event.prev)
        if new_match and old_match:
            return event
        if new_match:
            if event.type == ev.ADDED:
                return event
            return Event(ev.ADDED, event.obj, event.revision, event.key, trace=event.trace)
        if old_match:
            # The object stopped matching: to this group it is gone.
            return Event(ev.DELETED, event.obj, event.revision, event.key, trace=event.trace)
        return None

    def offer(self, event: Event) -> None:
        seen = self.seen_as(event)
        if seen is None:
            return
        self.items.append(self.render(seen))
        if self._flush is None:
            loop = asyncio.get_running_loop()
            window = min(MAX_COALESCE, COALESCE_PER_WATCHER * len(self.members))
            if window >= 0.001:
                self._flush = loop.call_later(window, self.wake)
            else:
                self._flush = loop.call_soon(self.wake)
        if len(self.items) >= self._trim_at:
            self.trim()

    def wake(self) -> None:
        self._flush = None
        fut, self._wakeup = self._wakeup, None
        if fut is not None and not fut.done():
            fut.set_result(None)

    def waiter(self) -> asyncio.Future[None]:
        if self._wakeup is None:
            self._wakeup = asyncio.get_running_loop().create_future()
        return self._wakeup

    def trim(self) -> None:
        """Drop items every member has taken; cut off members too far behind."""
        limit = self.end - MAX_LAG
        for w in [w for w in self.members if w.cursor < limit]:
            w.close()
        low = min((w.cursor for w in self.members), default=self.end)
        if low > self.base:
            del self.items[: low - self.base]
            self.base = low
        self._trim_at = max(1024, 2 * len(self.items))


class Watch:
    """One open watch: a cursor into its group's log, plus its own backlog."""

    def __init__(self, group: WatchGroup, backlog: list[Any]) -> None:
        self.group = group
        self.pending = backlog
        self.cursor = group.end
        self.closed = False

    def caught_up(self) -> bool:
        return not self.pending and self.cursor >= self.group.end

    def take(self) -> list[Any]:
        items, self.pending = self.pending, []
        g = self.group
        if self.cursor < g.end:
            items.extend(g.items[self.cursor - g.base :])
            self.cursor = g.end
        return items

    async def next(self, timeout: float) -> list[Any] | None:
        """Items for this watch; ``[]`` after ``timeout`` with none; ``None`` once closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.closed:
            items = self.take()
            if items:
                return items
            left = deadline - loop.time()
            if left <= 0:
                return []
            # wait() leaves the shared future alone when this watch times out.
            await asyncio.wait((self.group.waiter(),), timeout=left)
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self in self.group.members:
                self.group.members.discard(self)
                WATCHERS.dec()
            self.group.wake()


class ResourceCache:
    """Objects and recent events of one resource."""

    def __init__(self, info: ResourceInfo, window: int) -> None:
        self.info = info
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: deque[Event] = deque(maxlen=window)
        self.start_revision = 0
        """Events after this revision are all in :attr:`events` (older ones: 410)."""
        self.groups: dict[tuple[Any, ...], WatchGroup] = {}
        self.generation = 0
        """Counts changes: whoever derives something from :attr:`objects` knows when to
        derive it again."""

    def reset(self, objects: dict[str, dict[str, Any]], revision: int) -> None:
        self.generation += 1
        self.objects = objects
        self.events.clear()
        self.start_revision = revision
        for g in list(self.groups.values()):
            for w in list(g.members):
                w.close()
        self.groups.clear()

    def apply(self, event: Event) -> None:
        self.generation += 1
        event.prev = self.objects.get(event.key)
        if event.type == ev.DELETED:
            self.objects.pop(event.key, None)
        else:
            self.objects[event.key] = event.obj
        if len(self.events) == self.events.maxlen:
            self.start_revision = self.events[0].revision
        self.events.append(event)
        for key, g in list(self.groups.items()):
            try:
                g.offer(event)
            except Exception as e:  # one group's filter or rendering must not stop the rest
                log.error("watch group failed; closing its watches", key=event.key, error=repr(e))
                self.groups.pop(key, None)
                for w in list(g.members):
                    w.close()


class WatchCache:
    """All resources' caches, kept current from the event stream."""

    def __init__(
        self, etcd: Backend, nc: NATS | None, *, window: int = 10_000, creates_stream: bool = True
    ) -> None:
        """``nc``: the NATS connection :meth:`run` consumes the event stream from (None for a
        cache fed by :meth:`follow` or by hand)."""
        self.etcd = etcd
        self.nc = nc
        self.js = nc.jetstream() if nc is not None else None
        self.window = window
        self.creates_stream = creates_stream
        """False on a secured NATS, where only the pump may create the stream."""
        self.resources: dict[str, ResourceCache] = {
            info.etcd_prefix(): ResourceCache(info, window) for info in REGISTRY.resources
        }
        """Each resource's cache by its etcd prefix (a custom resource's versions share one)."""
        self._observers: dict[str, list[Observer]] = {}
        self.revision = 0
        self.ready = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._sub = None
        self._resync = asyncio.Event()
        self._last_seq = 0

    def of(self, info: ResourceInfo) -> ResourceCache:
        rc = self.resources.get(info.etcd_prefix())
        if rc is None:
            # A custom resource whose definition arrived since the last listing.
            rc = self.resources[info.etcd_prefix()] = ResourceCache(info, self.window)
            rc.start_revision = self.revision
        return rc

    def drop(self, info: ResourceInfo) -> None:
        """Forget a resource no longer served (a deleted CustomResourceDefinition's):
        its watches end."""
        rc = self.resources.pop(info.etcd_prefix(), None)
        if rc is not None:
            rc.reset({}, self.revision)

    def observe(self, info: ResourceInfo, observer: Observer) -> None:
        """Call ``observer(objects)`` with ``info``'s objects after every change to them,
        before changes to other resources are applied (the CRD registry: a custom resource
        is known before its first object arrives)."""
        self._observers.setdefault(info.etcd_prefix(), []).append(observer)

    def _notify(self, prefix: str) -> None:
        for observer in self._observers.get(prefix, ()):
            try:
                observer(self.resources[prefix].objects)
            except Exception as e:  # an observer's bug must not stop the cache
                log.error("watch cache observer failed", prefix=prefix, error=repr(e))

    def get(self, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One cached object (shared: never change it)."""
        return self.of(info).objects.get(info.etcd_key(namespace, name))

    def list(self, info: ResourceInfo, namespace: str | None = None) -> list[dict[str, Any]]:
        """The cached objects of ``info`` in ``namespace`` (None: all), in key order."""
        objects = self.of(info).objects
        prefix = info.etcd_prefix(namespace)
        return [objects[k] for k in sorted(k for k in objects if k.startswith(prefix))]

    async def run(self) -> None:
        """Fill the cache and keep it current; relist when the stream says so."""
        if self.js is None:
            raise RuntimeError("the watch cache has no NATS connection; feed it with follow()")
        await ev.ensure_stream(self.js, create=self.creates_stream)
        while True:
            try:
                await self._sync()
                await self._resync.wait()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("watch cache sync failed; retrying", error=repr(e))
                await asyncio.sleep(0.5)
            finally:
                self._resync.clear()
                if self._sub is not None:
                    with contextlib.suppress(Exception):
                        await self._sub.unsubscribe()
                    self._sub = None

    # -- feeding: a listing, then changes ----------------------------------------------

    def load(self, kvs: Iterable[KeyValue], revision: int) -> None:
        """Replace every resource's objects with a listing of ``/registry/`` at
        ``revision`` (open watches are closed: they must start again)."""
        per: dict[str, dict[str, dict[str, Any]]] = {p: {} for p in self.resources}
        unknown: list[KeyValue] = []
        for kv in kvs:
            info = REGISTRY.by_key(kv.key)
            if info is not None:
                per.setdefault(info.etcd_prefix(), {})[kv.key] = decode(kv.value, kv.mod_revision)
            else:
                unknown.append(kv)
        # Observed resources first: what they register (custom resources) takes the
        # keys that were unknown a moment ago.
        self.revision = revision
        for prefix in self._observers:
            self.resources[prefix].reset(per.pop(prefix, {}), revision)
            self._notify(prefix)
        for kv in unknown:
            info = REGISTRY.by_key(kv.key)
            if info is not None:
                per.setdefault(info.etcd_prefix(), {})[kv.key] = decode(kv.value, kv.mod_revision)
        for prefix, objects in per.items():
            info = REGISTRY.by_prefix(prefix)
            if info is None:
                self.resources.pop(prefix, None)
                continue
            self.of(info).reset(objects, revision)
        self._set_revision(revision)

    def apply_change(
        self,
        info: ResourceInfo,
        etype: str,
        key: str,
        value: bytes,
        revision: int,
        trace: dict[str, str] | None = None,
    ) -> None:
        """One change of ``key`` (ADDED, MODIFIED or DELETED; for a delete ``value`` is the
        object before it) at ``revision``, after the cache's revision."""
        obj = decode(value, revision)
        rc = self.of(info)
        rc.apply(Event(etype, obj, revision, key, trace=trace))
        if info.etcd_prefix() in self._observers:
            self._notify(info.etcd_prefix())
        self._set_revision(revision)

    def apply_storage_events(self, events: Iterable[WatchEvent]) -> None:
        """Changes as the storage backend's watch reports them (what the pump publishes)."""
        for e in events:
            if e.revision <= self.revision:
                continue  # already in the listing the cache started from
            info = REGISTRY.by_key(e.key)
            if info is None:
                self._set_revision(e.revision)
            else:
                self.apply_change(info, ev.type_of(e), e.key, e.value, e.revision)

    async def follow(self, backend: Backend, prefix: str = "/registry/") -> None:
        """Fill the cache from ``backend`` and keep it current from the backend's own watch,
        without the event stream (one process: unit tests with
        :class:`~skiff.apiserver.storage.memory.MemoryBackend`)."""
        kvs, revision = await backend.range_all(prefix)
        self.load(kvs, revision)
        self.ready.set()
        async for batch in backend.watch(prefix, revision + 1):
            self.apply_storage_events(batch)

    # -- the event stream ------------------------------------------------------------

    async def _sync(self) -> None:
        assert self.js is not None
        self.ready.clear()
        kvs, revision = await self.etcd.range_all("/registry/")
        self.load(kvs, revision)
        seq, first = await ev.first_seq_after(self.js, revision)
        if seq == first and first > 1:
            # The oldest event left in the stream is already after R: is anything missing?
            rev = await ev.revision_at(self.js, first)
            if rev is not None and rev > revision + 1:
                log.warning(
                    "event stream starts after the listed revision", listed=revision, first=rev
                )
        self._last_seq = seq - 1
        self._sub = await self.js.subscribe(
            f"{ev.SUBJECT_PREFIX}.>",
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=seq
            ),
            cb=self._on_message,
            pending_msgs_limit=1_000_000,
            idle_heartbeat=2.0,
        )
        # What was just listed lives long: keep it out of the collector's scans.
        gc.freeze()
        self.ready.set()
        log.info("watch cache synced", revision=revision, objects=len(kvs), stream_seq=seq)

    async def _on_message(self, msg) -> None:  # type: ignore[no-untyped-def]
        headers = msg.headers or {}
        revision = int(headers.get(ev.H_REV, "0"))
        etype = headers.get(ev.H_TYPE, "")
        if etype == ev.RESET:
            if revision > self.revision:
                log.warning("event stream reset; relisting", revision=revision)
                self._resync.set()
            return
        if revision <= self.revision:
            return  # already in the list we started from
        key = headers.get(ev.H_KEY, "")
        info = REGISTRY.by_key(key)
        if info is None:
            self._set_revision(revision)
            return
        ctx = tracing.extract(headers) if "traceparent" in headers else None
        with _tracer.start_as_current_span(
            "watchcache.apply",
            context=ctx,
            kind=trace.SpanKind.CONSUMER,
            attributes={"skiff.revision": revision, "skiff.key": key},
        ) as span:
            carrier: dict[str, str] = {}
            if span.get_span_context().is_valid:
                tracing.inject(carrier)
            self.apply_change(info, etype, key, msg.data, revision, carrier or None)

    def _set_revision(self, revision: int) -> None:
        self.revision = revision
        CACHE_REVISION.set(revision)
        if self._waiters:
            still = []
            for rev, fut in self._waiters:
                if rev <= revision:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    still.append((rev, fut))
            self._waiters = still

    async def wait_for(self, revision: int, timeout: float) -> bool:
        """Wait until the cache has applied ``revision``; False on timeout."""
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), timeout)
            except TimeoutError:
                return False
        if self.revision >= revision:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False

    def watch(
        self,
        info: ResourceInfo,
        since: int,
        key: tuple[Any, ...],
        filt: Filter,
        render: Render,
    ) -> Watch:
        """Join the group ``key`` of ``info``'s watchers, from revision ``since`` on.

        Buffered events after ``since`` become the watch's backlog; raises 410 Gone
        when some have left the window.
        """
        rc = self.of(info)
        if since < rc.start_revision:
            raise gone(f"too old resource version: {since} ({rc.start_revision})")
        group = rc.groups.get(key)
        if group is None:
            group = rc.groups[key] = WatchGroup(key, filt, render)
        backlog = []
        for e in rc.events:
            if e.revision > since and (seen := group.seen_as(e)) is not None:
                backlog.append(render(seen))
        w = Watch(group, backlog)
        group.members.add(w)
        WATCHERS.inc()
        return w

    def unwatch(self, info: ResourceInfo, w: Watch) -> None:
        w.close()
        rc = self.resources.get(info.etcd_prefix())
        if rc is None:
            return
        if not w.group.members and rc.groups.get(w.group.key) is w.group:
            del rc.groups[w.group.key]
