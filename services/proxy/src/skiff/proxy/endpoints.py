"""Endpoints of a Service port from its EndpointSlices, and which of them take traffic.

As kube-proxy's ``CategorizeEndpoints``: traffic goes to *ready* endpoints; only when
none is ready does it go to endpoints that are terminating but still *serving* (so a
rolling update does not drop connections while the old pods drain). ``internalTrafficPolicy:
Local`` restricts cluster traffic, and ``externalTrafficPolicy: Local`` external traffic,
to the endpoints on this node.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skiff.proxy.serviceport import ServicePort


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address and port of a Service port."""

    ip: str
    port: int
    ready: bool
    serving: bool
    terminating: bool
    is_local: bool

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def endpoints_by_port(
    slices: Iterable[dict[str, Any]], node_name: str
) -> dict[tuple[str, str], list[Endpoint]]:
    """(port name, protocol) -> the IPv4 endpoints of those slices, deduplicated, sorted."""
    found: dict[tuple[str, str], dict[str, Endpoint]] = {}
    for es in slices:
        if (es.get("addressType") or "IPv4") != "IPv4":
            continue
        for p in es.get("ports") or ():
            if p.get("port") is None:
                continue
            key = (p.get("name") or "", (p.get("protocol") or "TCP").upper())
            bucket = found.setdefault(key, {})
            for ep in es.get("endpoints") or ():
                cond = ep.get("conditions") or {}
                # Unset conditions mean ready/serving (the API's documented default).
                ready = cond.get("ready") is not False
                serving = cond.get("serving") if cond.get("serving") is not None else ready
                for ip in (ep.get("addresses") or ())[:1]:
                    e = Endpoint(
                        ip=ip,
                        port=int(p["port"]),
                        ready=ready,
                        serving=bool(serving),
                        terminating=bool(cond.get("terminating")),
                        is_local=bool(node_name) and ep.get("nodeName") == node_name,
                    )
                    # The same address in two slices (a move between slices): the ready copy wins.
                    if e.address not in bucket or e.ready:
                        bucket[e.address] = e
    return {k: sorted(v.values(), key=_order) for k, v in found.items()}


def _order(e: Endpoint) -> tuple[tuple[int, ...], int]:
    return tuple(int(x) for x in e.ip.split(".")), e.port


def usable(endpoints: Iterable[Endpoint], *, local_only: bool = False) -> list[Endpoint]:
    """The endpoints that take traffic: ready ones, else serving-and-terminating ones."""
    pool = [e for e in endpoints if e.is_local or not local_only]
    ready = [e for e in pool if e.ready]
    return ready or [e for e in pool if e.serving and e.terminating]


@dataclass(frozen=True, slots=True)
class Categorized:
    """Where a Service port's traffic goes."""

    cluster: list[Endpoint]
    """Targets of traffic to the cluster IP (local ones only with internalTrafficPolicy Local)."""
    local: list[Endpoint]
    """This node's usable endpoints (externalTrafficPolicy Local's targets)."""
    all_usable: list[Endpoint]
    """Every usable endpoint: each gets a KUBE-SEP chain."""


def categorize(sp: ServicePort, endpoints: Iterable[Endpoint]) -> Categorized:
    """Split a Service port's endpoints by the traffic each policy sends them."""
    eps = list(endpoints)
    everywhere = usable(eps)
    local = usable(eps, local_only=True)
    cluster = local if sp.internal_local else everywhere
    chained = {e.address: e for e in everywhere}
    for e in local:
        chained.setdefault(e.address, e)
    return Categorized(cluster=cluster, local=local, all_usable=list(chained.values()))
