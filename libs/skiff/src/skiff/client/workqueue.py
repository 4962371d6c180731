"""A rate-limited work queue with client-go's semantics, for asyncio.

- A key is queued at most once (``dirty``); a key being processed is never handed
  to a second worker (``processing``); adding a key while it is processed queues it
  again once :meth:`WorkQueue.done` is called.
- ``add_rate_limited`` delays a key by per-item exponential back-off (5 ms doubling
  to 1,000 s) or by a global token bucket (10/s, burst 100), whichever is longer;
  ``forget`` resets the key's back-off after a success.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should exit."""


@dataclass(slots=True)
class ItemExponentialBackoff:
    """Per-key back-off: ``base * 2**failures``, capped."""

    base: float = 0.005
    cap: float = 1000.0
    failures: dict[Hashable, int] = field(default_factory=dict)

    def when(self, key: Hashable) -> float:
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        return min(self.cap, self.base * (2**n))

    def forget(self, key: Hashable) -> None:
        self.failures.pop(key, None)

    def retries(self, key: Hashable) -> int:
        return self.failures.get(key, 0)


@dataclass(slots=True)
class TokenBucket:
    """Overall rate limit: how long until the next token (reserving it)."""

    rate: float = 10.0
    burst: int = 100
    tokens: float = 100.0
    last: float = field(default_factory=time.monotonic)

    def when(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class WorkQueue(Generic[K]):
    """``await get()`` → process → ``done(key)``; see the module docstring."""

    def __init__(
        self,
        name: str = "",
        *,
        backoff: ItemExponentialBackoff | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.name = name
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []  # (ready at, seq, key) heap
        self._seq = itertools.count()
        self._backoff = backoff or ItemExponentialBackoff()
        self._bucket = bucket or TokenBucket()
        self._ready = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._shutdown = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: K) -> None:
        """Queue ``key`` now (no-op if already queued)."""
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done()
        self._queue.append(key)
        self._notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue ``key`` after ``delay`` seconds."""
        if self._shutdown:
            return
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._waiting, (time.monotonic() + delay, next(self._seq), key))
        self._arm()

    def add_rate_limited(self, key: K) -> None:
        """Queue ``key`` after its back-off (after a failure)."""
        self.add_after(key, max(self._backoff.when(key), self._bucket.when()))

    def forget(self, key: K) -> None:
        """Reset ``key``'s back-off (after a success)."""
        self._backoff.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._backoff.retries(key)

    async def get(self) -> K:
        """The next key; it is ``processing`` until :meth:`done`. Raises :class:`ShutDown`."""
        while not self._queue:
            if self._shutdown:
                raise ShutDown(self.name)
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: K) -> None:
        """Mark ``key`` processed; if it was added meanwhile, queue it again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._notify()

    def shut_down(self) -> None:
        self._shutdown = True
        if self._timer is not None:
            self._timer.cancel()
        self._notify()

    def _notify(self) -> None:
        self._ready.set()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._waiting:
            self._timer = None
            return
        delay = max(0.0, self._waiting[0][0] - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._release)

    def _release(self) -> None:
        self._timer = None
        now = time.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self.add(key)
        self._arm()
