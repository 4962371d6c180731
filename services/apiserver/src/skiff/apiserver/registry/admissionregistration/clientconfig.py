"""A webhook's client configuration (kube's ``k8s.io/apiserver/pkg/util/webhook``
validation), shared by admission webhooks and CRD conversion webhooks: an HTTPS URL
without user, query or fragment, or a Service with a port and a path of DNS subdomains."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain

from ...validation import invalid, required

_FORM = "; desired format: https://host[/path]"


def url_errors(url: str, path: str) -> list[Cause]:
    """``ValidateWebhookURL`` with HTTPS required."""
    try:
        if any(ord(c) < 0x20 or c == "\x7f" for c in url):
            raise ValueError("net/url: invalid control character in URL")
        parts = urlsplit(url)
    except ValueError as e:
        return [required(path, f'url must be a valid URL: parse "{url}": {e}{_FORM}')]
    errs = []
    if parts.scheme != "https":
        errs.append(invalid(path, parts.scheme, "'https' is the only allowed URL scheme" + _FORM))
    user, at, host = parts.netloc.rpartition("@")
    if not host:
        errs.append(invalid(path, host, "host must be provided" + _FORM))
    if at:
        errs.append(invalid(path, user, "user information is not permitted in the URL"))
    if parts.fragment:
        errs.append(invalid(path, parts.fragment, "fragments are not permitted in the URL"))
    if parts.query:
        errs.append(invalid(path, parts.query, "query parameters are not permitted in the URL"))
    return errs


def service_errors(service: dict[str, Any], path: str) -> list[Cause]:
    """``ValidateWebhookService``. Both callers in kube pass the service's name where the
    function expects its namespace and vice versa, so a missing namespace is reported at
    ``service.name`` and a missing name at ``service.namespace``, as kube does."""
    errs = []
    if not service.get("namespace"):
        errs.append(required(f"{path}.name", "service name is required"))
    if not service.get("name"):
        errs.append(required(f"{path}.namespace", "service namespace is required"))
    port = 443 if service.get("port") is None else service["port"]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        detail = "port is not valid: must be between 1 and 65535, inclusive"
        errs.append(invalid(f"{path}.port", port, detail))
    url_path, field_path = service.get("path"), f"{path}.path"
    if not isinstance(url_path, str) or url_path in ("", "/"):
        return errs
    if url_path == "//":
        return [*errs, invalid(field_path, url_path, "segment[0] may not be empty")]
    if not url_path.startswith("/"):
        errs.append(invalid(field_path, url_path, "must start with a '/'"))
    steps = url_path[1:]
    for i, step in enumerate((steps[:-1] if steps.endswith("/") else steps).split("/")):
        if not step:
            errs.append(invalid(field_path, url_path, f"segment[{i}] may not be empty"))
        for failure in is_dns1123_subdomain(step) if step else []:
            errs.append(invalid(field_path, url_path, f"segment[{i}]: {failure}"))
    return errs
