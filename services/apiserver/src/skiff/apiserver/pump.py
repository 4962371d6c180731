"""The event pump: etcd watch → NATS JetStream, in revision order, exactly once.

Changes outside ``/registry/`` (master leases, the allocators) are published without
their value, as progress: a watch cache that has applied them has reached the revision a
list read from etcd answers with, so a watch from that list's resourceVersion starts at
once instead of waiting for the next change of an object.

Every apiserver runs a candidate; an etcd lease on :data:`LEADER_KEY` picks the
one that pumps. The leader resumes from the revision of the last message in
the stream, so a restarted pump neither loses nor repeats an event: publishes
carry ``Nats-Msg-Id`` (de-duplication) and ``Nats-Expected-Last-Sequence``,
so a deposed leader that still publishes is refused instead of interleaving.
If etcd compacted past the resume point, the pump publishes a RESET marker and
the watch caches relist.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from nats.aio.client import Client as NATS
from nats.js.errors import APIError
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from skiff import tracing
from skiff.apiserver.storage import (
    Backend,
    CompactedError,
    KeyExistsError,
    StorageError,
)
from skiff.apiserver.storage.codec import trace_of
from skiff.log import get_logger

from . import eventstream as ev

LEADER_KEY = "/registry/skiff.io/leader/event-pump"
REGISTRY_PREFIX = "/registry/"
WATCHED = "/"
"""Every key Skiff writes (``/registry/``, ``/skiff/``) is under it."""
LEASE_TTL = 5

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.pump")

PUBLISHED = Counter("skiff_pump_published_total", "Events published to NATS by the pump")
IS_LEADER = Gauge("skiff_pump_leader", "1 while this process is the event pump leader")


class EventPump:
    """Leader-elected publisher of etcd changes to the event stream."""

    def __init__(self, etcd: Backend, nc: NATS, *, identity: str | None = None) -> None:
        self.etcd = etcd
        self.nc = nc
        self.js = nc.jetstream()
        self.identity = identity or f"{socket.gethostname()}-{os.getpid()}"
        self.is_leader = False

    async def run(self) -> None:
        """Campaign, pump while leader, and campaign again on any failure."""
        while True:
            try:
                lease = await self._campaign()
                try:
                    await self._lead(lease)
                finally:
                    self.is_leader = False
                    IS_LEADER.set(0)
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self.etcd.revoke_lease(lease))
            except asyncio.CancelledError:
                raise
            except Exception as e:  # any failure: step down and try again
                log.warning("event pump stepped down", error=str(e))
                await asyncio.sleep(0.5)

    async def _campaign(self) -> int:
        while True:
            lease = await self.etcd.grant_lease(LEASE_TTL)
            try:
                await self.etcd.create(LEADER_KEY, self.identity.encode(), lease=lease)
                log.info("event pump elected", identity=self.identity)
                self.is_leader = True
                IS_LEADER.set(1)
                return lease
            except KeyExistsError:
                await self.etcd.revoke_lease(lease)
                await asyncio.sleep(1.0)

    async def _keepalive(self, lease: int) -> None:
        while True:
            await asyncio.sleep(LEASE_TTL / 3)
            ttl = await self.etcd.refresh_lease(lease)
            if ttl <= 0:
                raise StorageError("event pump lease expired")

    async def _lead(self, lease: int) -> None:
        keepalive = asyncio.create_task(self._keepalive(lease), name="pump-lease-keepalive")
        pump = asyncio.create_task(self._pump(), name="pump")
        try:
            done, _ = await asyncio.wait({keepalive, pump}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
        finally:
            keepalive.cancel()
            pump.cancel()
            await asyncio.gather(keepalive, pump, return_exceptions=True)

    async def _pump(self) -> None:
        await ev.ensure_stream(self.js)
        seq, last_rev = await ev.last_published(self.js)
        start = last_rev + 1 if last_rev else 1
        log.info("event pump resuming", from_revision=start, stream_seq=seq)
        while True:
            try:
                # The whole keyspace: master leases and the allocators' keys live outside
                # /registry/, and a list read from etcd answers with their revisions too;
                # the caches must reach those revisions (see _publish).
                async for batch in self.etcd.watch(WATCHED, start):
                    for event in batch:
                        if event.revision <= last_rev:
                            continue
                        seq = await self._publish(event, seq)
                        last_rev = event.revision
                    start = last_rev + 1
            except CompactedError as e:
                # History between last_rev and the compaction point is gone: tell caches to relist.
                compacted = e.compacted_revision or await self.etcd.current_revision()
                log.warning("etcd compacted past the pump", last=last_rev, compacted=compacted)
                seq = await self._publish_reset(compacted, seq)
                last_rev = compacted - 1
                start = compacted
            except StorageError as e:
                log.warning("etcd watch broke; re-watching", error=str(e), from_revision=start)
                await asyncio.sleep(0.2)

    async def _publish(self, event, seq: int) -> int:  # type: ignore[no-untyped-def]
        etype = ev.type_of(event)
        headers = {
            ev.H_REV: str(event.revision),
            ev.H_KEY: event.key,
            ev.H_TYPE: etype,
            ev.H_MSG_ID: f"{event.revision}:{event.key}",
            ev.H_EXPECTED_SEQ: str(seq),
        }
        parent = None
        registry = event.key.startswith(REGISTRY_PREFIX)
        trace_headers = trace_of(event.value) if registry else None
        if trace_headers:
            parent = tracing.extract(trace_headers)
        with _tracer.start_as_current_span(
            "nats.publish",
            context=parent,
            kind=trace.SpanKind.PRODUCER,
            attributes={"skiff.revision": event.revision, "skiff.key": event.key},
        ):
            tracing.inject(headers)
            # A key outside /registry/ is only progress for the caches (its revision);
            # its value (allocations, master leases) stays in etcd.
            payload = event.value if registry else b""
            ack = await self._publish_raw(ev.subject_for(event.key), payload, headers)
        PUBLISHED.inc()
        return ack

    async def _publish_reset(self, revision: int, seq: int) -> int:
        headers = {
            ev.H_REV: str(revision),
            ev.H_TYPE: ev.RESET,
            ev.H_MSG_ID: f"{revision}:reset",
            ev.H_EXPECTED_SEQ: str(seq),
        }
        return await self._publish_raw(ev.RESET_SUBJECT, b"", headers)

    async def _publish_raw(self, subject: str, payload: bytes, headers: dict[str, str]) -> int:
        while True:
            try:
                ack = await self.js.publish(subject, payload, headers=headers, timeout=5)
                return ack.seq
            except APIError as e:
                # Wrong last sequence: another pump published; step down.
                raise StorageError(f"publish refused: {e}") from e
            except (TimeoutError, ConnectionError) as e:
                # NATS is restarting; the message id makes the retry safe.
                log.warning("publish to NATS failed; retrying", error=repr(e))
                await asyncio.sleep(0.2)
            except Exception as e:  # nats raises assorted errors while reconnecting
                if type(e).__module__.startswith("nats"):
                    log.warning("publish to NATS failed; retrying", error=repr(e))
                    await asyncio.sleep(0.2)
                    continue
                raise
