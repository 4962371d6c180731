"""The server side of ``kubectl port-forward`` (protocol ``portforward.k8s.io``).

kubectl (1.31+) opens a WebSocket with subprotocol :data:`TUNNELING_SUBPROTOCOL`
and runs a SPDY/3.1 session through it, as the client.  For every local connection
it opens two streams carrying ``streamtype`` (``error`` / ``data``), ``port`` and
``requestid`` headers, error stream first; it waits for each SYN_REPLY before
going on, half-closes the error stream at once and reads it until EOF: whatever
text arrives there is printed as an error (and, since 1.31, ends the whole
port-forward).  The data stream carries the TCP bytes both ways.  When kubectl is
done it resets the data stream and waits for EOF on the error stream, so the
server must always close the error stream when a connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from skiff.log import get_logger
from skiff.streaming.spdy import Recv, Send, SpdySession, Stream, StreamClosedError

log = get_logger(__name__)

PROTOCOL_V1 = "portforward.k8s.io"
TUNNELING_PREFIX = "SPDY/3.1+"
TUNNELING_SUBPROTOCOL = TUNNELING_PREFIX + PROTOCOL_V1

STREAM_TYPE_HEADER = "streamtype"
PORT_HEADER = "port"
REQUEST_ID_HEADER = "requestid"
STREAM_TYPE_ERROR = "error"
STREAM_TYPE_DATA = "data"

# How long the two streams of one request may arrive apart (the kubelet's default).
STREAM_CREATION_TIMEOUT = 30.0
COPY_CHUNK = 32 * 1024

Connect = Callable[[int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


@dataclass
class _Pair:
    request_id: str
    port: int
    error: Stream | None = None
    data: Stream | None = None
    complete: asyncio.Event | None = None


def _classify(stream: Stream) -> tuple[str, int, str]:
    """(streamtype, port, requestid) of a new stream; ValueError when it is invalid."""
    port_text = stream.header(PORT_HEADER)
    if not port_text:
        raise ValueError(f"{PORT_HEADER!r} header is required")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"unable to parse {port_text!r} as a port") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port_text!r} must be > 0")
    kind = stream.header(STREAM_TYPE_HEADER)
    if kind not in (STREAM_TYPE_ERROR, STREAM_TYPE_DATA):
        raise ValueError(f"invalid stream type {kind!r}")
    request_id = stream.header(REQUEST_ID_HEADER)
    if not request_id:
        # Pre-1.6 clients sent no request id: the error stream came right before its data stream.
        request_id = str(stream.id if kind == STREAM_TYPE_ERROR else stream.id - 2)
    return kind, port, request_id


async def serve_port_forward(
    recv: Recv,
    send: Send,
    connect: Connect,
    *,
    describe: str = "",
    stream_timeout: float = STREAM_CREATION_TIMEOUT,
) -> None:
    """Serve kubectl's port-forward protocol on one tunnel until it closes.

    ``connect(port)`` opens the connection to the pod's port; if it raises, the text
    ``error forwarding port {port} to pod {describe}: {error}`` goes to kubectl on the
    error stream (pass e.g. ``f"{name}_{namespace}, uid {uid}"`` as ``describe``, the
    kubelet's wording).  Returns when the transport closes (``recv`` gives None),
    after aborting every forwarded connection; the caller then closes the WebSocket.
    """
    session = SpdySession(recv, send)
    pending: dict[str, _Pair] = {}
    tasks: set[asyncio.Task[None]] = set()

    def spawn(pair: _Pair) -> None:
        task = asyncio.create_task(_serve_pair(pair, pending, connect, describe, stream_timeout))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    reader = asyncio.create_task(session.run())
    try:
        while (stream := await session.accept_stream()) is not None:
            try:
                kind, port, request_id = _classify(stream)
            except ValueError as e:
                log.info("port-forward stream rejected", stream=stream.id, reason=str(e))
                await stream.reset()
                continue
            pair = pending.get(request_id)
            if pair is None:
                pair = pending[request_id] = _Pair(request_id, port, complete=asyncio.Event())
                spawn(pair)
            slot = "error" if kind == STREAM_TYPE_ERROR else "data"
            if getattr(pair, slot) is not None:
                log.info("port-forward duplicate stream", request=request_id, kind=kind)
                await stream.reset()
                continue
            setattr(pair, slot, stream)
            if kind == STREAM_TYPE_DATA:
                pair.port = port  # the kubelet forwards to the data stream's port
            # kubectl waits for this reply before it opens the request's next stream.
            with contextlib.suppress(StreamClosedError):
                await stream.reply()
            if pair.error is not None and pair.data is not None and pair.complete is not None:
                pair.complete.set()
        await reader
    finally:
        reader.cancel()
        await session.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(reader, *tasks, return_exceptions=True)


async def _serve_pair(
    pair: _Pair,
    pending: dict[str, _Pair],
    connect: Connect,
    describe: str,
    timeout: float,
) -> None:
    """Wait for both streams of a request, then forward; always closes both streams."""
    assert pair.complete is not None
    try:
        try:
            await asyncio.wait_for(pair.complete.wait(), timeout)
        except TimeoutError:
            message = f"timed out waiting for streams (request {pair.request_id})"
            log.info("port-forward stream pair incomplete", request=pair.request_id)
            if pair.error is not None:
                with contextlib.suppress(StreamClosedError):
                    await pair.error.write(message.encode())
            if pair.data is not None:
                await pair.data.reset()
            return
        finally:
            pending.pop(pair.request_id, None)
        assert pair.error is not None and pair.data is not None
        await _forward(pair.port, pair.error, pair.data, connect, describe)
    except Exception:
        log.exception("port-forward connection failed", request=pair.request_id)
        if pair.data is not None:
            await pair.data.reset()
    finally:
        for stream in (pair.error, pair.data):
            if stream is not None:
                with contextlib.suppress(StreamClosedError):
                    await stream.close()


async def _forward(port: int, error: Stream, data: Stream, connect: Connect, describe: str) -> None:
    try:
        reader, writer = await connect(port)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        message = f"error forwarding port {port} to pod {describe}: {_describe_error(e)}"
        log.info("port-forward connect failed", port=port, error=str(e))
        with contextlib.suppress(StreamClosedError):
            await error.write(message.encode())
        return
    try:
        await asyncio.gather(_copy_in(data, writer), _copy_out(reader, data))
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1)


async def _copy_in(data: Stream, writer: asyncio.StreamWriter) -> None:
    """Client to pod: on FIN half-close the pod connection; on RST abort it."""
    try:
        while chunk := await data.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except OSError:
        # The pod side is gone: tell kubectl, whose data would otherwise pile up here.
        writer.transport.abort()
        await data.reset()
        return
    if data.is_reset:
        writer.transport.abort()
        return
    with contextlib.suppress(OSError):
        if writer.can_write_eof():
            writer.write_eof()


async def _copy_out(reader: asyncio.StreamReader, data: Stream) -> None:
    """Pod to client, then FIN; stops quietly once kubectl has reset the stream."""
    try:
        while True:
            try:
                chunk = await reader.read(COPY_CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                break
            await data.write(chunk)
        await data.close()
    except StreamClosedError:
        pass


def _describe_error(e: BaseException) -> str:
    return str(e) or type(e).__name__
