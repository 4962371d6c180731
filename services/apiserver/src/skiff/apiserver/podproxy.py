"""``pods/log``, ``pods/exec``, ``pods/attach`` and ``pods/portforward``: proxied to the
pod's kubelet.

The kubelet is found as the real API server finds it: the pod's ``spec.nodeName``, that
Node's ``InternalIP`` (else ``Hostname``) address and ``daemonEndpoints.kubeletEndpoint``.
The kubelet serves HTTPS; its certificate is verified against
``--kubelet-certificate-authority`` when given (else not, as kube-apiserver), and the
apiserver presents ``--kubelet-client-certificate`` to kubelets that authenticate callers.

Exec is a WebSocket (``v5``/``v4.channel.k8s.io``…) relayed message for message.
kubectl's port-forward is SPDY/3.1 tunnelled in a WebSocket
(``SPDY/3.1+portforward.k8s.io``); each forwarded connection becomes one WebSocket to the
kubelet's ``/portForward``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.pods import container_names
from skiff.api.resources import REGISTRY
from skiff.log import get_logger
from skiff.streaming.portforward import serve_port_forward
from skiff.streaming.websocket import accept_kubernetes_subprotocols, relay, send_channel_status

from .store import Store

log = get_logger(__name__)
accept_kubernetes_subprotocols()

EXEC_PROTOCOLS = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
]
PORT_FORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
EXEC_HOLD_SECONDS = 0.25
"""How long an exec's first output waits for kubectl to set up its streams
(:func:`skiff.streaming.websocket.relay`)."""
_LOG_PARAMS = (
    "follow",
    "previous",
    "timestamps",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "limitBytes",
)


@dataclass(frozen=True, slots=True)
class KubeletClientConfig:
    """``--kubelet-client-certificate``/``--kubelet-client-key`` (the apiserver's identity
    toward kubelets) and ``--kubelet-certificate-authority`` (verify their certificates;
    without it they are not verified, as kube-apiserver without the flag)."""

    client_certificate: str = ""
    client_key: str = ""
    certificate_authority: str = ""

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        if self.certificate_authority:
            ctx.load_verify_locations(self.certificate_authority)
            ctx.check_hostname = False  # kubelets are dialled by address, named by node
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.client_certificate:
            ctx.load_cert_chain(self.client_certificate, self.client_key)
        return ctx


class PodProxy:
    """Finds a pod's kubelet and relays log, exec and port-forward requests to it."""

    def __init__(self, store: Store, kubelet: KubeletClientConfig | None = None) -> None:
        self.store = store
        self._tls = (kubelet or KubeletClientConfig()).ssl_context()
        self._http = httpx.AsyncClient(verify=self._tls, timeout=httpx.Timeout(10.0, read=None))

    async def close(self) -> None:
        await self._http.aclose()

    async def _pod_and_kubelet(self, namespace: str, name: str) -> tuple[dict[str, Any], str]:
        """(pod, its kubelet's host:port) or an ApiError a user understands."""
        pods = REGISTRY.by_path("", "v1", "pods")
        nodes = REGISTRY.by_path("", "v1", "nodes")
        assert pods is not None and nodes is not None
        pod = await self.store.get(pods, namespace, name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        try:
            node = await self.store.get(nodes, None, node_name)
        except ApiError as e:
            if e.code == 404:
                raise errors.bad_request(f'node "{node_name}" of pod {name} not found') from e
            raise
        status = node.get("status") or {}
        by_type = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = by_type.get("InternalIP") or by_type.get("Hostname")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not host or not port:
            raise errors.unavailable(f"node {node_name} does not serve a kubelet API")
        if ":" in host:
            host = f"[{host}]"
        return pod, f"{host}:{port}"

    async def _target(
        self, namespace: str, name: str, container: str | None
    ) -> tuple[dict[str, Any], str, str]:
        """(pod, kubelet host:port, container name) or an ApiError a user understands."""
        pod, kubelet = await self._pod_and_kubelet(namespace, name)
        spec = pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        every = container_names(pod)
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get(
                "kubectl.kubernetes.io/default-container"
            )
            if default in every:
                container = default
            elif len(names) == 1:
                container = names[0]
            else:
                raise errors.bad_request(
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(names)}]"
                )
        if container not in every:
            raise errors.bad_request(f"container {container} is not valid for pod {name}")
        return pod, kubelet, container

    # -- logs ----------------------------------------------------------------------------

    async def logs(self, request: Request, namespace: str, name: str) -> Response:
        q = request.query_params
        _, kubelet, container = await self._target(namespace, name, q.get("container"))
        params = {k: q[k] for k in _LOG_PARAMS if k in q}
        url = f"https://{kubelet}/containerLogs/{namespace}/{name}/{container}"
        req = self._http.build_request("GET", url, params=params)
        try:
            resp = await self._http.send(req, stream=True)
        except httpx.HTTPError as e:
            raise errors.unavailable(f"cannot reach the kubelet of pod {name}: {e}") from e
        if resp.status_code != 200:
            body = await resp.aread()
            await resp.aclose()
            return Response(body, resp.status_code, media_type=resp.headers.get("content-type"))

        async def chunks() -> Any:
            try:
                async for chunk in resp.aiter_raw():
                    yield chunk
            finally:
                await resp.aclose()

        return StreamingResponse(chunks(), media_type="text/plain")

    # -- exec ----------------------------------------------------------------------------

    async def exec(self, ws: WebSocket, namespace: str, name: str, kind: str = "exec") -> None:
        """``pods/exec`` (or, with ``kind="attach"``, ``pods/attach``) relayed to the kubelet."""
        offered = list(ws.scope.get("subprotocols") or [])
        chosen = next((p for p in offered if p in EXEC_PROTOCOLS), None)
        if chosen is None:
            await ws.close(1002, f"{kind} needs one of the channel.k8s.io WebSocket protocols")
            return
        q = ws.query_params
        try:
            _, kubelet, container = await self._target(namespace, name, q.get("container"))
        except ApiError as e:
            await ws.accept(subprotocol=chosen)
            await send_channel_status(ws, chosen, e.status())
            return
        params = [(k, v) for k, v in q.multi_items() if k != "container"]
        url = f"wss://{kubelet}/{kind}/{namespace}/{name}/{container}?{urlencode(params)}"
        try:
            up = await websockets.connect(
                url,
                ssl=self._tls,
                subprotocols=[chosen],
                max_size=None,  # type: ignore[list-item]
            )
        except (OSError, websockets.WebSocketException) as e:
            await ws.accept(subprotocol=chosen)
            status = errors.unavailable(f"cannot reach the kubelet of pod {name}: {e}").status()
            await send_channel_status(ws, chosen, status)
            return
        await ws.accept(subprotocol=chosen)
        async with up:
            await relay(ws, up, hold=EXEC_HOLD_SECONDS)

    # -- port forward --------------------------------------------------------------------

    async def port_forward(self, ws: WebSocket, namespace: str, name: str) -> None:
        offered = list(ws.scope.get("subprotocols") or [])
        if PORT_FORWARD_PROTOCOL not in offered:
            await ws.close(1002, f"port-forward needs the {PORT_FORWARD_PROTOCOL} protocol")
            return
        try:  # a port belongs to the pod (its network namespace), not to a container
            pod, kubelet = await self._pod_and_kubelet(namespace, name)
        except ApiError as e:
            await ws.close(1011, e.message[:120])
            return
        await ws.accept(subprotocol=PORT_FORWARD_PROTOCOL)
        uid = pod["metadata"].get("uid", "")

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            url = f"wss://{kubelet}/portForward/{namespace}/{name}?port={port}"
            up = await websockets.connect(url, ssl=self._tls, max_size=None)
            return await _websocket_as_stream(up)

        async def recv() -> bytes | None:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return None
            return msg.get("bytes") or (msg.get("text") or "").encode()

        try:
            await serve_port_forward(
                recv, ws.send_bytes, connect, describe=f"{name}_{namespace}, uid {uid}"
            )
        finally:
            with contextlib.suppress(Exception):
                await ws.close(1000)


async def _websocket_as_stream(up: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream pair over a byte WebSocket, through a local socket pair.

    Text messages from the kubelet are errors: they end the stream (the peer sees EOF).
    """
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    r2, w2 = await asyncio.open_connection(sock=theirs)

    async def ws_to_sock() -> None:
        try:
            async for msg in up:
                if isinstance(msg, str):
                    log.info("port-forward error from the kubelet", message=msg)
                    break
                w2.write(msg)
                await w2.drain()
        except websockets.WebSocketException:
            pass
        finally:
            with contextlib.suppress(Exception):
                w2.write_eof()

    async def sock_to_ws() -> None:
        try:
            while data := await r2.read(65536):
                await up.send(data)
        except (OSError, websockets.WebSocketException):
            pass
        finally:
            await up.close()

    async def both() -> None:
        try:
            await asyncio.gather(ws_to_sock(), sock_to_ws())
        finally:
            w2.close()

    task = asyncio.create_task(both())
    _background.add(task)
    task.add_done_callback(_background.discard)
    return reader, writer


_background: set[asyncio.Task[None]] = set()
