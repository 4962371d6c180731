"""The scheduling queue, shaped like kube-scheduler's PriorityQueue.

- ``active``: pods ready to be tried, highest priority first, then oldest.
- ``backoff``: pods that failed recently, waiting out 1 s doubling to 10 s.
- ``unschedulable``: pods no node fits. They are not polled: a cluster event that
  could make them fit (a node added or changed, a pod deleted) moves them back to
  ``active`` (or to ``backoff`` while their back-off lasts). As in kube-scheduler, a
  pod left there for 5 minutes is retried anyway.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_UNSCHEDULABLE_AGE = 300.0


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


@dataclass(slots=True)
class QueuedPod:
    """A pod waiting to be scheduled, with its attempt history."""

    pod: dict[str, Any]
    key: str
    attempts: int = 0
    added: float = field(default_factory=time.monotonic)
    last_failure: float = 0.0
    moved_since_failure: bool = False

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)

    def backoff_until(self) -> float:
        if not self.attempts:
            return 0.0
        delay = min(MAX_BACKOFF, INITIAL_BACKOFF * 2 ** (self.attempts - 1))
        return self.last_failure + delay


class SchedulingQueue:
    """Pods to schedule; ``await pop()`` gives the next one."""

    def __init__(self) -> None:
        self._active: list[tuple[int, str, int, str]] = []  # (-prio, created, seq, key)
        self._backoff: list[tuple[float, int, str]] = []  # (until, seq, key)
        self._unschedulable: dict[str, QueuedPod] = {}
        self._pods: dict[str, QueuedPod] = {}  # every pod known to the queue
        # key -> "active", "backoff", "unschedulable" or "inflight"
        self._where: dict[str, str] = {}
        self._seq = itertools.count()
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def __len__(self) -> int:
        return sum(1 for w in self._where.values() if w != "inflight")

    def depth(self) -> dict[str, int]:
        out = {"active": 0, "backoff": 0, "unschedulable": 0, "inflight": 0}
        for w in self._where.values():
            out[w] += 1
        return out

    # -- informer events -----------------------------------------------------------------

    def add(self, pod: dict[str, Any]) -> None:
        """A new pod to schedule (or a changed one)."""
        key = pod_key(pod)
        qp = self._pods.get(key)
        if qp is None:
            qp = self._pods[key] = QueuedPod(pod, key)
            self._push_active(qp)
            return
        qp.pod = pod
        where = self._where.get(key)
        if where == "unschedulable":
            # The pod itself changed: it may fit now.
            del self._unschedulable[key]
            self._requeue(qp)
        elif where is None:
            self._push_active(qp)

    def delete(self, pod: dict[str, Any]) -> None:
        key = pod_key(pod)
        self._pods.pop(key, None)
        self._unschedulable.pop(key, None)
        self._where.pop(key, None)  # stale heap entries are skipped on pop

    def move_all(self, reason: str = "") -> None:
        """A cluster event that may let unschedulable pods fit: retry them."""
        for qp in self._unschedulable.values():
            qp.moved_since_failure = True
            self._requeue(qp)
        self._unschedulable.clear()
        # Pods in flight when the event arrived must not be parked as unschedulable.
        for key, where in self._where.items():
            if where == "inflight":
                self._pods[key].moved_since_failure = True

    # -- the scheduling loop ---------------------------------------------------------------

    async def pop(self) -> QueuedPod:
        """The next pod to try; it is in flight until done(), failed() or delete()."""
        while True:
            self._flush_unschedulable()
            while self._active:
                _, _, _, key = heapq.heappop(self._active)
                if self._where.get(key) == "active":
                    self._where[key] = "inflight"
                    qp = self._pods[key]
                    qp.moved_since_failure = False
                    return qp
            if self._closed:
                raise asyncio.CancelledError
            self._ready.clear()
            await self._ready.wait()

    def done(self, qp: QueuedPod) -> None:
        """Scheduled: forget the pod."""
        if self._pods.get(qp.key) is qp:
            del self._pods[qp.key]
            self._where.pop(qp.key, None)

    def failed(self, qp: QueuedPod, *, unschedulable: bool) -> None:
        """The attempt failed: back off, or park it until the cluster changes."""
        if self._pods.get(qp.key) is not qp:
            return  # deleted meanwhile
        qp.attempts += 1
        qp.last_failure = time.monotonic()
        if unschedulable and not qp.moved_since_failure:
            self._where[qp.key] = "unschedulable"
            self._unschedulable[qp.key] = qp
            asyncio.get_running_loop().call_later(
                MAX_UNSCHEDULABLE_AGE + 0.1, self._flush_unschedulable
            )
        else:
            self._requeue(qp)

    def retry(self, qp: QueuedPod) -> None:
        """Bring back a pod already handed over (its binding failed), with back-off."""
        if qp.key in self._pods and self._pods[qp.key] is not qp:
            return  # the informer re-added it meanwhile
        self._pods[qp.key] = qp
        qp.attempts += 1
        qp.last_failure = time.monotonic()
        self._requeue(qp)

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    # -- internals -------------------------------------------------------------------------

    def _push_active(self, qp: QueuedPod) -> None:
        created = qp.pod["metadata"].get("creationTimestamp") or ""
        heapq.heappush(self._active, (-qp.priority, created, next(self._seq), qp.key))
        self._where[qp.key] = "active"
        self._ready.set()

    def _requeue(self, qp: QueuedPod) -> None:
        until = qp.backoff_until()
        if until > time.monotonic():
            heapq.heappush(self._backoff, (until, next(self._seq), qp.key))
            self._where[qp.key] = "backoff"
            self._arm()
        else:
            self._push_active(qp)

    def _arm(self) -> None:
        if self._timer is not None or not self._backoff:
            return
        delay = max(0.0, self._backoff[0][0] - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if self._where.get(key) == "backoff":
                self._push_active(self._pods[key])
        self._arm()

    def _flush_unschedulable(self) -> None:
        if not self._unschedulable:
            return
        now = time.monotonic()
        stale = [
            k
            for k, qp in self._unschedulable.items()
            if now - qp.last_failure > MAX_UNSCHEDULABLE_AGE
        ]
        for k in stale:
            self._requeue(self._unschedulable.pop(k))
