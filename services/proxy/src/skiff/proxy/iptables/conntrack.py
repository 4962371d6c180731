"""UDP conntrack clean-up, reconciled at every sync.

A UDP "connection" through a Service is a conntrack entry that keeps its DNAT to one
endpoint for as long as the client keeps sending (each packet renews it). When that
endpoint goes, the client's stream stays pinned to an address that no longer answers;
when a Service gets its first endpoint, entries made while it had none (not DNATed at
all) keep the stream off the new endpoint. kube-proxy once cleared these only on endpoint
*events*, and a missed or failed clear left a UDP stream blackholed for hours. Here every
sync lists the UDP entries (``conntrack -L -p udp``, Debian's ``conntrack`` tool) and
deletes each one whose destination is a UDP Service's address and port but whose target
is not one of its endpoints now, or that was never DNATed while the Service has some.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass

from skiff.iptables import IptablesRunner
from skiff.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Entry:
    """One UDP conntrack entry: the original direction and where the reply comes from."""

    src: str
    dst: str
    sport: int
    dport: int
    reply_src: str
    reply_sport: int

    @property
    def target(self) -> str:
        return f"{self.reply_src}:{self.reply_sport}"

    @property
    def dnated(self) -> bool:
        return (self.reply_src, self.reply_sport) != (self.dst, self.dport)


def parse(listing: str) -> list[Entry]:
    """The UDP entries of ``conntrack -L -p udp`` output."""
    out = []
    for line in listing.splitlines():
        fields = line.split()
        if not fields or fields[0] != "udp":
            continue
        kv: dict[str, list[str]] = {}
        for f in fields:
            k, sep, v = f.partition("=")
            if sep:
                kv.setdefault(k, []).append(v)
        try:
            out.append(
                Entry(
                    src=kv["src"][0],
                    dst=kv["dst"][0],
                    sport=int(kv["sport"][0]),
                    dport=int(kv["dport"][0]),
                    reply_src=kv["src"][1],
                    reply_sport=int(kv["sport"][1]),
                )
            )
        except (KeyError, IndexError, ValueError):
            continue
    return out


def stale(entries: list[Entry], services: Mapping[tuple[str, int], Set[str]]) -> list[Entry]:
    """Entries to delete: ``services`` maps each UDP (address, port) a client may send to
    (cluster, external and load-balancer IPs; ``"*"`` with a node port, for any node
    address) to its endpoints now."""
    out = []
    for e in entries:
        endpoints = services.get((e.dst, e.dport))
        if endpoints is None:
            endpoints = services.get(("*", e.dport))  # a node port, on any node address
        if endpoints is None:
            continue  # not a Service's: none of our business
        if e.dnated and e.target not in endpoints:
            out.append(e)  # pinned to an endpoint that is gone
        elif not e.dnated and endpoints:
            out.append(e)  # made while there was no endpoint; there is one now
    return out


class ConntrackCleaner:
    """Runs the listing and the deletions (through the runner's prefix)."""

    def __init__(self, runner: IptablesRunner, tool: str = "conntrack") -> None:
        self.runner = runner
        self.tool = tool
        self.deleted = 0
        self._missing_logged = False

    async def reconcile(self, services: Mapping[tuple[str, int], Set[str]]) -> int:
        """Delete the stale UDP entries; returns how many."""
        if not services:
            return 0
        rc, out, err = await self.runner.run(self.tool, "-L", "-p", "udp")
        if rc != 0:
            if not self._missing_logged:
                self._missing_logged = True
                log.error(
                    "cannot list conntrack entries: UDP Services may keep streams on gone "
                    "endpoints",
                    error=err.decode(errors="replace").strip(),
                )
            return 0
        n = 0
        for e in stale(parse(out.decode(errors="replace")), services):
            rc, _, _ = await self.runner.run(
                self.tool, "-D", "-p", "udp",
                "--orig-src", e.src, "--orig-dst", e.dst,
                "--sport", str(e.sport), "--dport", str(e.dport),
            )  # fmt: skip
            n += rc == 0
        self.deleted += n
        if n:
            log.info("deleted stale UDP conntrack entries", count=n)
        return n
