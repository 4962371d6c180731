"""A store on the in-memory backend with its watch cache fed, for tests that go through
admission (webhooks, policies): namespaces made, the cache caught up on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

from skiff.api.resources import REGISTRY
from skiff.apiserver.storage.memory import MemoryBackend
from skiff.apiserver.store import Store
from skiff.apiserver.store import WriteOptions as Opts
from skiff.apiserver.watchcache import WatchCache

NAMESPACES = REGISTRY.core("namespaces")


class MemoryStore:
    def __init__(self, backend: MemoryBackend, cache: WatchCache, store: Store) -> None:
        self.backend, self.cache, self.store = backend, cache, store

    async def settle(self) -> None:
        """Wait until the watch cache has every write so far."""
        assert await self.cache.wait_for(await self.backend.current_revision(), 2)


E = TypeVar("E", bound=MemoryStore)


@contextlib.asynccontextmanager
async def running(kind: type[E], namespaces: dict[str, dict[str, str]]) -> AsyncIterator[E]:
    """A ``kind`` over a fresh store, with ``namespaces`` (name → labels) made."""
    backend = MemoryBackend()
    cache = WatchCache(backend, None)
    feed = asyncio.create_task(cache.follow(backend))
    await cache.ready.wait()
    env = kind(backend, cache, Store(backend, cache))
    for ns, labels in namespaces.items():
        meta = {"metadata": {"name": ns, "labels": labels}}
        await env.store.create(NAMESPACES, None, meta, Opts())
    await env.settle()
    try:
        yield env
    finally:
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed
