"""NetworkPolicies (kube's ``pkg/apis/networking/validation``): selectors, ports and
peers that an enforcer can read, with Kubernetes' messages and field paths."""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_valid_port_name

from ...validation import forbidden, invalid, label_selector, not_supported, required
from ..strategy import Obj, Strategy

PROTOCOLS = ["TCP", "UDP", "SCTP"]
POLICY_TYPES = ["Ingress", "Egress"]
_CIDR_MESSAGE = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
_PORT_RANGE = "must be between 1 and 65535, inclusive"


Net = ipaddress.IPv4Network | ipaddress.IPv6Network


def _cidr(value: Any, path: str, allowed: Collection[str], causes: list[Cause]) -> Net | None:
    """The network, or None (with a cause, unless the old object already held it)."""
    try:
        return ipaddress.ip_network(value, strict=False)
    except (ValueError, TypeError):
        if value not in allowed:
            causes.append(invalid(path, value, _CIDR_MESSAGE))
        return None


def _ip_block(block: dict[str, Any], path: str, allowed: Collection[str]) -> list[Cause]:
    if not block.get("cidr"):
        return [required(f"{path}.cidr")]
    causes: list[Cause] = []
    net = _cidr(block["cidr"], f"{path}.cidr", allowed, causes)
    if net is None:
        return causes
    for i, raw in enumerate(block.get("except") or []):
        ex = _cidr(raw, f"{path}.except[{i}]", allowed, causes)
        if ex is None:
            continue
        inside = ex.version == net.version and ex.subnet_of(net)  # type: ignore[arg-type]
        if not inside or ex.prefixlen <= net.prefixlen:
            causes.append(invalid(f"{path}.except[{i}]", raw, "must be a strict subset of `cidr`"))
    return causes


def _peer(peer: dict[str, Any], path: str, allowed: Collection[str]) -> list[Cause]:
    causes = label_selector(peer.get("podSelector"), f"{path}.podSelector")
    causes += label_selector(peer.get("namespaceSelector"), f"{path}.namespaceSelector")
    kinds = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if "ipBlock" in kinds:
        causes += _ip_block(peer["ipBlock"], f"{path}.ipBlock", allowed)
    if not kinds:
        causes.append(required(path, "must specify a peer"))
    elif len(kinds) > 1 and "ipBlock" in kinds:
        causes.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return causes


def _port(port: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    proto = port.get("protocol")
    if proto is not None and proto not in PROTOCOLS:
        causes.append(not_supported(f"{path}.protocol", proto, PROTOCOLS))
    number, end = port.get("port"), port.get("endPort")
    if isinstance(number, int):
        if not 1 <= number <= 65535:
            causes.append(invalid(f"{path}.port", number, _PORT_RANGE))
        if end is not None:
            if end < number:
                causes.append(
                    invalid(f"{path}.endPort", end, "must be greater than or equal to `port`")
                )
            if not 1 <= end <= 65535:
                causes.append(invalid(f"{path}.endPort", end, _PORT_RANGE))
    elif number is not None:
        if end is not None:
            causes.append(
                invalid(f"{path}.endPort", end, "may not be specified when `port` is non-numeric")
            )
        causes += [invalid(f"{path}.port", number, m) for m in is_valid_port_name(str(number))]
    elif end is not None:
        causes.append(
            invalid(f"{path}.endPort", end, "may not be specified when `port` is not specified")
        )
    return causes


def _cidrs_of(obj: Obj | None) -> set[str]:
    """Every CIDR an existing policy holds (an update may keep them unvalidated)."""
    out: set[str] = set()
    spec = (obj or {}).get("spec") or {}
    for key, side in (("ingress", "from"), ("egress", "to")):
        for rule in spec.get(key) or []:
            for peer in rule.get(side) or []:
                block = peer.get("ipBlock") or {}
                out.update([block.get("cidr") or "", *(block.get("except") or [])])
    return out


def validate_spec(spec: dict[str, Any], allowed: Collection[str] = ()) -> list[Cause]:
    """``ValidateNetworkPolicySpec``."""
    causes = label_selector(spec.get("podSelector") or {}, "spec.podSelector")
    for key, side in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(spec.get(key) or []):
            base = f"spec.{key}[{i}]"
            for j, port in enumerate(rule.get("ports") or []):
                causes += _port(port, f"{base}.ports[{j}]")
            for j, peer in enumerate(rule.get(side) or []):
                causes += _peer(peer, f"{base}.{side}[{j}]", allowed)
    types = spec.get("policyTypes") or []
    if len(types) > len(POLICY_TYPES):
        causes.append(
            invalid("spec.policyTypes", types, "may not specify more than two policyTypes")
        )
        return causes
    for i, t in enumerate(types):
        if t not in POLICY_TYPES:
            causes.append(not_supported(f"spec.policyTypes[{i}]", t, POLICY_TYPES))
    return causes


class NetworkPolicyStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        return validate_spec(obj.get("spec") or {})

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return validate_spec(obj.get("spec") or {}, _cidrs_of(old))
