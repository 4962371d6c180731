"""SPDY/3.1 framing and a session over an abstract byte transport, either side.

Written from the SPDY protocol drafts 3 and 3.1 for the peers that still speak it:
kubectl (client-go's ``httpstream/spdy`` on top of ``moby/spdystream``), which tunnels a
SPDY session through a WebSocket for ``port-forward`` since Kubernetes 1.31 (we serve it),
and the container runtime's streaming server for exec and attach, the one way to half-close
a container's stdin (we are its client).

The transport is two callables: ``recv()`` returns the next chunk of the peer's byte
stream (``None`` once the transport is closed; chunk boundaries mean nothing) and
``send(data)`` writes bytes.  Each ``send`` call carries whole frames, so a
message-based transport (a WebSocket) never splits one.

The wire format is :mod:`skiff.streaming.spdyframes`.

Flow control: the session always gives the peer credit back (WINDOW_UPDATE for the
stream and for the session, stream id 0) as the application reads.  Honouring the
peer's windows when *sending* is opt-in (``send_flow_control=True``) because
spdystream, and so kubectl, implements SPDY/3 without flow control: it never sends
a WINDOW_UPDATE, so a sender that waits for one stalls after 64 KiB.  Without
flow control from the peer, the session stops reading the transport while a
stream holds more than ``max_buffer`` unread bytes (transport back-pressure).
``recv_flow_control=False`` sends no WINDOW_UPDATE at all, for a peer known to ignore
them: a frame the peer never reads makes its kernel answer its close with a TCP reset,
which throws away what it had written and we had not received yet.

Why one module of over 600 lines: ``Stream`` and ``SpdySession`` are one state machine
(a stream's half-closes, resets and windows are the session's frames, and the session's
reader is the only thing that moves a stream's state), so they stay side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from skiff.log import get_logger
from skiff.streaming.spdyframes import (
    CANCEL,
    DEFAULT_WINDOW,
    FLAG_FIN,
    FLAG_UNIDIRECTIONAL,
    GOAWAY,
    GOAWAY_OK,
    GOAWAY_PROTOCOL_ERROR,
    HEADERS,
    INTERNAL_ERROR,
    MAX_DATA_CHUNK,
    MAX_WINDOW,
    PING,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    SETTINGS_INITIAL_WINDOW_SIZE,
    SYN_REPLY,
    SYN_STREAM,
    VERSION,
    WINDOW_UPDATE,
    ControlFrame,
    DataFrame,
    Frame,
    FrameReader,
    HeaderCompressor,
    HeaderDecompressor,
    HeaderValues,
    SpdyError,
    StreamClosedError,
    _values,
    encode_data,
    encode_goaway,
    encode_ping,
    encode_rst_stream,
    encode_syn_reply,
    encode_syn_stream,
    encode_window_update,
    parse_u32s,
)

log = get_logger(__name__)

Recv = Callable[[], Awaitable[bytes | None]]
Send = Callable[[bytes], Awaitable[None]]

# --------------------------------------------------------------------------- session


class Stream:
    """One SPDY stream, opened by the peer or by us (``SpdySession.open_stream``)."""

    def __init__(
        self,
        session: SpdySession,
        stream_id: int,
        headers: dict[str, list[str]],
        *,
        priority: int = 0,
        remote_fin: bool = False,
        unidirectional: bool = False,
    ) -> None:
        self.id = stream_id
        self.headers = headers
        self.priority = priority
        self.reset_status: int | None = None
        self.reset_by_peer = False
        self._session = session
        self._buf = bytearray()
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._remote_closed = remote_fin
        self._local_closed = unidirectional
        self._reset = False
        self._replied = False
        self._send_window = session.peer_initial_window
        self._unacked = 0
        self._reply_received = asyncio.Event()  # set on SYN_REPLY, and on reset
        self._peer_replied = False

    def __repr__(self) -> str:
        return f"<Stream {self.id} {self.headers}>"

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (lowercase), or ``default``."""
        values = self.headers.get(name.lower())
        return values[0] if values else default

    @property
    def remote_closed(self) -> bool:
        """The peer sent FIN (or reset the stream, or the session ended)."""
        return self._remote_closed or self._reset

    @property
    def local_closed(self) -> bool:
        """We sent FIN, or the stream was reset, or the session ended."""
        return self._local_closed or self._reset

    @property
    def is_reset(self) -> bool:
        """Reset by either side, or torn down with the session."""
        return self._reset

    @property
    def send_window(self) -> int:
        """The peer's remaining receive window for this stream, as we track it."""
        return self._send_window

    async def reply(self, headers: Mapping[str, HeaderValues] | None = None) -> None:
        """Send SYN_REPLY (once); ``write`` and ``close`` do it implicitly."""
        if self._replied or self._reset:
            return
        self._replied = True
        await self._session._send_header_frame(
            lambda block: encode_syn_reply(block, self.id), headers or {}
        )

    async def read(self, max_bytes: int = 64 * 1024) -> bytes:
        """Up to ``max_bytes`` of data; ``b""`` at FIN, on reset and at session end."""
        while not self._buf:
            if self._remote_closed or (self._reset and not self._late_data_possible()):
                return b""
            self._readable.clear()
            await self._readable.wait()
        chunk = bytes(self._buf[:max_bytes])
        del self._buf[:max_bytes]
        if len(self._buf) <= self._session.max_buffer:
            self._drained.set()
        await self._session._consumed(self, len(chunk))
        return chunk

    async def read_all(self) -> bytes:
        """Everything until FIN (or reset)."""
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data`` in DATA frames (waiting for window when flow control is on)."""
        view = memoryview(data).cast("B")
        if not view:
            return
        self._check_writable()
        if not self._replied:
            await self.reply()
        while view:
            self._check_writable()
            n = await self._session._reserve(self, min(len(view), MAX_DATA_CHUNK))
            chunk, view = view[:n], view[n:]
            await self._session._send_frame(encode_data(self.id, chunk))

    async def close(self) -> None:
        """Half-close: send FIN.  A no-op once closed or reset."""
        if self._local_closed or self._reset or self._session.closed:
            return
        if not self._replied:
            self._replied = True
            self._local_closed = True
            await self._session._send_header_frame(
                lambda block: encode_syn_reply(block, self.id, flags=FLAG_FIN), {}
            )
        else:
            self._local_closed = True
            await self._session._send_frame(encode_data(self.id, b"", fin=True))
        self._session._maybe_forget(self)

    async def reset(self, status: int = CANCEL) -> None:
        """Abort the stream both ways with RST_STREAM (default status CANCEL)."""
        if self._reset:
            return
        self._mark_reset(status, by_peer=False)
        if not self._session.closed:
            with contextlib.suppress(StreamClosedError):
                await self._session._send_frame(encode_rst_stream(self.id, status))

    def _check_writable(self) -> None:
        if self._reset:
            raise StreamClosedError(f"stream {self.id} was reset")
        if self._local_closed:
            raise StreamClosedError(f"stream {self.id} is closed for writing")
        if self._session.closed:
            raise StreamClosedError("session closed")

    def _deliver(self, data: bytes, fin: bool) -> None:
        if data:
            self._buf += data
            if len(self._buf) > self._session.max_buffer:
                self._drained.clear()
        if fin:
            self._remote_closed = True
        self._readable.set()

    def _late_data_possible(self) -> bool:
        """A stream the runtime reset may still get data: spdystream (the Go library of the
        runtime's streaming server) queues DATA frames by priority but writes RST_STREAM at
        once, so an exec's last output and its exit status can arrive *after* the reset.
        As a client we keep reading such a stream until the runtime ends the session."""
        return self.reset_by_peer and self._session.client and not self._session.closed

    def _mark_reset(self, status: int | None, *, by_peer: bool, keep_unread: bool = False) -> None:
        self._reset = True
        self.reset_status = status
        self.reset_by_peer = by_peer
        dropped = 0 if keep_unread else len(self._buf)
        if not keep_unread:
            self._buf.clear()
        self._readable.set()
        self._reply_received.set()
        self._drained.set()
        self._session._window_changed.set()
        if not self._late_data_possible():
            self._session._forget(self, dropped)


class SpdySession:
    """A SPDY/3.1 session. As a server the peer opens streams and we answer them; as a
    client (``client=True``) we open streams with ``open_stream``.

    Run ``run()`` (the frame reader) concurrently with ``accept_stream()`` / ``accept()``,
    or use ``serve(handler)``, which does both and runs ``handler(stream)`` per stream.
    When the transport ends cleanly, data already received stays readable.
    """

    def __init__(
        self,
        recv: Recv,
        send: Send,
        *,
        send_flow_control: bool = False,
        recv_flow_control: bool = True,
        max_buffer: int = 1 << 20,
        client: bool = False,
    ) -> None:
        self.client = client
        self.recv_flow_control = recv_flow_control
        self._next_stream_id = 1 if client else 2
        self._recv = recv
        self._send = send
        self.send_flow_control = send_flow_control
        self.max_buffer = max_buffer
        self.peer_initial_window = DEFAULT_WINDOW
        self._send_window = DEFAULT_WINDOW
        self._session_unacked = 0
        self._ack_threshold = DEFAULT_WINDOW // 2
        self._window_changed = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._compressor = HeaderCompressor()
        self._decompressor = HeaderDecompressor()
        self._reader = FrameReader()
        self._streams: dict[int, Stream] = {}
        self._accepted: asyncio.Queue[Stream | None] = asyncio.Queue()
        self._accept_done = False
        self._last_stream_id = 0
        self._goaway_received = False
        self._goaway_sent = False
        self._closed = False
        self._closing = False
        self._run_task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def send_window(self) -> int:
        """The peer's remaining session-level receive window, as we track it."""
        return self._send_window

    @property
    def goaway_received(self) -> bool:
        return self._goaway_received

    # ----------------------------------------------------------------- public API

    async def run(self) -> None:
        """Read and dispatch frames until the transport closes or ``close()`` is called."""
        self._run_task = asyncio.current_task()
        try:
            while not self._closed:
                chunk = await self._recv()
                if chunk is None:
                    break
                if not chunk:
                    continue
                self._reader.feed(chunk)
                while (frame := self._reader.next_frame()) is not None:
                    await self._dispatch(frame)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._closing or task is None or task.uncancel() > 0:
                raise
        except SpdyError as e:
            log.warning("spdy protocol error, closing session", error=str(e))
            with contextlib.suppress(Exception):
                await self._send_raw(encode_goaway(self._last_stream_id, GOAWAY_PROTOCOL_ERROR))
        finally:
            self._shutdown()

    async def open_stream(
        self, headers: Mapping[str, HeaderValues], *, fin: bool = False, wait_reply: bool = True
    ) -> Stream:
        """Open a stream (SYN_STREAM); by default wait for the peer's SYN_REPLY."""
        if self._closed or self._goaway_received:
            raise StreamClosedError("session closed")
        stream_id = self._next_stream_id
        self._next_stream_id += 2
        stream = Stream(self, stream_id, {k.lower(): _values(v) for k, v in headers.items()})
        stream._replied = True  # the opener never sends SYN_REPLY
        stream._local_closed = fin
        self._streams[stream_id] = stream
        await self._send_header_frame(
            lambda block: encode_syn_stream(block, stream_id, flags=FLAG_FIN if fin else 0),
            headers,
        )
        if wait_reply:
            await stream._reply_received.wait()
            if not stream._peer_replied:
                raise StreamClosedError(f"stream {stream_id} was refused ({stream.reset_status})")
        return stream

    async def accept_stream(self) -> Stream | None:
        """The next stream the peer opened; None once no more can come."""
        if self._accept_done:
            return None
        stream = await self._accepted.get()
        if stream is None:
            self._accept_done = True
            self._accepted.put_nowait(None)
        return stream

    async def accept(self) -> AsyncIterator[Stream]:
        """Iterate over streams the peer opens until the session ends or it sends GOAWAY."""
        while (stream := await self.accept_stream()) is not None:
            yield stream

    async def serve(self, handler: Callable[[Stream], Awaitable[None]]) -> None:
        """Run the session, calling ``handler(stream)`` in a task per stream, until it ends."""
        tasks: set[asyncio.Task[None]] = set()
        reader = asyncio.create_task(self.run())
        try:
            while (stream := await self.accept_stream()) is not None:
                task = asyncio.create_task(self._handle(handler, stream))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await reader
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def close(self, status: int = GOAWAY_OK) -> None:
        """Send GOAWAY and tear the session down; every stream reads EOF, writes fail."""
        if self._closed:
            return
        if not self._goaway_sent:
            self._goaway_sent = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._send_raw(encode_goaway(self._last_stream_id, status)), 5
                )
        self._shutdown(keep_unread=False)
        task = self._run_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            self._closing = True
            task.cancel()

    # ----------------------------------------------------------------- internals

    async def _handle(self, handler: Callable[[Stream], Awaitable[None]], stream: Stream) -> None:
        try:
            await handler(stream)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("spdy stream handler failed", stream=stream.id)
            await stream.reset(INTERNAL_ERROR)

    def _shutdown(self, *, keep_unread: bool = True) -> None:
        """End the session. What the peer sent stays readable unless we close it ourselves
        (``close()``): a transport that ends or breaks, even while we send a WINDOW_UPDATE
        after the peer hung up, loses nothing that already arrived."""
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams.values()):
            stream._mark_reset(None, by_peer=False, keep_unread=keep_unread)
        self._streams.clear()
        self._accepted.put_nowait(None)
        self._window_changed.set()

    def _forget(self, stream: Stream, dropped: int) -> None:
        self._streams.pop(stream.id, None)
        if dropped:
            self._session_unacked += dropped

    def _maybe_forget(self, stream: Stream) -> None:
        # Once both sides sent FIN no frame may arrive for it; unread data stays readable.
        if stream._local_closed and stream._remote_closed:
            self._streams.pop(stream.id, None)

    async def _send_raw(self, frame: bytes) -> None:
        async with self._send_lock:
            await self._send(frame)

    async def _send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise StreamClosedError("session closed")
        try:
            await self._send_raw(frame)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._shutdown()
            raise StreamClosedError(f"transport send failed: {e}") from e

    async def _send_header_frame(
        self, build: Callable[[bytes], bytes], headers: Mapping[str, HeaderValues]
    ) -> None:
        """Compress and send under one lock: the zlib stream must see frames in wire order."""
        if self._closed:
            raise StreamClosedError("session closed")
        async with self._send_lock:
            frame = build(self._compressor.compress(headers))
            try:
                await self._send(frame)
            except BaseException as e:
                # The peer's inflater may now be out of step with ours: the session is over.
                self._shutdown()
                if isinstance(e, Exception):
                    raise StreamClosedError(f"transport send failed: {e}") from e
                raise

    async def _reserve(self, stream: Stream, want: int) -> int:
        """Take up to ``want`` bytes of send window for ``stream``."""
        if self.send_flow_control:
            while not (stream._reset or self._closed):
                if stream._send_window > 0 and self._send_window > 0:
                    break
                self._window_changed.clear()
                await self._window_changed.wait()
            stream._check_writable()
            want = min(want, stream._send_window, self._send_window)
        stream._send_window -= want
        self._send_window -= want
        return want

    async def _consumed(self, stream: Stream | None, n: int) -> None:
        """Give credit back for ``n`` bytes the application has taken."""
        if self._closed or n <= 0 or not self.recv_flow_control:
            return
        frames = []
        if stream is not None and not stream.remote_closed:
            stream._unacked += n
            if stream._unacked >= self._ack_threshold:
                frames.append(encode_window_update(stream.id, stream._unacked))
                stream._unacked = 0
        self._session_unacked += n
        if self._session_unacked >= self._ack_threshold:
            frames.append(encode_window_update(0, self._session_unacked))
            self._session_unacked = 0
        if frames:
            with contextlib.suppress(StreamClosedError):
                await self._send_frame(b"".join(frames))

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            await self._on_data(frame)
            return
        if frame.version != VERSION:
            raise SpdyError(f"unsupported SPDY version {frame.version}")
        handler = self._control_handlers.get(frame.type)
        if handler is not None:
            await handler(self, frame)
        # Unknown control frame types (CREDENTIAL, NOOP, ...) are ignored, as the spec says.

    async def _on_data(self, frame: DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        late = stream is not None and stream._reset and stream._late_data_possible()
        if stream is None or stream._remote_closed or (stream._reset and not late):
            # Late data for a stream we no longer track: drop it, but credit the session.
            await self._consumed(None, len(frame.data))
            return
        stream._deliver(frame.data, frame.fin)
        if frame.fin:
            self._maybe_forget(stream)
        if not stream._drained.is_set():
            # The peer ignores flow control and the app is slow: stop reading the transport.
            await stream._drained.wait()

    async def _on_syn_stream(self, frame: ControlFrame) -> None:
        if len(frame.payload) < 10:
            raise SpdyError("SYN_STREAM too short")
        stream_id, _associated, pri, _slot = struct.unpack_from(">IIBB", frame.payload)
        stream_id &= 0x7FFFFFFF
        # Always inflate, even for a stream we refuse: the zlib context is per session.
        headers = self._decompressor.decompress(frame.payload[10:])
        # The peer's streams have odd ids when it is the client, even ones when we are.
        theirs = stream_id % 2 == (0 if self.client else 1)
        if stream_id == 0 or not theirs or stream_id <= self._last_stream_id:
            await self._send_rst(stream_id, PROTOCOL_ERROR)
            return
        self._last_stream_id = stream_id
        if self._goaway_sent or self._closed:
            await self._send_rst(stream_id, REFUSED_STREAM)
            return
        stream = Stream(
            self,
            stream_id,
            headers,
            priority=pri >> 5,
            remote_fin=bool(frame.flags & FLAG_FIN),
            unidirectional=bool(frame.flags & FLAG_UNIDIRECTIONAL),
        )
        if stream._remote_closed:
            stream._readable.set()
        self._streams[stream_id] = stream
        self._accepted.put_nowait(stream)

    async def _on_syn_reply(self, frame: ControlFrame) -> None:
        (stream_id,) = parse_u32s(frame.payload, 1)
        # Even for a stream we do not know, the block must go through the inflater.
        headers = self._decompressor.decompress(frame.payload[4:])
        stream = self._streams.get(stream_id & 0x7FFFFFFF)
        if stream is None:
            return
        for name, values in headers.items():
            stream.headers.setdefault(name, []).extend(values)
        stream._peer_replied = True
        stream._reply_received.set()
        if frame.flags & FLAG_FIN:
            stream._deliver(b"", True)
            self._maybe_forget(stream)

    async def _on_headers(self, frame: ControlFrame) -> None:
        (stream_id,) = parse_u32s(frame.payload, 1)
        headers = self._decompressor.decompress(frame.payload[4:])
        stream = self._streams.get(stream_id & 0x7FFFFFFF)
        if stream is None:
            return
        for name, values in headers.items():
            stream.headers.setdefault(name, []).extend(values)
        if frame.flags & FLAG_FIN:
            stream._deliver(b"", True)
            self._maybe_forget(stream)

    async def _on_rst_stream(self, frame: ControlFrame) -> None:
        stream_id, status = parse_u32s(frame.payload, 2)
        stream = self._streams.get(stream_id & 0x7FFFFFFF)
        if stream is not None:
            # client-go's connection.Close() resets every stream right after the last
            # data (an exec's exit status): what arrived before the reset stays readable.
            stream._mark_reset(status, by_peer=True, keep_unread=True)

    async def _on_settings(self, frame: ControlFrame) -> None:
        (count,) = parse_u32s(frame.payload, 1)
        entries = parse_u32s(frame.payload, 1 + 2 * count)[1:]
        for i in range(count):
            sid, value = entries[2 * i] & 0xFFFFFF, entries[2 * i + 1]
            if sid == SETTINGS_INITIAL_WINDOW_SIZE and value <= MAX_WINDOW:
                delta = value - self.peer_initial_window
                self.peer_initial_window = value
                for stream in self._streams.values():
                    stream._send_window += delta
                self._window_changed.set()

    async def _on_ping(self, frame: ControlFrame) -> None:
        (ping_id,) = parse_u32s(frame.payload, 1)
        if ping_id % 2 == (0 if self.client else 1):  # the peer's: echo; others answer ours
            with contextlib.suppress(StreamClosedError):
                await self._send_frame(encode_ping(ping_id))

    async def _on_goaway(self, frame: ControlFrame) -> None:
        self._goaway_received = True
        self._accepted.put_nowait(None)

    async def _on_window_update(self, frame: ControlFrame) -> None:
        stream_id, delta = parse_u32s(frame.payload, 2)
        stream_id &= 0x7FFFFFFF
        delta &= 0x7FFFFFFF
        if stream_id == 0:
            self._send_window += delta
        elif (stream := self._streams.get(stream_id)) is not None:
            stream._send_window += delta
        self._window_changed.set()

    async def _send_rst(self, stream_id: int, status: int) -> None:
        with contextlib.suppress(StreamClosedError):
            await self._send_frame(encode_rst_stream(stream_id, status))

    _control_handlers: dict[int, Callable[[SpdySession, ControlFrame], Awaitable[None]]] = {
        SYN_STREAM: _on_syn_stream,
        SYN_REPLY: _on_syn_reply,
        HEADERS: _on_headers,
        RST_STREAM: _on_rst_stream,
        SETTINGS: _on_settings,
        PING: _on_ping,
        GOAWAY: _on_goaway,
        WINDOW_UPDATE: _on_window_update,
    }
