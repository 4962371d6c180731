"""The controller framework: shared informers, work queue workers, owners and expectations.

A controller is an informer-fed work queue of keys and a level-triggered
``reconcile(key)``::

    class Foo(Controller):
        name = "foo-controller"

        def __init__(self, ctx: ControllerContext, workers: int = 5) -> None:
            super().__init__(ctx, workers=workers)
            self.foos = self.watch("foos")                 # shared, waited for before work
            self.foos.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)

        async def reconcile(self, key: str) -> float | None:
            foo = self.foos.get(key)                        # the cache is the truth
            if foo is None:
                return None                                 # gone: nothing to do
            ...                                             # copy, then write through the API
            return None                                     # or seconds until a requeue

Event handlers only turn objects into keys. A key is never reconciled by two workers
at once; a failure is retried with per-key exponential back-off (and a global token
bucket), a :class:`TerminalError` is logged and dropped.

:class:`Expectations` is kube-controller-manager's ``UIDTrackingControllerExpectations``:
a controller records how many creations (and which deletions) it has asked for before
asking, informer events lower the counts, and it does not act on a key again until its
cache has caught up (or 5 minutes have passed). A slow cache or a replayed watch
therefore never makes it create a pod twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from skiff import tracing
from skiff.api.errors import ApiError, Reason
from skiff.api.resources import ResourceInfo
from skiff.api.selectors import LabelSelector, selector_from_dict
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer, copy_object, key_of, wait_synced
from skiff.client.rest import ApiClient, Obj
from skiff.client.workqueue import ShutDown, WorkQueue
from skiff.log import get_logger

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.controllers")

RECONCILES = Counter(
    "controller_reconcile_total", "Reconciles by controller and result", ["controller", "result"]
)
RECONCILE_SECONDS = Histogram(
    "controller_reconcile_duration_seconds",
    "Time spent in one reconcile",
    ["controller"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
QUEUE_DEPTH = Gauge("workqueue_depth", "Keys waiting in a controller's work queue", ["name"])

EXPECTATIONS_TIMEOUT = 300.0
"""Seconds after which unmet expectations are given up (kube-controller-manager: 5 min)."""

NAMESPACE_INDEX = "namespace"
CONTROLLER_INDEX = "controller"
"""Index of dependents by their controller: ``uid:<owner uid>``, or ``orphan:<namespace>``."""


class TerminalError(Exception):
    """An error retrying cannot fix (an invalid spec): logged, and the key is not requeued."""


# -- owners ----------------------------------------------------------------------------


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") is True:
            return ref
    return None


def new_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """An ownerReference making ``owner`` the controller (blocking its foreground deletion)."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def api_group(api_version: str) -> str:
    """The group of an ``apiVersion`` (``""`` for the core ``v1``)."""
    group, _, _ = api_version.rpartition("/")
    return group


def namespace_index(obj: Obj) -> list[str]:
    """Index function: the object's namespace."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def controller_index(obj: Obj) -> list[str]:
    """Index function for :data:`CONTROLLER_INDEX`."""
    ref = controller_ref(obj)
    if ref is not None:
        return [f"uid:{ref.get('uid', '')}"]
    return [f"orphan:{(obj.get('metadata') or {}).get('namespace') or ''}"]


def owned_and_orphans(informer: Informer, owner: Obj) -> list[Obj]:
    """Objects controlled by ``owner`` plus the orphans of its namespace (candidates to claim).

    The informer needs :data:`CONTROLLER_INDEX` (see :meth:`SharedInformers.index`).
    """
    meta = owner["metadata"]
    store = informer.store
    return store.by_index(CONTROLLER_INDEX, f"uid:{meta['uid']}") + store.by_index(
        CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}"
    )


def resolve_controller_ref(
    informer: Informer, namespace: str | None, ref: Obj, kind: str, group: str
) -> Obj | None:
    """The cached owner ``ref`` points at, when it is of ``kind``/``group`` and has its uid."""
    if ref.get("kind") != kind or api_group(ref.get("apiVersion") or "") != group:
        return None
    key = f"{namespace}/{ref.get('name', '')}" if namespace else ref.get("name", "")
    owner = informer.get(key)
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


class ControllerRefManager:
    """Claims dependents for one owner, as kube-controller-manager's ``ControllerRefManager``.

    :meth:`claim` keeps the objects the owner controls that still match its selector,
    adopts matching orphans (adding a controller ownerReference) and releases controlled
    objects that no longer match (removing it). Nothing is adopted or released while
    the owner or the object is being deleted. Before the first adoption the owner is
    read again from the API (not the cache) so that a deleted-and-recreated owner never
    adopts in the name of its predecessor.
    """

    def __init__(
        self,
        client: ApiClient,
        owner: Obj,
        selector: LabelSelector,
        *,
        owner_resource: str,
        owner_api_version: str,
        owner_kind: str,
        resource: str = "pods",
    ) -> None:
        self.client = client
        self.owner = owner
        self.selector = selector
        self.owner_resource = owner_resource
        self.owner_api_version = owner_api_version
        self.owner_kind = owner_kind
        self.resource = resource
        self._can_adopt: bool | None = None

    async def claim(self, objs: Iterable[Obj]) -> list[Obj]:
        """The objects this owner controls after adoption and release.

        Errors other than 404 are raised after every object was tried.
        """
        owner_meta = self.owner["metadata"]
        owner_deleting = bool(owner_meta.get("deletionTimestamp"))
        claimed: list[Obj] = []
        errors: list[Exception] = []
        for obj in objs:
            meta = obj["metadata"]
            matches = self.selector.matches(meta.get("labels"))
            ref = controller_ref(obj)
            try:
                if ref is not None:
                    if ref.get("uid") != owner_meta["uid"]:
                        continue  # someone else's
                    if matches:
                        claimed.append(obj)
                    elif not owner_deleting and not meta.get("deletionTimestamp"):
                        await self.release(obj)
                    continue
                if owner_deleting or not matches or meta.get("deletionTimestamp"):
                    continue
                await self.adopt(obj)
                claimed.append(obj)
            except ApiError as e:
                if e.code != 404:
                    errors.append(e)
        if errors:
            raise errors[0]
        return claimed

    async def _check_can_adopt(self) -> None:
        if self._can_adopt is None:
            meta = self.owner["metadata"]
            fresh = await self.client.get(self.owner_resource, meta["name"], meta.get("namespace"))
            fmeta = fresh["metadata"]
            if fmeta.get("uid") != meta["uid"]:
                self._can_adopt = False
                raise _conflict(
                    f"original {self.owner_kind} {meta['name']} is gone: got uid "
                    f"{fmeta.get('uid')}, wanted {meta['uid']}"
                )
            self._can_adopt = not fmeta.get("deletionTimestamp")
        if not self._can_adopt:
            raise _conflict(
                f"{self.owner_kind} {self.owner['metadata']['name']} is being deleted: "
                "it cannot adopt"
            )

    async def adopt(self, obj: Obj) -> None:
        """Make the owner the controller of an orphan (409 when the orphan changed meanwhile)."""
        await self._check_can_adopt()
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        new = [*refs, new_controller_ref(self.owner, self.owner_api_version, self.owner_kind)]
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
        if refs:
            ops.append({"op": "test", "path": "/metadata/ownerReferences", "value": refs})
        else:
            # JSON patch cannot test for absence: the resourceVersion stands in, so two
            # controllers never both adopt the same orphan.
            rv = meta.get("resourceVersion", "")
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": rv})
        ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": new})
        await self._patch(obj, ops, "adopting")
        log.info(
            "adopted",
            owner=key_of(self.owner),
            kind=self.owner_kind,
            object=key_of(obj),
        )

    async def release(self, obj: Obj) -> None:
        """Remove the owner's ownerReference from an object that stopped matching."""
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        uid = self.owner["metadata"]["uid"]
        kept = [r for r in refs if r.get("uid") != uid]
        ops: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
        ]
        if kept:
            ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": kept})
        else:
            ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
        await self._patch(obj, ops, "releasing")
        log.info("released", owner=key_of(self.owner), kind=self.owner_kind, object=key_of(obj))

    async def _patch(self, obj: Obj, ops: list[Obj], what: str) -> None:
        meta = obj["metadata"]
        try:
            await self.client.patch(
                self.resource, meta["name"], ops, meta.get("namespace"), type="json"
            )
        except ApiError as e:
            if e.code == 422 and "test failed" in e.message:
                # The object changed since the cache saw it: retry from a fresher cache.
                raise _conflict(f"{what} {key_of(obj)}: it changed meanwhile") from e
            raise


def _conflict(message: str) -> ApiError:
    return ApiError(409, Reason.CONFLICT, message)


# -- finalizers ------------------------------------------------------------------------


def has_finalizer(obj: Obj, finalizer: str) -> bool:
    return finalizer in ((obj.get("metadata") or {}).get("finalizers") or ())


def is_deletion_candidate(obj: Obj, finalizer: str) -> bool:
    """Being deleted and still held by ``finalizer`` (``protectionutil.IsDeletionCandidate``)."""
    return bool(obj["metadata"].get("deletionTimestamp")) and has_finalizer(obj, finalizer)


def needs_finalizer(obj: Obj, finalizer: str) -> bool:
    """Not being deleted and without ``finalizer`` (``protectionutil.NeedToAddFinalizer``)."""
    return not obj["metadata"].get("deletionTimestamp") and not has_finalizer(obj, finalizer)


def finalizers_patch(meta: Obj, finalizers: list[str]) -> list[Obj]:
    """JSON patch ops setting ``metadata.finalizers`` to ``finalizers``.

    The ops test what the change was computed from: the uid, and the finalizers as seen
    (or, when there were none, the resourceVersion: JSON patch cannot test for absence),
    so a concurrent change of the list fails the patch instead of being lost.
    """
    seen = list(meta.get("finalizers") or ())
    ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
    if seen:
        ops.append({"op": "test", "path": "/metadata/finalizers", "value": seen})
    else:
        rv = meta.get("resourceVersion", "")
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": rv})
    if finalizers:
        ops.append({"op": "add", "path": "/metadata/finalizers", "value": finalizers})
    elif seen:
        ops.append({"op": "remove", "path": "/metadata/finalizers"})
    return ops


async def set_finalizers(
    client: ApiClient, res: str, obj: Obj, finalizers: list[str]
) -> Obj | None:
    """Write ``finalizers`` to ``obj`` (as cached) with :func:`finalizers_patch`.

    None when the object is gone (or went away because its last finalizer was removed
    while it was being deleted). A failed test (the cache was behind) is a 409, so the
    key is retried with back-off from a fresher cache.
    """
    meta = obj["metadata"]
    ops = finalizers_patch(meta, finalizers)
    try:
        return await client.patch(res, meta["name"], ops, meta.get("namespace"), type="json")
    except ApiError as e:
        if e.code == 404:
            return None
        if e.code == 422 and "test failed" in e.message:
            raise _conflict(f"the finalizers of {res} {key_of(obj)} changed meanwhile") from e
        raise


async def add_finalizer(client: ApiClient, res: str, obj: Obj, finalizer: str) -> Obj | None:
    """Append ``finalizer`` to ``obj``'s finalizers (nothing when it is there)."""
    finalizers = list(obj["metadata"].get("finalizers") or ())
    if finalizer in finalizers:
        return obj
    return await set_finalizers(client, res, obj, [*finalizers, finalizer])


async def remove_finalizer(client: ApiClient, res: str, obj: Obj, finalizer: str) -> Obj | None:
    """Remove ``finalizer`` from ``obj``'s finalizers (nothing when it is not there).

    Removing the last finalizer of an object being deleted deletes it.
    """
    finalizers = list(obj["metadata"].get("finalizers") or ())
    if finalizer not in finalizers:
        return obj
    return await set_finalizers(client, res, obj, [f for f in finalizers if f != finalizer])


# -- expectations ----------------------------------------------------------------------


@dataclass(slots=True)
class _Expectation:
    add: int = 0
    dele: int = 0
    deleting: set[str] = field(default_factory=set)
    at: float = 0.0


class Expectations:
    """What each controller key waits to see in its cache before it acts again.

    ``expect_creations(key, n)`` before creating n objects, ``creation_observed(key)`` on
    every add event; ``expect_deletions(key, object_keys)`` before deleting them,
    ``deletion_observed(key, object_key)`` when one is seen terminating or gone (once
    per object, however many events say so). ``satisfied(key)`` is true when nothing is
    pending, when nothing was ever expected, or when the expectations are older than
    ``timeout`` seconds (a lost event must not wedge a controller for ever).
    """

    def __init__(
        self, timeout: float = EXPECTATIONS_TIMEOUT, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        e = self._items.get(key)
        if e is None:
            return True
        if e.add <= 0 and e.dele <= 0:
            return True
        if self.clock() - e.at > self.timeout:
            log.info("expectations expired", key=key, add=e.add, delete=e.dele)
            return True
        return False

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected for ``key``."""
        e = self._items.get(key)
        return (max(e.add, 0), max(e.dele, 0)) if e is not None else (0, 0)

    def expect_creations(self, key: str, count: int) -> None:
        """Replace ``key``'s expectations: ``count`` creations to come."""
        self._items[key] = _Expectation(add=count, at=self.clock())

    def expect_deletions(self, key: str, object_keys: Iterable[str]) -> None:
        """Replace ``key``'s expectations: these objects' deletions to come."""
        keys = set(object_keys)
        self._items[key] = _Expectation(dele=len(keys), deleting=keys, at=self.clock())

    def creation_observed(self, key: str) -> None:
        e = self._items.get(key)
        if e is not None:
            e.add -= 1

    def lower_creations(self, key: str, count: int) -> None:
        """Creations that will never be observed (they failed, or were never tried)."""
        e = self._items.get(key)
        if e is not None:
            e.add -= count

    def deletion_observed(self, key: str, object_key: str) -> None:
        e = self._items.get(key)
        if e is not None and object_key in e.deleting:
            e.deleting.discard(object_key)
            e.dele -= 1

    def delete(self, key: str) -> None:
        """Forget ``key`` (its object is gone)."""
        self._items.pop(key, None)


# -- batches ---------------------------------------------------------------------------


def batch_sizes(count: int, initial: int = 1) -> list[int]:
    """The batch sizes of :func:`slow_start_batch`: ``initial``, doubling, up to ``count``."""
    sizes: list[int] = []
    remaining = count
    size = min(remaining, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


async def slow_start_batch(
    count: int, initial: int, fn: Callable[[], Awaitable[Any]]
) -> tuple[int, BaseException | None]:
    """Call ``fn`` ``count`` times in concurrent batches of 1, 2, 4… (``slowStartBatch``).

    Stops after the first batch with a failure, so a request that fails every time
    (quota, invalid template) is not sent a thousand times. Returns (successes, the first
    error or None).
    """
    successes = 0
    for size in batch_sizes(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += size - len(errors)
        if errors:
            for e in errors:
                if isinstance(e, asyncio.CancelledError):
                    raise e
            return successes, errors[0]
    return successes, None


# -- shared informers ------------------------------------------------------------------


class SharedInformers:
    """One informer per resource, shared by every controller (``SharedInformerFactory``)."""

    def __init__(self, client: ApiClient, *, resync_period: float = 0) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[str, Informer] = {}
        self._indexes: dict[str, set[str]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, res: str) -> Informer:
        """The informer of ``res`` (all namespaces), created on first use."""
        inf = self._informers.get(res)
        if inf is None:
            inf = Informer(self.client, res, resync_period=self.resync_period)
            self._informers[res] = inf
            self._indexes[res] = set()
        return inf

    def existing(self, res: str) -> Informer | None:
        """The informer of ``res`` if some controller asked for it (never creates one)."""
        return self._informers.get(res)

    def existing_for(self, info: ResourceInfo) -> Informer | None:
        """The all-namespaces informer of a resource type, by its info (any alias)."""
        for inf in self._informers.values():
            if (
                inf.info == info
                and inf.namespace is None
                and not inf.label_selector
                and not inf.field_selector
            ):
                return inf
        return None

    def index(self, res: str, name: str, fn: Callable[[Obj], list[str]]) -> Informer:
        """Ensure ``res``'s store has index ``name`` (the first definition wins)."""
        inf = self.get(res)
        if name not in self._indexes[res]:
            inf.store.add_index(name, fn)
            self._indexes[res].add(name)
        return inf

    def start(self) -> None:
        """Start every informer not running yet (safe to call again after adding more)."""
        for res, inf in self._informers.items():
            if res not in self._tasks:
                self._tasks[res] = asyncio.create_task(inf.run(), name=inf.name)

    async def wait_synced(self, timeout: float | None = None) -> None:
        await wait_synced(*self._informers.values(), timeout=timeout)

    def has_synced(self) -> bool:
        return all(inf.has_synced() for inf in self._informers.values())

    async def stop(self) -> None:
        """Cancel the informers and wait for them."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@dataclass(slots=True)
class ControllerContext:
    """What every controller is built from."""

    client: ApiClient
    informers: SharedInformers
    clock: Callable[[], float] = time.time
    """Wall-clock seconds (timestamps of objects are wall-clock); tests pass their own."""
    recorders: dict[str, EventRecorder] = field(default_factory=dict)

    def recorder(self, component: str) -> EventRecorder:
        """The event recorder writing as ``component`` (one per component)."""
        rec = self.recorders.get(component)
        if rec is None:
            rec = self.recorders[component] = EventRecorder(self.client, component)
        return rec


# -- controllers -----------------------------------------------------------------------


class Controller(ABC):
    """Work queue workers around :meth:`reconcile`; subclasses set :attr:`name`."""

    name: ClassVar[str] = "controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        self.ctx = ctx
        self.client = ctx.client
        self.workers = max(1, workers)
        self.queue: WorkQueue[str] = WorkQueue(self.name)
        self.informers: list[Informer] = []
        self.log = log.bind(controller=self.name)
        self.events = ctx.recorder(self.name)
        QUEUE_DEPTH.labels(self.name).set_function(lambda: len(self.queue))

    def watch(self, res: str) -> Informer:
        """The shared informer of ``res``, which must sync before the workers start."""
        inf = self.ctx.informers.get(res)
        if inf not in self.informers:
            self.informers.append(inf)
        return inf

    @abstractmethod
    async def reconcile(self, key: str) -> float | None:
        """Make the world match the object at ``key``; seconds until a requeue, or None.

        Raise :class:`TerminalError` for what no retry can fix; any other exception is
        retried with back-off.
        """

    # -- queueing (what event handlers call) ---------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(key_of(obj), delay)

    # -- running -------------------------------------------------------------------------

    async def run(self) -> None:
        """Wait for the caches, then run the workers until cancelled."""
        await wait_synced(*self.informers)
        self.log.info("controller started", workers=self.workers)
        workers = [
            asyncio.create_task(self._worker(), name=f"{self.name}:worker-{i}")
            for i in range(self.workers)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shut_down()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            await self.process(key)

    async def process(self, key: str) -> None:
        """Reconcile one key taken from the queue and decide on its requeue."""
        t0 = time.perf_counter()
        result = "success"
        try:
            with _tracer.start_as_current_span(
                f"reconcile {self.name}",
                kind=trace.SpanKind.INTERNAL,
                attributes={"skiff.controller": self.name, "skiff.key": key},
            ):
                requeue_after = await self.reconcile(key)
        except TerminalError as e:
            result = "terminal"
            self.queue.forget(key)
            self.log.error("reconcile failed; not retrying", key=key, error=str(e))
        except ApiError as e:
            result = "error"
            self.log.info("reconcile failed; retrying", key=key, code=e.code, error=e.message)
            self.queue.add_rate_limited(key)
        except Exception:
            result = "error"
            self.log.exception("reconcile failed; retrying", key=key)
            self.queue.add_rate_limited(key)
        else:
            self.queue.forget(key)
            if requeue_after is not None:
                result = "requeue"
                self.queue.add_after(key, requeue_after)
        finally:
            self.queue.done(key)
            RECONCILE_SECONDS.labels(self.name).observe(time.perf_counter() - t0)
        RECONCILES.labels(self.name, result).inc()

    async def stop(self) -> None:
        """Flush pending events (the workers stop when :meth:`run` is cancelled)."""
        with contextlib.suppress(Exception):
            await self.events.flush()


def writable(obj: Obj) -> Obj:
    """A copy of a cached object that is safe to change and write back."""
    return copy_object(obj)


class OwnedPodEvents:
    """Pod event handlers of a controller whose pods carry its controller reference
    (kube-controller-manager's addPod/updatePod/deletePod for DaemonSets and StatefulSets).

    Owned pods enqueue their owner and feed its ``creations``/``deletions`` expectations;
    an orphan enqueues every owner whose selector matches it (for adoption). The class
    mixing this in provides ``_owner_of(obj, ref)`` and ``_sets_for_orphan(pod)``.
    """

    creations: Expectations
    deletions: Expectations
    queue: WorkQueue[str]
    enqueue: Callable[[Obj], None]  # Controller's

    def _owner_of(self, obj: Obj, ref: Obj | None) -> Obj | None:
        raise NotImplementedError

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        raise NotImplementedError

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)  # first seen already terminating (a relist)
            return
        ref = controller_ref(pod)
        if ref is not None:
            owner = self._owner_of(pod, ref)
            if owner is not None:
                key = key_of(owner)
                self.creations.creation_observed(key)
                self.queue.add(key)
            return
        for owner in self._sets_for_orphan(pod):
            self.enqueue(owner)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old["metadata"], new["metadata"]
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return
        if nm.get("deletionTimestamp"):
            self._pod_deleted(new)
        old_ref, cur_ref = controller_ref(old), controller_ref(new)
        if (old_ref or {}).get("uid") != (cur_ref or {}).get("uid") and old_ref is not None:
            if (prev := self._owner_of(old, old_ref)) is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            if (owner := self._owner_of(new, cur_ref)) is not None:
                self.enqueue(owner)
            return
        if om.get("labels") != nm.get("labels") or old_ref is not None:
            for owner in self._sets_for_orphan(new):
                self.enqueue(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        owner = self._owner_of(pod, controller_ref(pod))
        if owner is None:
            return
        key = key_of(owner)
        self.deletions.deletion_observed(key, key_of(pod))
        self.queue.add(key)

    def _revision_changed(self, revision: Obj) -> None:
        owner = self._owner_of(revision, controller_ref(revision))
        if owner is not None:
            self.enqueue(owner)


_SPEC_SELECTOR = object()


class SelectorCache:
    """Parsed ``spec.selector`` of owners by uid, parsed again only when it changes.

    An unparsable selector is a :class:`TerminalError` (retrying cannot fix it); with
    ``allow_empty=False`` so is one that selects nothing or everything.
    """

    def __init__(
        self,
        parse: Callable[[Any], LabelSelector] = selector_from_dict,
        *,
        allow_empty: bool = True,
    ) -> None:
        self._parse = parse
        self._allow_empty = allow_empty
        self._cache: dict[str, tuple[Any, LabelSelector]] = {}

    def get(self, obj: Obj, raw: Any = _SPEC_SELECTOR) -> LabelSelector:
        """``obj``'s selector (``raw`` when given, else ``spec.selector``)."""
        if raw is _SPEC_SELECTOR:
            raw = (obj.get("spec") or {}).get("selector")
        uid = obj["metadata"].get("uid", "")
        cached = self._cache.get(uid)
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            sel = self._parse(raw)
        except ApiError as e:
            raise TerminalError(f"invalid selector: {e.message}") from e
        if not self._allow_empty and (sel.empty or sel.matches_nothing):
            raise TerminalError("the selector is empty: it would select no pod or every pod")
        self._cache[uid] = (raw, sel)
        return sel

    def pop(self, uid: str, default: Any = None) -> Any:
        """Forget an owner (deleted or replaced)."""
        return self._cache.pop(uid, default)


def owners_selecting(
    owners: Informer, obj: Obj, selector_of: Callable[[Obj], LabelSelector]
) -> list[tuple[Obj, LabelSelector]]:
    """Owners in ``obj``'s namespace whose selector selects its labels (for orphans);
    owners with an unusable selector (``TerminalError``) are skipped."""
    meta = obj["metadata"]
    out = []
    for owner in owners.store.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
        try:
            sel = selector_of(owner)
        except TerminalError:
            continue
        if sel.matches(meta.get("labels")):
            out.append((owner, sel))
    return out
