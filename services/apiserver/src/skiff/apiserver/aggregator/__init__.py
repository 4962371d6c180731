"""The aggregation layer (kube-aggregator, built into every apiserver): APIServices
(apiregistration.k8s.io/v1) for the group versions served here (:mod:`.autoregister`)
and for those another server serves behind a Service, whose requests are proxied to it
(:mod:`.proxy`) once the availability check finds it answering (:mod:`.available`);
discovery lists both (:mod:`skiff.apiserver.discovery`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from ..authentication.user import UserInfo
from ..store import Store
from ..watchcache import WatchCache
from .apiservices import INFO, APIServices, Remote
from .autoregister import AutoRegister
from .available import AvailabilityController
from .proxy import ProxyTransport, proxy, proxy_websocket

__all__ = ["INFO", "Aggregator", "Remote"]


class Aggregator:
    """One apiserver's aggregation layer: the remote APIServices, the proxy toward them
    and the controllers that keep the APIServices."""

    def __init__(
        self, store: Store, cache: WatchCache, client_cert: tuple[str, str] | None = None
    ) -> None:
        """``client_cert``: the front-proxy certificate and key presented to aggregated
        servers (``--proxy-client-cert-file``, ``--proxy-client-key-file``)."""
        self.apiservices = APIServices(cache)
        self.transport = ProxyTransport(store.lister, client_cert)
        self.autoregister = AutoRegister(store, cache)
        self.available = AvailabilityController(self.apiservices, store, cache, self.transport)

    def remote_for(self, path: str) -> Remote | None:
        """The remote APIService a request path belongs to (``/apis/<g>/<v>[/...]``, and
        its OpenAPI v3 document ``/openapi/v3/apis/<g>/<v>``)."""
        if path.startswith("/openapi/v3/apis/"):
            path = path[len("/openapi/v3") :]
            if path.count("/") != 3:
                return None
        parts = path.split("/", 5)
        if len(parts) < 4 or parts[0] != "" or parts[1] != "apis" or not parts[3]:
            return None
        return self.apiservices.remote(parts[2], parts[3])

    def openapi_index(self) -> dict[str, dict[str, str]]:
        """The remote group versions' entries of the ``/openapi/v3`` index."""
        return {
            r.discovery_path.lstrip("/"): {"serverRelativeURL": url}
            for r in self.apiservices.remotes()
            if (url := self.apiservices.openapi.get(r.name))
        }

    def remotes(self) -> list[Remote]:
        return self.apiservices.remotes()

    async def proxy(self, request: Request, remote: Remote, user: UserInfo) -> Response:
        return await proxy(self.transport, request, remote, user)

    async def proxy_websocket(self, ws: WebSocket, remote: Remote, user: UserInfo) -> None:
        await proxy_websocket(self.transport, ws, remote, user)

    async def aclose(self) -> None:
        await self.transport.aclose()
