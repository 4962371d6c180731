"""What NetworkPolicies (networking.k8s.io/v1) mean for the pods of one node.

A pod is isolated for ingress (egress) when some policy of its namespace selects it and
names ``Ingress`` (``Egress``) in its ``policyTypes``; an isolated pod accepts (sends)
only what the union of those policies' rules allows. A rule allows traffic from (to) any
of its peers on any of its ports; no peers means every address, no ports every port.

Peers become *peer sets* shared by every local pod a policy selects: pod IPs (pod and
namespace selectors) and CIDRs (``ipBlock``, minus its ``except`` ranges, computed here so
that a rule is a plain address match). Named ports resolve per pod, as the API says: on
the selected pod for ingress, on each peer pod for egress (such a peer set carries its
port matches with it).

Pure data in, data out: :func:`compute` knows nothing of iptables.
"""

from __future__ import annotations

import hashlib
import ipaddress
from base64 import b32encode
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_dict

Obj = Mapping[str, Any]

INGRESS = "Ingress"
EGRESS = "Egress"
PROTOCOLS = ("TCP", "UDP", "SCTP")


@dataclass(frozen=True, slots=True)
class Port:
    """One port match: a protocol and a port or range (``port`` None: every port)."""

    protocol: str = "TCP"
    port: int | None = None
    end_port: int | None = None

    def match(self) -> str:
        """The iptables match, e.g. ``-p tcp -m tcp --dport 80:90``."""
        proto = self.protocol.lower()
        text = f"-p {proto} -m {proto}"
        if self.port is None:
            return f"-p {proto}"
        if self.end_port is not None and self.end_port > self.port:
            return f"{text} --dport {self.port}:{self.end_port}"
        return f"{text} --dport {self.port}"


@dataclass(frozen=True, slots=True)
class Peer:
    """One entry of a peer set: an address or CIDR, and for egress named ports its port."""

    cidr: str
    port: Port | None = None


@dataclass(frozen=True, slots=True)
class Allow:
    """One way in (or out) of a pod: these ports, to or from this peer set.

    ``peers`` None means any address; ``port`` None means any port.
    """

    peers: str | None
    port: Port | None = None


@dataclass(slots=True)
class PodRules:
    """A local pod's isolation: None where a direction is not isolated."""

    namespace: str
    name: str
    ips: tuple[str, ...]
    ingress: list[Allow] | None = None
    egress: list[Allow] | None = None


@dataclass(slots=True)
class Plan:
    pods: list[PodRules] = field(default_factory=list)
    """Local pods that some policy isolates, by namespace and name."""
    peer_sets: dict[str, list[Peer]] = field(default_factory=dict)
    """Peer set id → its entries (an id names the policy, direction, rule and port)."""
    problems: dict[str, str] = field(default_factory=dict)
    """``namespace/name`` of a policy → what of it could not be used, and why."""


def short_hash(text: str) -> str:
    """16 characters of base32 SHA-256, as kube-proxy names its chains."""
    return b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def policy_types(policy: Obj) -> list[str]:
    """``spec.policyTypes``, or its default: Ingress, and Egress when there are egress rules."""
    spec = policy.get("spec") or {}
    types = spec.get("policyTypes")
    if types:
        return [t for t in types if t in (INGRESS, EGRESS)]
    return [INGRESS, EGRESS] if spec.get("egress") else [INGRESS]


def pod_ips(pod: Obj) -> tuple[str, ...]:
    """The IPv4 addresses of a pod that has its own (not host network, not finished)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return ()
    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    return tuple(ip for ip in ips if ip and ":" not in ip)


def _named_port(pod: Obj, name: str, protocol: str) -> int | None:
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == name and (p.get("protocol") or "TCP") == protocol:
                return p.get("containerPort")
    return None


def _selector(raw: Any) -> LabelSelector:
    try:
        return selector_from_dict(raw if raw is not None else {})
    except ApiError as e:
        raise ValueError(e.status.get("message") or "invalid selector") from None


def block_cidrs(block: Obj) -> list[str]:
    """An ipBlock as plain CIDRs: ``cidr`` without its ``except`` ranges."""
    net = ipaddress.ip_network(block["cidr"], strict=False)
    if net.version != 4:
        return []
    left = [net]
    for raw in block.get("except") or []:
        ex = ipaddress.ip_network(raw, strict=False)
        nxt = []
        for n in left:
            if ex.version != 4 or not n.overlaps(ex):
                nxt.append(n)
            elif n.subnet_of(ex):
                continue
            else:
                nxt.extend(n.address_exclude(ex))
        left = nxt
    return [str(n) for n in sorted(left)]


class _Cluster:
    """The pods and namespaces a plan looks at, with the lookups peers need."""

    def __init__(self, pods: Iterable[Obj], namespaces: Iterable[Obj]) -> None:
        self.pods = [p for p in pods if pod_ips(p)]
        self.ns_labels = {
            n["metadata"]["name"]: (n["metadata"].get("labels") or {}) for n in namespaces
        }

    def in_namespace(self, ns: str) -> list[Obj]:
        return [p for p in self.pods if p["metadata"].get("namespace") == ns]

    def peer_pods(self, peer: Obj, policy_ns: str) -> list[Obj]:
        pod_sel = _selector(peer.get("podSelector"))
        if "namespaceSelector" in peer:
            ns_sel = _selector(peer.get("namespaceSelector"))
            spaces = {ns for ns, labels in self.ns_labels.items() if ns_sel.matches(labels)}
        else:
            spaces = {policy_ns}
        return [
            p
            for p in self.pods
            if p["metadata"].get("namespace") in spaces
            and pod_sel.matches(p["metadata"].get("labels") or {})
        ]


def _ports(rule: Obj) -> list[tuple[Port | None, str | None]]:
    """A rule's ports: (numeric match, None) or (protocol-only match, the port's name)."""
    out: list[tuple[Port | None, str | None]] = []
    for p in rule.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        if proto not in PROTOCOLS:
            raise ValueError(f"unsupported protocol {proto!r}")
        port = p.get("port")
        if isinstance(port, str) and not port.isdigit():
            out.append((Port(proto), port))
        else:
            number = int(port) if port is not None else None
            out.append((Port(proto, number, p.get("endPort") if number else None), None))
    return out or [(None, None)]


def compute(
    policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj], node: str
) -> Plan:
    """The rules for the pods of ``node`` under ``policies``."""
    plan = Plan()
    cluster = _Cluster(pods, namespaces)
    local = [p for p in cluster.pods if (p.get("spec") or {}).get("nodeName") == node]
    rules: dict[tuple[str, str], PodRules] = {}
    ordered = sorted(
        policies, key=lambda p: (p["metadata"].get("namespace"), p["metadata"]["name"])
    )
    for policy in ordered:
        meta = policy["metadata"]
        ns, pname = meta.get("namespace") or "default", meta["name"]
        spec = policy.get("spec") or {}
        try:
            chosen = _selector(spec.get("podSelector"))
        except (ValueError, TypeError, AttributeError) as e:
            plan.problems[f"{ns}/{pname}"] = f"spec.podSelector: {e}"
            continue
        selected = [
            p
            for p in local
            if p["metadata"].get("namespace") == ns
            and chosen.matches(p["metadata"].get("labels") or {})
        ]
        for direction in policy_types(policy) if selected else ():
            key = "ingress" if direction == INGRESS else "egress"
            allows = _direction(plan, cluster, ns, pname, key, spec.get(key) or [], selected)
            for pod, allowed in allows.items():
                pod_key = (ns, pod)
                if pod_key not in rules:
                    target = next(p for p in selected if p["metadata"]["name"] == pod)
                    rules[pod_key] = PodRules(ns, pod, pod_ips(target))
                current = getattr(rules[pod_key], key)
                setattr(rules[pod_key], key, [*(current or []), *allowed])
    plan.pods = [rules[k] for k in sorted(rules)]
    return plan


def _direction(
    plan: Plan,
    cluster: _Cluster,
    ns: str,
    policy: str,
    key: str,
    rule_list: list[Obj],
    selected: list[Obj],
) -> dict[str, list[Allow]]:
    """Each selected pod's allows from one policy in one direction (an empty list: deny)."""
    out: dict[str, list[Allow]] = {p["metadata"]["name"]: [] for p in selected}
    for index, rule in enumerate(rule_list):
        base = f"{ns}/{policy}/{key}/{index}"
        try:
            allows = _rule(plan, cluster, ns, key, base, rule, selected)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # Fail closed: the pods stay isolated; only this rule allows nothing.
            plan.problems[f"{ns}/{policy}"] = f"spec.{key}[{index}]: {e}"
            continue
        for pod, allowed in allows.items():
            out[pod].extend(allowed)
    return out


def _rule(
    plan: Plan, cluster: _Cluster, ns: str, key: str, base: str, rule: Obj, selected: list[Obj]
) -> dict[str, list[Allow]]:
    """One rule's allows for each selected pod; its peer sets go into ``plan``."""
    out: dict[str, list[Allow]] = {p["metadata"]["name"]: [] for p in selected}
    peers = rule.get("from" if key == "ingress" else "to")
    ports = _ports(rule)
    peer_set: str | None = None
    sets: dict[str, list[Peer]] = {}
    if peers:
        peer_set = base
        sets[peer_set] = _peer_entries(cluster, peers, ns)
    for port, name in ports:
        if name is None:
            for allows in out.values():
                allows.append(Allow(peer_set, port))
        elif key == "ingress":  # named: the selected pod's own port of that name
            assert port is not None
            for pod in selected:
                number = _named_port(pod, name, port.protocol)
                if number is not None:
                    out[pod["metadata"]["name"]].append(
                        Allow(peer_set, Port(port.protocol, number))
                    )
        else:  # named, egress: each peer pod's port of that name, in a set of its own
            assert port is not None
            named = f"{base}/{port.protocol}/{name}"
            entries = []
            for pod in _peer_pods(cluster, peers, ns) if peers else cluster.pods:
                number = _named_port(pod, name, port.protocol)
                if number is not None:
                    entries.extend(
                        Peer(f"{ip}/32", Port(port.protocol, number)) for ip in pod_ips(pod)
                    )
            sets[named] = entries
            for allows in out.values():
                allows.append(Allow(named))
    plan.peer_sets.update(sets)
    return out


def _peer_pods(cluster: _Cluster, peers: list[Obj], ns: str) -> list[Obj]:
    found: dict[str, Obj] = {}
    for peer in peers:
        if "ipBlock" not in peer:
            for p in cluster.peer_pods(peer, ns):
                found[p["metadata"].get("uid") or _pod_id(p)] = p
    return list(found.values())


def _pod_id(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata']['name']}"


def _peer_entries(cluster: _Cluster, peers: list[Obj], ns: str) -> list[Peer]:
    cidrs: list[str] = []
    for peer in peers:
        block = peer.get("ipBlock")
        if block is not None:
            cidrs.extend(block_cidrs(block))
    for pod in _peer_pods(cluster, peers, ns):
        cidrs.extend(f"{ip}/32" for ip in pod_ips(pod))
    return [Peer(c) for c in dict.fromkeys(cidrs)]
