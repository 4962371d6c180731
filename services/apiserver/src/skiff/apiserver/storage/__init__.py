"""Storage behind one narrow interface (the transaction shapes the API server needs).

Every write returns the revision it committed at; that revision is the object's
``resourceVersion``. :class:`~skiff.apiserver.storage.etcd.EtcdBackend` is the implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Protocol

from .etcd import (
    CompactedError,
    ConflictError,
    EtcdBackend,
    EventType,
    KeyExistsError,
    KeyValue,
    StorageError,
    WatchEvent,
)

__all__ = [
    "Backend",
    "CompactedError",
    "ConflictError",
    "EtcdBackend",
    "EventType",
    "KeyExistsError",
    "KeyValue",
    "StorageError",
    "WatchEvent",
]


class Backend(Protocol):
    """What the API server's registry needs from storage."""

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """One key, now or at a past revision."""

    async def range(
        self, prefix: str, *, start: str | None = None, revision: int = 0, limit: int = 0
    ) -> tuple[list[KeyValue], int, bool]:
        """Keys under a prefix: (key-values, revision read at, whether more follow)."""

    async def range_all(
        self, prefix: str, *, revision: int = 0, page: int = 2000
    ) -> tuple[list[KeyValue], int]:
        """Every key under a prefix at one revision."""

    async def current_revision(self) -> int:
        """The latest committed revision."""

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Create if absent (else :class:`KeyExistsError`)."""

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replace if the key is at ``expected_revision`` (else :class:`ConflictError`)."""

    async def delete(self, key: str, expected_revision: int) -> int:
        """Delete if the key is at ``expected_revision`` (else :class:`ConflictError`)."""

    async def write_claiming(
        self,
        key: str,
        value: bytes | None,
        expected_revision: int,
        *,
        claim: Mapping[str, bytes] | None = None,
        release: Iterable[str] = (),
    ) -> int:
        """Create/replace/delete ``key`` with claiming and releasing other keys, atomically."""

    async def compact(self, revision: int) -> None:
        """Forget history before ``revision``."""

    def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Changes under a prefix from a revision on (:class:`CompactedError` if gone)."""
