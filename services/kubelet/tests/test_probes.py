"""The kubelet's prober without containerd: each handler against a real server on
loopback (HTTP, TCP, gRPC health), exec against a stand-in CRI, and the probe manager's
thresholds, start-up gating and initial verdicts with a fake prober and clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from skiff.cri.client import CriError
from skiff.kubelet.probes import (
    LIVENESS,
    READINESS,
    STARTUP,
    ProbeManager,
    Prober,
    resolve_port,
)


@contextlib.asynccontextmanager
async def http_server(
    answer: Callable[[bytes], bytes | None],
) -> AsyncIterator[tuple[int, list[bytes]]]:
    """A one-line HTTP server on loopback; ``answer(request)`` gives the raw response
    (None: never answer). Yields the port and the requests seen."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:  # a TCP probe: connect, then close
            writer.close()
            return
        seen.append(request)
        response = answer(request)
        if response is None:
            await asyncio.sleep(30)
        else:
            writer.write(response)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()


def status(code: int) -> Callable[[bytes], bytes]:
    return lambda _: f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode()


@dataclass
class ExecResult:
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0


class StubCri:
    """``exec_sync`` answers from a script (an ExecResult or an exception to raise)."""

    def __init__(self, answer: ExecResult | Exception) -> None:
        self.answer = answer
        self.calls: list[tuple[str, list[str], float]] = []

    async def exec_sync(self, cid: str, cmd: list[str], timeout: float) -> ExecResult:
        self.calls.append((cid, cmd, timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def prober(cri: Any = None) -> Prober:
    return Prober(cri or StubCri(ExecResult()))


CONTAINER = {"name": "app", "ports": [{"name": "http", "containerPort": 8080}]}


def test_resolve_port() -> None:
    assert resolve_port(80, CONTAINER) == 80
    assert resolve_port("81", CONTAINER) == 81
    assert resolve_port("http", CONTAINER) == 8080
    with pytest.raises(ValueError, match="unknown port name 'grpc'"):
        resolve_port("grpc", CONTAINER)


async def test_http_get_success_and_failure_codes() -> None:
    for code, ok in ((200, True), (302, True), (399, True), (400, False), (500, False)):
        async with http_server(status(code)) as (port, _):
            result = await prober().run(
                {"httpGet": {"port": port, "path": "/healthz"}}, CONTAINER, "c1", "127.0.0.1"
            )
        assert result[0] is ok, (code, result)
        if not ok:
            assert result[1] == f"HTTP probe failed with statuscode: {code}"


async def test_http_get_sends_kube_probe_headers_and_the_probe_s_own() -> None:
    async with http_server(status(200)) as (port, seen):
        probe = {
            "httpGet": {
                "port": port,
                "path": "/ready?x=1",
                "httpHeaders": [
                    {"name": "Host", "value": "web.example"},
                    {"name": "X-A", "value": "b"},
                ],
            }
        }
        assert await prober().run(probe, CONTAINER, "c1", "127.0.0.1") == (True, "")
    request = seen[0].decode()
    assert request.startswith("GET /ready?x=1 HTTP/1.1\r\n")
    assert "User-Agent: kube-probe/1.32\r\n" in request
    assert "Host: web.example\r\n" in request and request.count("Host:") == 1
    assert "X-A: b\r\n" in request


async def test_http_get_malformed_answer_fails() -> None:
    async with http_server(lambda _: b"nonsense\r\n\r\n") as (port, _):
        ok, message = await prober().run({"httpGet": {"port": port}}, CONTAINER, "c1", "127.0.0.1")
    assert not ok and message.startswith("malformed HTTP response")


async def test_http_get_times_out_after_timeout_seconds() -> None:
    async with http_server(lambda _: None) as (port, _):
        ok, message = await prober().run(
            {"httpGet": {"port": port}, "timeoutSeconds": 1}, CONTAINER, "c1", "127.0.0.1"
        )
    assert (ok, message) == (False, "probe timed out after 1s")


async def test_tcp_socket_open_and_refused() -> None:
    async with http_server(status(200)) as (port, _):
        assert await prober().run({"tcpSocket": {"port": port}}, CONTAINER, "c1", "127.0.0.1") == (
            True,
            "",
        )
    # The server is closed: the same port now refuses.
    ok, message = await prober().run({"tcpSocket": {"port": port}}, CONTAINER, "c1", "127.0.0.1")
    assert (ok, message) == (False, f"dial tcp 127.0.0.1:{port}: connect: connection refused")


async def test_named_port_that_does_not_exist_fails_the_probe() -> None:
    ok, message = await prober().run({"tcpSocket": {"port": "nope"}}, CONTAINER, "c1", "10.0.0.1")
    assert (ok, message) == (False, "unknown port name 'nope'")


async def test_exec_exit_codes_output_and_timeout() -> None:
    cri = StubCri(ExecResult(stdout=b"all good\n"))
    probe = {"exec": {"command": ["check"]}, "timeoutSeconds": 2}
    assert await Prober(cri).run(probe, CONTAINER, "c1", "") == (True, "all good")  # type: ignore[arg-type]
    assert cri.calls == [("c1", ["check"], 2.0)]

    cri = StubCri(ExecResult(stderr=b"disk full", exit_code=1))
    assert await Prober(cri).run(probe, CONTAINER, "c1", "") == (False, "disk full")  # type: ignore[arg-type]
    cri = StubCri(ExecResult(exit_code=7))
    assert await Prober(cri).run(probe, CONTAINER, "c1", "") == (  # type: ignore[arg-type]
        False,
        "command exited with 7",
    )

    # A command that runs past timeoutSeconds fails the probe; the runtime's other errors
    # carry their message.
    cri = StubCri(CriError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"))
    assert await Prober(cri).run(probe, CONTAINER, "c1", "") == (  # type: ignore[arg-type]
        False,
        "command timed out after 2s",
    )
    cri = StubCri(CriError(grpc.StatusCode.NOT_FOUND, "container gone"))
    assert await Prober(cri).run(probe, CONTAINER, "c1", "") == (False, "container gone")  # type: ignore[arg-type]


async def test_probe_without_handler_fails() -> None:
    assert await prober().run({"periodSeconds": 1}, CONTAINER, "c1", "") == (
        False,
        "probe has no handler",
    )


class _Health(grpc.GenericRpcHandler):
    """grpc.health.v1.Health/Check: SERVING for "" and "db", NOT_SERVING for the rest."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != "/grpc.health.v1.Health/Check":
            return None

        def check(request: bytes, _: grpc.ServicerContext) -> bytes:
            name = request[2:].decode() if request else ""
            return b"\x08\x01" if name in ("", "db") else b"\x08\x02"

        return grpc.unary_unary_rpc_method_handler(
            check, request_deserializer=lambda b: b, response_serializer=lambda b: b
        )


async def test_grpc_health_check() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Health(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        p = prober()
        for service, expected in (
            ("", (True, "")),
            ("db", (True, "")),
            ("cache", (False, "service unhealthy (responded with 2)")),
        ):
            probe = {"grpc": {"port": port, "service": service}}
            assert await p.run(probe, CONTAINER, "c1", "127.0.0.1") == expected
    finally:
        await server.stop(None)
    ok, message = await prober().run({"grpc": {"port": port}}, CONTAINER, "c1", "127.0.0.1")
    assert not ok and message.startswith("rpc error: code = UNAVAILABLE")


# -- the manager ---------------------------------------------------------------------------


class ScriptedProber:
    """Answers each (container, kind) from a list of outcomes; the last one repeats."""

    def __init__(self, script: dict[str, list[bool]]) -> None:
        self.script = script
        self.runs: list[str] = []

    async def run(self, probe: dict[str, Any], *_: Any) -> tuple[bool, str]:
        kind = probe["kind"]
        self.runs.append(kind)
        outcomes = self.script[kind]
        ok = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        return ok, "" if ok else f"{kind} failed"


async def _yield(_: float) -> None:
    await asyncio.sleep(0)


async def _until(cond: Callable[[], bool], rounds: int = 2000) -> None:
    for _ in range(rounds):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def _container(**probes: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "app"}
    for kind, probe in probes.items():
        c[f"{kind}Probe"] = {"kind": kind, **probe}
    return c


async def test_initial_verdicts_and_failure_threshold() -> None:
    script = ScriptedProber({LIVENESS: [True, False, False, False], READINESS: [True]})
    manager = ProbeManager(script, sleep=_yield)  # type: ignore[arg-type]
    changes: list[str] = []
    container = _container(liveness={"failureThreshold": 3}, readiness={})
    # Before any run: readiness starts failed, liveness undecided (not failed).
    manager.ensure("uid", container, "c1", "", 0, lambda: changes.append("x"))
    assert manager.result("c1", READINESS).ok is False  # type: ignore[union-attr]
    assert manager.result("c1", LIVENESS).ok is None  # type: ignore[union-attr]
    await _until(lambda: manager.result("c1", LIVENESS).ok is False)  # type: ignore[union-attr]
    live = manager.result("c1", LIVENESS)
    assert live is not None and live.failures == 3 and live.message == "liveness failed"
    # One success, then three failures: exactly four liveness runs, and the task ends
    # (the container is restarted and a new task follows).
    assert script.runs.count(LIVENESS) == 4
    assert manager.result("c1", READINESS).ok is True  # type: ignore[union-attr]
    assert len(changes) >= 3  # liveness up, readiness up, liveness down
    manager.stop_all()


async def test_success_threshold_needs_consecutive_successes() -> None:
    script = ScriptedProber({READINESS: [True, False, True, True, True]})
    manager = ProbeManager(script, sleep=_yield)  # type: ignore[arg-type]
    manager.ensure("uid", _container(readiness={"successThreshold": 3}), "c1", "", 0, lambda: None)
    await _until(lambda: manager.result("c1", READINESS).ok is True)  # type: ignore[union-attr]
    assert script.runs.count(READINESS) == 5
    manager.stop_all()


async def test_liveness_and_readiness_wait_for_the_startup_probe() -> None:
    script = ScriptedProber({STARTUP: [False, False, True], LIVENESS: [True], READINESS: [True]})
    manager = ProbeManager(script, sleep=_yield)  # type: ignore[arg-type]
    container = _container(startup={"failureThreshold": 10}, liveness={}, readiness={})
    manager.ensure("uid", container, "c1", "", 0, lambda: None)
    await _until(lambda: manager.result("c1", STARTUP).ok is True)  # type: ignore[union-attr]
    first_other = min(i for i, k in enumerate(script.runs) if k != STARTUP)
    assert script.runs[:first_other] == [STARTUP] * 3
    await _until(lambda: manager.result("c1", READINESS).ok is True)  # type: ignore[union-attr]
    manager.stop_all()


async def test_initial_delay_counts_from_the_container_start() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    script = ScriptedProber({READINESS: [True]})
    manager = ProbeManager(script, clock=lambda: 1004.0, sleep=sleep)  # type: ignore[arg-type]
    container = _container(readiness={"initialDelaySeconds": 10, "periodSeconds": 5})
    manager.ensure("uid", container, "c1", "", 1000.0, lambda: None)
    await _until(lambda: bool(script.runs))
    assert slept[0] == 6.0  # 10 s after the start, 4 s of which have passed
    await _until(lambda: len(slept) > 1)
    assert slept[1] == 5.0
    manager.stop_all()


async def test_stop_pod_keeps_the_named_containers() -> None:
    script = ScriptedProber({READINESS: [True]})

    async def slow(_: float) -> None:
        await asyncio.sleep(3600)

    manager = ProbeManager(script, sleep=slow)  # type: ignore[arg-type]
    manager.ensure("uid", _container(readiness={}), "c1", "", 0, lambda: None)
    manager.ensure("uid", _container(readiness={}), "c2", "", 0, lambda: None)
    manager.ensure("other", _container(readiness={}), "c3", "", 0, lambda: None)
    manager.stop_pod("uid", keep={"c2"})
    assert manager.result("c1", READINESS) is None
    assert manager.result("c2", READINESS) is not None
    assert manager.result("c3", READINESS) is not None
    manager.stop({"c2"})
    assert manager.result("c2", READINESS) is None
    manager.stop_all()
    assert manager.result("c3", READINESS) is None
