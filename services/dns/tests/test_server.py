"""The DNS server on loopback sockets: UDP and TCP, forwarding to a resolver of our own
(never the Internet) with a cache, and every kind of bad input answered or dropped as the
RFCs say without stopping the server."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import dns.asyncquery
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rrset
import pytest
from test_records import cluster

from skiff.dns.forward import Forwarder, without_self
from skiff.dns.handler import Handler
from skiff.dns.server import Resolver, serve


class Upstream(asyncio.DatagramProtocol):
    """A resolver of our own: example.org A 192.0.2.1 (TTL 60), everything else NXDOMAIN
    with an SOA (minimum 60). ``bounce`` sends each query on to another server instead."""

    def __init__(self, bounce: tuple[str, int] | None = None) -> None:
        self.queries: list[str] = []
        self.bounce = bounce
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(str(query.question[0].name))
        assert self.transport is not None
        if self.bounce is not None:
            self.transport.sendto(data, self.bounce)  # a forwarding loop, on purpose
            return
        resp = dns.message.make_response(query)
        if str(query.question[0].name) == "example.org.":
            resp.answer.append(dns.rrset.from_text("example.org.", 60, "IN", "A", "192.0.2.1"))
        else:
            resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(
                dns.rrset.from_text("org.", 60, "IN", "SOA", "ns.org. h.org. 1 2 3 4 60")
            )
        self.transport.sendto(resp.to_wire(), addr)


@asynccontextmanager
async def autopath_server(namespace: str) -> AsyncIterator[tuple[int, Upstream, Any]]:
    """A server with autopath on, one pod (127.0.0.1, this test's client) in ``namespace``,
    forwarding to a recording upstream: (port, upstream, pod index)."""
    from skiff.dns.autopath import PodIndex

    loop = asyncio.get_running_loop()
    up = Upstream()
    up_transport, _ = await loop.create_datagram_endpoint(lambda: up, local_addr=("127.0.0.1", 0))
    forwarder = Forwarder([("127.0.0.1", up_transport.get_extra_info("sockname")[1])])
    pods = PodIndex()
    pod = {"metadata": {"name": "p", "namespace": namespace}, "spec": {}}
    pods.set_pod(pod | {"status": {"podIP": "127.0.0.1"}})
    resolver = Resolver(Handler(cluster(), forwarder), forwarder, pods)
    udp_t, tcp, port = await serve(resolver, "127.0.0.1", 0)
    try:
        yield port, up, pods
    finally:
        udp_t.close()
        tcp.close()
        up_transport.close()


@asynccontextmanager
async def dns_server(upstream: Upstream | None = None) -> AsyncIterator[tuple[int, Upstream]]:
    loop = asyncio.get_running_loop()
    up = upstream or Upstream()
    up_transport, _ = await loop.create_datagram_endpoint(lambda: up, local_addr=("127.0.0.1", 0))
    up_port = up_transport.get_extra_info("sockname")[1]
    forwarder = Forwarder([("127.0.0.1", up_port)], timeout=0.5)
    records = cluster()
    udp, tcp, port = await serve(Resolver(Handler(records, forwarder), forwarder), "127.0.0.1", 0)
    try:
        yield port, up
    finally:
        udp.close()
        tcp.close()
        up_transport.close()


async def udp(port: int, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=2)


def raw_udp(port: int, data: bytes, timeout: float = 0.5) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


async def araw(port: int, data: bytes, timeout: float = 0.5) -> bytes | None:
    return await asyncio.to_thread(raw_udp, port, data, timeout)


async def test_cluster_names_over_udp_and_tcp() -> None:
    async with dns_server() as (port, _):
        resp = await udp(port, "web.default.svc.cluster.local")
        assert [rd.to_text() for rd in resp.answer[0]] == ["10.96.0.20"]
        q = dns.message.make_query("db-0.db.default.svc.cluster.local", "A")
        resp = await dns.asyncquery.tcp(q, "127.0.0.1", port=port, timeout=2)
        assert [rd.to_text() for rd in resp.answer[0]] == ["10.244.0.7"]


async def test_forwarded_names_are_cached() -> None:
    async with dns_server() as (port, up):
        for _ in range(3):
            resp = await udp(port, "example.org")
            assert [rd.to_text() for rd in resp.answer[0]] == ["192.0.2.1"]
            assert resp.flags & dns.flags.RA and not resp.flags & dns.flags.AA
        for _ in range(2):
            assert (await udp(port, "missing.example.org")).rcode() == dns.rcode.NXDOMAIN
        assert up.queries == ["example.org.", "missing.example.org."]  # once each


async def test_bad_input_is_answered_or_dropped_and_the_server_lives_on() -> None:
    async with dns_server() as (port, up):
        assert await araw(port, b"\x12\x34\x01") is None  # not even a header: dropped
        formerr = await araw(port, b"\x12\x34\x01\x00" + b"\x00\x05" + b"\xff" * 30)
        assert formerr is not None and formerr[:2] == b"\x12\x34"
        assert formerr[3] & 0x0F == dns.rcode.FORMERR and formerr[2] & 0x80
        # A label that runs past the end, an empty-label loop (compression pointer to
        # itself), an oversized datagram of junk.
        header = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        for body in (b"\x3fabc", b"\xc0\x0c\x00\x01\x00\x01", b"\x01" * 4000):
            out = await araw(port, header + body)
            assert out is not None and out[3] & 0x0F == dns.rcode.FORMERR, body[:8]
        # A response is never answered (no reflection between two servers).
        resp = dns.message.make_response(dns.message.make_query("x.org", "A"))
        assert await araw(port, resp.to_wire()) is None
        # Other opcodes: not implemented. Two questions: FORMERR. Class CH: refused.
        notify = dns.message.make_query("cluster.local", "SOA")
        notify.set_opcode(dns.opcode.NOTIFY)
        assert (await araw(port, notify.to_wire()))[3] & 0x0F == dns.rcode.NOTIMP  # type: ignore[index]
        two = dns.message.make_query("a.cluster.local", "A")
        two.question.append(two.question[0])
        assert (await araw(port, two.to_wire()))[3] & 0x0F == dns.rcode.FORMERR  # type: ignore[index]
        assert (await udp(port, "version.bind", "TXT", rdclass="CH")).rcode() == dns.rcode.REFUSED
        assert (await udp(port, "example.org", "ANY")).rcode() == dns.rcode.NOTIMP
        # An unknown type in the zone: no data, not an error.
        unknown = await udp(port, "web.default.svc.cluster.local", "TYPE65400")
        assert unknown.rcode() == dns.rcode.NOERROR and not unknown.answer
        # Still serving.
        assert (await udp(port, "web.default.svc.cluster.local")).answer
        assert up.queries == ["example.org."] or up.queries == []


async def test_a_flood_does_not_stall_the_server() -> None:
    async with dns_server() as (port, _):
        q = dns.message.make_query("web.default.svc.cluster.local", "A").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            for _ in range(5000):
                try:
                    s.sendto(q, ("127.0.0.1", port))
                except BlockingIOError:
                    pass
        # What the kernel could not queue is lost (as for any server); what it queued is
        # answered, and then the server goes on as before.
        await asyncio.sleep(0.5)
        resp = await udp(port, "web.default.svc.cluster.local")
        assert resp.answer


async def test_tcp_several_queries_per_connection_and_truncation_fallback() -> None:
    async with dns_server() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for name in ("web.default.svc.cluster.local", "db.default.svc.cluster.local"):
            wire = dns.message.make_query(name, "A").to_wire()
            writer.write(struct.pack("!H", len(wire)) + wire)
        answers = []
        for _ in range(2):
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            answers.append(dns.message.from_wire(await reader.readexactly(n)))
        assert [len(a.answer[0]) for a in answers] == [1, 2]
        writer.close()


async def test_forwarding_loops_are_refused() -> None:
    # Configured to forward to itself: dropped at start, with a log line.
    assert without_self(["127.0.0.1:53", "10.0.0.2"], ("0.0.0.0", 53)) == [("10.0.0.2", 53)]
    assert without_self(["127.0.0.1:5353"], ("127.0.0.1", 53)) == [("127.0.0.1", 5353)]
    # An upstream that sends our own query back to us: SERVFAIL, not a storm.
    bounce = Upstream()
    async with dns_server(bounce) as (port, up):
        up.bounce = ("127.0.0.1", port)
        resp = await udp(port, "loop.example")
        assert resp.rcode() == dns.rcode.SERVFAIL
        await asyncio.sleep(0.2)
        assert len(up.queries) <= 2


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("http_proxy", raising=False)


async def test_stored_answers_keep_the_client_s_id_and_letter_case() -> None:
    async with dns_server() as (port, _):
        for name in ("web.default.svc.cluster.local", "WeB.DeFault.svc.cluster.local") * 2:
            resp = await udp(port, name)  # dnspython checks the id and the question
            assert str(resp.question[0].name) == name + "."
            assert [rd.to_text() for rd in resp.answer[0]] == ["10.96.0.20"]


async def test_autopath_answers_a_pod_s_search_path_in_one_round_trip() -> None:
    """From a pod of namespace "default" (its address is 127.0.0.1 here), the first
    search-path name of an outside or shorter name is answered with a CNAME to the name
    that exists; other clients, and names that exist as asked, get plain answers."""
    async with autopath_server("default") as (port, up, pods):
        resp = await udp(port, "example.org.default.svc.cluster.local")
        assert resp.rcode() == dns.rcode.NOERROR
        assert [(r.rdtype, {rd.to_text() for rd in r}) for r in resp.answer] == [
            (dns.rdatatype.CNAME, {"example.org."}),
            (dns.rdatatype.A, {"192.0.2.1"}),
        ]
        assert up.queries == ["example.org."]  # the shorter in-zone names never left
        # A Service of another namespace, asked by its short name from "default".
        resp = await udp(port, "ext.other.default.svc.cluster.local")
        assert {rd.to_text() for rd in resp.answer[0]} == {"ext.other.svc.cluster.local."}
        # Nothing anywhere: the asked name's own NXDOMAIN (with the SOA).
        resp = await udp(port, "nothing.test.default.svc.cluster.local")
        assert resp.rcode() == dns.rcode.NXDOMAIN and resp.authority
        # A name that exists as asked: a plain answer.
        resp = await udp(port, "web.default.svc.cluster.local")
        assert [rd.to_text() for rd in resp.answer[0]] == ["10.96.0.20"]
        # A client that is no pod: no rewriting.
        pods.set_pod({"metadata": {"name": "p", "namespace": "default"}}, deleted=True)
        resp = await udp(port, "example.org.default.svc.cluster.local")
        assert resp.rcode() == dns.rcode.NXDOMAIN


async def test_autopath_stops_at_the_first_name_that_exists_even_without_data() -> None:
    """AAAA for a Service's short name: the name exists (no IPv6 address): the walk ends
    there with no data, and nothing is asked upstream."""
    async with autopath_server("other") as (port, up, _pods):
        resp = await udp(port, "web.default.other.svc.cluster.local", "AAAA")
        assert resp.rcode() == dns.rcode.NOERROR
        assert [r.rdtype for r in resp.answer] == [dns.rdatatype.CNAME]
        assert resp.authority and up.queries == []
