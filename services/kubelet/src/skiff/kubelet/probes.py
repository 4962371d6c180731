"""Container probes: exec, httpGet, tcpSocket and gRPC, run by one task per probe.

As the kubelet's prober: a liveness or readiness probe waits until the startup probe (if
any) has succeeded; results flip only after ``successThreshold`` / ``failureThreshold``
consecutive outcomes; readiness starts out failed, liveness and startup start out
"unknown" (not failed). Every flip calls ``on_change`` so the pod worker re-syncs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import grpc

from skiff.cri.client import CriClient, CriError
from skiff.log import get_logger

log = get_logger(__name__)

LIVENESS, READINESS, STARTUP = "liveness", "readiness", "startup"


@dataclass
class ProbeResult:
    """The current verdict of one probe, with the output of the last failure."""

    ok: bool | None = None  # None: not decided yet
    message: str = ""
    failures: int = 0


@dataclass
class _Worker:
    task: asyncio.Task[None]
    pod_uid: str
    result: ProbeResult = field(default_factory=ProbeResult)


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"unknown port name {port!r}")


def dial_error(host: str, port: int, e: OSError) -> str:
    """Go's wording for a failed connect, which probe failure events carry in Kubernetes."""
    why = os.strerror(e.errno).lower() if e.errno else str(e) or type(e).__name__
    return f"dial tcp {host}:{port}: connect: {why}"


async def _connect(
    host: str, port: int, timeout: float, ssl_context: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port, ssl=ssl_context), timeout)
    except ConnectionError as e:
        raise ConnectionError(dial_error(host, port, e)) from e


async def http_get(
    host: str, port: int, path: str, *, https: bool, headers: list[dict[str, str]], timeout: float
) -> tuple[bool, str]:
    """One HTTP GET; success is a status in [200, 400) as for the kubelet's httpGet probe."""
    ctx = None
    if https:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await _connect(host, port, timeout, ctx)
    try:
        names = {h["name"].lower() for h in headers}
        lines = [f"GET {path or '/'} HTTP/1.1"]
        if "host" not in names:
            lines.append(f"Host: {host}:{port}")
        if "user-agent" not in names:
            lines.append("User-Agent: kube-probe/1.32")
        if "accept" not in names:
            lines.append("Accept: */*")
        lines += [f"{h['name']}: {h['value']}" for h in headers]
        lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout)
        parts = status_line.decode("latin-1").split()
        if len(parts) < 2 or not parts[1].isdigit():
            return False, f"malformed HTTP response {status_line[:80]!r}"
        code = int(parts[1])
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def grpc_health(host: str, port: int, service: str, timeout: float) -> tuple[bool, str]:
    """grpc.health.v1.Health/Check; SERVING (1) is success."""
    request = b"" if not service else b"\x0a" + bytes([len(service)]) + service.encode()
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        try:
            resp: bytes = await check(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            return False, f"rpc error: code = {e.code().name} desc = {e.details()}"
    status = resp[1] if len(resp) >= 2 and resp[0] == 0x08 else 0
    if status == 1:
        return True, ""
    return False, f"service unhealthy (responded with {status})"


class Prober:
    """Runs one probe once against a container."""

    def __init__(self, cri: CriClient) -> None:
        self.cri = cri

    async def run(
        self, probe: dict[str, Any], container: dict[str, Any], container_id: str, pod_ip: str
    ) -> tuple[bool, str]:
        timeout = float(probe.get("timeoutSeconds") or 1)
        try:
            if ex := probe.get("exec"):
                res = await self.cri.exec_sync(container_id, ex.get("command") or [], timeout)
                out = (res.stdout + res.stderr).decode(errors="replace").strip()
                if res.exit_code == 0:
                    return True, out
                return False, out or f"command exited with {res.exit_code}"
            if hg := probe.get("httpGet"):
                return await http_get(
                    hg.get("host") or pod_ip,
                    resolve_port(hg["port"], container),
                    hg.get("path") or "/",
                    https=(hg.get("scheme") or "HTTP").upper() == "HTTPS",
                    headers=hg.get("httpHeaders") or [],
                    timeout=timeout,
                )
            if tcp := probe.get("tcpSocket"):
                port = resolve_port(tcp["port"], container)
                _, writer = await _connect(tcp.get("host") or pod_ip, port, timeout)
                writer.close()
                return True, ""
            if g := probe.get("grpc"):
                return await grpc_health(pod_ip, int(g["port"]), g.get("service") or "", timeout)
        except TimeoutError:
            return False, f"probe timed out after {timeout:g}s"
        except CriError as e:
            if e.deadline_exceeded:
                return False, f"command timed out after {timeout:g}s"
            return False, e.message
        except (OSError, ValueError) as e:
            return False, str(e) or type(e).__name__
        return False, "probe has no handler"


class ProbeManager:
    """One asyncio task per (container id, probe kind); results read by the pod worker."""

    def __init__(
        self,
        prober: Prober,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.prober = prober
        self._clock = clock
        self._sleep = sleep
        self._workers: dict[tuple[str, str], _Worker] = {}

    def result(self, container_id: str, kind: str) -> ProbeResult | None:
        w = self._workers.get((container_id, kind))
        return w.result if w else None

    def ensure(
        self,
        pod_uid: str,
        container: dict[str, Any],
        container_id: str,
        pod_ip: str,
        started_at: float,
        on_change: Callable[[], None],
    ) -> None:
        """Start the probe tasks a running container needs (no-op when they run)."""
        for kind in (STARTUP, LIVENESS, READINESS):
            probe = container.get(f"{kind}Probe")
            if not probe or (container_id, kind) in self._workers:
                continue
            result = ProbeResult(ok=False if kind == READINESS else None)
            task = asyncio.create_task(
                self._loop(kind, probe, container, container_id, pod_ip, started_at, on_change),
                name=f"probe-{kind}-{container_id[:12]}",
            )
            self._workers[(container_id, kind)] = _Worker(task, pod_uid, result)

    def stop(self, container_ids: set[str]) -> None:
        """Stop the probes of these containers."""
        for key in [k for k in self._workers if k[0] in container_ids]:
            self._workers.pop(key).task.cancel()

    def stop_pod(self, pod_uid: str, keep: Collection[str] = ()) -> None:
        """Stop the probes of a pod's containers, except those in ``keep``."""
        for key, w in list(self._workers.items()):
            if w.pod_uid == pod_uid and key[0] not in keep:
                self._workers.pop(key).task.cancel()

    def stop_all(self) -> None:
        for w in self._workers.values():
            w.task.cancel()
        self._workers.clear()

    async def _loop(
        self,
        kind: str,
        probe: dict[str, Any],
        container: dict[str, Any],
        container_id: str,
        pod_ip: str,
        started_at: float,
        on_change: Callable[[], None],
    ) -> None:
        period = max(1.0, float(probe.get("periodSeconds") or 10))
        success_threshold = int(probe.get("successThreshold") or 1)
        failure_threshold = int(probe.get("failureThreshold") or 3)
        delay = float(probe.get("initialDelaySeconds") or 0) - (self._clock() - started_at)
        if delay > 0:
            await self._sleep(delay)
        me = self._workers[(container_id, kind)].result
        successes = failures = 0
        while True:
            if kind != STARTUP:
                startup = self.result(container_id, STARTUP)
                if startup is not None and not startup.ok:
                    await self._sleep(min(period, 1.0))
                    continue
            ok, message = await self.prober.run(probe, container, container_id, pod_ip)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
            new = me.ok
            if ok and successes >= success_threshold:
                new = True
            elif not ok and failures >= failure_threshold:
                new = False
            me.failures = failures
            if not ok:
                me.message = message
            if new != me.ok:
                me.ok = new
                log.info(
                    "probe result changed",
                    probe=kind,
                    container=container["name"],
                    ok=new,
                    message=message[:200],
                )
                on_change()
            if kind == STARTUP and me.ok is not None:
                return  # done: succeeded, or failed and the container is being restarted
            if kind == LIVENESS and me.ok is False:
                return  # the container is about to be restarted; a new task follows
            await self._sleep(period)
