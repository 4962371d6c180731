"""SPDY/3.1 server session and kubectl port-forward, driven by a tiny in-test SPDY client."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from skiff.streaming.portforward import serve_port_forward
from skiff.streaming.spdy import SpdySession, Stream, StreamClosedError
from skiff.streaming.spdyframes import (
    CANCEL,
    DEFAULT_WINDOW,
    FLAG_FIN,
    GOAWAY,
    PING,
    RST_STREAM,
    SPDY3_DICTIONARY,
    SYN_REPLY,
    WINDOW_UPDATE,
    ControlFrame,
    DataFrame,
    FrameReader,
    HeaderCompressor,
    HeaderDecompressor,
    encode_data,
    encode_goaway,
    encode_ping,
    encode_rst_stream,
    encode_settings,
    encode_syn_stream,
    encode_window_update,
    parse_u32s,
)

pytestmark = pytest.mark.timeout(20)

KiB = 1024


def one_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def random_split(seed: int, largest: int = 700) -> Callable[[bytes], list[bytes]]:
    rng = random.Random(seed)

    def split(data: bytes) -> list[bytes]:
        out, i = [], 0
        while i < len(data):
            n = rng.randint(1, largest)
            out.append(data[i : i + n])
            i += n
        return out

    return split


class Client:
    """A minimal SPDY/3.1 client: feeds a server session through in-memory 'messages'."""

    def __init__(
        self,
        *,
        split: Callable[[bytes], list[bytes]] | None = None,
        flow_control: bool = True,
    ) -> None:
        self.to_server: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.split = split or (lambda data: [data])
        self.flow_control = flow_control
        self.compressor = HeaderCompressor()
        self.decompressor = HeaderDecompressor()
        self.frames = FrameReader()
        self.next_id = 1
        self.replies: dict[int, dict[str, list[str]]] = {}
        self.data: dict[int, bytearray] = defaultdict(bytearray)
        self.consumed: dict[int, int] = defaultdict(int)
        self.fin: set[int] = set()
        self.rst: dict[int, int] = {}
        self.pings: list[int] = []
        self.goaways: list[tuple[int, int]] = []
        self.window_updates: list[tuple[int, int]] = []
        # What the server may still send us / what we may still send the server.
        self.outstanding: dict[int, int] = defaultdict(int)
        self.max_outstanding: dict[int, int] = defaultdict(int)
        self.send_window: dict[int, int] = defaultdict(lambda: DEFAULT_WINDOW)
        self.changed = asyncio.Event()

    # ---- the server's transport
    async def recv(self) -> bytes | None:
        return await self.to_server.get()

    async def send(self, data: bytes) -> None:
        self.frames.feed(data)
        for frame in self.frames:
            self._on_frame(frame)
        self.changed.set()

    def _on_frame(self, frame: ControlFrame | DataFrame) -> None:
        if isinstance(frame, DataFrame):
            sid = frame.stream_id
            assert sid not in self.fin, f"data after FIN on stream {sid}"
            self.data[sid] += frame.data
            for key in (sid, 0):
                self.outstanding[key] += len(frame.data)
                self.max_outstanding[key] = max(self.max_outstanding[key], self.outstanding[key])
            if frame.fin:
                self.fin.add(sid)
            return
        assert frame.version == 3
        if frame.type == SYN_REPLY:
            (sid,) = parse_u32s(frame.payload, 1)
            self.replies[sid] = self.decompressor.decompress(frame.payload[4:])
            if frame.flags & FLAG_FIN:
                self.fin.add(sid)
        elif frame.type == RST_STREAM:
            sid, status = parse_u32s(frame.payload, 2)
            self.rst[sid] = status
        elif frame.type == PING:
            self.pings.append(parse_u32s(frame.payload, 1)[0])
        elif frame.type == GOAWAY:
            last, status = parse_u32s(frame.payload, 2)
            self.goaways.append((last, status))
        elif frame.type == WINDOW_UPDATE:
            sid, delta = parse_u32s(frame.payload, 2)
            self.window_updates.append((sid, delta))
            self.send_window[sid] += delta

    # ---- client actions
    async def put(self, *frames: bytes) -> None:
        """Send frames, coalesced, then cut into messages by ``split``."""
        for message in self.split(b"".join(frames)):
            self.to_server.put_nowait(message)
        await asyncio.sleep(0)

    async def close_transport(self) -> None:
        self.to_server.put_nowait(None)

    async def wait(self, predicate: Callable[[], bool], timeout: float = 5) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                # Also poll: some conditions change without the server sending anything.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 0.02)

    async def open(self, headers: dict[str, str], *, fin: bool = False, reply: bool = True) -> int:
        sid = self.next_id
        self.next_id += 2
        block = self.compressor.compress(headers)
        await self.put(encode_syn_stream(block, sid, flags=FLAG_FIN if fin else 0))
        if reply:
            await self.wait(lambda: sid in self.replies or sid in self.rst)
        return sid

    async def write(
        self, sid: int, data: bytes, *, fin: bool = False, frame: int = 16 * KiB
    ) -> None:
        view = memoryview(data)
        while view:
            if self.flow_control:
                await self.wait(lambda: self.send_window[sid] > 0 and self.send_window[0] > 0)
                n = min(len(view), frame, self.send_window[sid], self.send_window[0])
            else:
                n = min(len(view), frame)
            self.send_window[sid] -= n
            self.send_window[0] -= n
            await self.put(encode_data(sid, view[:n]))
            view = view[n:]
        if fin:
            await self.put(encode_data(sid, b"", fin=True))

    async def read(self, sid: int, n: int) -> bytes:
        """Take ``n`` bytes (fewer at FIN) and, with flow control, give the window back."""
        await self.wait(lambda: len(self.data[sid]) - self.consumed[sid] >= n or sid in self.fin)
        start = self.consumed[sid]
        chunk = bytes(self.data[sid][start : start + n])
        self.consumed[sid] += len(chunk)
        if chunk and self.flow_control:
            self.outstanding[sid] -= len(chunk)
            self.outstanding[0] -= len(chunk)
            await self.put(
                encode_window_update(sid, len(chunk)), encode_window_update(0, len(chunk))
            )
        return chunk

    async def read_until_fin(self, sid: int, chunk: int = 16 * KiB) -> bytes:
        out = bytearray()
        while piece := await self.read(sid, chunk):
            out += piece
        return bytes(out)


@contextlib.asynccontextmanager
async def serving(
    client: Client, handler: Callable[[Stream], Awaitable[None]], **options: object
) -> AsyncIterator[SpdySession]:
    session = SpdySession(client.recv, client.send, **options)  # type: ignore[arg-type]
    task = asyncio.create_task(session.serve(handler))
    try:
        yield session
    finally:
        await client.close_transport()
        await asyncio.wait_for(task, 5)


async def echo(stream: Stream) -> None:
    await stream.reply({"echo": stream.header("name", "") or "", "multi": ["a", "b"]})
    while chunk := await stream.read():
        await stream.write(chunk)
    await stream.close()


def payload(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# --------------------------------------------------------------------------- framing


def test_dictionary_and_header_compression_share_context() -> None:
    assert len(SPDY3_DICTIONARY) == 1423
    assert SPDY3_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert SPDY3_DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    compressor, decompressor = HeaderCompressor(), HeaderDecompressor()
    headers = {"streamtype": "data", "port": "8080", "requestid": "17", "multi": ["x", "y"]}
    first = compressor.compress(headers)
    # zlib header announcing a preset dictionary, identified by its Adler-32.
    assert first[1] & 0x20
    assert struct.unpack(">I", first[2:6])[0] == zlib.adler32(SPDY3_DICTIONARY)
    blocks = [first] + [compressor.compress({**headers, "requestid": str(i)}) for i in range(20)]
    assert len(blocks[-1]) < len(first)  # later blocks lean on the shared window
    decoded = [decompressor.decompress(block) for block in blocks]
    assert decoded[0] == {"streamtype": ["data"], "port": ["8080"], "requestid": ["17"],
                          "multi": ["x", "y"]}  # fmt: skip
    assert [d["requestid"] for d in decoded[1:]] == [[str(i)] for i in range(20)]
    # A fresh inflater cannot read a block from the middle of the stream.
    with pytest.raises(Exception):  # noqa: B017
        HeaderDecompressor().decompress(blocks[5])


def test_frame_reader_reassembles_any_split() -> None:
    frames = [encode_ping(1), encode_data(3, b"hello", fin=True), encode_rst_stream(5, CANCEL)]
    wire = b"".join(frames)
    for split in (one_byte, random_split(1, 5), lambda b: [b]):
        reader, got = FrameReader(), []
        for message in split(wire):
            reader.feed(message)
            got.extend(reader)
        assert [type(f).__name__ for f in got] == ["ControlFrame", "DataFrame", "ControlFrame"]
        assert got[1] == DataFrame(3, FLAG_FIN, b"hello")
        assert parse_u32s(got[2].payload, 2) == (5, CANCEL)  # type: ignore[union-attr]


# --------------------------------------------------------------------------- session


async def test_many_streams_syn_reply_with_compressed_headers() -> None:
    client = Client(split=random_split(2, 9))
    async with serving(client, echo):
        ids = [await client.open({"name": f"stream-{i}", "port": "80"}) for i in range(40)]
        for i, sid in enumerate(ids):
            assert client.replies[sid] == {"echo": [f"stream-{i}"], "multi": ["a", "b"]}
        for sid in ids:
            await client.put(encode_data(sid, b"", fin=True))
        await client.wait(lambda: all(sid in client.fin for sid in ids))


async def test_data_both_ways_one_byte_messages_and_coalesced_frames() -> None:
    client = Client(split=one_byte)
    async with serving(client, echo):
        a = await client.open({"name": "a"})
        b = await client.open({"name": "b"})
        # Several frames of two streams in one write, then delivered a byte at a time.
        await client.put(
            encode_data(a, b"hello "),
            encode_data(b, b"HELLO "),
            encode_data(a, b"world", fin=True),
            encode_data(b, b"WORLD", fin=True),
        )
        assert await client.read_until_fin(a) == b"hello world"
        assert await client.read_until_fin(b) == b"HELLO WORLD"
    client2 = Client(split=random_split(3, 50))
    async with serving(client2, echo):
        sid = await client2.open({"name": "c"})
        blob = payload(20 * KiB)
        await client2.write(sid, blob, fin=True, frame=1000)
        assert await client2.read_until_fin(sid) == blob


async def test_large_transfer_with_flow_control_both_ways() -> None:
    client = Client(split=random_split(4, 9000))
    size = 300 * KiB
    up, down = payload(size, 1), payload(size, 2)
    received = bytearray()

    async def handler(stream: Stream) -> None:
        await stream.reply()
        reading = asyncio.create_task(stream.read_all())
        await stream.write(down)
        await stream.close()
        received.extend(await reading)

    async with serving(client, handler, send_flow_control=True) as session:
        sid = await client.open({})
        # The server must stop at the 64 KiB window until we give credit back.
        await client.wait(lambda: len(client.data[sid]) == DEFAULT_WINDOW)
        await asyncio.sleep(0.05)
        assert len(client.data[sid]) == DEFAULT_WINDOW
        uploading = asyncio.create_task(client.write(sid, up, fin=True))
        assert await client.read_until_fin(sid) == down
        await uploading
        await client.wait(lambda: bytes(received) == up)
        assert client.max_outstanding[sid] <= DEFAULT_WINDOW
        assert client.max_outstanding[0] <= DEFAULT_WINDOW
        assert session.send_window > 0
    # Our upload only got through because the server kept granting window, per stream and
    # for the session (stream id 0).
    assert {s for s, _ in client.window_updates} == {0, sid}
    assert sum(d for s, d in client.window_updates if s == sid) >= size - DEFAULT_WINDOW


async def test_large_transfer_to_peer_without_flow_control() -> None:
    # kubectl (spdystream) never sends WINDOW_UPDATE and ignores ours.
    client = Client(flow_control=False)
    blob = payload(256 * KiB)

    async def handler(stream: Stream) -> None:
        await stream.write(blob)
        await stream.close()
        await stream.read_all()

    async with serving(client, handler):
        sid = await client.open({}, reply=False)
        await client.wait(lambda: sid in client.fin)
        assert client.replies[sid] == {}
        assert bytes(client.data[sid]) == blob
        await client.write(sid, payload(200 * KiB), fin=True)


async def test_slow_reader_pauses_a_peer_without_flow_control() -> None:
    client = Client(flow_control=False)
    blob = payload(50 * KiB)
    got = asyncio.get_running_loop().create_future()

    async def handler(stream: Stream) -> None:
        await stream.reply()
        await asyncio.sleep(0.05)
        got.set_result(await stream.read_all())

    async with serving(client, handler, max_buffer=4 * KiB):
        sid = await client.open({})
        await client.write(sid, blob, fin=True, frame=3000)
        assert await asyncio.wait_for(got, 5) == blob


async def test_ping_is_echoed() -> None:
    client = Client(split=one_byte)
    async with serving(client, echo):
        await client.put(encode_ping(1), encode_ping(2), encode_ping(7))
        await client.wait(lambda: len(client.pings) == 2)
        await asyncio.sleep(0.01)
        assert client.pings == [1, 7]  # even ids would be answers to our own pings


async def test_rst_stream_from_client_and_server() -> None:
    client = Client()
    seen: dict[str, object] = {}
    done = asyncio.Event()

    async def handler(stream: Stream) -> None:
        if stream.header("mode") == "server-reset":
            await stream.reply()
            await stream.reset()
            return
        await stream.reply()
        seen["first"] = await stream.read()
        seen["eof"] = await stream.read()
        seen["by_peer"] = stream.reset_by_peer
        seen["status"] = stream.reset_status
        try:
            await stream.write(b"late")
        except StreamClosedError:
            seen["write_failed"] = True
        done.set()

    async with serving(client, handler):
        sid = await client.open({"mode": "client-reset"})
        await client.write(sid, b"abc")
        await client.wait(lambda: "first" in seen)
        await client.put(encode_rst_stream(sid, CANCEL))
        await asyncio.wait_for(done.wait(), 5)
        assert seen == {
            "first": b"abc",
            "eof": b"",
            "by_peer": True,
            "status": CANCEL,
            "write_failed": True,
        }
        # Data after the reset is dropped without complaint.
        await client.put(encode_data(sid, b"ignored"))
        other = await client.open({"mode": "server-reset"})
        await client.wait(lambda: other in client.rst)
        assert client.rst[other] == CANCEL
        assert sid not in client.rst


async def test_goaway_ends_accept_and_close_sends_goaway() -> None:
    client = Client()
    session = SpdySession(client.recv, client.send)
    reader = asyncio.create_task(session.run())
    first = await client.open({}, reply=False)
    stream = await asyncio.wait_for(session.accept_stream(), 5)
    assert stream is not None and stream.id == first
    await client.put(encode_goaway(0))
    assert await asyncio.wait_for(session.accept_stream(), 5) is None
    assert session.goaway_received
    # Existing streams keep working after GOAWAY.
    await client.put(encode_data(first, b"still here"))
    assert await stream.read() == b"still here"
    await stream.write(b"reply")
    await client.wait(lambda: bytes(client.data[first]) == b"reply")
    await session.close()
    await asyncio.wait_for(reader, 5)
    assert client.goaways == [(first, 0)]
    assert await stream.read() == b""
    with pytest.raises(StreamClosedError):
        await stream.write(b"x")


async def test_transport_close_ends_session_and_streams() -> None:
    client = Client()
    session = SpdySession(client.recv, client.send)
    reader = asyncio.create_task(session.run())
    await client.open({}, reply=False)
    stream = await session.accept_stream()
    assert stream is not None
    pending_read = asyncio.create_task(stream.read())
    await client.put(encode_settings({7: 128 * KiB}), encode_window_update(stream.id, 10))
    await asyncio.sleep(0.01)
    assert stream.send_window == 128 * KiB + 10
    await client.close_transport()
    await asyncio.wait_for(reader, 5)
    assert await asyncio.wait_for(pending_read, 5) == b""
    assert session.closed and await session.accept_stream() is None


async def test_bad_stream_ids_are_refused() -> None:
    client = Client()
    async with serving(client, echo):
        await client.open({}, reply=False)  # 1
        client.next_id = 1
        await client.open({}, reply=False)  # 1 again
        client.next_id = 4
        await client.open({}, reply=False)  # even: server-initiated space
        await client.wait(lambda: len(client.rst) == 2)
        assert client.rst == {1: 1, 4: 1}
        # The header context survived the refused streams.
        client.next_id = 7
        ok = await client.open({"name": "after"})
        assert client.replies[ok]["echo"] == ["after"]


# --------------------------------------------------------------------------- port-forward


@contextlib.asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(64 * KiB):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def open_pair(client: Client, port: int, request_id: str) -> tuple[int, int]:
    """What kubectl does per local connection: error stream (half-closed), then data."""
    headers = {"streamtype": "error", "port": str(port), "requestid": request_id}
    error = await client.open(headers)
    await client.put(encode_data(error, b"", fin=True))
    data = await client.open({**headers, "streamtype": "data"})
    return error, data


async def test_port_forward_two_connections_one_tunnel() -> None:
    client = Client(split=random_split(5, 4000), flow_control=False)
    async with echo_server() as echo_port:
        connects: list[int] = []

        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            connects.append(port)
            return await asyncio.open_connection("127.0.0.1", echo_port)

        serving = asyncio.create_task(
            serve_port_forward(client.recv, client.send, connect, describe="web_default")
        )
        err1, data1 = await open_pair(client, 80, "0")
        err2, data2 = await open_pair(client, 80, "1")
        big1, big2 = payload(300 * KiB, 7), payload(250 * KiB, 8)
        await asyncio.gather(client.write(data1, big1), client.write(data2, big2))
        got1, got2 = await asyncio.gather(
            client.read(data1, len(big1)), client.read(data2, len(big2))
        )
        assert got1 == big1 and got2 == big2
        assert connects == [80, 80]
        # Connection 1: kubectl half-closes right after its last bytes; the pod echoes them
        # all and closes after EOF (our FIN); then kubectl resets the data stream.
        tail = payload(100 * KiB, 9)
        await client.write(data1, tail, fin=True)
        assert await client.read_until_fin(data1) == tail
        await client.put(encode_rst_stream(data1, CANCEL))
        await client.wait(lambda: err1 in client.fin)
        assert bytes(client.data[err1]) == b""
        # Connection 2 still works.
        await client.write(data2, b"ping?")
        assert await client.read(data2, 5) == b"ping?"
        assert err2 not in client.fin
        # Tunnel closes: everything is torn down and serve_port_forward returns.
        await client.close_transport()
        await asyncio.wait_for(serving, 5)


async def test_port_forward_refused_port_reports_on_error_stream() -> None:
    client = Client(flow_control=False)
    port = closed_port()

    async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port)

    serving = asyncio.create_task(
        serve_port_forward(client.recv, client.send, connect, describe="web_default, uid 42")
    )
    error, data = await open_pair(client, port, "0")
    await client.wait(lambda: error in client.fin and data in client.fin)
    message = bytes(client.data[error]).decode()
    assert message.startswith(f"error forwarding port {port} to pod web_default, uid 42: ")
    assert "refused" in message.lower() or "connect call failed" in message.lower()
    assert bytes(client.data[data]) == b""
    # Invalid streams are reset, not answered.
    bad = await client.open({"streamtype": "bogus", "port": "80", "requestid": "9"})
    assert bad in client.rst and bad not in client.replies
    await client.close_transport()
    await asyncio.wait_for(serving, 5)


async def test_client_session_opens_streams_and_keeps_data_sent_before_a_reset() -> None:
    """The client role (the kubelet toward the runtime's streaming server): SYN_STREAM with
    odd ids, SYN_REPLY awaited, FIN on our stream reads as EOF on the server, and data the
    server wrote just before resetting the stream (client-go's Close) stays readable."""
    up: asyncio.Queue[bytes | None] = asyncio.Queue()
    down: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def put(q: asyncio.Queue[bytes | None], data: bytes) -> None:
        q.put_nowait(data)

    client = SpdySession(down.get, lambda d: put(up, d), client=True)
    server = SpdySession(up.get, lambda d: put(down, d))

    async def serve(stream: Stream) -> None:
        if stream.header("streamtype") == "stdin":
            got = await stream.read_all()  # ends at the client's FIN
            await results.put(got)
        else:
            await stream.reply()
            await results.put(b"")
            await stream.write(b'{"status":"Success"}')
            await stream.reset(CANCEL)

    results: asyncio.Queue[bytes] = asyncio.Queue()
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.serve(serve))]
    try:
        error = await client.open_stream({"streamType": "error"})
        stdin = await client.open_stream({"streamType": "stdin"}, wait_reply=False)
        assert (error.id, stdin.id) == (1, 3)
        assert await results.get() == b""
        await stdin.write(b"hello")
        await stdin.close()
        assert await results.get() == b"hello"
        reading = asyncio.create_task(error.read_all())
        await asyncio.sleep(0.01)
        assert error.is_reset and error.reset_by_peer
        assert not reading.done()  # data may still follow a reset from the runtime
        down.put_nowait(None)  # the runtime ends the session
        assert await asyncio.wait_for(reading, 1) == b'{"status":"Success"}'
    finally:
        await client.close()
        await server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_client_keeps_data_when_credit_cannot_be_sent_back() -> None:
    """The peer wrote 100 KiB and hung up: reading it makes us send WINDOW_UPDATEs into a
    broken transport, which must not drop what already arrived (kubectl cp from a pod)."""
    from skiff.streaming.spdyframes import encode_syn_reply

    incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        if sent:
            raise BrokenPipeError("the peer hung up")
        sent.append(data)  # our SYN_STREAM goes out; nothing after it does

    client = SpdySession(incoming.get, send, client=True)
    runner = asyncio.create_task(client.run())
    payload = bytes(range(256)) * 400
    opening = asyncio.create_task(client.open_stream({"streamType": "stdout"}))
    await asyncio.sleep(0)
    incoming.put_nowait(encode_syn_reply(HeaderCompressor().compress({}), 1))
    stream = await opening
    for i in range(0, len(payload), 16 * KiB):
        incoming.put_nowait(encode_data(1, payload[i : i + 16 * KiB]))
    while not incoming.empty():  # every frame is in the stream's buffer; the session runs on
        await asyncio.sleep(0)
    got = await stream.read(len(payload) // 2)  # past the threshold: credit is sent, and fails
    incoming.put_nowait(encode_rst_stream(1, CANCEL))
    incoming.put_nowait(None)
    await runner
    assert got + await stream.read_all() == payload


async def test_client_reads_data_that_arrives_after_the_peers_reset() -> None:
    """spdystream writes RST_STREAM at once but queues DATA by priority: an exec's last
    output (or its exit status) may follow the reset. The client reads it until the
    runtime ends the session."""
    from skiff.streaming.spdyframes import encode_syn_reply

    incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(_data: bytes) -> None:
        return None

    client = SpdySession(incoming.get, send, client=True)
    runner = asyncio.create_task(client.run())
    opening = asyncio.create_task(client.open_stream({"streamType": "error"}))
    await asyncio.sleep(0)
    incoming.put_nowait(encode_syn_reply(HeaderCompressor().compress({}), 1))
    stream = await opening
    reading = asyncio.create_task(stream.read_all())
    incoming.put_nowait(encode_data(1, b'{"status":'))
    incoming.put_nowait(encode_rst_stream(1, CANCEL))
    await asyncio.sleep(0.01)
    assert not reading.done()  # a reset from the runtime is not the end yet
    incoming.put_nowait(encode_data(1, b'"Failure"}'))
    incoming.put_nowait(None)  # the runtime closes the connection
    await runner
    assert await asyncio.wait_for(reading, 1) == b'{"status":"Failure"}'


async def test_client_without_receive_flow_control_sends_no_window_update() -> None:
    """A peer that ignores WINDOW_UPDATE (the runtime's spdystream) must get none: left
    unread in its socket when it closes, they turn its close into a TCP reset that throws
    away the end of an exec's output (seen as ``kubectl cp``'s "unexpected EOF")."""
    from skiff.streaming.spdyframes import encode_syn_reply

    incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    client = SpdySession(incoming.get, send, client=True, recv_flow_control=False)
    runner = asyncio.create_task(client.run())
    opening = asyncio.create_task(client.open_stream({"streamType": "stdout"}))
    await asyncio.sleep(0)
    incoming.put_nowait(encode_syn_reply(HeaderCompressor().compress({}), 1))
    stream = await opening
    blob = payload(300 * KiB)
    for i in range(0, len(blob), 16 * KiB):
        incoming.put_nowait(encode_data(1, blob[i : i + 16 * KiB], fin=i + 16 * KiB >= len(blob)))
    assert await stream.read_all() == blob
    assert len(sent) == 1  # the SYN_STREAM, and nothing after it
    incoming.put_nowait(None)
    await runner
