"""Shared informers: one informer per resource for every controller of a process
(client-go's ``SharedInformerFactory``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from skiff.api.resources import ResourceInfo
from skiff.client.informer import Informer, wait_synced
from skiff.client.rest import ApiClient, Obj
from skiff.log import get_logger

log = get_logger(__name__)


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
