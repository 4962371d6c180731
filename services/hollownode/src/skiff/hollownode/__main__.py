"""``skiff-hollow-nodes``: run N simulated nodes against an API server."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from skiff.client.rest import ApiClient
from skiff.log import setup_logging

from .nodes import HollowNodes, NodeShape


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="skiff-hollow-nodes", description=__doc__)
    p.add_argument("--count", type=int, default=int(os.environ.get("SKIFF_HOLLOW_COUNT", "10")))
    p.add_argument("--prefix", default=os.environ.get("SKIFF_HOLLOW_PREFIX", "hollow-"))
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument(
        "--server",
        default=os.environ.get("SKIFF_SERVER"),
        help="API server URL (instead of a kubeconfig)",
    )
    p.add_argument("--cpu", default="8")
    p.add_argument("--memory", default="32Gi")
    p.add_argument("--pods", type=int, default=110)
    p.add_argument("--gpus", type=int, default=0, help="nvidia.com/gpu per node")
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    a = p.parse_args(argv)
    setup_logging("hollow-nodes", level=a.log_level)
    shape = NodeShape(cpu=a.cpu, memory=a.memory, pods=a.pods, gpus=a.gpus)

    async def run() -> None:
        client = ApiClient(a.server) if a.server else ApiClient.from_kubeconfig(a.kubeconfig)
        async with client:
            nodes = HollowNodes(client, a.count, prefix=a.prefix, shape=shape)
            task = asyncio.create_task(nodes.run(), name="hollow-nodes")
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            try:
                await task
            except asyncio.CancelledError:
                pass

    asyncio.run(run())


if __name__ == "__main__":
    main()
