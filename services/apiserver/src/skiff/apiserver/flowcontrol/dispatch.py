"""API Priority and Fairness' limits (kube's ``k8s.io/apiserver/pkg/util/flowcontrol``,
without seat borrowing): each ``Limited`` priority level may execute
``ceil(serverCL * nominalConcurrencyShares / sum of shares)`` requests at once, ``serverCL``
being ``--max-requests-inflight`` + ``--max-mutating-requests-inflight`` (kube's 400 +
200). A request over its level's limit is refused at once under ``Reject``; under
``Queue`` its flow (FlowSchema and distinguisher: the user or the namespace) is
shuffle-sharded to ``handSize`` of the level's ``queues`` and waits in the shortest of
them, unless that one holds ``queueLengthLimit`` already. Queues are served in turn
(fair queuing's effect: one busy flow cannot take every free seat from the others); a
request that waits longer than the queue wait limit is refused too. A refusal is kube's
429 "Too many requests, please try again later." with ``Retry-After``. ``Exempt`` levels
have no limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter, Gauge

from ..watchcache import WatchCache
from .classifier import PRIORITY_LEVELS, Classification

MAX_REQUESTS_INFLIGHT = 400
MAX_MUTATING_REQUESTS_INFLIGHT = 200
QUEUE_WAIT_LIMIT = 15.0
"""How long a request may wait in a queue: a quarter of kube's one-minute request
timeout."""

REJECTED = Counter(
    "apiserver_flowcontrol_rejected_requests_total",
    "Requests refused by API Priority and Fairness",
    ["priority_level", "flow_schema", "reason"],
)
EXECUTING = Gauge(
    "apiserver_flowcontrol_current_executing_requests",
    "Requests executing, by priority level",
    ["priority_level"],
)
WAITING = Gauge(
    "apiserver_flowcontrol_current_inqueue_requests",
    "Requests waiting in a queue, by priority level",
    ["priority_level"],
)


class Rejected(Exception):
    """A request API Priority and Fairness refuses (reason: ``queue-full``, ``time-out``
    or ``concurrency-limit``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Level:
    """One priority level's seats and queues."""

    name: str
    limit: int | None
    """Seats (None: exempt)."""
    queues: list[deque[asyncio.Future[None]]] = field(default_factory=list)
    hand_size: int = 0
    queue_length: int = 0
    executing: int = 0
    turn: int = 0

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues)


def nominal_limits(levels: list[dict[str, Any]], server_limit: int) -> dict[str, int | None]:
    """Each level's seats: None for exempt ones, else its share of ``server_limit``."""
    shares = {}
    for pl in levels:
        spec = pl.get("spec") or {}
        if spec.get("type") == "Limited":
            limited = spec.get("limited") or {}
            shares[pl["metadata"]["name"]] = max(
                int(limited.get("nominalConcurrencyShares") or 0), 0
            )
    total = sum(shares.values())
    out: dict[str, int | None] = {}
    for pl in levels:
        name = pl["metadata"]["name"]
        if name in shares:
            out[name] = math.ceil(server_limit * shares[name] / total) if total else 0
        else:
            out[name] = None
    return out


def deal(flow: str, queues: int, hand_size: int) -> list[int]:
    """The queues a flow may use: a hand of ``hand_size`` distinct queues dealt from a
    hash of the flow (shuffle sharding)."""
    hand: list[int] = []
    value = int.from_bytes(hashlib.sha256(flow.encode()).digest()[:8], "big")
    deck = list(range(queues))
    for i in range(min(hand_size, queues)):
        value, pick = divmod(value, queues - i)
        hand.append(deck[pick])
        deck[pick] = deck[queues - i - 1]
    return hand


class Dispatcher:
    """Seats and queues of every priority level, kept in step with the cache's
    PriorityLevelConfigurations."""

    def __init__(
        self,
        cache: WatchCache,
        server_limit: int = MAX_REQUESTS_INFLIGHT + MAX_MUTATING_REQUESTS_INFLIGHT,
        queue_wait: float = QUEUE_WAIT_LIMIT,
    ) -> None:
        self.cache = cache
        self.server_limit = server_limit
        self.queue_wait = queue_wait
        self._seen = -1
        self._levels: dict[str, _Level] = {}

    def _level(self, name: str) -> _Level:
        generation = self.cache.of(PRIORITY_LEVELS).generation
        if generation != self._seen:
            self._configure()
            self._seen = generation
        level = self._levels.get(name)
        if level is None:  # not (yet) an object: unlimited, as kube imagines a missing one
            level = self._levels[name] = _Level(name, None)
        return level

    def _configure(self) -> None:
        objects = self.cache.list(PRIORITY_LEVELS)
        limits = nominal_limits(objects, self.server_limit)
        for pl in objects:
            name = pl["metadata"]["name"]
            spec = (pl.get("spec") or {}).get("limited") or {}
            queuing = (spec.get("limitResponse") or {}).get("queuing") or {}
            level = self._levels.setdefault(name, _Level(name, limits[name]))
            level.limit = limits[name]
            count = int(queuing.get("queues") or 0) if limits[name] is not None else 0
            if len(level.queues) != count:
                waiting = [w for q in level.queues for w in q if not w.done()]
                level.queues = [deque() for _ in range(count)]
                for i, waiter in enumerate(waiting):
                    if count:  # requests already waiting keep waiting, spread anew
                        level.queues[i % count].append(waiter)
                    else:  # the level stopped queuing: they are refused
                        waiter.set_exception(Rejected("concurrency-limit"))
            level.hand_size = int(queuing.get("handSize") or 0)
            level.queue_length = int(queuing.get("queueLengthLimit") or 0)
            self._dispatch(level)

    @contextlib.asynccontextmanager
    async def seat(self, c: Classification) -> AsyncIterator[None]:
        """Hold one of ``c``'s level's seats while the request executes; raises
        :class:`Rejected` when the level cannot take it."""
        level = self._level(c.priority_level)
        if level.limit is not None and level.executing >= level.limit:
            await self._wait(level, f"{c.flow_schema}/{c.distinguisher}", c)
        else:
            level.executing += 1
        EXECUTING.labels(level.name).inc()
        try:
            yield
        finally:
            EXECUTING.labels(level.name).dec()
            level.executing -= 1
            self._dispatch(level)

    async def _wait(self, level: _Level, flow: str, c: Classification) -> None:
        """Wait in a queue until :meth:`_dispatch` gives the request a seat (counted for
        it there)."""
        if not level.queues:
            REJECTED.labels(level.name, c.flow_schema, "concurrency-limit").inc()
            raise Rejected("concurrency-limit")
        hand = deal(flow, len(level.queues), level.hand_size)
        queue = min((level.queues[i] for i in hand), key=len)
        if len(queue) >= level.queue_length:
            REJECTED.labels(level.name, c.flow_schema, "queue-full").inc()
            raise Rejected("queue-full")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        WAITING.labels(level.name).inc()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self.queue_wait)
        except TimeoutError:
            if waiter.done() and waiter.exception() is None:
                return  # dispatched just as the wait ended: the seat is this request's
            waiter.cancel()
            REJECTED.labels(level.name, c.flow_schema, "time-out").inc()
            raise Rejected("time-out") from None
        except asyncio.CancelledError:  # the client went away
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                level.executing -= 1  # its seat goes to the next one
                self._dispatch(level)
            waiter.cancel()
            raise
        finally:
            WAITING.labels(level.name).dec()

    def _dispatch(self, level: _Level) -> None:
        """Hand free seats to waiting requests, one queue after another."""
        while level.limit is None or level.executing < level.limit:
            waiter = self._next(level)
            if waiter is None:
                return
            level.executing += 1
            waiter.set_result(None)

    @staticmethod
    def _next(level: _Level) -> asyncio.Future[None] | None:
        count = len(level.queues)
        for step in range(count):
            queue = level.queues[(level.turn + step) % count]
            while queue and queue[0].done():
                queue.popleft()  # gave up waiting
            if queue:
                level.turn = (level.turn + step + 1) % count
                return queue.popleft()
        return None
