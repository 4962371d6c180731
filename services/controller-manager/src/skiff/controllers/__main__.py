"""``skiff-controller-manager``: flags with environment-variable fallbacks."""

from __future__ import annotations

import argparse

from skiff.component import add_common_args, api_client, env, run_component, start
from skiff.log import get_logger

from .manager import CONTROLLERS, ControllerManager, resolve_controllers

log = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-controller-manager", description=__doc__)
    add_common_args(
        p,
        port=10257,
        port_env="SKIFF_CONTROLLER_MANAGER_PORT",
        lease_name="kube-controller-manager",
    )
    p.add_argument(
        "--controllers",
        default=env("SKIFF_CONTROLLERS", "*"),
        help="comma-separated: '*' for the defaults, 'foo' to enable, '-foo' to disable; "
        f"known: {', '.join(CONTROLLERS)}",
    )
    for spec in CONTROLLERS.values():
        if spec.flag:
            p.add_argument(
                f"--{spec.flag}",
                type=int,
                default=spec.workers,
                dest=f"workers_{spec.name}",
                metavar="N",
                help=f"workers of the {spec.name} (default {spec.workers})",
            )
    a = p.parse_args(argv)
    try:
        resolve_controllers(a.controllers.split(","))
    except ValueError as e:
        p.error(f"--controllers: {e}")
    return a


async def run(a: argparse.Namespace) -> None:
    async with api_client(a, "skiff-controller-manager") as client:
        workers = {name: getattr(a, f"workers_{name}") for name, s in CONTROLLERS.items() if s.flag}
        manager = ControllerManager(client, controllers=a.controllers.split(","), workers=workers)
        await run_component(client, a, manager.run, name="controller-manager")


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    start("controller-manager", a, run)


if __name__ == "__main__":
    main()
