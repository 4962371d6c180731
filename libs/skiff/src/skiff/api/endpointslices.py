"""What ties an EndpointSlice (``discovery.k8s.io/v1``) to its Service.

The endpointslice controller writes the slices; the proxy, the DNS server and the
service load balancer read them by the Service they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"


def service_key(es: Mapping[str, Any]) -> str | None:
    """``namespace/name`` of the Service an EndpointSlice belongs to (None: none)."""
    meta = es.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or 'default'}/{name}" if name else None
