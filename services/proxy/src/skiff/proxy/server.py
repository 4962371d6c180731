"""The proxy's HTTP endpoint (10256 by default, as kube-proxy's healthz port).

``/healthz`` answers 200 while rules are current and 503 when a sync is overdue, with
kube-proxy's JSON body (``lastUpdated``, ``currentTime``); ``/livez`` the same;
``/metrics`` the Prometheus metrics.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from skiff.component import http_server, metrics_response
from skiff.proxy.controller import ProxyController


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def app(controller: ProxyController) -> Starlette:
    async def healthz(_: Request) -> Response:
        now = time.time()
        last = now - (time.monotonic() - controller.last_sync) if controller.last_sync else 0.0
        body = {"lastUpdated": _iso(last) if last else "", "currentTime": _iso(now)}
        return JSONResponse(body, status_code=200 if controller.healthy() else 503)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/livez", healthz),
            Route("/metrics", metrics_response),
        ]
    )


def server(controller: ProxyController, host: str, port: int) -> uvicorn.Server:
    return http_server(app(controller), host, port)
