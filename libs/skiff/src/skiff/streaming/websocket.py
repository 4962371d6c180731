"""WebSocket compatibility with Kubernetes clients.

kubectl's port-forward offers the subprotocol ``SPDY/3.1+portforward.k8s.io``. A ``/`` is
not allowed in an HTTP token (RFC 7230), so the ``websockets`` library (which uvicorn
uses) refuses the handshake with 400, and kubectl falls back to a plain SPDY upgrade, which
ASGI servers cannot serve. Go's WebSocket servers split the header on commas; so do we.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
from typing import Any

import orjson
from starlette.websockets import WebSocket

_MODULES = (
    "websockets.headers",
    "websockets.server",
    "websockets.client",
    "websockets.legacy.server",
    "websockets.legacy.client",
)


def _lenient_subprotocols(header: str) -> list[str]:
    return [p.strip() for p in header.split(",") if p.strip()]


def accept_kubernetes_subprotocols() -> None:
    """Parse ``Sec-WebSocket-Protocol`` as a plain comma-separated list (idempotent)."""
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "parse_subprotocol"):
            module.parse_subprotocol = _lenient_subprotocols


async def send_channel_status(ws: WebSocket, protocol: str, status: dict[str, Any]) -> None:
    """Send a ``Status`` on the error channel (3) of a channel.k8s.io session, then close."""
    body = orjson.dumps(status)
    if "base64" in protocol:
        await ws.send_text("3" + base64.b64encode(body).decode())
    else:
        await ws.send_bytes(b"\x03" + body)
    await ws.close(1000)


DRAIN_SECONDS = 5.0
"""How long :func:`relay` still forwards an upstream that closed while the client wrote."""


async def relay(ws: WebSocket, upstream: Any, *, hold: float = 0.0) -> None:
    """Pipe an ASGI WebSocket and a ``websockets`` connection, message for message, until
    either side ends; then close the ASGI side.

    ``hold``: the first upstream message waits until the client has sent one (kubectl's
    terminal size) or ``hold`` seconds have passed. client-go starts reading the socket
    before it has registered its streams and drops frames of streams it does not know yet
    ("Unknown stream id"): a command that answers at once — its output, its exit Status —
    would be lost. A real kubelet's exec is slow enough to hide that race; ours is not.
    """
    client_spoke = asyncio.Event()
    deadline = asyncio.get_running_loop().time() + hold

    async def down() -> None:
        first = True
        async for msg in upstream:
            if first:
                first = False
                left = deadline - asyncio.get_running_loop().time()
                if left > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client_spoke.wait(), left)
            if isinstance(msg, str):
                await ws.send_text(msg)
            else:
                await ws.send_bytes(msg)

    async def up() -> None:
        while True:
            msg = await ws.receive()
            client_spoke.set()
            if msg["type"] == "websocket.disconnect":
                return
            if msg.get("bytes") is not None:
                await upstream.send(msg["bytes"])
            elif msg.get("text") is not None:
                await upstream.send(msg["text"])

    tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        downward, upward = tasks
        if upward.done() and not downward.done() and upward.exception() is not None:
            # The upstream closed while the client was still sending (a resize, a key, the
            # close of stdin): what it sent before closing — the command's exit Status on
            # the error channel — is still to be read and must reach the client.
            await asyncio.wait([downward], timeout=DRAIN_SECONDS)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await ws.close(1000)
