"""Answering one DNS message: the cluster zone from :class:`ClusterRecords`, other names
through the :class:`Forwarder`, bad input as the RFCs say.

- A message that cannot be parsed gets FORMERR when its header can be read (12 bytes),
  else nothing; a response (QR set) is dropped; an opcode other than QUERY gets NOTIMP;
  more or fewer than one question gets FORMERR; a class other than IN gets REFUSED; ANY
  gets NOTIMP (RFC 8482 lets a server decline it); unknown types get no data.
- In the zone the answer is authoritative (AA), and a negative one carries the zone's SOA
  in the authority section so resolvers cache it (RFC 2308).
- Over UDP an answer larger than the client's buffer (512 bytes, or its EDNS size) is
  truncated (TC) so the client retries over TCP.
"""

from __future__ import annotations

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from skiff.dns.records import CNAME, SRV, ClusterRecords, Record

MAX_UDP = 512
SOA_TTL = 30


class Handler:
    """Turns query bytes into answer bytes (None: send nothing)."""

    def __init__(
        self, records: ClusterRecords, forwarder: object | None = None, *, ttl: int = 5
    ) -> None:
        self.records = records
        self.forwarder = forwarder
        self.ttl = ttl
        zone = records.zone
        self._soa = dns.rrset.from_text(
            zone, SOA_TTL, "IN", "SOA",
            f"ns.dns.{zone} hostmaster.{zone} 1 7200 1800 86400 {SOA_TTL}",
        )  # fmt: skip

    # -- entry points ---------------------------------------------------------------------

    def parse(self, wire: bytes) -> tuple[dns.message.Message | None, bytes | None]:
        """(the query, None) or (None, the error answer to send, or None to drop)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None, _header_error(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None, None  # a response: never answer those (reflection loops)
        if query.opcode() != dns.opcode.QUERY:
            return None, _error(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return None, _error(query, dns.rcode.FORMERR)
        return query, None

    def answer_local(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer when it does not need the network (None: forward it)."""
        q = query.question[0]
        if q.rdclass != dns.rdataclass.IN:
            return _response(query, dns.rcode.REFUSED)
        if q.rdtype == dns.rdatatype.ANY:
            return _response(query, dns.rcode.NOTIMP)
        name = q.name.to_text().lower()
        if self.records.in_zone(name):
            return self._authoritative(query, name, dns.rdatatype.to_text(q.rdtype))
        if name.endswith(".arpa."):
            _, found = self.records.lookup(name, dns.rdatatype.to_text(q.rdtype))
            if found:
                return self._authoritative(query, name, dns.rdatatype.to_text(q.rdtype))
        if self.forwarder is None:
            return _response(query, dns.rcode.REFUSED)
        return None

    # -- the zone -------------------------------------------------------------------------

    def _authoritative(
        self, query: dns.message.Message, name: str, rdtype: str
    ) -> dns.message.Message:
        resp = _response(query, dns.rcode.NOERROR)
        resp.flags |= dns.flags.AA
        exists, found = self.records.lookup(name, rdtype)
        if not found:
            if not exists:
                resp.set_rcode(dns.rcode.NXDOMAIN)
            resp.authority.append(self._soa)
            return resp
        self.add_records(resp.answer, found)
        if found[0].rdtype == CNAME:
            # An ExternalName's target: chase it in the zone (out of it, the client does).
            target = found[0].data
            if self.records.in_zone(target):
                _, more = self.records.lookup(target, rdtype)
                self.add_records(resp.answer, more)
        elif found[0].rdtype == SRV:
            for r in found:
                target = r.data.split()[-1]
                for family in ("A", "AAAA"):
                    _, extra = self.records.lookup(target, family)
                    self.add_records(resp.additional, extra)
        return resp

    def cname_to(self, query: dns.message.Message, target: str) -> dns.message.Message:
        """An answer to ``query`` that starts with a CNAME from its name to ``target``."""
        resp = _response(query, dns.rcode.NOERROR)
        name = query.question[0].name
        resp.answer.append(dns.rrset.from_text(name, self.ttl, "IN", "CNAME", target))
        return resp

    def add_records(self, section: list[dns.rrset.RRset], records: list[Record]) -> None:
        """Append ``records`` to a message section, one RRset per name and type."""
        by_key: dict[tuple[str, str], list[str]] = {}
        for r in records:
            by_key.setdefault((r.name, r.rdtype), []).append(r.data)
        for (name, rdtype), datas in by_key.items():
            section.append(dns.rrset.from_text_list(name, self.ttl, "IN", rdtype, datas))

    def soa(self) -> dns.rrset.RRset:
        return self._soa


def _response(query: dns.message.Message, rcode: int) -> dns.message.Message:
    resp = dns.message.make_response(query)
    resp.set_rcode(rcode)
    resp.flags |= dns.flags.RA
    return resp


def _error(query: dns.message.Message, rcode: int) -> bytes:
    return _response(query, rcode).to_wire()


def _header_error(wire: bytes, rcode: int) -> bytes | None:
    """An answer to a message we could not parse: its id and opcode, the rcode, nothing
    else; None when not even the header is there."""
    if len(wire) < 12 or wire[2] & 0x80:
        return None
    flags = 0x8000 | (wire[2] & 0x79) << 8 | 0x80 | rcode  # QR, opcode and RD kept, RA
    return wire[:2] + flags.to_bytes(2, "big") + bytes(8)


def to_wire(resp: dns.message.Message, max_size: int) -> bytes:
    """The answer in at most ``max_size`` bytes: truncated (TC, no records) if it does not
    fit, so that the client asks again over TCP."""
    try:
        return resp.to_wire(max_size=max_size)
    except dns.exception.TooBig:
        sections = resp.answer, resp.authority, resp.additional
        flags = resp.flags
        resp.answer, resp.authority, resp.additional = [], [], []
        resp.flags |= dns.flags.TC
        try:
            return resp.to_wire(max_size=max_size)
        finally:
            resp.answer, resp.authority, resp.additional = sections
            resp.flags = flags


def udp_limit(query: dns.message.Message) -> int:
    """The client's UDP buffer: 512, or what its EDNS record offers (at most 4096)."""
    if query.edns >= 0:
        return max(MAX_UDP, min(query.payload, 4096))
    return MAX_UDP
