"""CoreDNS' side ports: ``/health`` (8080: the process answers) and ``/ready`` (8181: the
caches are synced), and Prometheus ``/metrics`` on both."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from skiff.component import http_server, metrics_response
from skiff.dns.controller import DnsController


def app(controller: DnsController) -> Starlette:
    async def health(_: Request) -> Response:
        return PlainTextResponse("OK")

    async def ready(_: Request) -> Response:
        ok = controller.ready
        return PlainTextResponse("OK" if ok else "not synced", status_code=200 if ok else 503)

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/ready", ready),
            Route("/metrics", metrics_response),
        ]
    )


def server(controller: DnsController, host: str, port: int) -> uvicorn.Server:
    return http_server(app(controller), host, port)
