"""Storage behind one narrow interface (:mod:`.interface`): etcd in production
(:class:`~.etcd.EtcdBackend`), memory in unit tests (:class:`~.memory.MemoryBackend`)."""

from .interface import (
    Backend,
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    StorageError,
    WatchEvent,
    prefix_end,
)

__all__ = [
    "Backend",
    "CompactedError",
    "ConflictError",
    "EventType",
    "KeyExistsError",
    "KeyValue",
    "StorageError",
    "WatchEvent",
    "prefix_end",
]
