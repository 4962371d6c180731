"""Calling a webhook over HTTPS (kube's ``k8s.io/apiserver/pkg/util/webhook``): the
``clientConfig``'s URL, or its Service resolved through the Service's Endpoints to one
ready address (kube-apiserver's endpoint resolver); the server's certificate verified
against the ``caBundle`` (else the system's roots) and, for a Service, its DNS name
``<name>.<namespace>.svc``; the webhook's ``timeoutSeconds`` as a hard limit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from ...serviceresolver import ResolveError, client_context, resolve_service, url_host
from ..interfaces import Lister


class CallError(Exception):
    """The webhook could not be called, or did not answer in time (kube's
    ``ErrCallingWebhook`` reason, without the webhook's name)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one call goes: the URL dialled, the name its certificate must carry, and the
    URL as kube prints it in errors."""

    url: str
    server_name: str
    shown: str


async def target(lister: Lister, client_config: dict[str, Any], timeout: int) -> Target:
    """Where a webhook with ``client_config`` is called now."""
    query = f"?timeout={timeout}s"
    if client_config.get("url"):
        url = str(client_config["url"]) + query
        return Target(url, urlsplit(url).hostname or "", url)
    service = client_config.get("service") or {}
    name, namespace = str(service.get("name") or ""), str(service.get("namespace") or "")
    port = int(service.get("port") or 443)
    path = str(service.get("path") or "")
    server_name = f"{name}.{namespace}.svc"
    shown = f"https://{server_name}:{port}{path}{query}"
    try:
        address, target_port = await resolve_service(lister, namespace, name, port)
    except ResolveError as e:
        raise CallError(f'Post "{shown}": {e}') from None
    return Target(f"https://{url_host(address)}:{target_port}{path}{query}", server_name, shown)


class HttpsClients:
    """Pooled HTTPS clients, one per CA bundle (verification settings)."""

    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, ca_bundle: str) -> httpx.AsyncClient:
        client = self._clients.get(ca_bundle)
        if client is None:
            try:
                ctx = client_context(ca_bundle)
            except ValueError as e:
                raise CallError(str(e)) from None
            client = httpx.AsyncClient(verify=ctx, trust_env=False, http2=False)
            self._clients[ca_bundle] = client
        return client

    async def post(
        self, where: Target, ca_bundle: str, body: bytes, timeout: float
    ) -> httpx.Response:
        """POST ``body``; at most ``timeout`` seconds in all (connect, TLS, answer)."""
        client = self._client(ca_bundle)
        try:
            return await asyncio.wait_for(
                client.post(
                    where.url,
                    content=body,
                    headers={"Content-Type": "application/json", "Accept": "application/json"},
                    timeout=timeout,
                    extensions={"sni_hostname": where.server_name},
                ),
                timeout,
            )
        except (TimeoutError, httpx.TimeoutException):
            raise CallError(f'Post "{where.shown}": context deadline exceeded') from None
        except httpx.ConnectError as e:
            raise CallError(f'Post "{where.shown}": {_connect_error(e)}') from None
        except httpx.HTTPError as e:
            raise CallError(f'Post "{where.shown}": {e}') from None


def _connect_error(e: httpx.ConnectError) -> str:
    text = str(e)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        if "Hostname mismatch" in text or "IP address mismatch" in text:
            return f"tls: failed to verify certificate: x509: {text.split(':')[-1].strip()}"
        return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
    if "Connection refused" in text or "connection refused" in text.lower():
        return "connect: connection refused"
    return text or type(e).__name__
