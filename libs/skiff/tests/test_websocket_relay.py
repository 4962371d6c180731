"""``skiff.streaming.websocket.relay``: the exit Status of an exec outlives a client write
that races the upstream's close."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.streaming.websocket import relay


class _Upstream:
    """A kubelet session that sends its Status a moment after it stopped taking input."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, msg: Any) -> None:
        raise ConnectionError("the upstream closed")

    def __aiter__(self) -> _Upstream:
        self._left = [b"\x03" + b'{"status":"Failure","reason":"NonZeroExitCode"}']
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0.1)
        if not self._left:
            raise StopAsyncIteration
        return self._left.pop()


class _Client:
    """kubectl: one keystroke, then it waits for the session's end."""

    def __init__(self) -> None:
        self.got: list[bytes] = []
        self._keys = [{"type": "websocket.receive", "bytes": b"\x00x"}]

    async def receive(self) -> dict[str, Any]:
        if self._keys:
            return self._keys.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send_bytes(self, data: bytes) -> None:
        self.got.append(data)

    async def send_text(self, data: str) -> None:
        self.got.append(data.encode())

    async def close(self, code: int = 1000) -> None:
        pass


def test_the_status_reaches_the_client_after_a_racing_write() -> None:
    client = _Client()
    asyncio.run(asyncio.wait_for(relay(client, _Upstream()), 5))  # type: ignore[arg-type]
    assert client.got and client.got[-1].startswith(b"\x03")
    assert b"NonZeroExitCode" in client.got[-1]


class _Quick:
    """A command that answers at once and ends."""

    def __init__(self) -> None:
        self._left = [b"\x01hello\n"]

    async def send(self, msg: Any) -> None:
        pass

    def __aiter__(self) -> _Quick:
        return self

    async def __anext__(self) -> bytes:
        if not self._left:
            raise StopAsyncIteration
        return self._left.pop()


class _Silent(_Client):
    """kubectl without a terminal: it never writes."""

    def __init__(self) -> None:
        super().__init__()
        self._keys = []


def test_the_first_output_waits_for_the_client_or_the_hold() -> None:
    loop_time: list[float] = []

    async def timed(client: _Client) -> None:
        started = asyncio.get_running_loop().time()
        await relay(client, _Quick(), hold=0.3)  # type: ignore[arg-type]
        loop_time.append(asyncio.get_running_loop().time() - started)

    silent = _Silent()
    asyncio.run(asyncio.wait_for(timed(silent), 5))
    assert silent.got == [b"\x01hello\n"] and loop_time[0] >= 0.29
    talking = _Client()  # sends its terminal size at once: no wait
    asyncio.run(asyncio.wait_for(timed(talking), 5))
    assert talking.got == [b"\x01hello\n"] and loop_time[1] < 0.2
