"""The event stream shared by the pump (writer) and the watch caches (readers).

One JetStream stream holds every change under ``/registry/`` in etcd revision
order. A message's headers carry the revision, key and event type; its payload
is the stored object (for a delete: the object as it was before).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from skiff.api.resources import REGISTRY
from skiff.apiserver.storage import EventType, WatchEvent
from skiff.log import get_logger

log = get_logger(__name__)

STREAM = "SKIFF_EVENTS"
SUBJECT_PREFIX = "skiff.events"
RESET_SUBJECT = f"{SUBJECT_PREFIX}._reset"

H_REV = "Skiff-Rev"
H_KEY = "Skiff-Key"
H_TYPE = "Skiff-Type"
H_MSG_ID = "Nats-Msg-Id"
H_EXPECTED_SEQ = "Nats-Expected-Last-Sequence"

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
RESET = "RESET"


def type_of(event: WatchEvent) -> str:
    """The watch event type of a storage change (a put that created the key: ADDED)."""
    if event.type is EventType.DELETE:
        return DELETED
    return ADDED if event.created else MODIFIED


@dataclass(slots=True, frozen=True)
class StreamSettings:
    max_msgs: int = 1_000_000
    max_bytes: int = 2 * 1024**3
    duplicate_window_s: float = 120.0
    replicas: int = 1


def subject_for(key: str) -> str:
    """Subject for an etcd key: ``skiff.events.<group>.<plural>`` (``other`` if unknown)."""
    info = REGISTRY.by_key(key)
    if info is None:
        return f"{SUBJECT_PREFIX}.other"
    return f"{SUBJECT_PREFIX}.{info.group or 'core'}.{info.plural}"


async def connect(url: str, name: str, tls: ssl.SSLContext | None = None) -> NATS:
    """A NATS connection that keeps reconnecting for as long as the process lives (over
    TLS with a client certificate when ``tls`` is given)."""

    async def on_error(e: Exception) -> None:
        log.warning("nats error", error=repr(e))

    async def on_disconnected() -> None:
        log.warning("nats disconnected; reconnecting", url=url)

    async def on_reconnected() -> None:
        log.info("nats reconnected", url=url)

    return await nats.connect(
        url,
        name=name,
        tls=tls,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )


async def ensure_stream(
    js: JetStreamContext, settings: StreamSettings = StreamSettings(), *, create: bool = True
) -> None:
    """Create the event stream if it does not exist yet; with ``create`` False (a reader
    that may not create it: the watch cache on a secured NATS), wait for the pump to."""
    while True:
        try:
            await js.stream_info(STREAM)
            return
        except NotFoundError:
            if create:
                break
        log.info("waiting for the event pump to create the event stream")
        await asyncio.sleep(1.0)
    await js.add_stream(
        StreamConfig(
            name=STREAM,
            subjects=[f"{SUBJECT_PREFIX}.>"],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_msgs=settings.max_msgs,
            max_bytes=settings.max_bytes,
            duplicate_window=settings.duplicate_window_s,
            num_replicas=settings.replicas,
        )
    )


async def last_published(js: JetStreamContext) -> tuple[int, int]:
    """(last stream sequence, the etcd revision it carries); (0, 0) when empty."""
    info = await js.stream_info(STREAM)
    seq = info.state.last_seq
    if not seq or info.state.messages == 0:
        return seq, 0
    msg = await js.get_msg(STREAM, seq)
    return seq, int((msg.headers or {}).get(H_REV, "0"))


async def revision_at(js: JetStreamContext, seq: int) -> int | None:
    """The revision carried by message ``seq`` (``None`` if it is gone)."""
    try:
        msg = await js.get_msg(STREAM, seq)
    except NotFoundError:
        return None
    return int((msg.headers or {}).get(H_REV, "0"))


async def first_seq_after(js: JetStreamContext, revision: int) -> tuple[int, int]:
    """The first stream sequence whose revision is greater than ``revision``.

    Returns (that sequence, the first sequence still in the stream). Messages
    are in revision order, so a binary search over sequences finds it.
    """
    info = await js.stream_info(STREAM)
    lo, hi = info.state.first_seq, info.state.last_seq
    if info.state.messages == 0:
        return hi + 1, hi + 1
    first = lo
    answer = hi + 1
    while lo <= hi:
        mid = (lo + hi) // 2
        rev = await revision_at(js, mid)
        if rev is None:  # aged out under us; search the part that remains
            lo = mid + 1
            continue
        if rev > revision:
            answer = mid
            hi = mid - 1
        else:
            lo = mid + 1
    return answer, first
