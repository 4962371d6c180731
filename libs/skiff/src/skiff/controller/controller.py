"""Controllers: work queue workers around a level-triggered ``reconcile(key)``.

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

:class:`Reconciler` is that queue and its workers alone, for a component that reconciles
keys without a :class:`ControllerContext` (the kubelet's pod workers); :class:`Controller`
is a Reconciler built from one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from skiff import tracing
from skiff.api.errors import ApiError
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer, copy_object, key_of, wait_synced
from skiff.client.rest import ApiClient, Obj
from skiff.client.workqueue import ShutDown, WorkQueue
from skiff.controller.informers import SharedInformers
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


class TerminalError(Exception):
    """An error retrying cannot fix (an invalid spec): logged, and the key is not requeued."""


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


class Reconciler(ABC):
    """A work queue of keys and the workers that take them to :meth:`reconcile`.

    Subclasses set :attr:`name` and add to :attr:`informers` what must sync before the
    workers start; :meth:`reconcile_span` and :meth:`log_retry` may be overridden.
    """

    name: ClassVar[str] = "reconciler"

    def __init__(self, *, workers: int = 5) -> None:
        self.workers = max(1, workers)
        self.queue: WorkQueue[str] = WorkQueue(self.name)
        self.informers: list[Informer] = []
        self.log = log.bind(controller=self.name)
        QUEUE_DEPTH.labels(self.name).set_function(lambda: len(self.queue))

    @abstractmethod
    async def reconcile(self, key: str) -> float | None:
        """Make the world match the object at ``key``; seconds until a requeue, or None.

        Raise :class:`TerminalError` for what no retry can fix; any other exception is
        retried with back-off.
        """

    def reconcile_span(self, key: str) -> contextlib.AbstractContextManager[object]:
        """The span around one :meth:`reconcile` of ``key``."""
        return _tracer.start_as_current_span(
            f"reconcile {self.name}",
            kind=trace.SpanKind.INTERNAL,
            attributes={"skiff.controller": self.name, "skiff.key": key},
        )

    def log_retry(self, key: str, error: Exception) -> None:
        """Log a failure that will be retried (called while ``error`` is handled)."""
        if isinstance(error, ApiError):
            self.log.info(
                "reconcile failed; retrying", key=key, code=error.code, error=error.message
            )
        else:
            self.log.exception("reconcile failed; retrying", key=key)

    # -- running -------------------------------------------------------------------------

    async def run(self, *, wait_for_caches: bool = True) -> None:
        """Wait for the caches (unless told not to: work that needs none of them, such as
        the kubelet's static pods before the API answers), then run the workers until
        cancelled."""
        if wait_for_caches:
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
            with self.reconcile_span(key):
                requeue_after = await self.reconcile(key)
        except TerminalError as e:
            result = "terminal"
            self.queue.forget(key)
            self.log.error("reconcile failed; not retrying", key=key, error=str(e))
        except Exception as e:
            result = "error"
            self.log_retry(key, e)
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


class Controller(Reconciler):
    """A :class:`Reconciler` fed by shared informers; subclasses set :attr:`name`."""

    name: ClassVar[str] = "controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        self.ctx = ctx
        self.client = ctx.client
        super().__init__(workers=workers)
        self.events = ctx.recorder(self.name)

    def watch(self, res: str) -> Informer:
        """The shared informer of ``res``, which must sync before the workers start."""
        inf = self.ctx.informers.get(res)
        if inf not in self.informers:
            self.informers.append(inf)
        return inf

    # -- queueing (what event handlers call) ---------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(key_of(obj), delay)

    async def stop(self) -> None:
        """Flush pending events (the workers stop when :meth:`run` is cancelled)."""
        with contextlib.suppress(Exception):
            await self.events.flush()


def writable(obj: Obj) -> Obj:
    """A copy of a cached object that is safe to change and write back."""
    return copy_object(obj)
