"""The rules of one Service port in kube-proxy's iptables layout, and the fixed chains.

Chain names are kube-proxy's own: ``KUBE-SVC-`` (cluster traffic, spread over endpoints),
``KUBE-SVL-`` (this node's endpoints only), ``KUBE-EXT-`` (traffic from outside: NodePort,
external and load-balancer IPs) and one ``KUBE-SEP-`` per endpoint, each followed by the
first 16 characters of the base32 SHA-256 of the port's name, protocol (and endpoint), so
``iptables-save`` on a Skiff node reads like one on a Kubernetes node and the names do not
change between syncs or restarts.

Rules here are strings, one per ``-A`` line, without the ``-A CHAIN`` prefix the writer
adds. Every rule of a chain is generated in a fixed order, so a chain whose Service did
not change produces the same text and need not be written again (partial sync).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from skiff.proxy.endpoints import Categorized, Endpoint
from skiff.proxy.serviceport import ServicePort

MASQ_MARK = "0x4000"

# The chains the proxy owns outright, table -> chains (written whole at every sync).
KUBE_SERVICES = "KUBE-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_FIREWALL = "KUBE-FIREWALL"
NAT_CHAINS = (KUBE_SERVICES, KUBE_NODEPORTS, KUBE_POSTROUTING, KUBE_MARK_MASQ)
FILTER_CHAINS = (KUBE_SERVICES, KUBE_EXTERNAL_SERVICES, KUBE_FORWARD, KUBE_NODEPORTS, KUBE_FIREWALL)
SERVICE_CHAIN_PREFIXES = ("KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-SEP-")

# Jumps from the built-in chains into ours: (table, chain, rule), kept by the proxier.
AHEAD_OF_US = ("SKIFF-NETPOL",)
"""Chains that may come before our jumps in the built-in chains: skiff-netagent's network
policy (as Calico's and kube-router's chains come before kube-proxy's)."""

JUMPS = (
    ("nat", "PREROUTING", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    ("nat", "OUTPUT", '-m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    (
        "nat",
        "POSTROUTING",
        '-m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    ),
    (
        "filter",
        "INPUT",
        '-m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS',
    ),
    (
        "filter",
        "INPUT",
        "-m conntrack --ctstate NEW "
        '-m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
    ),
    ("filter", "INPUT", "-j KUBE-FIREWALL"),
    ("filter", "FORWARD", '-m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    (
        "filter",
        "FORWARD",
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
    ),
    (
        "filter",
        "FORWARD",
        "-m conntrack --ctstate NEW "
        '-m comment --comment "kubernetes externally-visible service portals" '
        "-j KUBE-EXTERNAL-SERVICES",
    ),
    (
        "filter",
        "OUTPUT",
        '-m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
    ),
    ("filter", "OUTPUT", "-j KUBE-FIREWALL"),
)


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def svc_chain(sp: ServicePort) -> str:
    return "KUBE-SVC-" + _hash(sp.port_id + sp.proto)


def svl_chain(sp: ServicePort) -> str:
    return "KUBE-SVL-" + _hash(sp.port_id + sp.proto)


def ext_chain(sp: ServicePort) -> str:
    return "KUBE-EXT-" + _hash(sp.port_id + sp.proto)


def sep_chain(sp: ServicePort, ep: Endpoint) -> str:
    return "KUBE-SEP-" + _hash(sp.port_id + sp.proto + ep.address)


def _c(text: str) -> str:
    return f'-m comment --comment "{text}"'


def static_nat_rules() -> dict[str, list[str]]:
    """The nat chains whose rules do not depend on Services (KUBE-SERVICES aside)."""
    return {
        KUBE_POSTROUTING: [
            f"-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN",
            # Clear the mark: a packet re-traversing the stack is not masqueraded twice.
            f"-j MARK --xor-mark {MASQ_MARK}",
            f"{_c('kubernetes service traffic requiring SNAT')} -j MASQUERADE --random-fully",
        ],
        KUBE_MARK_MASQ: [f"-j MARK --or-mark {MASQ_MARK}"],
    }


def static_filter_rules() -> dict[str, list[str]]:
    """The filter chains whose rules do not depend on Services."""
    return {
        KUBE_FORWARD: [
            "-m conntrack --ctstate INVALID -j DROP",
            f"{_c('kubernetes forwarding rules')} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT",
            f"{_c('kubernetes forwarding conntrack rule')} "
            "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        ],
        # route_localnet lets NodePorts answer on 127.0.0.1; this keeps other hosts from
        # sending to 127.0.0.0/8 through it, as kube-proxy does.
        KUBE_FIREWALL: [
            f"! -s 127.0.0.0/8 -d 127.0.0.0/8 {_c('block incoming localnet connections')} "
            "-m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP"
        ],
    }


@dataclass(slots=True)
class ServiceRules:
    """Everything one Service port contributes to the tables."""

    chains: dict[str, list[str]] = field(default_factory=dict)
    """The port's own nat chains (KUBE-SVC/SVL/EXT/SEP) and their rules."""
    nat_services: list[str] = field(default_factory=list)
    nat_nodeports: list[str] = field(default_factory=list)
    filter_services: list[str] = field(default_factory=list)
    filter_external: list[str] = field(default_factory=list)
    filter_nodeports: list[str] = field(default_factory=list)


def _dport(sp: ServicePort, port: int) -> str:
    return f"-p {sp.proto} -m {sp.proto} --dport {port}"


def _spread(
    sp: ServicePort, chain_of: dict[str, str], targets: list[Endpoint], comment: str
) -> list[str]:
    """Session-affinity checks, then one jump per endpoint, each taken with probability
    1/(n-i) so that every endpoint gets an equal share."""
    rules = []
    if sp.affinity_timeout:
        for e in targets:
            sep = chain_of[e.address]
            rules.append(
                f"{_c(f'{comment} -> {e.address}')} -m recent --name {sep} --rcheck "
                f"--seconds {sp.affinity_timeout} --reap -j {sep}"
            )
    n = len(targets)
    for i, e in enumerate(targets):
        stat = ""
        if i < n - 1:
            stat = f" -m statistic --mode random --probability {1.0 / (n - i):0.10f}"
        rules.append(f"{_c(f'{comment} -> {e.address}')}{stat} -j {chain_of[e.address]}")
    return rules


def service_rules(sp: ServicePort, eps: Categorized, cluster_cidr: str) -> ServiceRules:
    """The rules of one Service port with these endpoints (see the module docstring)."""
    out = ServiceRules()
    pid, svc, svl, ext = sp.port_id, svc_chain(sp), svl_chain(sp), ext_chain(sp)
    cip = f"-d {sp.cluster_ip}/32"
    external_targets = eps.local if sp.external_local else eps.cluster
    externals = [(ip, "external IP") for ip in sp.external_ips] + [
        (ip, "loadbalancer IP") for ip in sp.load_balancer_ips
    ]

    # Cluster IP: to the policy chain, or refused at once when nothing would answer.
    if eps.cluster:
        target = svl if sp.internal_local else svc
        out.nat_services.append(
            f"{cip} {_c(f'{pid} cluster IP')} {_dport(sp, sp.port)} -j {target}"
        )
    else:
        why = "has no endpoints"
        if sp.internal_local and eps.all_usable:
            why = "has no local endpoints"
        out.filter_services.append(
            f"{cip} {_c(f'{pid} {why}')} {_dport(sp, sp.port)} "
            "-j REJECT --reject-with icmp-port-unreachable"
        )

    # External destinations.
    if external_targets:
        for ip, kind in externals:
            out.nat_services.append(
                f"-d {ip}/32 {_c(f'{pid} {kind}')} {_dport(sp, sp.port)} -j {ext}"
            )
        if sp.node_port:
            out.nat_nodeports.append(f"{_c(pid)} {_dport(sp, sp.node_port)} -j {ext}")
    elif sp.externally_reachable:
        # No endpoint at all: refuse. Endpoints elsewhere but none here (policy Local):
        # drop, so the client's load balancer tries another node (as kube-proxy).
        verdict, why = (
            ("DROP", "has no local endpoints")
            if eps.all_usable
            else ("REJECT --reject-with icmp-port-unreachable", "has no endpoints")
        )
        for ip, _ in externals:
            out.filter_external.append(
                f"-d {ip}/32 {_c(f'{pid} {why}')} {_dport(sp, sp.port)} -j {verdict}"
            )
        if sp.node_port:
            out.filter_external.append(
                f"{_c(f'{pid} {why}')} -m addrtype --dst-type LOCAL "
                f"{_dport(sp, sp.node_port)} -j {verdict}"
            )
    if sp.health_check_node_port:
        out.filter_nodeports.append(
            f"{_c(f'{pid} health check node port')} "
            f"-m tcp -p tcp --dport {sp.health_check_node_port} -j ACCEPT"
        )

    if not eps.all_usable:
        return out
    chain_of = {e.address: sep_chain(sp, e) for e in eps.all_usable}

    if eps.cluster and not sp.internal_local:
        rules = []
        if cluster_cidr:
            # Traffic from outside the pod network must come back through this node.
            rules.append(
                f"! -s {cluster_cidr} {cip} {_c(f'{pid} cluster IP')} "
                f"{_dport(sp, sp.port)} -j {KUBE_MARK_MASQ}"
            )
        out.chains[svc] = rules + _spread(sp, chain_of, eps.cluster, pid)
    if (sp.internal_local and eps.cluster) or (sp.external_local and eps.local):
        out.chains[svl] = _spread(sp, chain_of, eps.local, pid)
    if external_targets and sp.externally_reachable:
        out.chains[ext] = _ext_rules(sp, svc if svc in out.chains else svl, svl, cluster_cidr)
    for e in eps.all_usable:
        recent = f"-m recent --name {chain_of[e.address]} --set " if sp.affinity_timeout else ""
        out.chains[chain_of[e.address]] = [
            # Hairpin: a pod reaching itself through its Service must see the node's address.
            f"-s {e.ip}/32 {_c(pid)} -j {KUBE_MARK_MASQ}",
            f"-p {sp.proto} {_c(pid)} {recent}-m {sp.proto} -j DNAT --to-destination {e.address}",
        ]
    return out


def _ext_rules(sp: ServicePort, cluster_chain: str, svl: str, cluster_cidr: str) -> list[str]:
    pid = sp.port_id
    if not sp.external_local:
        return [
            f"{_c(f'masquerade traffic for {pid} external destinations')} -j {KUBE_MARK_MASQ}",
            f"-j {cluster_chain}",
        ]
    # Local policy: the client's address is kept, so only this node's endpoints answer;
    # pods and the node itself still reach every endpoint (short-circuit to the cluster).
    rules = []
    if cluster_cidr:
        rules.append(
            f"-s {cluster_cidr} {_c(f'pod traffic for {pid} external destinations')} "
            f"-j {cluster_chain}"
        )
    return [
        *rules,
        f"{_c(f'masquerade LOCAL traffic for {pid} external destinations')} "
        f"-m addrtype --src-type LOCAL -j {KUBE_MARK_MASQ}",
        f"{_c(f'route LOCAL traffic for {pid} external destinations')} "
        f"-m addrtype --src-type LOCAL -j {cluster_chain}",
        f"-j {svl}",
    ]


def nodeports_last_rule() -> str:
    """The last rule of nat KUBE-SERVICES: NodePorts, for local destination addresses."""
    return (
        f"{_c('kubernetes service nodeports; NOTE: this must be the last rule in this chain')} "
        f"-m addrtype --dst-type LOCAL -j {KUBE_NODEPORTS}"
    )


def join(parts: Iterable[list[str]]) -> list[str]:
    return [r for p in parts for r in p]
