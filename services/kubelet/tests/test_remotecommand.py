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
