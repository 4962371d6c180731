"""Slow-start batches (``slowStartBatch``): many creates in batches of 1, 2, 4…"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from skiff.log import get_logger

log = get_logger(__name__)


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
