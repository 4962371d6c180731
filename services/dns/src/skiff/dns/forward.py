"""Names outside the cluster: forwarded to the node's upstream resolvers, with a cache.

Upstreams come from ``--upstream`` or the host's ``/etc/resolv.conf``. One that is this
server itself (the same address and port, or a loopback address when listening on all
of them) is refused at start with a clear log line: forwarding to yourself answers every
outside query with a storm, then SERVFAIL. A loop through other resolvers (an upstream
that forwards back here) is caught at run time: a query this server sent upstream comes
back in with the same id and name.

Answers are cached for the smallest TTL of their records (negative ones for their SOA's
minimum), at most ``max_ttl`` seconds, keyed by name, type and class; the cached copy gets
the asking client's id. At most ``max_inflight`` forwards run at once: past that, queries
are dropped rather than queued without bound (a flood stays a flood, not a backlog).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections import OrderedDict
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
from skiff.log import get_logger

log = get_logger(__name__)


def resolv_conf_nameservers(path: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The ``nameserver`` lines of a resolv.conf."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    return [ln.split()[1] for ln in lines if ln.startswith("nameserver") and len(ln.split()) > 1]


def _host_port(value: str) -> tuple[str, int]:
    if value.startswith("["):
        host, _, port = value[1:].partition("]:")
        return host, int(port or 53)
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, int(port)
    return value, 53


def without_self(upstreams: list[str], listen: tuple[str, int]) -> list[tuple[str, int]]:
    """The upstreams that are not this server (each one that is, logged and dropped)."""
    out = []
    host, port = listen
    for up in upstreams:
        h, p = _host_port(up)
        same_host = h == host or (host in ("0.0.0.0", "::") and ipaddress.ip_address(h).is_loopback)
        if same_host and p == port:
            log.error(
                "forwarding loop: an upstream resolver is this server; not using it",
                upstream=up,
                listen=f"{host}:{port}",
            )
            continue
        out.append((h, p))
    return out


class Forwarder:
    """Forwards queries upstream (UDP, TCP when truncated), with a cache."""

    def __init__(
        self,
        upstreams: list[tuple[str, int]],
        *,
        timeout: float = 2.0,
        max_ttl: int = 3600,
        max_entries: int = 10_000,
        max_inflight: int = 256,
    ) -> None:
        self.upstreams = upstreams
        self.timeout = timeout
        self.max_ttl = max_ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[tuple[str, int, int], tuple[float, dns.message.Message]] = (
            OrderedDict()
        )
        self._inflight = asyncio.Semaphore(max_inflight)
        self._sent: set[tuple[int, str]] = set()
        self.hits = self.misses = 0

    def is_loop(self, query: dns.message.Message) -> bool:
        """A query this server itself sent upstream has come back: a forwarding loop."""
        q = query.question[0]
        if (query.id, q.name.to_text().lower()) in self._sent:
            log.error("forwarding loop detected: an upstream sent our query back", name=str(q.name))
            return True
        return False

    def cached(self, query: dns.message.Message) -> dns.message.Message | None:
        q = query.question[0]
        key = (q.name.to_text().lower(), q.rdtype, q.rdclass)
        hit = self._cache.get(key)
        if hit is None:
            return None
        expires, resp = hit
        now = time.monotonic()
        if now >= expires:
            del self._cache[key]
            return None
        self.hits += 1
        # The stored records are shared, not copied: their TTLs only ever go down to what
        # is left, which is right for every later hit too.
        out = _answer(query, resp)
        left = max(1, int(expires - now))
        for section in (out.answer, out.authority, out.additional):
            for rrset in section:
                rrset.ttl = min(rrset.ttl, left)
        return out

    async def forward(self, query: dns.message.Message) -> dns.message.Message | None:
        """The upstream's answer (cached), SERVFAIL when none answers, None when busy."""
        if (hit := self.cached(query)) is not None:
            return hit
        if self._inflight.locked():
            return None
        async with self._inflight:
            self.misses += 1
            q = query.question[0]
            out = dns.message.make_query(q.name, q.rdtype, q.rdclass, use_edns=0, payload=1232)
            out.flags = query.flags & (dns.flags.RD | dns.flags.CD) | dns.flags.RD
            key = (out.id, q.name.to_text().lower())
            self._sent.add(key)
            try:
                resp = await self._ask(out)
            finally:
                self._sent.discard(key)
        if resp is None:
            fail = dns.message.make_response(query)
            fail.set_rcode(dns.rcode.SERVFAIL)
            return fail
        self._store(query, resp)
        return _answer(query, resp)

    async def _ask(self, out: dns.message.Message) -> dns.message.Message | None:
        for host, port in self.upstreams:
            try:
                resp = await dns.asyncquery.udp(out, host, port=port, timeout=self.timeout)
                if resp.flags & dns.flags.TC:
                    resp = await dns.asyncquery.tcp(out, host, port=port, timeout=self.timeout)
                return resp
            except (dns.exception.DNSException, OSError) as e:
                log.warning("upstream resolver failed", upstream=f"{host}:{port}", error=str(e))
        return None

    def _store(self, query: dns.message.Message, resp: dns.message.Message) -> None:
        if resp.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return
        ttls = [r.ttl for r in resp.answer]
        if not ttls:  # negative: the SOA's minimum (RFC 2308)
            ttls = [
                min(r.ttl, r[0].minimum)
                for r in resp.authority
                if r.rdtype == dns.rdatatype.SOA and r
            ]
        ttl = min([*ttls, self.max_ttl]) if ttls else 0
        if ttl <= 0:
            return
        q = query.question[0]
        key = (q.name.to_text().lower(), q.rdtype, q.rdclass)
        self._cache[key] = (time.monotonic() + ttl, resp)
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)


def _answer(query: dns.message.Message, upstream: dns.message.Message) -> dns.message.Message:
    """The client's answer from an upstream's: its id and question, the upstream's records
    and rcode, recursion available, not authoritative."""
    answer = dns.message.make_response(query)
    answer.set_rcode(upstream.rcode())
    answer.flags = (answer.flags & ~dns.flags.AA) | dns.flags.RA
    answer.answer, answer.authority = upstream.answer, upstream.authority
    answer.additional = [r for r in upstream.additional if r.rdtype != dns.rdatatype.OPT]
    return answer
