"""``skiff-scheduler``: flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import signal

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from skiff.client.leaderelection import LeaderElector
from skiff.client.rest import ApiClient
from skiff.log import get_logger, setup_logging
from skiff.tracing import setup_tracing

from .config import ConfigError
from .config import load as load_config
from .framework import Profile
from .scheduler import Scheduler

log = get_logger(__name__)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-scheduler", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--server",
        default=os.environ.get("SKIFF_SERVER"),
        help="API server URL (instead of a kubeconfig)",
    )
    p.add_argument("--scheduler-name", default=_env("SKIFF_SCHEDULER_NAME", "default-scheduler"))
    p.add_argument(
        "--config",
        default=os.environ.get("SKIFF_SCHEDULER_CONFIG"),
        help="a KubeSchedulerConfiguration file choosing profiles and plugins",
    )
    p.add_argument(
        "--leader-elect", default=_env("SKIFF_LEADER_ELECT", "true"), choices=("true", "false")
    )
    p.add_argument("--leader-elect-resource-namespace", default="kube-system")
    p.add_argument("--leader-elect-resource-name", default="skiff-scheduler")
    p.add_argument("--leader-elect-lease-duration", type=float, default=10.0)
    p.add_argument("--leader-elect-renew-deadline", type=float, default=8.0)
    p.add_argument("--leader-elect-retry-period", type=float, default=2.0)
    p.add_argument("--bind-address", default=_env("SKIFF_BIND_ADDRESS", "127.0.0.1"))
    p.add_argument(
        "--port",
        type=int,
        default=int(_env("SKIFF_SCHEDULER_PORT", "10259")),
        help="port for /healthz and /metrics (0: off)",
    )
    p.add_argument("--log-level", default=_env("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    if a.server:
        client = ApiClient(a.server, user_agent="skiff-scheduler")
    else:
        client = ApiClient.from_kubeconfig(a.kubeconfig, user_agent="skiff-scheduler")
    async with client:
        profiles = load_config(a.config) if a.config else [Profile(scheduler_name=a.scheduler_name)]
        schedulers = [Scheduler(client, p) for p in profiles]
        tasks: list[asyncio.Task[None]] = []
        if a.port:
            app = Starlette(
                routes=[
                    Route("/healthz", lambda _r: PlainTextResponse("ok")),
                    Route(
                        "/metrics",
                        lambda _r: Response(generate_latest(), media_type=CONTENT_TYPE_LATEST),
                    ),
                ]
            )
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=a.bind_address,
                    port=a.port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
            tasks.append(asyncio.create_task(server.serve(), name="http"))
        for sched in schedulers:
            tasks += await sched.start_informers()

        async def schedule_all() -> None:
            await asyncio.gather(*(s.schedule_loop() for s in schedulers))

        if a.leader_elect == "true":
            elector = LeaderElector(
                client,
                a.leader_elect_resource_namespace,
                a.leader_elect_resource_name,
                lease_duration=a.leader_elect_lease_duration,
                renew_deadline=a.leader_elect_renew_deadline,
                retry_period=a.leader_elect_retry_period,
            )
            main = asyncio.create_task(elector.run(schedule_all), name="leader-election")
        else:
            main = asyncio.create_task(schedule_all(), name="schedule-loop")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, main.cancel)
        try:
            await main
        except asyncio.CancelledError:
            log.info("scheduler stopping")
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.config:
        try:
            load_config(a.config)
        except ConfigError as e:
            raise SystemExit(f"skiff-scheduler: {e}") from None
    setup_logging("scheduler", level=a.log_level)
    setup_tracing("skiff-scheduler")
    gc.set_threshold(50_000, 50, 100)  # large informer caches: see the apiserver's note
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
