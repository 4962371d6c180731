"""Requests for a remote APIService's group version, passed to its server (kube-
aggregator's ``handler_proxy``): over HTTPS to a ready endpoint of its Service, the
server's certificate checked against the APIService's ``caBundle`` and the name
``<svc>.<ns>.svc`` (or not at all with ``insecureSkipTLSVerify``), presenting the
apiserver's front-proxy client certificate (``--proxy-client-cert-file``) and naming the
requester in ``X-Remote-User``, ``X-Remote-Group`` and ``X-Remote-Extra-*``; the
requester's own credentials are not passed on. Responses stream back (watches).

An APIService that is not available, or whose Service has no endpoint, answers 503
``service unavailable``, as kube's does; a server that cannot be reached, 503 with the
error."""

from __future__ import annotations

import ssl
import string

import httpx
import websockets
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.websockets import WebSocket

from skiff.log import get_logger
from skiff.streaming.websocket import relay

from ..admission.interfaces import Lister
from ..authentication.user import UserInfo
from ..serviceresolver import ResolveError, client_context, resolve_service, url_host
from .apiservices import Remote

log = get_logger(__name__)

REMOTE_USER = "X-Remote-User"
REMOTE_GROUP = "X-Remote-Group"
REMOTE_EXTRA = "X-Remote-Extra-"
DISCOVERY_TIMEOUT = 5.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "authorization",
}
_TOKEN = set(string.ascii_letters + string.digits + "!#$&'*+-.^_`|~")


def _escape(key: str) -> str:
    """An extra's key as a header name suffix (client-go's ``headerKeyEscape``)."""
    return "".join(chr(b) if chr(b) in _TOKEN else f"%{b:02X}" for b in key.encode())


def identity_headers(user: UserInfo) -> list[tuple[str, str]]:
    """Who the request is for, as a front proxy says it (``SetAuthProxyHeaders``)."""
    out = [(REMOTE_USER, user.name)]
    out += [(REMOTE_GROUP, g) for g in user.groups]
    out += [(f"{REMOTE_EXTRA}{_escape(k)}", v) for k, vs in user.extra.items() for v in vs]
    return out


def _passed_on(name: str) -> bool:
    lower = name.lower()
    return lower not in _HOP_BY_HOP and not lower.startswith(("x-remote-", "impersonate-"))


def unavailable(detail: str = "service unavailable") -> Response:
    """kube's ``http.Error(w, ..., 503)``."""
    return PlainTextResponse(detail + "\n", 503, headers={"X-Content-Type-Options": "nosniff"})


class ProxyTransport:
    """HTTPS clients toward aggregated servers, one per trust setting, presenting the
    front-proxy client certificate."""

    def __init__(self, lister: Lister, client_cert: tuple[str, str] | None) -> None:
        self.lister = lister
        self.client_cert = client_cert
        self._clients: dict[tuple[str, bool], httpx.AsyncClient] = {}

    def ssl_context(self, remote: Remote) -> ssl.SSLContext:
        """TLS toward ``remote``'s server: its ``caBundle`` (or no check), presenting the
        front-proxy certificate. ValueError for a bundle that is not one."""
        return client_context(remote.ca_bundle, insecure=remote.insecure, cert=self.client_cert)

    def _client(self, remote: Remote) -> httpx.AsyncClient:
        key = (remote.ca_bundle, remote.insecure)
        client = self._clients.get(key)
        if client is None:
            ctx = self.ssl_context(remote)
            client = httpx.AsyncClient(verify=ctx, trust_env=False, follow_redirects=False)
            self._clients[key] = client
        return client

    async def base_url(self, remote: Remote) -> str:
        """``https://<address>:<port>`` of a ready endpoint (ResolveError)."""
        address, port = await resolve_service(
            self.lister, remote.namespace, remote.service, remote.port
        )
        return f"https://{url_host(address)}:{port}"

    async def send(
        self,
        remote: Remote,
        request: httpx.Request,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """Send ``request`` (its URL from :meth:`base_url`) to ``remote``'s server."""
        return await self._client(remote).send(request, stream=stream)

    def build(
        self,
        remote: Remote,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float | None,
    ) -> httpx.Request:
        client = self._client(remote)
        return client.build_request(
            method,
            url,
            headers=headers,
            content=body or None,
            timeout=httpx.Timeout(timeout, connect=DISCOVERY_TIMEOUT),
            extensions={"sni_hostname": remote.server_name},
        )

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


async def proxy(
    transport: ProxyTransport, request: Request, remote: Remote, user: UserInfo
) -> Response:
    """Pass ``request`` to ``remote``'s server and stream its answer back."""
    if not remote.available:
        return unavailable()
    try:
        base = await transport.base_url(remote)
    except ResolveError as e:
        log.info("error resolving", service=f"{remote.namespace}/{remote.service}", error=str(e))
        return unavailable()
    path = request.url.path
    url = base + path + (f"?{request.url.query}" if request.url.query else "")
    headers = [(k, v) for k, v in request.headers.items() if _passed_on(k)]
    headers += identity_headers(user)
    body = await request.body() if request.method not in ("GET", "HEAD") else b""
    # Discovery (/apis/<g>/<v>) is given 5 seconds, as kube does; other requests, watches
    # among them, as long as they take.
    timeout = DISCOVERY_TIMEOUT if len([p for p in path.split("/") if p]) <= 3 else None
    try:
        req = transport.build(remote, request.method, url, headers, body, timeout)
        resp = await transport.send(remote, req, stream=True)
    except (httpx.HTTPError, ValueError, OSError) as e:
        return unavailable(f"{e}" or type(e).__name__)

    out = StreamingResponse(
        resp.aiter_raw(), resp.status_code, background=BackgroundTask(resp.aclose)
    )
    # Every header the server sent (Warning may come more than once), the body as it came.
    out.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in resp.headers.multi_items()
        if k.lower() == "content-length" or k.lower() not in _HOP_BY_HOP
    ]
    return out


async def _deny(ws: WebSocket, response: Response) -> None:
    """Answer a WebSocket handshake with a plain HTTP response where the server can
    (uvicorn's denial-response extension), else close it with the text as reason."""
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(response)
        return
    await ws.close(1011, bytes(response.body).decode(errors="replace").strip()[:120])


async def proxy_websocket(
    transport: ProxyTransport, ws: WebSocket, remote: Remote, user: UserInfo
) -> None:
    """An upgrade request (kube-aggregator's upgrade-aware proxy, as KubeVirt's consoles
    use it): a WebSocket to ``remote``'s server with the same path, query, subprotocols
    and identity headers, relayed message for message. A refused handshake is passed
    back as the server answered it."""
    if not remote.available:
        await _deny(ws, unavailable())
        return
    try:
        base = await transport.base_url(remote)
    except ResolveError as e:
        log.info("error resolving", service=f"{remote.namespace}/{remote.service}", error=str(e))
        await _deny(ws, unavailable())
        return
    url = "wss" + base.removeprefix("https") + ws.url.path
    if ws.url.query:
        url += f"?{ws.url.query}"
    headers = [
        (k, v)
        for k, v in ws.headers.items()
        if _passed_on(k) and not k.lower().startswith("sec-websocket-")
    ]
    headers += identity_headers(user)
    offered = list(ws.scope.get("subprotocols") or [])
    try:
        up = await websockets.connect(
            url,
            ssl=transport.ssl_context(remote),
            server_hostname=remote.server_name,
            additional_headers=headers,
            subprotocols=offered or None,  # type: ignore[arg-type]
            max_size=None,
            open_timeout=DISCOVERY_TIMEOUT,
        )
    except websockets.InvalidStatus as e:
        r = e.response
        kind = r.headers.get("Content-Type", "text/plain")
        await _deny(ws, Response(bytes(r.body or b""), r.status_code, {"Content-Type": kind}))
        return
    except (OSError, TimeoutError, ValueError, websockets.WebSocketException) as e:
        await _deny(ws, unavailable(f"{e}" or type(e).__name__))
        return
    await ws.accept(subprotocol=up.subprotocol)
    async with up:
        await relay(ws, up)
