"""A small HTTPS admission webhook server for tests: AdmissionReview in, whatever the
test's handler answers out, on loopback, with a certificate from a CA of its own."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from skiff.pki import CertificateAuthority

Handler = Callable[[str, dict[str, Any]], Awaitable[Any] | Any]
"""(path, review) → an answer: a dict (sent as JSON), bytes (sent as they are), or
(status code, bytes)."""


def allow(review: dict[str, Any], **response: Any) -> dict[str, Any]:
    """An AdmissionReview answer for ``review`` (allowed unless ``response`` says)."""
    out = {"uid": review["request"]["uid"], "allowed": True, **response}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": out}


def patch_answer(review: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """An answer that allows with a JSON patch."""
    encoded = base64.b64encode(json.dumps(ops).encode()).decode()
    return allow(review, patchType="JSONPatch", patch=encoded)


class WebhookServer:
    """Serves ``handler`` over HTTPS on 127.0.0.1; ``calls`` records (path, review)."""

    def __init__(self, handler: Handler, names: tuple[str, ...] = ("127.0.0.1",)) -> None:
        self.handler = handler
        self.ca = CertificateAuthority.create("webhook-test-ca")
        self.pair = self.ca.issue("webhook", names=names)
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.pair.cert_pem).decode()

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> WebhookServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as d:
            crt, key = self.pair.save(Path(d), "webhook")
            ctx.load_cert_chain(crt, key)
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ctx)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._open.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open[writer] = task
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                path = line.split()[1].decode()
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                review = json.loads(await reader.readexactly(length))
                self.calls.append((path, review))
                answer = self.handler(path, review)
                if inspect.isawaitable(answer):
                    answer = await answer
                code, body = 200, answer
                if isinstance(answer, tuple):
                    code, body = answer
                if isinstance(body, dict):
                    body = json.dumps(body).encode()
                writer.write(
                    f"HTTP/1.1 {code} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, IndexError):
            return
        except asyncio.CancelledError:
            return  # the server is closing
        finally:
            self._open.pop(writer, None)
            writer.close()
