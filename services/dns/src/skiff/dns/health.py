"""CoreDNS' side ports: ``/health`` (8080: the process answers) and ``/ready`` (8181: the
caches are synced), and Prometheus ``/metrics`` on both."""

from __future__ import annotations

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from skiff.dns.controller import DnsController


def app(controller: DnsController) -> Starlette:
    async def health(_: Request) -> Response:
        return PlainTextResponse("OK")

    async def ready(_: Request) -> Response:
        ok = controller.ready
        return PlainTextResponse("OK" if ok else "not synced", status_code=200 if ok else 503)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)]
    )


def server(controller: DnsController, host: str, port: int) -> uvicorn.Server:
    s = uvicorn.Server(
        uvicorn.Config(
            app(controller),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    s.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return s
