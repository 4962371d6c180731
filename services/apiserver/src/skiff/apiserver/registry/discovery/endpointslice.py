"""EndpointSlices as kube 1.32's ``ValidateEndpointSlice`` checks them: an address type
(fixed once set), at most 1000 endpoints of 1 to 100 addresses valid for that type (IPv4
or IPv6 and not special, or a fully qualified domain name), node names, hostnames, zone
hints, and at most 20000 ports with unique DNS-label names and a protocol."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_valid_label_value,
)

from ...validation import duplicate, immutable, invalid, not_supported, required
from ..core.containers import dict_of, list_of
from ..core.endpoints import non_special_ip, port_protocols
from ..strategy import Obj, Strategy

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
MAX_ENDPOINTS, MAX_ADDRESSES, MAX_PORTS, MAX_ZONE_HINTS = 1000, 100, 20000, 8


def too_many(path: str, actual: int, limit: int) -> Cause:
    """``field.TooMany``."""
    return Cause(path, f"Too many: {actual}: must have at most {limit} items", "FieldValueTooMany")


def _ip(value: str, version: int, path: str) -> list[Cause]:
    try:
        ok = ipaddress.ip_address(value).version == version
    except ValueError:
        ok = False
    causes = [] if ok else [invalid(path, value, f"must be a valid IPv{version} address")]
    return causes + non_special_ip(value, path)


def fqdn(name: str, path: str) -> list[Cause]:
    """``IsFullyQualifiedDomainName``: each step stops at its first error."""
    if not name:
        return [required(path)]
    name = name[:-1] if name.endswith(".") else name
    errs = is_dns1123_subdomain(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    labels = name.split(".")
    if len(labels) < 2:
        return [
            invalid(path, name, "should be a domain with at least two segments separated by dots")
        ]
    for label in labels:
        errs = is_dns1123_label(label)
        if errs:
            return [invalid(path, label, ",".join(errs))]
    return []


def _endpoint(endpoint: Obj, address_type: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    addresses = list_of(endpoint.get("addresses"))
    if not addresses:
        causes.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        causes.append(too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
    for j, address in enumerate(addresses):
        at, address = f"{path}.addresses[{j}]", str(address)
        if address_type == "IPv4":
            causes += _ip(address, 4, at)
        elif address_type == "IPv6":
            causes += _ip(address, 6, at)
        elif address_type == "FQDN":
            causes += fqdn(address, at)
    node = endpoint.get("nodeName")
    if node is not None:
        causes += [invalid(f"{path}.nodeName", node, m) for m in is_dns1123_subdomain(str(node))]
    hostname = endpoint.get("hostname")
    if hostname is not None:
        errs = is_dns1123_label(str(hostname))
        causes += [invalid(f"{path}.hostname", hostname, m) for m in errs]
    hints = endpoint.get("hints")
    if isinstance(hints, dict):
        zones, at = list_of(hints.get("forZones")), f"{path}.hints.forZones"
        if len(zones) > MAX_ZONE_HINTS:
            causes.append(too_many(at, len(zones), MAX_ZONE_HINTS))
        else:
            seen: set[str] = set()
            for k, zone in enumerate(zones):
                name = str(dict_of(zone).get("name") or "")
                if name in seen:
                    causes.append(duplicate(f"{at}[{k}].name", name))
                seen.add(name)
                causes += [invalid(f"{at}[{k}].name", name, m) for m in is_valid_label_value(name)]
    return causes


def _ports(ports: list[Any]) -> list[Cause]:
    if len(ports) > MAX_PORTS:
        return [too_many("ports", len(ports), MAX_PORTS)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port, at = dict_of(port), f"ports[{i}]"
        name = str(port.get("name") or "")
        if name:
            causes += [invalid(f"{at}.name", name, m) for m in is_dns1123_label(name)]
        if name in names:
            causes.append(duplicate(f"{at}.name", name))
        names.add(name)
        causes += port_protocols(port, at, port.get("protocol"))
    return causes


class EndpointSliceStrategy(Strategy):
    """EndpointSlices; the address type never changes."""

    def validate(self, obj: Obj) -> list[Cause]:
        address_type = obj.get("addressType")
        causes: list[Cause] = []
        if not address_type:
            causes.append(required("addressType"))
        elif address_type not in ADDRESS_TYPES:
            causes.append(not_supported("addressType", address_type, ADDRESS_TYPES))
        endpoints = list_of(obj.get("endpoints"))
        if len(endpoints) > MAX_ENDPOINTS:
            causes.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
        else:
            for i, endpoint in enumerate(endpoints):
                causes += _endpoint(dict_of(endpoint), address_type, f"endpoints[{i}]")
        return causes + _ports(list_of(obj.get("ports")))

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self.validate(obj) + immutable(
            "addressType", obj.get("addressType"), old.get("addressType")
        )
