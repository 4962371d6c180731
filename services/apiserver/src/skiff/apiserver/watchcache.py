"""The apiserver's in-memory watch cache, fed from the NATS event stream.

On start it lists ``/registry/`` from etcd at one revision R, then consumes the
stream from the first message after R. It holds the current objects of every
resource and a window of recent events per resource, serves lists and watches
from them, and lets a reader wait until it has reached a given revision.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import trace
from prometheus_client import Gauge
from skiff import tracing
from skiff.api.errors import gone
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.log import get_logger
from skiff.storage.etcd import EtcdBackend

from . import events as ev

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.watchcache")

CACHE_REVISION = Gauge("skiff_watch_cache_revision", "Latest etcd revision applied to the cache")
WATCHERS = Gauge("skiff_watchers", "Open watches served from the cache")

Filter = Callable[[dict[str, Any]], bool]


def decode(value: bytes, revision: int) -> dict[str, Any]:
    """A stored object with its resourceVersion set to the etcd revision."""
    obj = orjson.loads(value)
    obj.pop("__trace", None)
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(revision)
    return obj


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
            self._json = orjson.dumps({"type": self.type, "object": self.obj}) + b"\n"
        return self._json


@dataclass(eq=False)
class Watcher:
    """One open watch: a bounded queue of events that pass its filter."""

    filter: Filter
    queue: asyncio.Queue[Event | None] = field(default_factory=lambda: asyncio.Queue(10_000))
    closed: bool = False

    def offer(self, event: Event) -> None:
        new_match = self.filter(event.obj)
        if event.type == ev.DELETED:
            if new_match:
                self._put(event)
            return
        old_match = event.prev is not None and self.filter(event.prev)
        if new_match and old_match:
            self._put(event)
        elif new_match:
            self._put(
                event
                if event.type == ev.ADDED
                else Event(ev.ADDED, event.obj, event.revision, event.key)
            )
        elif old_match:
            # The object stopped matching: to this watcher it is gone.
            self._put(Event(ev.DELETED, event.obj, event.revision, event.key))

    def _put(self, event: Event) -> None:
        if self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A consumer this slow is cut off, as kube-apiserver does; it re-watches.
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)


class ResourceCache:
    """Objects and recent events of one resource."""

    def __init__(self, info: ResourceInfo, window: int) -> None:
        self.info = info
        self.objects: dict[str, dict[str, Any]] = {}
        self.events: deque[Event] = deque(maxlen=window)
        self.start_revision = 0
        """Events after this revision are all in :attr:`events` (older ones: 410)."""
        self.watchers: set[Watcher] = set()

    def reset(self, objects: dict[str, dict[str, Any]], revision: int) -> None:
        self.objects = objects
        self.events.clear()
        self.start_revision = revision
        for w in list(self.watchers):
            w.close()
        self.watchers.clear()

    def apply(self, event: Event) -> None:
        event.prev = self.objects.get(event.key)
        if event.type == ev.DELETED:
            self.objects.pop(event.key, None)
        else:
            self.objects[event.key] = event.obj
        if len(self.events) == self.events.maxlen:
            self.start_revision = self.events[0].revision
        self.events.append(event)
        for w in self.watchers:
            w.offer(event)


class WatchCache:
    """All resources' caches, kept current from the event stream."""

    def __init__(self, etcd: EtcdBackend, nc: NATS, *, window: int = 10_000) -> None:
        self.etcd = etcd
        self.nc = nc
        self.js = nc.jetstream()
        self.window = window
        self.resources = {info: ResourceCache(info, window) for info in REGISTRY.resources}
        self.revision = 0
        self.ready = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._sub = None
        self._resync = asyncio.Event()
        self._last_seq = 0

    def of(self, info: ResourceInfo) -> ResourceCache:
        return self.resources[info]

    async def run(self) -> None:
        """Fill the cache and keep it current; relist when the stream says so."""
        await ev.ensure_stream(self.js)
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

    async def _sync(self) -> None:
        self.ready.clear()
        kvs, revision = await self.etcd.range_all("/registry/")
        per: dict[ResourceInfo, dict[str, dict[str, Any]]] = {i: {} for i in self.resources}
        for kv in kvs:
            info = REGISTRY.by_key(kv.key)
            if info is not None:
                per[info][kv.key] = decode(kv.value, kv.mod_revision)
        for info, rc in self.resources.items():
            rc.reset(per[info], revision)
        self._set_revision(revision)
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
        if info is not None:
            ctx = tracing.extract(headers) if "traceparent" in headers else None
            with _tracer.start_as_current_span(
                "watchcache.apply",
                context=ctx,
                kind=trace.SpanKind.CONSUMER,
                attributes={"skiff.revision": revision, "skiff.key": key},
            ) as span:
                obj = decode(msg.data, revision)
                carrier: dict[str, str] = {}
                if span.get_span_context().is_valid:
                    tracing.inject(carrier)
                self.resources[info].apply(Event(etype, obj, revision, key, trace=carrier or None))
        self._set_revision(revision)

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

    def watch(self, info: ResourceInfo, since: int, filt: Filter) -> Watcher:
        """Register a watcher whose queue already holds the buffered events after ``since``.

        Raises 410 Gone when events after ``since`` have left the window.
        """
        rc = self.resources[info]
        if since < rc.start_revision:
            raise gone(f"too old resource version: {since} ({rc.start_revision})")
        backlog = [e for e in rc.events if e.revision > since] if rc.events else []
        w = Watcher(filt, asyncio.Queue(max(10_000, 2 * len(backlog))))
        for e in backlog:
            w.offer(e)
        rc.watchers.add(w)
        WATCHERS.inc()
        return w

    def unwatch(self, info: ResourceInfo, w: Watcher) -> None:
        rc = self.resources[info]
        if w in rc.watchers:
            rc.watchers.discard(w)
            WATCHERS.dec()
        w.closed = True
