"""The ``Available`` condition of every APIService (kube-aggregator's local and remote
availability controllers): a local APIService is always available; a remote one when
its Service exists, listens on the APIService's port, has an endpoint with that port's
name, and its server answers the group version's discovery path with a 2xx within five
seconds — asked as ``system:kube-aggregator`` of ``system:masters``, the server's
certificate not checked, as kube does. The answer is kept as the group version's
discovery document (:attr:`.APIServices.documents`).

Each apiserver runs it: a check follows a change of an APIService, or of its Service or
Endpoints, and is made again every 30 seconds (a failed one sooner, backing off); the
status is written only when the condition changes, so apiservers agreeing write once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from typing import Any

import httpx
from prometheus_client import Gauge

from skiff.api.conditions import new_condition, set_condition
from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.api.timestamps import rfc3339
from skiff.log import get_logger

from ..registry.apiregistration.apiservice import AVAILABLE, is_local, local_condition
from ..registry.options import WriteOptions
from ..serviceresolver import ResolveError, service_port
from ..store import Store
from ..watchcache import WatchCache
from .apiservices import INFO, APIServices, Remote, remote_of
from .proxy import DISCOVERY_TIMEOUT, ProxyTransport

log = get_logger(__name__)

Obj = dict[str, Any]
_SERVICES = REGISTRY.core("services")
_ENDPOINTS = REGISTRY.core("endpoints")
RESYNC_SECONDS = 30.0
MAX_BACKOFF = 30.0
AGGREGATOR_USER = [
    ("X-Remote-User", "system:kube-aggregator"),
    ("X-Remote-Group", "system:masters"),
]

UNAVAILABLE = Gauge(
    "aggregator_unavailable_apiservice",
    "Gauge of APIServices which are marked as unavailable broken down by APIService name.",
    ["name"],
)


def _condition(status: str, reason: str, message: str) -> Obj:
    return new_condition(AVAILABLE, status, reason, message, rfc3339())


class AvailabilityController:
    """Keeps every APIService's ``Available`` condition true to what it finds."""

    def __init__(
        self, apiservices: APIServices, store: Store, cache: WatchCache, transport: ProxyTransport
    ) -> None:
        self.apiservices = apiservices
        self.store = store
        self.cache = cache
        self.transport = transport
        self._seen: dict[str, tuple[Any, ...]] = {}
        """APIService name → what its last check depended on (resourceVersions)."""
        self._due: dict[str, float] = {}
        self._backoff: dict[str, float] = {}

    async def run(self) -> None:
        await self.cache.ready.wait()
        while True:
            now = time.monotonic()
            names = set()
            for obj in self.cache.list(INFO):
                name = obj["metadata"]["name"]
                names.add(name)
                inputs = self._inputs(obj)
                if inputs != self._seen.get(name) or now >= self._due.get(name, 0.0):
                    self._seen[name] = inputs
                    await self._sync(obj)
            for gone in set(self._seen) - names:
                self._seen.pop(gone, None)
                self._due.pop(gone, None)
                self._backoff.pop(gone, None)
                self.apiservices.documents.pop(gone, None)
                self.apiservices.openapi.pop(gone, None)
                with contextlib.suppress(KeyError):
                    UNAVAILABLE.remove(gone)
            await asyncio.sleep(0.25)

    def _inputs(self, obj: Obj) -> tuple[Any, ...]:
        rv = obj["metadata"].get("resourceVersion")
        remote = remote_of(obj)
        if remote is None:
            return (rv,)
        svc = self.cache.get(_SERVICES, remote.namespace, remote.service) or {}
        eps = self.cache.get(_ENDPOINTS, remote.namespace, remote.service) or {}
        return (
            rv,
            (svc.get("metadata") or {}).get("resourceVersion"),
            (eps.get("metadata") or {}).get("resourceVersion"),
        )

    async def _sync(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if is_local(obj):
            cond = local_condition()
            self._due[name] = time.monotonic() + RESYNC_SECONDS
        else:
            remote = remote_of(obj)
            assert remote is not None
            cond = await self.check(remote)
            if cond["status"] == "True":
                self._backoff.pop(name, None)
                self._due[name] = time.monotonic() + RESYNC_SECONDS
            else:
                delay = min(self._backoff.get(name, 0.5) * 2, MAX_BACKOFF)
                self._backoff[name] = delay
                self._due[name] = time.monotonic() + delay
        UNAVAILABLE.labels(name).set(0 if cond["status"] == "True" else 1)
        status = json.loads(json.dumps(obj.get("status") or {}))
        if not set_condition(status, cond):
            return

        def mutate(cur: Obj) -> Obj:
            set_condition(cur.setdefault("status", {}), cond)
            return cur

        try:
            await self.store.update_with(
                INFO, None, name, mutate, WriteOptions(), subresource="status"
            )
        except ApiError as e:
            if e.code not in (404, 409):
                log.warning("apiservice status not written", apiservice=name, error=e.message)

    async def check(self, remote: Remote) -> Obj:
        """The condition ``remote`` has now (kube's ``sync`` of the remote controller)."""
        ns, svc_name = remote.namespace, remote.service
        service = self.cache.get(_SERVICES, ns, svc_name)
        if service is None:
            return _condition(
                "False", "ServiceNotFound", f'service/{svc_name} in "{ns}" is not present'
            )
        if ((service.get("spec") or {}).get("type") or "ClusterIP") == "ClusterIP":
            port = service_port(service, remote.port)
            if port is None:
                return _condition(
                    "False",
                    "ServicePortError",
                    f'service/{svc_name} in "{ns}" is not listening on port {remote.port}',
                )
            endpoints = self.cache.get(_ENDPOINTS, ns, svc_name)
            if endpoints is None:
                return _condition(
                    "False",
                    "EndpointsNotFound",
                    f'cannot find endpoints for service/{svc_name} in "{ns}"',
                )
            port_name = port.get("name") or ""
            if not any(
                subset.get("addresses")
                and any((p.get("name") or "") == port_name for p in subset.get("ports") or ())
                for subset in endpoints.get("subsets") or ()
            ):
                return _condition(
                    "False",
                    "MissingEndpoints",
                    f'endpoints for service/{svc_name} in "{ns}" have no addresses with '
                    f'port name "{port_name}"',
                )
        error = await self._discover(remote)
        if error:
            return _condition("False", "FailedDiscoveryCheck", error)
        return _condition("True", "Passed", "all checks passed")

    async def _discover(self, remote: Remote) -> str:
        """GET the group version's discovery path; "" when it answers 2xx (its document
        kept), else kube's message."""
        try:
            base = await self.transport.base_url(remote)
        except ResolveError as e:
            return str(e)
        url = base + remote.discovery_path
        try:
            resp = await self._get(remote, url, DISCOVERY_TIMEOUT + 1)
        except TimeoutError:
            return f"timed out waiting for {url}"
        except (httpx.HTTPError, ValueError, OSError) as e:
            return f'failing or missing response from {url}: Get "{url}": {_reason(e)}'
        if not 200 <= resp.status_code < 300:
            return (
                f"failing or missing response from {url}: bad status from {url}: {resp.status_code}"
            )
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("resources"), list):
            self.apiservices.documents[remote.name] = doc
        await self._openapi(remote, base)
        return ""

    async def _get(self, remote: Remote, url: str, deadline: float) -> httpx.Response:
        """GET ``url`` of ``remote``'s server as the aggregator, its certificate not
        checked (kube's checks are insecure), within ``deadline`` seconds."""
        insecure = dataclasses.replace(remote, insecure=True, ca_bundle="")
        headers = [*AGGREGATOR_USER, ("Accept", "application/json")]
        req = self.transport.build(insecure, "GET", url, headers, b"", DISCOVERY_TIMEOUT)
        return await asyncio.wait_for(self.transport.send(insecure, req), deadline)

    async def _openapi(self, remote: Remote, base: str) -> None:
        """Learn where the server's OpenAPI v3 document of the group version is (its
        ``/openapi/v3`` index), for this apiserver's index; a server without one is left
        out of it, as kube's aggregator does."""
        key = remote.discovery_path.lstrip("/")
        url = None
        try:
            resp = await self._get(remote, base + "/openapi/v3", DISCOVERY_TIMEOUT)
            if resp.status_code == 200:
                entry = ((resp.json() or {}).get("paths") or {}).get(key) or {}
                url = entry.get("serverRelativeURL")
        except (TimeoutError, httpx.HTTPError, ValueError, OSError, AttributeError):
            url = None
        if isinstance(url, str) and url.startswith("/openapi/v3/"):
            self.apiservices.openapi[remote.name] = url
        else:
            self.apiservices.openapi.pop(remote.name, None)


def _reason(e: Exception) -> str:
    text = str(e)
    if "Connection refused" in text or "connection refused" in text.lower():
        return "connect: connection refused"
    if isinstance(e, httpx.TimeoutException):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    return text or type(e).__name__
