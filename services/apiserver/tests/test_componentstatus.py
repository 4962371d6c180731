"""ComponentStatus: the scheduler's and the controller manager's ``/healthz`` and etcd
probed on each read, printed as ``kubectl get cs`` shows them."""

from __future__ import annotations

import asyncio
import socket

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver import componentstatus
from skiff.apiserver.printers import table_for
from skiff.apiserver.storage.memory import MemoryBackend


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def healthz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await writer.drain()
    writer.close()


async def test_statuses_of_a_live_and_a_dead_component(monkeypatch: pytest.MonkeyPatch) -> None:
    server = await asyncio.start_server(healthz, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    dead = free_port()
    monkeypatch.setattr(componentstatus, "SERVERS", {
        "controller-manager": f"http://127.0.0.1:{dead}/healthz",
        "scheduler": f"http://127.0.0.1:{port}/healthz",
    })  # fmt: skip
    async with server:
        items = await componentstatus.component_statuses(MemoryBackend())
    assert [i["metadata"]["name"] for i in items] == ["controller-manager", "etcd-0", "scheduler"]
    assert items[2]["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
    assert items[1]["conditions"] == [{"type": "Healthy", "status": "True", "message": "ok"}]
    [down] = items[0]["conditions"]
    assert down["status"] == "Unknown"
    assert down["error"] == (
        f'Get "http://127.0.0.1:{dead}/healthz": dial tcp 127.0.0.1:{dead}: connect: '
        "connection refused"
    )
    info = REGISTRY.core("componentstatuses")
    rows = [r["cells"] for r in table_for(info, items)["rows"]]
    assert rows[0][:3] == ["controller-manager", "Unhealthy", ""]
    assert rows[1:] == [["etcd-0", "Healthy", "ok", ""], ["scheduler", "Healthy", "ok", ""]]
    with pytest.raises(ApiError) as e:
        await componentstatus.component_status(MemoryBackend(), "kubelet")
    assert e.value.code == 404
