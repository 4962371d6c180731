"""The storage interface the API server needs: a few transaction shapes, each returning
the revision it committed at (as kine's), plus leases for the keys that must go when
their holder does (the event pump's leadership, the live apiservers' master leases).

Implemented on etcd (:mod:`.etcd`) and in memory for unit tests (:mod:`.memory`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class StorageError(Exception):
    """The backend could not be reached or answered with an error."""


class KeyExistsError(StorageError):
    """Create found the key already present (``key``: which one)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class ConflictError(StorageError):
    """A compare-and-swap found a different revision than expected."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(f"revision mismatch on {key}")
        self.current = current


class CompactedError(StorageError):
    """The revision asked for has been compacted away."""

    def __init__(self, compacted_revision: int) -> None:
        super().__init__(f"required revision has been compacted (now {compacted_revision})")
        self.compacted_revision = compacted_revision


class EventType(StrEnum):
    PUT = "PUT"
    DELETE = "DELETE"


@dataclass(slots=True, frozen=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0
    stale: bool = False
    """Read with an encryption key that is no longer the one writes use: an update
    rewrites it even when nothing changed (key rotation)."""


@dataclass(slots=True, frozen=True)
class WatchEvent:
    """One change. For a delete, ``value`` holds the value before the delete."""

    type: EventType
    key: str
    value: bytes
    revision: int
    created: bool


def prefix_end(prefix: str) -> bytes:
    """The ``range_end`` that selects every key starting with ``prefix``."""
    b = bytearray(prefix.encode())
    for i in range(len(b) - 1, -1, -1):
        if b[i] < 0xFF:
            b[i] += 1
            return bytes(b[: i + 1])
    return b"\0"


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

    async def grant_lease(self, ttl: int) -> int:
        """A lease of ``ttl`` seconds; keys created with it go when it expires."""

    async def refresh_lease(self, lease_id: int) -> int:
        """Renew a lease once; its remaining TTL (0 or less: it has expired)."""

    async def revoke_lease(self, lease_id: int) -> None:
        """End a lease now, deleting its keys."""
