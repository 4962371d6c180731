"""The kubelet's connection to the runtime's streaming server keeps every byte that
arrived before the runtime reset the connection (``asyncio.StreamReader`` raises the
reset before handing out what it had buffered)."""

from __future__ import annotations

import asyncio
import socket
import struct

from skiff.kubelet.remotecommand import _ChunkProtocol


async def test_chunks_before_a_reset_are_delivered_then_the_end() -> None:
    blob = bytes(range(256)) * 200  # 50 KiB: StreamReader would lose all of it

    async def serve(_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(blob)
        await writer.drain()
        await asyncio.sleep(0.2)  # all of it has reached the client's connection
        sock = writer.get_extra_info("socket")
        # Close with a reset (SO_LINGER 0), as a peer with unread data in its socket does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(_ChunkProtocol, "127.0.0.1", port)
    await asyncio.sleep(0.4)  # the data, then the reset, have arrived
    got = bytearray()
    while (chunk := await conn.recv()) is not None:
        got += chunk
    assert bytes(got) == blob
    assert await conn.recv() is None  # the end stays the end
    server.close()


async def test_closing_stdin_after_the_command_ended_does_not_end_the_relay() -> None:
    """kubectl closes stdin at its EOF, which may come just after the command exited and the
    runtime closed its side: that must not end the client's half early (the exit Status
    would then never be relayed)."""
    from skiff.kubelet.remotecommand import CLOSE, STDIN, _copy_in
    from skiff.streaming.spdyframes import StreamClosedError

    class Channels:
        def __init__(self) -> None:
            self.messages = [(CLOSE, bytes([STDIN])), (STDIN, b"late keys")]

        async def receive(self) -> tuple[int, bytes] | None:
            return self.messages.pop(0) if self.messages else None

    class Closed:
        async def close(self) -> None:
            raise StreamClosedError("transport send failed: connection reset")

        async def write(self, data: bytes) -> None:
            raise StreamClosedError("session closed")

    await _copy_in(Channels(), {"stdin": Closed()})  # type: ignore[arg-type, dict-item]
