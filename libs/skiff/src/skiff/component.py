"""What every control-plane component's ``__main__`` shares: API connection flags,
leader election flags and loop, the ``/healthz`` + ``/metrics`` server, signal handling."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal
from collections.abc import Awaitable, Callable, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from skiff import healthz
from skiff.client.kubeconfig import SERVICE_ACCOUNT_DIR, in_cluster_config
from skiff.client.leaderelection import LeaderElector
from skiff.client.rest import ApiClient
from skiff.log import get_logger, setup_logging
from skiff.tracing import setup_tracing

log = get_logger(__name__)

LEADER = Gauge("leader_election_master_status", "1 while this instance leads", ["name"])


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def add_common_args(
    p: argparse.ArgumentParser,
    *,
    port: int,
    port_env: str,
    lease_name: str,
    lease_duration: float = 15.0,
    renew_deadline: float = 10.0,
    retry_period: float = 2.0,
) -> None:
    """``--kubeconfig``/``--server``, ``--leader-elect*``, ``--bind-address``, ``--port``
    (``/healthz`` and ``/metrics``; 0 turns it off) and ``--log-level``."""
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--server",
        default=os.environ.get("SKIFF_SERVER"),
        help="API server URL (instead of a kubeconfig)",
    )
    p.add_argument(
        "--leader-elect", default=env("SKIFF_LEADER_ELECT", "true"), choices=("true", "false")
    )
    p.add_argument("--leader-elect-resource-namespace", default="kube-system")
    p.add_argument("--leader-elect-resource-name", default=lease_name)
    p.add_argument("--leader-elect-lease-duration", type=float, default=lease_duration)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=renew_deadline)
    p.add_argument("--leader-elect-retry-period", type=float, default=retry_period)
    p.add_argument("--bind-address", default=env("SKIFF_BIND_ADDRESS", "127.0.0.1"))
    p.add_argument(
        "--port",
        "--secure-port",
        dest="port",
        type=int,
        default=int(env(port_env, str(port))),
        help="port for /healthz and /metrics (0: off)",
    )
    p.add_argument("--log-level", default=env("SKIFF_LOG_LEVEL", "info"))


def api_client(a: argparse.Namespace, user_agent: str) -> ApiClient:
    """A client from ``--server``, else the kubeconfig, else, inside a pod without either,
    the pod's own service account (:func:`~skiff.client.kubeconfig.in_cluster_config`:
    the ``kubernetes`` Service the kubelet names in ``KUBERNETES_SERVICE_HOST``, over TLS
    with the mounted token and CA)."""
    if a.server:
        return ApiClient(a.server, user_agent=user_agent)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if not a.kubeconfig and not os.environ.get("KUBECONFIG") and host:
        if (SERVICE_ACCOUNT_DIR / "token").is_file():
            return ApiClient.from_config(in_cluster_config(), user_agent=user_agent)
        # No token mounted: an apiserver without TLS (the compose deployment, until it
        # gets certificates), reached in plain HTTP.
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return ApiClient(f"http://{host}:{port}", user_agent=user_agent)
    return ApiClient.from_kubeconfig(a.kubeconfig, user_agent=user_agent)


def http_server(app: Starlette, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for a component's side port; the caller's loop owns signals."""
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, lifespan="off")
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    return server


def metrics_response(_: object = None) -> Response:
    """Prometheus' text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


HealthChecks = Callable[[], Mapping[str, bool]]
"""Named checks beyond ``ping``, asked on every request (kube's healthz checkers)."""


def health_server(host: str, port: int, checks: HealthChecks | None = None) -> uvicorn.Server:
    """``/healthz`` (``?verbose``, ``/healthz/<check>``: :mod:`skiff.healthz`) and Prometheus
    ``/metrics``; the caller's loop owns signals."""

    def healthz_response(request: Request) -> Response:
        named = {"ping": True, **(checks() if checks else {})}
        return healthz.respond(request, "healthz", named, request.path_params.get("check", ""))

    app = Starlette(
        routes=[
            Route("/healthz", healthz_response),
            Route("/healthz/{check}", healthz_response),
            Route("/metrics", metrics_response),
        ]
    )
    return http_server(app, host, port)


async def run_component(
    client: ApiClient,
    a: argparse.Namespace,
    work: Callable[[], Awaitable[None]],
    *,
    name: str,
    tasks: list[asyncio.Task[None]] | None = None,
    checks: HealthChecks | None = None,
) -> None:
    """Serve health (``leaderElection`` and ``checks`` beside ``ping``), then run ``work``
    (while leading, with ``--leader-elect true``) until SIGTERM/SIGINT; ``tasks`` are
    cancelled on the way out."""
    tasks = list(tasks or [])
    elector: LeaderElector | None = None
    lease = a.leader_elect_resource_name

    def all_checks() -> dict[str, bool]:
        named = {} if elector is None else {"leaderElection": elector.healthy()}
        return {**named, **(checks() if checks else {})}

    if a.port:
        tasks.append(
            asyncio.create_task(
                health_server(a.bind_address, a.port, all_checks).serve(), name="http"
            )
        )

    async def lead() -> None:
        LEADER.labels(lease).set(1)
        try:
            await work()
        finally:
            LEADER.labels(lease).set(0)

    if a.leader_elect == "true":
        elector = LeaderElector(
            client,
            a.leader_elect_resource_namespace,
            lease,
            lease_duration=a.leader_elect_lease_duration,
            renew_deadline=a.leader_elect_renew_deadline,
            retry_period=a.leader_elect_retry_period,
        )
        main = asyncio.create_task(elector.run(lead), name="leader-election")
    else:
        main = asyncio.create_task(lead(), name=name)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    try:
        await main
    except asyncio.CancelledError:
        log.info("stopping", component=name)
    finally:
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)


async def until_signalled(tasks: list[asyncio.Task[None]]) -> None:
    """Run ``tasks`` until SIGTERM or SIGINT (or until one fails); then they are cancelled."""
    main = asyncio.gather(*tasks)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main


def start(
    name: str, a: argparse.Namespace, run: Callable[[argparse.Namespace], Awaitable[None]]
) -> None:
    """Logging, tracing, GC tuning and uvloop, then ``run(a)`` to completion."""
    setup_logging(name, level=a.log_level)
    setup_tracing(f"skiff-{name}")
    gc.set_threshold(50_000, 50, 100)  # large informer caches: see the apiserver's note
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(run(a))  # type: ignore[arg-type]  # run returns a coroutine
