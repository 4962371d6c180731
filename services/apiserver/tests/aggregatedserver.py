"""A small aggregated API server for tests (in the spirit of kube's sample-apiserver):
``wardle.example.com/v1alpha1`` with namespaced ``flunders`` kept in memory, over HTTPS
on loopback with a certificate from a CA of its own; it requires a client certificate of
the front proxy's CA, as an extension server reading ``extension-apiserver-
authentication`` does, and records who each request was for (``X-Remote-*``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.frames import Frame, Opcode
from websockets.http11 import Request as WsRequest
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from skiff.pki import CertificateAuthority

GROUP, VERSION = "wardle.example.com", "v1alpha1"
BASE = f"/apis/{GROUP}/{VERSION}"
CONSOLE_PROTOCOL = "console.wardle"
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": f"{GROUP}/{VERSION}",
    "resources": [
        {
            "name": "flunders",
            "singularName": "flunder",
            "namespaced": True,
            "kind": "Flunder",
            "verbs": ["create", "delete", "get", "list", "watch"],
            "shortNames": ["fl"],
        },
        {"name": "flunders/status", "singularName": "", "namespaced": True, "kind": "Flunder",
         "verbs": ["get"]},
    ],
}  # fmt: skip


_GVK = {"group": GROUP, "version": VERSION, "kind": "Flunder"}
OPENAPI_INDEX = {"paths": {BASE.lstrip("/"): {"serverRelativeURL": f"/openapi/v3{BASE}?hash=1"}}}
OPENAPI = {
    "openapi": "3.0.0",
    "info": {"title": "wardle", "version": VERSION},
    "paths": {
        f"{BASE}/namespaces/{{namespace}}/flunders/{{name}}": {
            "patch": {
                "parameters": [{"name": "fieldValidation", "in": "query",
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": _GVK,
            },
        },
    },
    "components": {"schemas": {"com.example.wardle.v1alpha1.Flunder": {
        "type": "object", "x-kubernetes-group-version-kind": [_GVK]}}},
}  # fmt: skip
"""What kubectl reads to learn that the server validates fields itself (the
``fieldValidation`` parameter of the kind's PATCH)."""


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    user: str
    groups: list[str]
    headers: dict[str, str]


@dataclass
class AggregatedServer:
    """Serves on 127.0.0.1; ``front_proxy_ca`` (PEM file) verifies clients."""

    front_proxy_ca: str
    names: tuple[str, ...] = ("api.wardle.svc", "127.0.0.1")
    seen: list[Seen] = field(default_factory=list)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fail_discovery: bool = False
    port: int = 0

    def __post_init__(self) -> None:
        self.ca = CertificateAuthority.create("wardle-ca")
        self.pair = self.ca.issue("api", names=self.names)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Task[None]] = set()
        self._watchers: list[asyncio.Queue[dict[str, Any] | None]] = []
        self._rv = 1

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.pair.cert_pem).decode()

    async def __aenter__(self) -> AggregatedServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as d:
            crt, key = self.pair.save(Path(d), "api")
            ctx.load_cert_chain(crt, key)
        ctx.load_verify_locations(self.front_proxy_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for q in self._watchers:
            q.put_nowait(None)
        for task in list(self._open):
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, IndexError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._open.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode().split(" ", 2)
        headers: list[tuple[str, str]] = []
        while (raw := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = raw.decode().partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {k.lower(): v for k, v in headers}
        body = await reader.readexactly(int(lower.get("content-length", "0")))
        url = urlsplit(target)
        self.seen.append(
            Seen(
                method,
                url.path,
                lower.get("x-remote-user", ""),
                [v for k, v in headers if k.lower() == "x-remote-group"],
                lower,
            )
        )
        query = parse_qs(url.query)
        if lower.get("upgrade", "").lower() == "websocket":
            raw = line + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n"
            await self._console(url.path, raw, lower.get("x-remote-user", ""), reader, writer)
            return False
        if query.get("watch") == ["true"] or query.get("watch") == ["1"]:
            await self._watch(writer)
            return False
        code, answer = self._answer(method, url.path, body)
        data = json.dumps(answer).encode() + b"\n"
        writer.write(
            f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        return True

    def _answer(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == BASE:
            return (503, {}) if self.fail_discovery else (200, RESOURCES)
        if path == "/openapi/v3":
            return 200, OPENAPI_INDEX
        if path == f"/openapi/v3{BASE}":
            return 200, OPENAPI
        parts = path[len(BASE) :].strip("/").split("/")
        if not path.startswith(BASE + "/") or len(parts) < 3 or parts[2] != "flunders":
            return 404, _status(404, "NotFound", f"the server could not find {path}")
        ns, name = parts[1], parts[3] if len(parts) > 3 else ""
        if method == "POST" and not name:
            obj = json.loads(body)
            obj.setdefault("metadata", {})["namespace"] = ns
            obj["metadata"]["resourceVersion"] = str(self._next_rv())
            obj["metadata"]["creationTimestamp"] = "2026-12-07T00:00:00Z"
            key = (ns, obj["metadata"]["name"])
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f'flunders "{key[1]}" already exists')
            self.objects[key] = obj
            self._notify("ADDED", obj)
            return 201, obj
        if method == "GET" and not name:
            items = [o for (n, _), o in sorted(self.objects.items()) if n == ns]
            return 200, {
                "kind": "FlunderList",
                "apiVersion": f"{GROUP}/{VERSION}",
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }
        obj = self.objects.get((ns, name))
        if obj is None:
            return 404, _status(404, "NotFound", f'flunders.{GROUP} "{name}" not found')
        if method == "DELETE":
            del self.objects[(ns, name)]
            self._notify("DELETED", obj)
        return 200, obj

    async def _console(
        self,
        path: str,
        raw: bytes,
        user: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        """``flunders/<name>/console`` over WebSocket (subprotocol ``console.wardle``): says
        who it serves, then echoes each message upper-cased until the client closes. An
        unknown flunder is a plain 404."""
        parts = path[len(BASE) :].strip("/").split("/")
        if len(parts) != 5 or parts[4] != "console" or (parts[1], parts[3]) not in self.objects:
            data = json.dumps(_status(404, "NotFound", f"no console at {path}")).encode()
            writer.write(
                f"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
            )
            await writer.drain()
            return
        ws = ServerProtocol(subprotocols=[Subprotocol(CONSOLE_PROTOCOL)])
        ws.receive_data(raw)
        [request] = ws.events_received()
        assert isinstance(request, WsRequest)
        ws.send_response(ws.accept(request))
        ws.send_text(f"console of {parts[3]} for {user}".encode())
        while True:
            writer.write(b"".join(ws.data_to_send()))
            await writer.drain()
            data = await reader.read(65536)
            if not data:
                return
            ws.receive_data(data)
            for frame in ws.events_received():
                if isinstance(frame, Frame) and frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                    ws.send_binary(bytes(frame.data).upper())
            if ws.close_expected():
                writer.write(b"".join(ws.data_to_send()))
                await writer.drain()
                return

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _notify(self, kind: str, obj: dict[str, Any]) -> None:
        for q in self._watchers:
            q.put_nowait({"type": kind, "object": obj})

    async def _watch(self, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._watchers.append(q)
        try:
            while (event := await q.get()) is not None:
                data = json.dumps(event).encode() + b"\n"
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        finally:
            self._watchers.remove(q)


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}  # fmt: skip
