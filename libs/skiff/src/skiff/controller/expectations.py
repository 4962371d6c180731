""":class:`Expectations` is kube-controller-manager's ``UIDTrackingControllerExpectations``:
a controller records how many creations (and which deletions) it has asked for before
asking, informer events lower the counts, and it does not act on a key again until its
cache has caught up (or 5 minutes have passed). A slow cache or a replayed watch
therefore never makes it create a pod twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from skiff.log import get_logger

log = get_logger(__name__)


EXPECTATIONS_TIMEOUT = 300.0
"""Seconds after which unmet expectations are given up (kube-controller-manager: 5 min)."""


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
