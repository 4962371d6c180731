"""The cluster's DNS records, from Services and EndpointSlices, as the Kubernetes
DNS-based service discovery specification (1.1.0) lays them out.

For a zone (``cluster.local``):

- ``<svc>.<ns>.svc.<zone>``: A to the cluster IP; for a headless Service one A per ready
  endpoint (the name does not exist while none is ready); CNAME for ExternalName.
- ``_<port>._<proto>.<svc>.<ns>.svc.<zone>``: SRV for each named port (one per endpoint,
  to its host name, for a headless Service).
- ``<hostname>.<svc>.<ns>.svc.<zone>``: A for an endpoint with a host name (a pod with
  ``hostname`` and ``subdomain``, which is how StatefulSet pods get stable names);
  endpoints without one are named by their dashed address.
- ``<a-b-c-d>.<ns>.pod.<zone>``: A to that address.
- PTR for cluster IPs and for endpoints with a host name; ``dns-version.<zone>`` TXT.

Names are case-insensitive (kept lower-case here). Names that exist only as parents of
others (``<ns>.svc.<zone>``) answer with no data rather than NXDOMAIN.

Each Service's records are computed once when it or its slices change
(:meth:`ClusterRecords.set_service`); a lookup is a dictionary read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SPEC_VERSION = "1.1.0"
A, AAAA, CNAME, SRV, PTR, TXT = "A", "AAAA", "CNAME", "SRV", "PTR", "TXT"


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: ``rdtype`` and its data as zone-file text."""

    name: str
    rdtype: str
    data: str


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


@dataclass
class ClusterRecords:
    """Every record the cluster's Services give, indexed by owner name."""

    zone: str = "cluster.local"
    _by_service: dict[str, list[Record]] = field(default_factory=dict)
    _names: dict[str, dict[str, list[Record]]] = field(default_factory=dict)
    """name → rdtype → records."""
    _parents: dict[str, int] = field(default_factory=dict)
    """Empty non-terminal names → how many names sit below them."""
    generation: int = 0
    """Bumped at every change (answer caches compare it)."""

    def __post_init__(self) -> None:
        self.zone = self.zone.strip(".").lower() + "."

    # -- building ---------------------------------------------------------------------

    def set_service(
        self, key: str, svc: Mapping[str, Any] | None, slices: Iterable[Mapping[str, Any]]
    ) -> None:
        """Replace the records of Service ``ns/name`` (``svc`` None: it is gone)."""
        self.generation += 1
        for r in self._by_service.pop(key, ()):
            self._remove(r)
        records = service_records(svc, slices, self.zone) if svc is not None else []
        self._by_service[key] = records
        for r in records:
            self._add(r)
        if not records:
            del self._by_service[key]

    def _add(self, r: Record) -> None:
        types = self._names.get(r.name)
        if types is None:
            types = self._names[r.name] = {}
            for parent in self._ancestors(r.name):
                self._parents[parent] = self._parents.get(parent, 0) + 1
        types.setdefault(r.rdtype, []).append(r)

    def _remove(self, r: Record) -> None:
        types = self._names.get(r.name)
        if types is None:
            return
        rs = types.get(r.rdtype, [])
        if r in rs:
            rs.remove(r)
        if not rs:
            types.pop(r.rdtype, None)
        if not types:
            del self._names[r.name]
            for parent in self._ancestors(r.name):
                n = self._parents.get(parent, 0) - 1
                if n > 0:
                    self._parents[parent] = n
                else:
                    self._parents.pop(parent, None)

    def _ancestors(self, name: str) -> list[str]:
        """The names between ``name`` and the zone (or the reverse zone), both excluded."""
        out = []
        rest = name
        while "." in rest[:-1]:
            rest = rest.split(".", 1)[1]
            if rest in (self.zone, "in-addr.arpa.", "ip6.arpa.", "arpa.", ""):
                break
            out.append(rest)
        return out

    # -- reading ----------------------------------------------------------------------

    def lookup(self, name: str, rdtype: str) -> tuple[bool, list[Record]]:
        """(the name exists, its records of ``rdtype``; a CNAME answers any type)."""
        name = name.lower()
        if not name.endswith("."):
            name += "."
        types = self._names.get(name)
        if types is not None:
            if rdtype != CNAME and CNAME in types:
                return True, list(types[CNAME])
            return True, list(types.get(rdtype, ()))
        synthetic = self._synthetic(name, rdtype)
        if synthetic is not None:
            return True, synthetic
        return name == self.zone or name in self._parents, []

    def _synthetic(self, name: str, rdtype: str) -> list[Record] | None:
        """Names answered by rule rather than stored: pod addresses and the spec version."""
        if name == f"dns-version.{self.zone}":
            return [Record(name, TXT, f'"{SPEC_VERSION}"')] if rdtype == TXT else []
        labels = name[: -len(self.zone)].split(".") if name.endswith(self.zone) else []
        # <a-b-c-d>.<ns>.pod.<zone>
        if len(labels) == 4 and labels[2] == "pod" and labels[3] == "":
            ip = labels[0].replace("-", ".")
            try:
                addr = ipaddress.IPv4Address(ip)
            except ValueError:
                return None
            return [Record(name, A, str(addr))] if rdtype == A else []
        return None

    def in_zone(self, name: str) -> bool:
        """Whether this server is the authority for ``name`` (the cluster zone)."""
        name = name.lower() if name.endswith(".") else name.lower() + "."
        return name == self.zone or name.endswith("." + self.zone)

    def __len__(self) -> int:
        return len(self._names)


def _ports(items: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, int]]:
    """(name, protocol, port) of the named ports."""
    out = []
    for p in items:
        name = p.get("name")
        if name and p.get("port") is not None:
            out.append((name, (p.get("protocol") or "TCP").lower(), int(p["port"])))
    return out


def service_records(
    svc: Mapping[str, Any], slices: Iterable[Mapping[str, Any]], zone: str
) -> list[Record]:
    """Every record of one Service (see the module docstring)."""
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    base = f"{meta.get('name')}.{meta.get('namespace') or 'default'}.svc.{zone}"
    if spec.get("type") == "ExternalName":
        target = (spec.get("externalName") or "").rstrip(".") + "."
        return [Record(base, CNAME, target)] if target != "." else []
    out: list[Record] = []
    cluster_ip = spec.get("clusterIP")
    if cluster_ip and cluster_ip != "None":
        ips = [ip for ip in spec.get("clusterIPs") or [cluster_ip] if ip and ip != "None"]
        for ip in ips:
            family = AAAA if ":" in ip else A
            out.append(Record(base, family, ip))
            out.append(Record(reverse_name(ip), PTR, base))
        for name, proto, port in _ports(spec.get("ports") or ()):
            out.append(Record(f"_{name}._{proto}.{base}", SRV, f"0 100 {port} {base}"))
        return out
    # Headless: the endpoints themselves.
    publish_all = bool(spec.get("publishNotReadyAddresses"))
    seen: set[str] = set()
    for es in slices:
        ports = _ports(es.get("ports") or ())
        for ep in es.get("endpoints") or ():
            ready = (ep.get("conditions") or {}).get("ready") is not False
            if not (ready or publish_all):
                continue
            host = ep.get("hostname")
            for ip in (ep.get("addresses") or ())[:1]:
                if ip in seen:
                    continue
                seen.add(ip)
                family = AAAA if ":" in ip else A
                target = f"{host or dashed(ip)}.{base}"
                out.append(Record(base, family, ip))
                out.append(Record(target, family, ip))
                if host:
                    out.append(Record(reverse_name(ip), PTR, target))
                for name, proto, port in ports:
                    out.append(Record(f"_{name}._{proto}.{base}", SRV, f"0 100 {port} {target}"))
    return out
