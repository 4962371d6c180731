"""Which routes a node wants: every other node's pod CIDR via that node's InternalIP.

A node without a pod CIDR or an address is left out (it has no pods to reach yet). A
node whose CIDR is not a network, or overlaps one claimed first (by this node, or by an
older node) is left out and reported: a route for it would take traffic meant for the
other node's pods.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skiff.api.nodes import internal_ip

Network = ipaddress.IPv4Network


@dataclass
class Plan:
    routes: dict[str, str] = field(default_factory=dict)
    """pod CIDR → the node address to send it to."""
    problems: dict[str, str] = field(default_factory=dict)
    """node name → why it gets no route."""


def _order(node: dict[str, Any]) -> tuple[str, str]:
    meta = node.get("metadata") or {}
    return meta.get("creationTimestamp") or "", meta.get("name") or ""


def plan(nodes: Iterable[dict[str, Any]], me: str) -> Plan:
    """The routes this node (``me``) wants, and the nodes it refuses to route to."""
    out = Plan()
    claimed: list[tuple[Network, str]] = []
    ordered = sorted(nodes, key=lambda n: (n["metadata"]["name"] != me, *_order(n)))
    for node in ordered:
        name = node["metadata"]["name"]
        raw = (node.get("spec") or {}).get("podCIDR")
        if not raw:
            continue
        try:
            net = ipaddress.ip_network(raw, strict=True)
        except ValueError:
            out.problems[name] = f"pod CIDR {raw!r} is not a network"
            continue
        if net.version != 4:
            continue
        clash = next((other for n, other in claimed if n.overlaps(net)), None)
        if clash is not None:
            out.problems[name] = f"pod CIDR {raw} overlaps node {clash}'s"
            continue
        claimed.append((net, name))
        if name == me:
            continue
        via = internal_ip(node)
        if not via:
            continue
        out.routes[str(net)] = via
    return out
