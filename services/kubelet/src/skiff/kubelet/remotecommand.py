"""Exec and attach with the runtime's streaming server, over SPDY/3.1.

CRI ``Exec`` and ``Attach`` return a URL on the runtime's streaming server (containerd
vendors the kubelet's ``cri/streaming`` package). It speaks the remote command protocol
over WebSocket and over SPDY, but only SPDY can end a container's stdin: a stream
half-closed with FIN reads as EOF in the container, while containerd 1.6's WebSocket side
predates ``v5.channel.k8s.io`` and its close channel. So the kubelet is a SPDY client of
the runtime, as kubectl used to be of the kubelet.

Toward the API server the session stays a WebSocket channel protocol: binary messages
(or base64 text for the ``base64`` variants) whose first byte is the channel; 0 stdin,
1 stdout, 2 stderr, 3 the error/exit ``Status``, 4 terminal resize, and on v5 255 with a
channel number to close it. Stdin closed by the client (v5's close message) becomes FIN on
the stdin stream, so ``kubectl cp`` into a pod and ``echo x | kubectl exec -i`` end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket

from skiff.log import get_logger
from skiff.streaming.spdy import SpdySession, Stream, StreamClosedError
from skiff.streaming.websocket import send_channel_status

log = get_logger(__name__)

# The SPDY protocol spoken upstream for each WebSocket protocol a client may choose.
SPDY_PROTOCOL = {
    "v5.channel.k8s.io": "v4.channel.k8s.io",
    "v4.channel.k8s.io": "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io": "v4.channel.k8s.io",
    "channel.k8s.io": "channel.k8s.io",
    "base64.channel.k8s.io": "channel.k8s.io",
}
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_TIMEOUT = 30.0  # how long the runtime may take to answer the upgrade and each stream


class UpgradeError(Exception):
    """The streaming server did not switch to SPDY (an expired or unknown session)."""


class _ChunkProtocol(asyncio.Protocol):
    """A TCP connection as a queue of received chunks, ``None`` at its end.

    Not ``asyncio.StreamReader``: once a connection is reset, ``StreamReader.read`` raises
    before it returns what it had already received, and the runtime resets the connection
    as a matter of course (it closes its socket with our unread WINDOW_UPDATEs in it, so
    the kernel sends RST): the end of an exec's output sat in that buffer and was lost.
    Here every byte that arrived is delivered, then the end.
    """

    HIGH_WATER = 16

    def __init__(self) -> None:
        self.chunks: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self._paused = False
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.put_nowait(data)
        if self.chunks.qsize() >= self.HIGH_WATER and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.chunks.put_nowait(None)
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    async def recv(self) -> bytes | None:
        chunk = await self.chunks.get()
        if chunk is None:
            self.chunks.put_nowait(None)  # every later call sees the end too
        elif self._paused and self.chunks.qsize() < self.HIGH_WATER // 2:
            self._paused = False
            if self.transport is not None and not self.closed:
                self.transport.resume_reading()
        return chunk

    async def send(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise ConnectionResetError("connection closed")
        self.transport.write(data)
        await self._can_write.wait()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect_spdy(
    url: str, protocol: str
) -> tuple[SpdySession, asyncio.Task[None], _ChunkProtocol]:
    """Upgrade an HTTP connection to ``url`` to SPDY/3.1; the session runs in the task."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise UpgradeError(f"unsupported streaming URL {url!r}")
    port = parts.port or 80
    loop = asyncio.get_running_loop()
    _, conn = await asyncio.wait_for(
        loop.create_connection(_ChunkProtocol, parts.hostname, port), STREAM_TIMEOUT
    )
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: Upgrade\r\n"
        f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    try:
        await conn.send(request.encode())
        head, rest = await asyncio.wait_for(_response_head(conn), STREAM_TIMEOUT)
        status_line = head.decode("latin-1").split("\r\n", 1)[0]
        fields = status_line.split(" ", 2)
        if len(fields) < 2 or fields[1] != "101":
            why = rest[:4096].decode(errors="replace").strip() or status_line
            raise UpgradeError(f"the runtime's streaming server answered: {why}")
    except BaseException:
        conn.close()
        raise
    pending = [rest] if rest else []

    async def recv() -> bytes | None:
        if pending:
            return pending.pop()
        return await conn.recv()

    # spdystream ignores WINDOW_UPDATE; unread ones in its socket when the runtime closes
    # the session (right after the exit status) turn its close into a TCP reset that
    # discards the end of the output still in its send buffer. So none are sent.
    session = SpdySession(recv, conn.send, client=True, recv_flow_control=False)
    task = asyncio.create_task(session.run(), name="spdy-session")
    return session, task, conn


async def _response_head(conn: _ChunkProtocol) -> tuple[bytes, bytes]:
    """The HTTP response head, and what arrived after it (the first SPDY bytes, or an
    error body: the streaming server answers errors with a short body and closes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await conn.recv()
        if chunk is None:
            raise UpgradeError("the runtime's streaming server closed the connection")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101") and not head.startswith(b"HTTP/1.0 101"):
        # Read the (short) error body until the server closes.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while len(rest) < 4096 and (chunk := await conn.recv()) is not None:
                    rest += chunk
    return head, rest


class _Channels:
    """The WebSocket side: channel framing in binary or base64 text messages."""

    def __init__(self, ws: WebSocket, protocol: str) -> None:
        self.ws = ws
        self.base64 = "base64" in protocol
        self.lock = asyncio.Lock()

    async def send(self, channel: int, data: bytes) -> None:
        async with self.lock:
            if self.base64:
                await self.ws.send_text(str(channel) + base64.b64encode(data).decode())
            else:
                await self.ws.send_bytes(bytes([channel]) + data)

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, data); None once the client is gone."""
        while True:
            msg = await self.ws.receive()
            if msg["type"] == "websocket.disconnect":
                return None
            if (raw := msg.get("bytes")) is not None:
                if raw:
                    return raw[0], raw[1:]
            elif text := msg.get("text"):
                if self.base64 and text[0].isdigit():
                    return int(text[0]), base64.b64decode(text[1:])
                return ord(text[0]), text[1:].encode()


async def relay_remote_command(
    ws: WebSocket,
    url: str,
    protocol: str,
    *,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> None:
    """Carry an accepted channel-protocol WebSocket to the runtime's session at ``url``.

    Ends when the runtime ends the session (the command exited: its ``Status`` went out
    on the error channel) or the client goes away; then the WebSocket is closed.
    """
    channels = _Channels(ws, protocol)
    spdy_protocol = SPDY_PROTOCOL[protocol]
    try:
        session, runner, conn = await connect_spdy(url, spdy_protocol)
    except (TimeoutError, OSError, UpgradeError) as e:
        log.warning("exec stream failed", error=str(e))
        await _failed(ws, protocol, f"cannot reach the runtime's streaming server: {e}")
        return
    try:
        try:
            # channel.k8s.io (v1) has no resize stream.
            resize = tty and spdy_protocol != "channel.k8s.io"
            opening = _open_streams(session, stdin, stdout, stderr and not tty, resize)
            streams = await asyncio.wait_for(opening, STREAM_TIMEOUT)
        except (TimeoutError, StreamClosedError) as e:
            await _failed(ws, protocol, f"the runtime refused the stream: {e}")
            return
        outputs = [
            asyncio.create_task(_copy_out(streams[name], channels, channel))
            for name, channel in (("stdout", STDOUT), ("stderr", STDERR))
            if name in streams
        ]
        error = asyncio.create_task(streams["error"].read_all())
        upward = asyncio.create_task(_copy_in(channels, streams))
        finished = asyncio.gather(error, *outputs)
        await asyncio.wait([finished, upward], return_when=asyncio.FIRST_COMPLETED)
        if not finished.done() and upward.exception() is not None:
            # Not the client leaving: the runtime's side broke under a write. What it sent
            # before (the exit Status on the error stream) is still readable.
            await asyncio.wait([finished], timeout=STREAM_TIMEOUT)
        if error.done() and not error.cancelled() and error.exception() is None:
            status = error.result()
            if status:
                with contextlib.suppress(Exception):
                    await channels.send(ERROR, status)
        upward.cancel()
        finished.cancel()
        await asyncio.gather(upward, finished, return_exceptions=True)
    finally:
        await session.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        conn.close()
        with contextlib.suppress(Exception):
            await ws.close(1000)


async def _open_streams(
    session: SpdySession, stdin: bool, stdout: bool, stderr: bool, resize: bool
) -> dict[str, Stream]:
    """Open the streams in client-go's order: error, stdin, stdout, stderr, resize."""
    flags = {"stdin": stdin, "stdout": stdout, "stderr": stderr, "resize": resize}
    wanted = ["error", *(name for name, on in flags.items() if on)]
    return {name: await session.open_stream({"streamType": name}) for name in wanted}


async def _copy_out(stream: Stream, channels: _Channels, channel: int) -> None:
    while chunk := await stream.read():
        await channels.send(channel, chunk)


async def _copy_in(channels: _Channels, streams: dict[str, Stream]) -> None:
    """Client messages to the runtime; a v5 close of stdin becomes FIN on its stream."""
    targets = {STDIN: streams.get("stdin"), RESIZE: streams.get("resize")}
    while (msg := await channels.receive()) is not None:
        channel, data = msg
        if channel == CLOSE:
            if data[:1] == bytes([STDIN]) and (stdin := targets[STDIN]) is not None:
                # The command may have ended a moment ago (kubectl closes stdin at its EOF
                # as the process exits): its exit Status is still to be relayed.
                with contextlib.suppress(StreamClosedError):
                    await stdin.close()
            continue
        stream = targets.get(channel)
        if stream is None or not data:
            continue
        try:
            await stream.write(data)
        except StreamClosedError:
            log.debug("client data after the stream closed", channel=channel)


async def _failed(ws: WebSocket, protocol: str, message: str) -> None:
    status: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": message}
    with contextlib.suppress(Exception):
        await send_channel_status(ws, protocol, status)
