"""A client-go style shared informer: a local cache of one resource kept current by a watch.

    pods = Informer(api, "pods", field_selector="spec.nodeName=n1")
    pods.store.add_index("node", lambda p: [p["spec"].get("nodeName", "")])
    pods.add_handler(on_add=enqueue, on_update=lambda old, new: enqueue(new))
    task = asyncio.create_task(pods.run(), name="informer:pods")
    await wait_synced(pods, timeout=30)

Objects in the store, and those handed to handlers, are shared by every reader and
must never be changed: copy them first (:func:`copy_object`) and write the copy
through the API. Handlers are plain callables that run on the event loop; they
should only turn an object into a key and enqueue it.

A relist (first start, or after a watch expired with 410) diffs against the store:
``on_add`` for new keys, ``on_update`` for changed resourceVersions only, ``on_delete``
(with the last known object) for keys that vanished. Deleted objects seen through the
watch are handed over in their final state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from skiff.api.errors import ApiError
from skiff.log import get_logger

from .rest import ApiClient, Obj, Res, _info

log = get_logger(__name__)

IndexFunc = Callable[[Obj], list[str]]


def key_of(obj: Obj) -> str:
    """The store key of an object: ``namespace/name``, or ``name`` when cluster-scoped."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else meta.get("name", "")


def split_key(key: str) -> tuple[str | None, str]:
    """``(namespace, name)`` of a store key (namespace None when cluster-scoped)."""
    ns, sep, name = key.partition("/")
    return (ns, name) if sep else (None, ns)


def copy_object(obj: Obj) -> Obj:
    """A deep copy of a JSON object, safe to change (faster than ``copy.deepcopy``)."""
    return orjson.loads(orjson.dumps(obj))


def _rv(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("resourceVersion", "")


class Store:
    """The informer's cache: key → object, with named secondary indexes.

    Only the informer writes to it. Returned objects are shared: do not change them.
    """

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        # index name → value → keys
        self._indices: dict[str, dict[str, set[str]]] = {}

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index objects by ``fn(obj)`` (a list of values); existing objects are indexed now."""
        if name in self._indexers:
            raise ValueError(f"index {name!r} already exists")
        self._indexers[name] = fn
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, fn, key, obj)

    def by_index(self, name: str, value: str) -> list[Obj]:
        """Objects whose index ``name`` holds ``value``."""
        return [self._items[k] for k in self.index_keys(name, value)]

    def index_keys(self, name: str, value: str) -> list[str]:
        if name not in self._indices:
            raise KeyError(f"no index {name!r}")
        return sorted(self._indices[name].get(value, ()))

    def _index_one(self, name: str, fn: IndexFunc, key: str, obj: Obj) -> None:
        try:
            values = fn(obj)
        except Exception:
            log.exception("index function failed", index=name, key=key)
            return
        index = self._indices[name]
        for v in values or ():
            index.setdefault(v, set()).add(key)

    def _unindex_one(self, name: str, fn: IndexFunc, key: str, obj: Obj) -> None:
        try:
            values = fn(obj)
        except Exception:
            # Logged, not swallowed: the entry may now stay in the index.
            log.exception("index function failed on removal", index=name, key=key)
            return
        index = self._indices[name]
        for v in values or ():
            keys = index.get(v)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[v]

    def _put(self, key: str, obj: Obj) -> Obj | None:
        old = self._items.get(key)
        if old is not None:
            for name, fn in self._indexers.items():
                self._unindex_one(name, fn, key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            self._index_one(name, fn, key, obj)
        return old

    def _delete(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            for name, fn in self._indexers.items():
                self._unindex_one(name, fn, key, old)
        return old

    def _replace(self, items: dict[str, Obj]) -> dict[str, Obj]:
        old = self._items
        self._items = items
        for name, fn in self._indexers.items():
            self._indices[name] = {}
            for key, obj in items.items():
                self._index_one(name, fn, key, obj)
        return old


@dataclass(slots=True)
class Handler:
    """One set of event callbacks (any may be None)."""

    on_add: Callable[[Obj], Any] | None = None
    on_update: Callable[[Obj, Obj], Any] | None = None
    on_delete: Callable[[Obj], Any] | None = None


@dataclass(slots=True)
class Backoff:
    """Exponential back-off with jitter: ``initial`` doubling to ``cap``."""

    initial: float = 0.2
    cap: float = 5.0
    _next: float = field(default=0.0, init=False, repr=False)

    def next(self) -> float:
        self._next = min(self.cap, self._next * 2) if self._next else self.initial
        return min(self.cap, self._next * random.uniform(1.0, 1.2))

    def reset(self) -> None:
        self._next = 0.0


class Informer:
    """Keeps :attr:`store` equal to the server's objects of one resource and calls handlers.

    ``namespace`` None watches all namespaces. ``resync_period`` > 0 calls every
    ``on_update(obj, obj)`` that often, so level-triggered controllers revisit everything.
    """

    def __init__(
        self,
        client: ApiClient,
        res: Res,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        resync_period: float = 0,
        page_size: int = 500,
        watch_timeout: tuple[int, int] = (300, 600),
    ) -> None:
        self.client = client
        self.info = _info(res)
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        """Each watch asks the server to end it after a random time in this range (s)."""
        self.store = Store()
        self.synced = asyncio.Event()
        self._traces: dict[str, str] = {}
        """Set once the first list is in the store."""
        self.resource_version = ""
        """The last resourceVersion seen (list, event or bookmark)."""
        self._handlers: list[Handler] = []
        self._progress = False
        self._log = log.bind(
            resource=self.info.qualified,
            namespace=namespace or "",
            selector=label_selector or None,
            fields=field_selector or None,
        )

    @property
    def name(self) -> str:
        """A name for the task that runs this informer."""
        where = f"/{self.namespace}" if self.namespace else ""
        return f"informer:{self.info.qualified}{where}"

    def trace_of(self, key: str) -> str | None:
        """The ``traceparent`` of the write that created ``key``, when it was traced."""
        return self._traces.get(key)

    def has_synced(self) -> bool:
        return self.synced.is_set()

    def get(self, key: str) -> Obj | None:
        return self.store.get(key)

    def list(self) -> list[Obj]:
        return self.store.list()

    def add_handler(
        self,
        on_add: Callable[[Obj], Any] | None = None,
        on_update: Callable[[Obj, Obj], Any] | None = None,
        on_delete: Callable[[Obj], Any] | None = None,
    ) -> Handler:
        """Register callbacks, called in registration order for every change.

        They must be plain (not async) callables; exceptions are logged and dropped.
        A handler added after the first list gets ``on_add`` for every cached object.
        """
        for fn in (on_add, on_update, on_delete):
            if fn is not None and inspect.iscoroutinefunction(fn):
                raise TypeError("informer handlers must be plain callables, not coroutines")
        h = Handler(on_add, on_update, on_delete)
        self._handlers.append(h)
        if self.synced.is_set() and on_add is not None:
            for obj in self.store.list():
                self._call(on_add, obj)
        return h

    async def wait_synced(self, timeout: float | None = None) -> None:
        await wait_synced(self, timeout=timeout)

    # -- running ---------------------------------------------------------------------

    async def run(self) -> None:
        """List, then watch, forever (until cancelled); relist when the watch expires (410).

        Failures are retried with back-off (0.2 s doubling to 5 s), reset once a watch
        delivers events again.
        """
        resync = None
        if self.resync_period > 0:
            resync = asyncio.create_task(self._resync_loop(), name=f"{self.name}:resync")
        backoff = Backoff()
        need_list = True
        try:
            while True:
                self._progress = False
                # A 410 on the watch right after a list is retried with back-off rather
                # than relisting in a tight loop.
                just_listed = False
                try:
                    if need_list:
                        await self._list()
                        need_list, just_listed = False, True
                    await self._watch()
                    if self._progress:
                        backoff.reset()
                        continue
                    delay = backoff.next()
                    self._log.debug("watch ended at once; waiting", delay=round(delay, 2))
                except ApiError as e:
                    if self._progress:
                        backoff.reset()
                    if e.code == 410 and not need_list:
                        need_list = True
                        self._log.info("watch expired; relisting", error=str(e))
                        if not just_listed:
                            continue
                    delay = backoff.next()
                    self._log.warning(
                        "list/watch failed; retrying",
                        code=e.code,
                        error=str(e),
                        delay=round(delay, 2),
                    )
                except Exception:
                    delay = backoff.next()
                    self._log.exception("list/watch failed; retrying", delay=round(delay, 2))
                await asyncio.sleep(delay)
        finally:
            if resync is not None:
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    async def _list(self) -> None:
        items, rv = await self.client.list_all(
            self.info,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            limit=self.page_size,
        )
        new = {key_of(o): o for o in items}
        old = self.store._replace(new)
        self.resource_version = rv
        first = not self.synced.is_set()
        added = updated = deleted = 0
        for key, obj in new.items():
            prev = old.get(key)
            if prev is None:
                added += 1
                self._emit_add(obj)
            elif _rv(prev) != _rv(obj):
                updated += 1
                self._emit_update(prev, obj)
        for key, prev in old.items():
            if key not in new:
                deleted += 1
                self._emit_delete(prev)
        self.synced.set()
        self._log.info(
            "listed" if first else "relisted",
            resource_version=rv,
            items=len(new),
            added=added,
            updated=updated,
            deleted=deleted,
        )

    async def _watch(self) -> None:
        """Watch from :attr:`resource_version` until the stream ends.

        Sets ``_progress`` when events arrived, or when the server kept the stream open a
        while: a server that closes watches at once is retried with back-off.
        """
        started = time.monotonic()
        # ApiClient.watch_events also carries each write's trace context; simpler clients
        # (test doubles) only have watch().
        watch = getattr(self.client, "watch_events", None) or self.client.watch
        stream = watch(
            self.info,
            self.namespace,
            resource_version=self.resource_version,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=random.randint(*self.watch_timeout),
            allow_bookmarks=True,
        )
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for etype, obj, *rest in stream:
                self._progress = True
                if rest and rest[0] and etype == "ADDED":
                    self._traces[key_of(obj)] = rest[0]
                self._apply(etype, obj)
        if time.monotonic() - started > 1.0:
            self._progress = True

    def _apply(self, etype: str, obj: Obj) -> None:
        rv = _rv(obj)
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        key = key_of(obj)
        if etype in ("ADDED", "MODIFIED"):
            old = self.store._put(key, obj)
            if old is None:
                self._emit_add(obj)
            else:
                self._emit_update(old, obj)
        elif etype == "DELETED":
            self.store._delete(key)
            self._traces.pop(key, None)
            self._emit_delete(obj)
        else:
            self._log.warning("unknown watch event type", type=etype, key=key)
        if rv:
            self.resource_version = rv

    async def _resync_loop(self) -> None:
        await self.synced.wait()
        while True:
            await asyncio.sleep(self.resync_period)
            for obj in self.store.list():
                self._emit_update(obj, obj)

    # -- handlers --------------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            self._log.exception("informer handler failed", handler=getattr(fn, "__qualname__", fn))

    def _emit_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _emit_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _emit_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)


async def wait_synced(*informers: Informer, timeout: float | None = None) -> None:
    """Wait until every informer has listed once; ``TimeoutError`` after ``timeout`` s."""
    async with asyncio.timeout(timeout):
        for inf in informers:
            await inf.synced.wait()
