"""Our own writes that the informer cache has not shown yet.

Right after a controller writes an object, its cache still holds the older copy for a
moment. Reconciling from that copy would only earn a conflict (409), or worse, write the
same change twice (a second EndpointSlice). So a controller notes each write under the
key it reconciles, and skips that key while the cache lags: the write's own watch event
requeues the key once it arrives. A write counts as seen when the cache shows the object
at its resourceVersion or later (gone, for a deletion); after ``timeout`` seconds it is
given up, so a lost event never wedges a key. (Kubernetes' EndpointSliceTracker and the
Endpoints controller's staleness checks do the same.)

Usage::

    if self.own_writes.pending(key, self.slices.get):
        return None                                   # our last write is on its way
    written = await self.client.update(...)
    self.own_writes.wrote(key, written)               # or wrote(key, obj, deleted=True)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from skiff.client.informer import key_of
from skiff.client.rest import Obj

STALE_WRITE_SECONDS = 30.0
"""How long a write may stay unseen before the cache is trusted again."""


def resource_version(obj: Obj | None) -> int:
    """An object's resourceVersion as a number (0 when absent), to tell newer from older."""
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except (TypeError, ValueError):
        return 0


class OwnWrites:
    """Per controller key: the objects we wrote and the resourceVersion each must reach."""

    def __init__(
        self, timeout: float = STALE_WRITE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self._items: dict[str, dict[str, tuple[int | None, float]]] = {}

    def wrote(self, key: str, obj: Obj, *, deleted: bool = False) -> None:
        """Note a write of ``obj`` (as the API answered it) made for ``key``; with
        ``deleted`` the cache must stop showing the object."""
        rv = None if deleted else resource_version(obj)
        self._items.setdefault(key, {})[key_of(obj)] = (rv, self.clock())

    def observed_deletion(self, key: str, object_key: str) -> None:
        """The cache saw ``object_key`` go (a delete event)."""
        items = self._items.get(key)
        if items is not None:
            items.pop(object_key, None)

    def forget(self, key: str) -> None:
        """Drop ``key``'s writes (its object is gone)."""
        self._items.pop(key, None)

    def pending(self, key: str, get: Callable[[str], Obj | None]) -> bool:
        """Whether the cache (read with ``get(object_key)``) still lacks a write made for
        ``key``. Writes that were seen, or are older than ``timeout``, are forgotten."""
        items = self._items.get(key)
        if not items:
            return False
        now = self.clock()
        for object_key, (rv, at) in list(items.items()):
            cached = get(object_key)
            seen = cached is None if rv is None else resource_version(cached) >= rv
            if seen or now - at > self.timeout:
                del items[object_key]
        if not items:
            del self._items[key]
            return False
        return True
