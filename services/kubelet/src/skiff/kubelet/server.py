"""The kubelet's HTTPS API (port 10250): health, pods, logs, exec, attach, port-forward.

The API server proxies ``pods/log``, ``pods/exec``, ``pods/attach`` and
``pods/portforward`` here.
Exec, attach and port-forward go on to the runtime's streaming server (CRI ``Exec``,
``Attach`` and ``PortForward`` return its URL). Toward the API server they are the
Kubernetes WebSocket channel protocol: stream 0 is stdin, 1 stdout, 2 stderr, 3 the
error/exit status, 4 terminal resize, and ``v5.channel.k8s.io`` adds 255 (close a stream).
Exec and attach reach the runtime over SPDY (``remotecommand``), the one way to pass a
client's stdin close on; port-forward over its WebSocket.

``/portForward/{ns}/{pod}?port=N`` is Skiff's own: one WebSocket per connection, binary
messages are the connection's bytes both ways, a text message is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from skiff.api.errors import ApiError, Reason
from skiff.api.pods import container_names
from skiff.api.queryparams import flag
from skiff.cri.client import CriError, pb
from skiff.log import get_logger
from skiff.pki import ensure_serving_cert
from skiff.streaming.websocket import send_channel_status
from skiff.tlsserving import ServingCertificates

from .auth import AuthMiddleware, AuthSettings, KubeletAuth
from .logs import read_log
from .remotecommand import relay_remote_command

if TYPE_CHECKING:
    from .kubelet import Kubelet

log = get_logger(__name__)

CHANNEL_PROTOCOLS = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
]


def _status(code: int, reason: Reason, message: str) -> Response:
    return JSONResponse(ApiError(code, reason, message).status(), status_code=code)


def _bad(message: str) -> Response:
    return _status(400, Reason.BAD_REQUEST, message)


class KubeletServer:
    """Handlers over a running :class:`Kubelet`."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self.app = Starlette(
            routes=[
                Route("/healthz", self.healthz),
                Route("/pods", self.pods),
                Route("/containerLogs/{namespace}/{pod}/{container}", self.logs),
                WebSocketRoute("/exec/{namespace}/{pod}/{container}", self.exec),
                WebSocketRoute("/attach/{namespace}/{pod}/{container}", self.attach),
                WebSocketRoute("/portForward/{namespace}/{pod}", self.port_forward),
            ]
        )

    async def healthz(self, _: Request) -> Response:
        return PlainTextResponse("ok")

    async def pods(self, _: Request) -> Response:
        items = self.kubelet.pods.list()
        body = {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items}
        return Response(orjson.dumps(body), media_type="application/json")

    # -- lookups -------------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kubelet.pods.get(f"{namespace}/{name}")

    async def _containers(self, pod: dict[str, Any], name: str) -> list[pb.Container]:
        """The pod's containers of that name, newest attempt first."""
        found = await self.kubelet.cri.list_containers(
            label_selector={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}
        )
        mine = [c for c in found if c.labels.get("io.kubernetes.container.name") == name]
        return sorted(mine, key=lambda c: (c.metadata.attempt, c.created_at), reverse=True)

    @staticmethod
    def _known(pod: dict[str, Any], name: str) -> bool:
        return name in container_names(pod)

    async def _running(self, namespace: str, pod_name: str, name: str) -> tuple[str, str]:
        """(container id, "") for a running container, or ("", why not)."""
        pod = self._pod(namespace, pod_name)
        if pod is None:
            return "", f'pod "{pod_name}" not found'
        if not self._known(pod, name):
            return "", f"container {name} is not valid for pod {pod_name}"
        for c in (await self._containers(pod, name))[:1]:
            if c.state == pb.CONTAINER_RUNNING:
                return c.id, ""
        return "", f"container {name} in pod {pod_name} is not running"

    # -- logs ----------------------------------------------------------------------------

    async def logs(self, request: Request) -> Response:
        p, q = request.path_params, request.query_params
        pod = self._pod(p["namespace"], p["pod"])
        if pod is None:
            return _status(404, Reason.NOT_FOUND, f'pods "{p["pod"]}" not found')
        name = p["container"]
        if not self._known(pod, name):
            return _bad(f"container {name} is not valid for pod {p['pod']}")
        containers = await self._containers(pod, name)
        previous = flag(q, "previous")
        index = 1 if previous else 0
        if len(containers) <= index:
            if previous:
                return _bad(f'previous terminated container "{name}" in pod "{p["pod"]}" not found')
            return _bad(
                f'container "{name}" in pod "{p["pod"]}" is waiting to start: ContainerCreating'
            )
        target = containers[index]
        try:
            status = (await self.kubelet.cri.container_status(target.id)).status
        except CriError as e:
            return _status(500, Reason.INTERNAL_ERROR, e.message)
        path = Path(status.log_path)
        since: datetime | None = None
        try:
            if q.get("sinceSeconds"):
                since = datetime.now(UTC) - timedelta(seconds=int(q["sinceSeconds"]))
            elif q.get("sinceTime"):
                since = datetime.fromisoformat(q["sinceTime"].replace("Z", "+00:00"))
            tail = int(q["tailLines"]) if q.get("tailLines") else None
            limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        except ValueError as e:
            return _bad(f"invalid log options: {e}")
        cri = self.kubelet.cri

        async def running() -> bool:
            try:
                st = (await cri.container_status(target.id)).status
            except CriError:
                return False
            return st.state == pb.CONTAINER_RUNNING

        chunks = read_log(
            path,
            follow=flag(q, "follow") and not previous,
            tail_lines=tail,
            timestamps=flag(q, "timestamps"),
            since=since,
            limit_bytes=limit,
            is_running=running,
        )
        return StreamingResponse(chunks, media_type="text/plain")

    # -- exec ----------------------------------------------------------------------------

    async def exec(self, ws: WebSocket) -> None:
        await self._stream(ws, attach=False)

    async def attach(self, ws: WebSocket) -> None:
        """``kubectl attach`` / ``run -it``: the container's own stdio (CRI ``Attach``)."""
        await self._stream(ws, attach=True)

    async def _stream(self, ws: WebSocket, *, attach: bool) -> None:
        p = ws.path_params
        offered = list(ws.scope.get("subprotocols") or [])
        chosen = next((s for s in offered if s in CHANNEL_PROTOCOLS), None)
        q = ws.query_params
        command = q.getlist("command")
        tty = flag(q, "tty")
        flags = {k: flag(q, k) for k in ("stdin", "stdout", "stderr")}
        await ws.accept(subprotocol=chosen)
        if chosen is None:
            await ws.close(1002, "no supported channel protocol offered")
            return
        cid, why = await self._running(p["namespace"], p["pod"], p["container"])
        if not command and not attach:
            why = "you must specify at least one command for the container"
        if not cid or why:
            await send_channel_status(ws, chosen, _failure(why))
            return
        streams = {
            "tty": tty,
            "stdin": flags["stdin"],
            "stdout": flags["stdout"],
            "stderr": flags["stderr"] and not tty,
        }
        try:
            if attach:
                url = await self.kubelet.cri.attach(cid, **streams)
            else:
                url = await self.kubelet.cri.exec(cid, command, **streams)
        except CriError as e:
            await send_channel_status(ws, chosen, _failure(e.message))
            return
        await relay_remote_command(ws, url, chosen, **streams)

    # -- port forward --------------------------------------------------------------------

    async def port_forward(self, ws: WebSocket) -> None:
        p = ws.path_params
        await ws.accept()
        pod = self._pod(p["namespace"], p["pod"])
        try:
            port = int(ws.query_params.get("port") or "")
        except ValueError:
            await ws.send_text("a port number is required")
            await ws.close(1000)
            return
        if pod is None:
            await ws.send_text(f'pod "{p["pod"]}" not found')
            await ws.close(1000)
            return
        sandboxes = await self.kubelet.cri.list_pod_sandbox(
            label_selector={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}
        )
        ready = [s for s in sandboxes if s.state == pb.SANDBOX_READY]
        if not ready:
            await ws.send_text(f"pod {p['pod']} has no running sandbox")
            await ws.close(1000)
            return
        url = await self.kubelet.cri.port_forward(ready[0].id, [port])
        try:
            async with websockets.connect(
                url.replace("http://", "ws://", 1) + f"?port={port}",
                subprotocols=["v4.channel.k8s.io"],  # type: ignore[list-item]
                max_size=None,
            ) as up:
                headers_seen: set[int] = set()

                async def down() -> None:
                    async for msg in up:
                        data = msg.encode() if isinstance(msg, str) else msg
                        if not data:
                            continue
                        channel, body = data[0], data[1:]
                        if channel not in headers_seen:
                            headers_seen.add(channel)  # the first 2 bytes name the port
                            body = body[2:]
                        if not body:
                            continue
                        if channel == 0:
                            await ws.send_bytes(body)
                        else:
                            await ws.send_text(body.decode(errors="replace"))

                async def upward() -> None:
                    while True:
                        msg = await ws.receive()
                        if msg["type"] == "websocket.disconnect":
                            return
                        data = msg.get("bytes")
                        if data is None:
                            data = (msg.get("text") or "").encode()
                        await up.send(b"\x00" + data)

                await _first(down(), upward())
        except (OSError, websockets.WebSocketException) as e:
            with contextlib.suppress(Exception):
                await ws.send_text(f"error forwarding port {port}: {e}")
        with contextlib.suppress(Exception):
            await ws.close(1000)


async def _first(*coros: Any) -> None:
    """Run until the first finishes; cancel the rest."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in done:
        if (
            not t.cancelled()
            and (exc := t.exception()) is not None
            and not isinstance(exc, (WebSocketDisconnect, websockets.ConnectionClosed))
        ):
            log.debug("stream relay ended with an error", error=str(exc))


def _failure(message: str) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message}


@dataclass(slots=True)
class ServingOptions:
    """How the kubelet API is served: its certificate (signed by the cluster CA, else a
    self-signed one kept in ``cert_dir``), the CA of client certificates, and the
    authentication and authorization of callers."""

    cert_dir: Path
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    client_ca_file: str = ""
    auth: AuthSettings = field(default_factory=AuthSettings)


async def start_server(
    kubelet: Kubelet, address: str, port: int, options: ServingOptions
) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Serve the kubelet API over HTTPS.

    Returns the server, its task and the bound port (``port`` 0 picks a free one).
    """
    if options.tls_cert_file:
        crt, key = Path(options.tls_cert_file), Path(options.tls_private_key_file)
    else:
        crt, key = ensure_serving_cert(
            options.cert_dir,
            "kubelet",
            sorted({address, kubelet.node_name, "localhost", "127.0.0.1"}),
        )
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(128)
    sock.setblocking(False)
    auth = KubeletAuth(kubelet.client, kubelet.node_name, options.auth)
    serving = ServingCertificates(str(crt), str(key), options.client_ca_file)
    tls = serving.uvicorn_options()
    if not options.client_ca_file:
        tls.pop("http")  # no client certificates to tell the app about
    config = uvicorn.Config(
        AuthMiddleware(KubeletServer(kubelet).app, auth),
        log_config=None,
        access_log=False,
        lifespan="off",
        ws_max_size=64 * 1024 * 1024,
        **tls,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="kubelet-api")
    return server, task, sock.getsockname()[1]


def healthz_server(address: str, port: int) -> uvicorn.Server:
    """kube's ``healthzPort`` (10248): ``/healthz`` over plain HTTP, for local checks
    that hold no credentials."""

    async def ok(_: Request) -> Response:
        return PlainTextResponse("ok")

    config = uvicorn.Config(
        Starlette(routes=[Route("/healthz", ok)]),
        host=address,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server
