"""ComponentStatus (core/v1, deprecated since 1.19 and still served): kube-apiserver's
probes of the scheduler and the controller manager on this machine (``/healthz`` on
their default ports) and of its etcd, run on every get and list, never stored
(``kubectl get cs``)."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import httpx

from skiff.api import errors

Obj = dict[str, Any]

SERVERS = {
    "controller-manager": "http://127.0.0.1:10257/healthz",
    "scheduler": "http://127.0.0.1:10259/healthz",
}
PROBE_TIMEOUT = 20.0
DEPRECATION = "v1 ComponentStatus is deprecated in v1.19+"


class Storage(Protocol):
    async def current_revision(self) -> int: ...


def _status(name: str, healthy: str, message: str, error: str) -> Obj:
    condition = {"type": "Healthy", "status": healthy, "message": message, "error": error}
    condition = {k: v for k, v in condition.items() if v}
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name},
            "conditions": [condition]}  # fmt: skip


async def _probe_http(client: httpx.AsyncClient, name: str, url: str) -> Obj:
    try:
        resp = await client.get(url)
    except httpx.HTTPError as e:
        host = url.split("/")[2]
        return _status(name, "Unknown", "", f'Get "{url}": dial tcp {host}: {_why(e)}')
    if resp.status_code != 200:
        return _status(name, "False", resp.text,
                       f"unhealthy http status code: {resp.status_code}")  # fmt: skip
    return _status(name, "True", resp.text, "")


def _why(e: Exception) -> str:
    if isinstance(e, httpx.ConnectError):
        return "connect: connection refused"
    if isinstance(e, httpx.TimeoutException):
        return "i/o timeout"
    return str(e) or type(e).__name__


async def _probe_etcd(storage: Storage) -> Obj:
    try:
        await asyncio.wait_for(storage.current_revision(), PROBE_TIMEOUT)
    except Exception as e:
        return _status("etcd-0", "False", "", str(e) or type(e).__name__)
    return _status("etcd-0", "True", "ok", "")


async def component_statuses(storage: Storage) -> list[Obj]:
    """Every component's status, by name."""
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        found = await asyncio.gather(
            *(_probe_http(client, n, url) for n, url in SERVERS.items()), _probe_etcd(storage)
        )
    return sorted(found, key=lambda s: s["metadata"]["name"])


async def component_status(storage: Storage, name: str) -> Obj:
    """One component's status (404 for a name that is none)."""
    if name == "etcd-0":
        return await _probe_etcd(storage)
    if name not in SERVERS:
        raise errors.not_found("componentstatus", name)
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as client:
        return await _probe_http(client, name, SERVERS[name])
