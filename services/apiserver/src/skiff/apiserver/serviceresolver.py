"""Where a Service's port is served (kube's ``k8s.io/apiserver/pkg/util/proxy``
``ResolveEndpoint``), for the calls the apiserver makes to Services: admission and
conversion webhooks and aggregated APIs. A ready address of the Service's Endpoints with
the port's name, as kube-apiserver does with ``--enable-aggregator-routing``: the
apiserver need not be on a node that routes cluster IPs; ``ExternalName`` Services by
their name. Also the TLS settings such calls share (a ``caBundle``, or none)."""

from __future__ import annotations

import base64
import binascii
import random
import ssl
from typing import TYPE_CHECKING, Any

from skiff.api.resources import REGISTRY

if TYPE_CHECKING:
    from .admission.interfaces import Lister

_SERVICES = REGISTRY.core("services")
_ENDPOINTS = REGISTRY.core("endpoints")


class ResolveError(Exception):
    """The Service, its port or a ready endpoint is missing (kube's words)."""


def service_port(service: dict[str, Any], port: int) -> dict[str, Any] | None:
    """The Service's port entry for ``port``."""
    for p in (service.get("spec") or {}).get("ports") or ():
        if p.get("port") == port:
            return p
    return None


async def resolve_service(lister: Lister, namespace: str, name: str, port: int) -> tuple[str, int]:
    """A ready address and port behind ``namespace/name``'s ``port``."""
    service = await lister.get(_SERVICES, namespace, name)
    if service is None:
        raise ResolveError(f'service "{name}" not found')
    svc_port = service_port(service, port)
    if svc_port is None:
        raise ResolveError(f"no service port {port} found for service {name!r}")
    if (service.get("spec") or {}).get("type") == "ExternalName":
        return str(service["spec"].get("externalName") or ""), port
    endpoints = await lister.get(_ENDPOINTS, namespace, name)
    port_name = svc_port.get("name") or ""
    for subset in (endpoints or {}).get("subsets") or ():
        for ep_port in subset.get("ports") or ():
            if (ep_port.get("name") or "") != port_name:
                continue
            addresses = [a["ip"] for a in subset.get("addresses") or () if a.get("ip")]
            if addresses:
                return random.choice(addresses), int(ep_port["port"])
    raise ResolveError(f'no endpoints available for service "{name}"')


def url_host(address: str) -> str:
    """An address as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def client_context(
    ca_bundle: str, *, insecure: bool = False, cert: tuple[str, str] | None = None
) -> ssl.SSLContext:
    """A client TLS context trusting the base64 PEM ``ca_bundle`` (else the system's
    roots), or nothing with ``insecure``; presenting ``cert`` (certificate and key files).
    ValueError for a bundle that is not one."""
    ctx = ssl.create_default_context()
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif ca_bundle:
        try:
            pem = base64.b64decode(ca_bundle, validate=True).decode()
            ctx = ssl.create_default_context(cadata=pem)
        except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError) as e:
            raise ValueError(f"invalid caBundle: {e}") from None
    if cert is not None:
        ctx.load_cert_chain(*cert)
    return ctx
