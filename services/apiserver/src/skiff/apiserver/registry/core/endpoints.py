"""Endpoints as kube 1.32's ``ValidateEndpoints`` checks them: each subset has addresses,
each address a valid, non-special IP (Skiff allows loopback: a one-machine cluster
advertises its apiservers on 127.0.0.1), a DNS-label hostname and a valid node name; each
port a number, a protocol and, when there are several, a DNS-label name."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_dns1123_subdomain, is_qualified_name

from ...validation import invalid, not_supported, required
from ..strategy import Obj, Strategy
from .containers import PROTOCOLS, dict_of, list_of, port_number
from .podspec import valid_ip


def non_special_ip(value: Any, path: str) -> list[Cause]:
    """``ValidateNonSpecialIP`` without its loopback rule (see the module's note)."""
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        return [invalid(path, value, "must be a valid IP address")]
    causes: list[Cause] = []
    if ip.is_unspecified:
        causes.append(invalid(path, value, f"may not be unspecified ({value})"))
    if ip.is_link_local:
        detail = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
        causes.append(invalid(path, value, detail))
    link_local_multicast = ipaddress.ip_network("224.0.0.0/24"), ipaddress.ip_network("ff02::/16")
    if any(ip.version == net.version and ip in net for net in link_local_multicast):
        detail = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
        causes.append(invalid(path, value, detail))
    return causes


def _address(address: Obj, path: str) -> list[Cause]:
    ip = address.get("ip") or ""
    causes = valid_ip(ip, f"{path}.ip")
    hostname = address.get("hostname")
    if hostname:
        causes += [invalid(f"{path}.hostname", hostname, m) for m in is_dns1123_label(hostname)]
    node = address.get("nodeName")
    if node is not None:
        causes += [invalid(f"{path}.nodeName", node, m) for m in is_dns1123_subdomain(node)]
    return causes + non_special_ip(ip, f"{path}.ip")


def port_name(port: Obj, named: bool, path: str) -> list[Cause]:
    """A port's name: required when ``named`` (there are several), else a DNS label."""
    name = port.get("name") or ""
    if named and not name:
        return [required(f"{path}.name")]
    return [invalid(f"{path}.name", name, m) for m in is_dns1123_label(name)] if name else []


def _port(port: Obj, named: bool, path: str) -> list[Cause]:
    causes = port_name(port, named, path)
    causes += port_number(port.get("port", 0), f"{path}.port")
    return causes + port_protocols(port, path, port.get("protocol") or None)


def port_protocols(port: Obj, path: str, protocol: Any) -> list[Cause]:
    """A port's protocol (required, one of kube's) and ``appProtocol`` (a qualified name)."""
    return port_protocol(protocol, path) + app_protocol(port, path)


def port_protocol(protocol: Any, path: str) -> list[Cause]:
    if protocol is None:
        return [required(f"{path}.protocol")]
    if protocol not in PROTOCOLS:
        return [not_supported(f"{path}.protocol", protocol, PROTOCOLS)]
    return []


def app_protocol(port: Obj, path: str) -> list[Cause]:
    app = port.get("appProtocol")
    if app is None:
        return []
    return [invalid(f"{path}.appProtocol", app, m) for m in is_qualified_name(str(app))]


def validate_subsets(subsets: list[Any], path: str = "subsets") -> list[Cause]:
    """``validateEndpointSubsets``."""
    causes: list[Cause] = []
    for i, subset in enumerate(subsets):
        subset, at = dict_of(subset), f"{path}[{i}]"
        ready, not_ready = (
            list_of(subset.get("addresses")),
            list_of(subset.get("notReadyAddresses")),
        )
        if not ready and not not_ready:
            causes.append(required(at, "must specify `addresses` or `notReadyAddresses`"))
        for j, address in enumerate(ready):
            causes += _address(dict_of(address), f"{at}.addresses[{j}]")
        for j, address in enumerate(not_ready):
            causes += _address(dict_of(address), f"{at}.notReadyAddresses[{j}]")
        ports = list_of(subset.get("ports"))
        for j, port in enumerate(ports):
            causes += _port(dict_of(port), len(ports) > 1, f"{at}.ports[{j}]")
    return causes


class EndpointsStrategy(Strategy):
    """Endpoints: the same rules on create and update."""

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_subsets(list_of(obj.get("subsets")))
