"""What the proxy needs of a Service, one entry per port (kube-proxy's ``ServicePort``).

Parsed once when the Service changes, so a sync only reads plain attributes. Headless
Services (``clusterIP: None``) and ExternalName Services get no entry: they have nothing
to route. Only IPv4 addresses are programmed (the iptables proxier is one family; IPv6
would be a second proxier on ip6tables, as in kube-proxy).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

DEFAULT_AFFINITY_TIMEOUT = 10800  # ClientIPConfig.timeoutSeconds' default (3 hours)


def _ipv4(value: Any) -> str | None:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return str(ip) if ip.version == 4 else None


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of one Service, as it is routed."""

    namespace: str
    name: str
    port_name: str
    protocol: str
    """``TCP``, ``UDP`` or ``SCTP``."""
    cluster_ip: str | None
    port: int
    node_port: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    affinity_timeout: int = 0
    """Seconds a client sticks to its endpoint (``sessionAffinity: ClientIP``); 0: none."""
    external_local: bool = False
    """``externalTrafficPolicy: Local`` on a Service reachable from outside."""
    internal_local: bool = False
    """``internalTrafficPolicy: Local``."""
    health_check_node_port: int = 0

    @property
    def service_key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def port_id(self) -> str:
        """kube-proxy's ``ServicePortName.String()``: ``ns/name`` or ``ns/name:port``."""
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"

    @property
    def proto(self) -> str:
        """The protocol as iptables spells it."""
        return self.protocol.lower()

    @property
    def externally_reachable(self) -> bool:
        return bool(self.node_port or self.external_ips or self.load_balancer_ips)


def service_ports(svc: dict[str, Any]) -> list[ServicePort]:
    """The routed ports of a Service (none for headless and ExternalName Services)."""
    meta = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = spec.get("clusterIPs") or [spec.get("clusterIP")]
    cluster_ip = next((ip for ip in map(_ipv4, ips) if ip), None)
    if cluster_ip is None:
        return []  # headless ("None"), not allocated yet, or IPv6 only
    external_ips = tuple(ip for ip in map(_ipv4, spec.get("externalIPs") or ()) if ip)
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or ()
    lb_ips = tuple(ip for ip in (_ipv4(i.get("ip")) for i in ingress) if ip)
    affinity = 0
    if spec.get("sessionAffinity") == "ClientIP":
        config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        affinity = int(config.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    etp_local = spec.get("externalTrafficPolicy") == "Local"
    out = []
    for p in spec.get("ports") or ():
        node_port = int(p.get("nodePort") or 0)
        out.append(
            ServicePort(
                namespace=meta.get("namespace") or "default",
                name=meta.get("name") or "",
                port_name=p.get("name") or "",
                protocol=(p.get("protocol") or "TCP").upper(),
                cluster_ip=cluster_ip,
                port=int(p.get("port") or 0),
                node_port=node_port,
                external_ips=external_ips,
                load_balancer_ips=lb_ips,
                affinity_timeout=affinity,
                external_local=etp_local and bool(node_port or external_ips or lb_ips),
                internal_local=spec.get("internalTrafficPolicy") == "Local",
                health_check_node_port=int(spec.get("healthCheckNodePort") or 0),
            )
        )
    return out
