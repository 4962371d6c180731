"""Service health check node ports (kube-proxy's service health server).

For each Service with ``externalTrafficPolicy: Local`` and a ``healthCheckNodePort``, an
HTTP server on that port of every node address answers whether this node has local
endpoints: 200 with their count, 503 with none, so an external load balancer sends
traffic only to nodes that keep the client's address and still have a pod to send it to.
The body is kube-proxy's::

    {"service": {"namespace": "default", "name": "web"}, "localEndpoints": 1,
     "serviceProxyHealthy": true}
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson

from skiff.log import get_logger

log = get_logger(__name__)

Target = tuple[str, str, int]
"""(namespace, name, local endpoints)."""


class HealthCheckServers:
    """Starts and stops one small HTTP server per health check node port."""

    def __init__(self, host: str = "0.0.0.0") -> None:
        self.host = host
        self._servers: dict[int, asyncio.Server] = {}
        self._targets: dict[int, Target] = {}

    @property
    def ports(self) -> list[int]:
        return sorted(self._servers)

    async def sync(self, wanted: dict[int, Target]) -> None:
        """Serve exactly ``wanted`` (port → its Service and local endpoint count)."""
        self._targets = dict(wanted)
        for port in [p for p in self._servers if p not in wanted]:
            server = self._servers.pop(port)
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for port in wanted:
            if port in self._servers:
                continue
            try:
                self._servers[port] = await asyncio.start_server(
                    lambda r, w, p=port: self._answer(r, w, p), self.host, port
                )
            except OSError as e:
                # Logged every sync until it can bind: another process holds the port.
                log.error("cannot serve health check node port", port=port, error=str(e))

    async def close(self) -> None:
        await self.sync({})

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            writer.close()
            return
        ns, name, local = self._targets.get(port, ("", "", 0))
        body = orjson.dumps(
            {
                "service": {"namespace": ns, "name": name},
                "localEndpoints": local,
                "serviceProxyHealthy": True,
            }
        )
        status = "200 OK" if local > 0 else "503 Service Unavailable"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            writer.write(head.encode() + body)
            await writer.drain()
        writer.close()
