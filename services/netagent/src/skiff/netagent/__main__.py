"""``skiff-netagent``: the pod network between this node and the others (host-gw)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from skiff.component import api_client, start, until_signalled
from skiff.controller.controller import ControllerContext
from skiff.controller.informers import SharedInformers

from .agent import NetAgent
from .linux import NodeNetwork


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-netagent", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER"))
    p.add_argument(
        "--hostname-override",
        dest="node_name",
        default=os.environ.get("SKIFF_NODE_NAME", socket.gethostname().lower()),
    )
    p.add_argument("--cluster-cidr", default=os.environ.get("SKIFF_CLUSTER_CIDR", "10.244.0.0/16"))
    p.add_argument("--cleanup", action="store_true", help="remove the agent's routes and rules")
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    network = NodeNetwork()
    if a.cleanup:
        await network.cleanup()
        return
    async with api_client(a, "skiff-netagent") as client:
        informers = SharedInformers(client)
        agent = NetAgent(
            ControllerContext(client, informers),
            network,
            node_name=a.node_name,
            cluster_cidr=a.cluster_cidr,
        )
        informers.start()
        await until_signalled([asyncio.create_task(agent.run(), name="netagent")])
        await informers.stop()


def main(argv: list[str] | None = None) -> None:
    start("netagent", parse_args(argv), run)


if __name__ == "__main__":
    main()
