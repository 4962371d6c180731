"""Test servers that run on their own event loop in a thread (for tests that drive
kubectl and the official client synchronously)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

S = TypeVar("S", bound=AbstractAsyncContextManager)  # type: ignore[type-arg]


def serve_in_thread(server: S) -> Iterator[S]:
    """Enter ``server`` on a new event loop in a thread, yield it, and leave it when
    resumed: ``yield from serve_in_thread(WebhookServer(...))`` in a fixture."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()

    async def serve() -> None:
        async with server:
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10), "the server did not start"
    yield server
    loop.call_soon_threadsafe(stop.set)
    thread.join(5)
