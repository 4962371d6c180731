"""``skiff-scheduler``: flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse
import asyncio
import os

from skiff.component import add_common_args, api_client, env, run_component, start
from skiff.log import get_logger

from .config import ConfigError
from .config import load as load_config
from .framework import Profile
from .scheduler import Scheduler

log = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-scheduler", description=__doc__)
    add_common_args(
        p,
        port=10259,
        port_env="SKIFF_SCHEDULER_PORT",
        lease_name="kube-scheduler",
        lease_duration=10.0,
        renew_deadline=8.0,
    )
    p.add_argument("--scheduler-name", default=env("SKIFF_SCHEDULER_NAME", "default-scheduler"))
    p.add_argument(
        "--config",
        default=os.environ.get("SKIFF_SCHEDULER_CONFIG"),
        help="a KubeSchedulerConfiguration file choosing profiles and plugins",
    )
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    async with api_client(a, "skiff-scheduler") as client:
        profiles = load_config(a.config) if a.config else [Profile(scheduler_name=a.scheduler_name)]
        schedulers = [Scheduler(client, p) for p in profiles]
        tasks: list[asyncio.Task[None]] = []
        for sched in schedulers:
            tasks += await sched.start_informers()

        async def schedule_all() -> None:
            await asyncio.gather(*(s.schedule_loop() for s in schedulers))

        await run_component(client, a, schedule_all, name="scheduler", tasks=tasks)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    if a.config:
        try:
            load_config(a.config)
        except ConfigError as e:
            raise SystemExit(f"skiff-scheduler: {e}") from None
    start("scheduler", a, run)


if __name__ == "__main__":
    main()
