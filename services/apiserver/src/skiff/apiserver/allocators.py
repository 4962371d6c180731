"""Service cluster IPs and node ports, as kube-apiserver's Service storage assigns them.

Every assigned value is a key in etcd (``/skiff/allocations/...``, outside ``/registry/``
so that no watch sees it) written in the same transaction as the Service that holds it,
and deleted in the same transaction that deletes the Service or stops using the value
(:meth:`skiff.apiserver.storage.etcd.EtcdBackend.write_claiming`). Two apiservers can therefore
never hand out the same IP or port, and nothing leaks when one crashes.

As in Kubernetes (ServiceIPStaticSubrange, ServiceNodePortStaticSubrange), values are
picked at random from the upper part of each range first, leaving the lower band for the
ones users ask for by value (such as 10.96.0.10 for cluster DNS). The first address is
never picked: it is the ``kubernetes`` Service's in every cluster.

The synchronous part (:func:`normalize`, :func:`validate`) runs with defaulting and
validation; :meth:`ServiceAllocator.assign` runs just before the write. It picks blind
at first (the write's transaction refuses a taken value, and the Store picks again), and
reads what is taken only after a few such refusals, so a sparse range costs no read.
"""

from __future__ import annotations

import ipaddress
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from skiff.api import errors
from skiff.api.errors import Cause
from skiff.apiserver.storage import Backend

IP_PREFIX = "/skiff/allocations/serviceips/"
PORT_PREFIX = "/skiff/allocations/nodeports/"
DEFAULT_CLUSTER_IP_RANGE = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
_TRIES = 32
_BLIND_TRIES = 3
_VIEW_TTL = 1.0  # seconds a read of the taken values is reused for

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(slots=True)
class ServiceRanges:
    """``--service-cluster-ip-range`` and ``--service-node-port-range``."""

    cluster_ip: IPNetwork = field(
        default_factory=lambda: ipaddress.ip_network(DEFAULT_CLUSTER_IP_RANGE)
    )
    node_port_first: int = 30000
    node_port_last: int = 32767

    @classmethod
    def parse(cls, cluster_ip_range: str, node_port_range: str) -> ServiceRanges:
        """From the flags' text; ValueError with a readable message when malformed."""
        net = ipaddress.ip_network(cluster_ip_range, strict=True)
        if net.num_addresses < 8:
            raise ValueError(f"service IP range {net} is too small (at least a /29)")
        first, sep, last = node_port_range.partition("-")
        lo, hi = int(first), int(last or first)
        if not sep or not 1 <= lo <= hi <= 65535:
            raise ValueError(f"invalid node port range {node_port_range!r}; e.g. 30000-32767")
        return cls(net, lo, hi)

    @property
    def family(self) -> str:
        return "IPv6" if self.cluster_ip.version == 6 else "IPv4"

    def ip_offsets(self) -> tuple[int, int]:
        """Usable host offsets [first, last] (no network or IPv4 broadcast address)."""
        last = self.cluster_ip.num_addresses - (2 if self.cluster_ip.version == 4 else 1)
        return 1, last

    def port_text(self) -> str:
        return f"{self.node_port_first}-{self.node_port_last}"


def needs_cluster_ip(spec: dict[str, Any]) -> bool:
    return spec.get("type", "ClusterIP") != "ExternalName"


def needs_node_ports(spec: dict[str, Any]) -> bool:
    kind = spec.get("type", "ClusterIP")
    return kind == "NodePort" or (
        kind == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True) is not False
    )


def needs_health_check_node_port(spec: dict[str, Any]) -> bool:
    """A LoadBalancer Service with ``externalTrafficPolicy: Local`` gets one (apiserver's
    ``needsHCNodePort``): the load balancer asks it which nodes have local endpoints."""
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def cluster_ips(spec: dict[str, Any]) -> list[str]:
    ips = spec.get("clusterIPs") or []
    if not ips and spec.get("clusterIP"):
        ips = [spec["clusterIP"]]
    return [ip for ip in ips if isinstance(ip, str)]


def normalize(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> None:
    """Fill ``clusterIP``/``clusterIPs`` from each other; on update, keep what was assigned.

    Kubernetes' service REST does the same (``patchAllocatedValues``, ``dropTypeDependent
    Fields``): an update that leaves the IP or a node port out keeps the one it had, and a
    type change that no longer needs them drops them unless the client changed them.
    """
    if old_spec is not None:
        if needs_cluster_ip(old_spec) and needs_cluster_ip(spec):
            if not spec.get("clusterIP") and not spec.get("clusterIPs"):
                for k in ("clusterIP", "clusterIPs"):
                    if k in old_spec:
                        spec[k] = old_spec[k]
        elif needs_cluster_ip(old_spec) and cluster_ips(spec) == cluster_ips(old_spec):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p for p in _ports(old_spec)}
        if needs_node_ports(old_spec) and needs_node_ports(spec):
            for p in _ports(spec):
                if not p.get("nodePort"):
                    was = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if was and was.get("nodePort"):
                        p["nodePort"] = was["nodePort"]
        elif needs_node_ports(old_spec):
            if sorted(_node_ports(spec)) == sorted(_node_ports(old_spec)):
                for p in _ports(spec):
                    p.pop("nodePort", None)
        old_hc = old_spec.get("healthCheckNodePort")
        if needs_health_check_node_port(old_spec) and needs_health_check_node_port(spec):
            if not spec.get("healthCheckNodePort") and old_hc:
                spec["healthCheckNodePort"] = old_hc
        elif needs_health_check_node_port(old_spec) and spec.get("healthCheckNodePort") == old_hc:
            spec.pop("healthCheckNodePort", None)
    ips = spec.get("clusterIPs")
    if spec.get("clusterIP") and not ips:
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif ips and not spec.get("clusterIP") and isinstance(ips, list):
        spec["clusterIP"] = ips[0]


def validate(spec: dict[str, Any], old_spec: dict[str, Any] | None) -> list[Cause]:
    """What does not depend on the ranges or on what is taken."""
    causes: list[Cause] = []
    kind = spec.get("type", "ClusterIP")
    ips = spec.get("clusterIPs") or []
    if spec.get("clusterIP") and ips and ips[0] != spec["clusterIP"]:
        causes.append(
            Cause(
                "spec.clusterIPs[0]",
                f'Invalid value: "{ips[0]}": must match `clusterIP` when both are specified',
            )
        )
    if not needs_cluster_ip(spec) and ips:
        causes.append(
            Cause("spec.clusterIPs", f"Invalid value: {_go(ips)}: must be empty for ExternalName")
        )
    if len(ips) > 1:
        causes.append(
            Cause(
                "spec.clusterIPs",
                f"Invalid value: {_go(ips)}: "
                "this cluster is not configured for dual-stack services",
            )
        )
    for i, ip in enumerate(ips[:1]):
        if ip == "None":
            if kind != "ClusterIP":
                causes.append(
                    Cause(
                        f"spec.clusterIPs[{i}]",
                        f"Invalid value: \"None\": may not be set to 'None' for {kind} services",
                    )
                )
        elif not _is_ip(ip):
            causes.append(
                Cause(
                    f"spec.clusterIPs[{i}]",
                    f'Invalid value: "{ip}": must be a valid IP address, '
                    "(e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    if old_spec is not None and needs_cluster_ip(old_spec) and needs_cluster_ip(spec):
        before, after = cluster_ips(old_spec), cluster_ips(spec)
        if before and after[:1] != before[:1]:
            causes.append(
                Cause(
                    "spec.clusterIPs[0]",
                    f'Invalid value: "{(after or [""])[0]}": may not change once set',
                )
            )
    for i, p in enumerate(_ports(spec)):
        np = p.get("nodePort")
        if not np:
            continue
        if not isinstance(np, int) or not 1 <= np <= 65535:
            causes.append(
                Cause(
                    f"spec.ports[{i}].nodePort",
                    f"Invalid value: {np}: must be between 1 and 65535, inclusive",
                )
            )
        elif not needs_node_ports(spec):
            causes.append(
                Cause(
                    f"spec.ports[{i}].nodePort",
                    f"Forbidden: may not be used when `type` is '{kind}'",
                    "FieldValueForbidden",
                )
            )
    return causes


def held(obj: dict[str, Any]) -> dict[str, bytes]:
    """The allocation keys a stored Service holds, each with its owner as the value."""
    spec = obj.get("spec") or {}
    meta = obj.get("metadata") or {}
    owner = orjson.dumps({"namespace": meta.get("namespace"), "name": meta.get("name")})
    keys: dict[str, bytes] = {}
    if needs_cluster_ip(spec):
        for ip in cluster_ips(spec):
            if _is_ip(ip):
                keys[ip_key(ip)] = owner
    for key in _port_keys(spec):
        keys[key] = owner
    hc = spec.get("healthCheckNodePort")
    if isinstance(hc, int) and hc > 0:
        keys[port_key(hc)] = owner
    return keys


def ip_key(ip: str) -> str:
    return IP_PREFIX + ipaddress.ip_address(ip).compressed


def port_key(port: int) -> str:
    return f"{PORT_PREFIX}{port}"


class ServiceAllocator:
    """Picks free cluster IPs and node ports and checks requested ones against the ranges."""

    def __init__(self, etcd: Backend, ranges: ServiceRanges | None = None) -> None:
        self.etcd = etcd
        self.ranges = ranges or ServiceRanges()
        self._views: dict[str, tuple[float, set[str]]] = {}  # prefix → (read at, taken)

    async def assign(
        self, obj: dict[str, Any], old: dict[str, Any] | None, avoid: Iterable[str] = ()
    ) -> set[str]:
        """Fill in what the Service needs and lacks; return the keys picked here.

        Requested values outside the ranges are refused (422) unless the old object already
        held them. ``avoid``: keys found taken by a previous attempt.
        """
        spec = obj.setdefault("spec", {})
        old_held = held(old) if old is not None else {}
        name = (obj.get("metadata") or {}).get("name") or ""
        avoid = set(avoid)
        picked: set[str] = set()
        causes: list[Cause] = []
        if needs_cluster_ip(spec):
            ips = cluster_ips(spec)
            if not ips:
                ip = await self._free_ip(avoid)
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                spec["ipFamilies"] = [self.ranges.family]
                picked.add(ip_key(ip))
            elif ips[0] != "None" and ip_key(ips[0]) not in old_held:
                why = self._ip_out_of_range(ips[0])
                if why:
                    causes.append(
                        Cause(
                            "spec.clusterIPs",
                            f"Invalid value: {_go(ips)}: failed to allocate IP {ips[0]}: {why}",
                        )
                    )
                else:
                    spec["ipFamilies"] = [self.ranges.family]
        if needs_node_ports(spec):
            by_port: dict[int, int] = {}
            for i, p in enumerate(_ports(spec)):
                np = p.get("nodePort")
                if np:
                    if port_key(np) not in old_held and not self._port_in_range(np):
                        causes.append(
                            Cause(
                                f"spec.ports[{i}].nodePort",
                                f"Invalid value: {np}: provided port is not in the valid range. "
                                f"The range of valid ports is {self.ranges.port_text()}",
                            )
                        )
                    by_port.setdefault(p.get("port"), np)
            for p in _ports(spec):
                if not p.get("nodePort"):
                    # Ports with the same number (TCP and UDP) share one node port.
                    np = by_port.get(p.get("port"))
                    if np is None:
                        np = await self._free_port(avoid | picked | _port_keys(spec))
                        picked.add(port_key(np))
                        by_port[p.get("port")] = np
                    p["nodePort"] = np
        hc = spec.get("healthCheckNodePort")
        if needs_health_check_node_port(spec) and not hc:
            hc = await self._free_port(avoid | picked | _port_keys(spec))
            picked.add(port_key(hc))
            spec["healthCheckNodePort"] = hc
        elif hc and port_key(hc) not in old_held and not self._port_in_range(hc):
            causes.append(
                Cause(
                    "spec.healthCheckNodePort",
                    f"Invalid value: {hc}: provided port is not in the valid range. "
                    f"The range of valid ports is {self.ranges.port_text()}",
                )
            )
        if causes:
            raise errors.invalid("Service", name, "", causes)
        return picked

    def taken(self, obj: dict[str, Any], key: str) -> errors.ApiError:
        """The 422 for a requested value another Service holds."""
        spec = obj.get("spec") or {}
        name = (obj.get("metadata") or {}).get("name") or ""
        if key.startswith(IP_PREFIX):
            ips = cluster_ips(spec)
            cause = Cause(
                "spec.clusterIPs",
                f"Invalid value: {_go(ips)}: failed to allocate IP {key[len(IP_PREFIX) :]}: "
                "provided IP is already allocated",
            )
        else:
            port = int(key[len(PORT_PREFIX) :])
            i = next((i for i, p in enumerate(_ports(spec)) if p.get("nodePort") == port), 0)
            path = f"spec.ports[{i}].nodePort"
            if spec.get("healthCheckNodePort") == port:
                path = "spec.healthCheckNodePort"
            cause = Cause(path, f"Invalid value: {port}: provided port is already allocated")
        return errors.invalid("Service", name, "", [cause])

    # -- picking -------------------------------------------------------------------------

    async def _taken(self, prefix: str) -> set[str]:
        kvs, _ = await self.etcd.range_all(prefix)
        return {kv.key for kv in kvs}

    async def _used(self, prefix: str, avoid: set[str]) -> set[str]:
        """What to avoid: first only the values found taken by earlier attempts (the
        transaction itself refuses a taken one, so a sparse range costs no read) and what a
        recent read saw; after a few conflicts, everything taken under ``prefix``, read
        again at most once per ``_VIEW_TTL`` and kept up to date with this process' picks
        (so concurrent creates here stop colliding with each other)."""
        mine = {k for k in avoid if k.startswith(prefix)}
        view = self._views.get(prefix)
        fresh = view is not None and time.monotonic() - view[0] <= _VIEW_TTL
        if len(mine) < _BLIND_TRIES:
            return mine | view[1] if fresh and view is not None else mine
        if not fresh:
            view = (time.monotonic(), await self._taken(prefix))
            self._views[prefix] = view
        assert view is not None
        return view[1] | mine

    def _note(self, key: str) -> None:
        """A value just picked: later picks in this process avoid it."""
        prefix = IP_PREFIX if key.startswith(IP_PREFIX) else PORT_PREFIX
        if (view := self._views.get(prefix)) is not None:
            view[1].add(key)

    async def _free_ip(self, avoid: set[str]) -> str:
        used = await self._used(IP_PREFIX, avoid)
        first, last = self.ranges.ip_offsets()
        size = last - first + 1
        band = min(max(16, size // 16), 256)
        net = self.ranges.cluster_ip

        def key(offset: int) -> str:
            return IP_PREFIX + str(net.network_address + offset)

        # Offset ``first`` (the .1) is never picked: it is the kubernetes Service's.
        offset = _pick(first + band, last, key, used) or _pick(
            first + 1, first + band - 1, key, used
        )
        if offset is None:
            raise errors.internal("failed to allocate a serviceIP: range is full")
        self._note(key(offset))
        return str(net.network_address + offset)

    async def _free_port(self, avoid: set[str]) -> int:
        used = await self._used(PORT_PREFIX, avoid)
        lo, hi = self.ranges.node_port_first, self.ranges.node_port_last
        band = min(max(16, (hi - lo + 1) // 32), 128)
        port = _pick(lo + band, hi, port_key, used) or _pick(lo, lo + band - 1, port_key, used)
        if port is None:
            raise errors.internal("failed to allocate a nodePort: range is full")
        self._note(port_key(port))
        return port

    def _ip_out_of_range(self, ip: str) -> str:
        addr = ipaddress.ip_address(ip)
        net = self.ranges.cluster_ip
        first, last = self.ranges.ip_offsets()
        if addr.version != net.version or not (
            first <= int(addr) - int(net.network_address) <= last
        ):
            return (
                f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {net}"
            )
        return ""

    def _port_in_range(self, port: int) -> bool:
        return self.ranges.node_port_first <= port <= self.ranges.node_port_last


def _pick(lo: int, hi: int, key, used: set[str]) -> int | None:  # type: ignore[no-untyped-def]
    """A random free value in [lo, hi]: random tries, then a scan from a random start."""
    if hi < lo:
        return None
    for _ in range(_TRIES):
        v = random.randint(lo, hi)
        if key(v) not in used:
            return v
    start = random.randint(lo, hi)
    for i in range(hi - lo + 1):
        v = lo + (start - lo + i) % (hi - lo + 1)
        if key(v) not in used:
            return v
    return None


def _ports(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in spec.get("ports") or [] if isinstance(p, dict)]


def _node_ports(spec: dict[str, Any]) -> set[int]:
    ports = (p.get("nodePort") for p in _ports(spec))
    return {np for np in ports if isinstance(np, int) and np > 0}


def _port_keys(spec: dict[str, Any]) -> set[str]:
    """The allocation keys of the node ports a Service spec names."""
    return {port_key(np) for np in _node_ports(spec)}


def _go(values: list[str]) -> str:
    """A list of strings as Kubernetes' messages print it (Go syntax)."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
