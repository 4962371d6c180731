"""DNS over UDP and TCP on asyncio, in front of a :class:`Handler`.

UDP: answers from the zone (and from the cache) are written back inside
``datagram_received``, with no task per query; only a forward upstream becomes a task.
TCP (RFC 7766): two-byte length prefixes, several queries per connection, answered in
order; an idle connection is closed after ``idle_timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from skiff.dns.autopath import PodIndex, search_path
from skiff.dns.forward import Forwarder
from skiff.dns.handler import Handler, to_wire, udp_limit
from skiff.log import get_logger

log = get_logger(__name__)

REQUESTS = Counter("coredns_dns_requests_total", "DNS queries", ["proto", "type"])
RESPONSES = Counter("coredns_dns_responses_total", "DNS answers", ["rcode"])
AUTOPATH = Counter(
    "coredns_autopath_success_total", "Search paths answered on the server", ["where"]
)
DURATION = Histogram(
    "coredns_dns_request_duration_seconds",
    "Time to answer",
    ["kind"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 2.5),
)


class Resolver:
    """Handler + forwarder: the whole answer to one query.

    Answers from the zone are kept as bytes per (name, type, class, flags, size limit)
    until the records change: a repeated question costs a parse and a splice of the
    client's id and question into the stored answer (the question keeps the client's
    letter case, which some resolvers check).
    """

    def __init__(
        self, handler: Handler, forwarder: Forwarder | None, autopath: PodIndex | None = None
    ) -> None:
        self.handler = handler
        self.forwarder = forwarder
        self.autopath = autopath
        """Pod address → namespace, when the search path is answered on the server."""
        self._answers: dict[tuple[object, ...], bytes] = {}
        self._generation = -1

    def quick(
        self, wire: bytes, proto: str, client: str | None = None
    ) -> tuple[bool, bytes | None, Pending | None]:
        """(answered, the bytes to send, what is left to do upstream when not answered)."""
        t0 = time.perf_counter()
        query, error = self.handler.parse(wire)
        if query is None:
            REQUESTS.labels(proto, "invalid").inc()
            return True, error, None
        REQUESTS.labels(proto, _type(query)).inc()
        if self.forwarder is not None and self.forwarder.is_loop(query):
            fail = dns.message.make_response(query)
            fail.set_rcode(2)  # SERVFAIL
            return True, fail.to_wire(), None
        limit = udp_limit(query) if proto == "udp" else 65535
        q = query.question[0]
        name = q.name.to_text().lower()
        records = self.handler.records
        key = (name, q.rdtype, q.rdclass, query.flags, query.edns, limit)
        if records.generation != self._generation:
            self._answers.clear()
            self._generation = records.generation
        qlen = len(q.name.to_wire()) + 4
        stored = self._answers.get(key)
        nxdomain = stored is None or stored[3] & 0x0F == dns.rcode.NXDOMAIN
        if self.autopath is not None and client is not None and nxdomain:
            # Only a name that does not exist as asked can be a search-path step.
            plan = self._plan(name, q.rdtype, client)
            if plan:
                return False, None, Pending(query, plan)
        if stored is not None and wire[12 : 12 + qlen].lower() == stored[12 : 12 + qlen].lower():
            RESPONSES.labels("cached").inc()
            DURATION.labels("local").observe(time.perf_counter() - t0)
            return True, wire[:2] + stored[2:12] + wire[12 : 12 + qlen] + stored[12 + qlen :], None
        resp = self.handler.answer_local(query)
        local = resp is not None
        if resp is None and self.forwarder is not None:
            resp = self.forwarder.cached(query)
        if resp is None:
            return False, None, Pending(query, [])
        RESPONSES.labels(dns.rcode.to_text(resp.rcode())).inc()
        DURATION.labels("local").observe(time.perf_counter() - t0)
        out = to_wire(resp, limit)
        if local and len(self._answers) < 100_000:
            self._answers[key] = out
        return True, out, None

    def _plan(self, name: str, rdtype: int, client: str) -> list[str]:
        assert self.autopath is not None
        ns = self.autopath.namespace_of(client)
        if ns is None:
            return []
        plan = search_path(name, ns, self.handler.records.zone)
        if not plan or self.handler.records.lookup(name, dns.rdatatype.to_text(rdtype))[0]:
            return []  # not the pod's first search domain, or the name exists as asked
        return plan

    async def forwarded(self, pending: Pending, proto: str) -> bytes | None:
        t0 = time.perf_counter()
        query = pending.query
        if pending.plan:
            resp = await self._autopath(query, pending.plan)
        else:
            assert self.forwarder is not None
            resp = await self.forwarder.forward(query)
        if resp is None:
            return None  # too many in flight: dropped
        RESPONSES.labels(dns.rcode.to_text(resp.rcode())).inc()
        DURATION.labels("forward").observe(time.perf_counter() - t0)
        limit = udp_limit(query) if proto == "udp" else 65535
        return to_wire(resp, limit)

    async def _autopath(
        self, query: dns.message.Message, plan: list[str]
    ) -> dns.message.Message | None:
        """The first name of the search path that exists, as a CNAME from the asked one
        and its records (none: no data); the asked name's own NXDOMAIN when none does."""
        q = query.question[0]
        rdtype = dns.rdatatype.to_text(q.rdtype)
        handler = self.handler
        for candidate in plan:
            if handler.records.in_zone(candidate):
                exists, found = handler.records.lookup(candidate, rdtype)
                if not exists:
                    continue
                # The first name that exists ends the walk, with its records of this type
                # or none (NODATA), as the resolver's own walk would end there.
                resp = handler.cname_to(query, candidate)
                handler.add_records(resp.answer, found)
                if not found:
                    resp.authority.append(handler.soa())
                AUTOPATH.labels("zone").inc()
                return resp
            if self.forwarder is None:
                break
            sub = dns.message.make_query(candidate, q.rdtype, q.rdclass)
            upstream = await self.forwarder.forward(sub)
            if upstream is None:
                return None
            if upstream.rcode() == dns.rcode.NOERROR:
                resp = handler.cname_to(query, candidate)
                resp.flags &= ~dns.flags.AA
                resp.answer.extend(upstream.answer)
                AUTOPATH.labels("upstream").inc()
                return resp
        AUTOPATH.labels("miss").inc()
        return handler.answer_local(query)


@dataclass(slots=True)
class Pending:
    """A query the fast path could not answer: forward it, or walk ``plan`` (autopath)."""

    query: dns.message.Message
    plan: list[str]


def _type(query: dns.message.Message) -> str:
    t = query.question[0].rdtype
    return dns.rdatatype.to_text(t) if t in _COMMON else "other"


_COMMON = {1, 28, 5, 33, 12, 16, 6, 2, 255}


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            done, out, pending = self.resolver.quick(data, "udp", addr[0])
        except Exception:  # never let one bad packet stop the server
            log.exception("answering a query failed", client=addr[0])
            return
        if done:
            if out is not None and self.transport is not None:
                self.transport.sendto(out, addr)
            return
        assert pending is not None
        task = asyncio.ensure_future(self._forward(pending, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _forward(self, pending: Pending, addr: tuple[str, int]) -> None:
        try:
            out = await self.resolver.forwarded(pending, "udp")
        except Exception:
            log.exception("forwarding failed", name=str(pending.query.question[0].name))
            return
        if out is not None and self.transport is not None:
            self.transport.sendto(out, addr)


async def _serve_tcp(
    resolver: Resolver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, idle: float
) -> None:
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(2), idle)
                (length,) = struct.unpack("!H", head)
                wire = await asyncio.wait_for(reader.readexactly(length), idle)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            peer = writer.get_extra_info("peername")
            done, out, pending = resolver.quick(wire, "tcp", peer[0] if peer else None)
            if not done and pending is not None:
                out = await resolver.forwarded(pending, "tcp")
            if out is None:
                if not done:
                    continue
                return  # unparseable without a header: nothing sensible to say; hang up
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
    except Exception:
        log.exception("TCP DNS connection failed")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def serve(
    resolver: Resolver, host: str, port: int, *, idle_timeout: float = 10.0
) -> tuple[asyncio.DatagramTransport, asyncio.Server, int]:
    """Listen on UDP and TCP ``host:port`` (port 0: one free port for both)."""
    loop = asyncio.get_running_loop()
    server = await asyncio.start_server(
        lambda r, w: _serve_tcp(resolver, r, w, idle_timeout), host, port
    )
    bound = server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _Udp(resolver), local_addr=(host, bound)
    )
    return transport, server, bound
