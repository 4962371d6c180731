"""``skiff-netagent``: the pod network between this node and the others (host-gw)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path

from skiff.component import api_client, health_server, start, until_signalled
from skiff.controller.controller import ControllerContext
from skiff.controller.informers import SharedInformers
from skiff.iptables import IptablesRunner

from .agent import NetAgent
from .cniconfig import CniConfig
from .linux import NodeNetwork
from .policy.controller import PolicyController


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
    p.add_argument(
        "--routes",
        choices=("true", "false"),
        default=os.environ.get("SKIFF_NETAGENT_ROUTES", "true"),
        help="route other nodes' pod CIDRs and masquerade off-cluster traffic (host-gw)",
    )
    p.add_argument(
        "--cni-conf-dir",
        type=Path,
        default=os.environ.get("SKIFF_CNI_CONF_DIR") or None,
        help="write this node's CNI configuration for its pod CIDR into this folder (the "
        "kubelet then runs with --network-plugin cni)",
    )
    p.add_argument("--cni-ipam-dir", type=Path, default=Path("/var/lib/cni/networks"))
    p.add_argument("--bridge", default=os.environ.get("SKIFF_BRIDGE", "skiff0"))
    p.add_argument(
        "--network-policy",
        choices=("true", "false"),
        default=os.environ.get("SKIFF_NETAGENT_POLICY", "true"),
        help="enforce NetworkPolicies for this node's pods",
    )
    p.add_argument(
        "--health-bind-address",
        default=os.environ.get("SKIFF_NETAGENT_HEALTH", "127.0.0.1:9099"),
        help="host:port of /healthz and /metrics (port 0: none)",
    )
    p.add_argument("--cleanup", action="store_true", help="remove the agent's routes and rules")
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def _bridge_through_iptables(runner: IptablesRunner) -> None:
    # Traffic between two pods on one bridge never reaches FORWARD without br_netfilter,
    # so a policy could not see it.
    await runner.modprobe("br_netfilter")
    await runner.sysctl("net.bridge.bridge-nf-call-iptables", "1")


async def run(a: argparse.Namespace) -> None:
    network = NodeNetwork()
    runner = IptablesRunner()
    if a.cleanup:
        await network.cleanup()
        await PolicyController.cleanup_tables(runner)
        return
    async with api_client(a, "skiff-netagent") as client:
        informers = SharedInformers(client)
        ctx = ControllerContext(client, informers)
        controllers: list[NetAgent | PolicyController] = []
        cni = None
        if a.cni_conf_dir:
            cni = CniConfig(
                a.cni_conf_dir, network=network, ipam_dir=a.cni_ipam_dir, bridge=a.bridge
            )
        if a.routes == "true" or cni is not None:
            controllers.append(
                NetAgent(
                    ctx,
                    network,
                    node_name=a.node_name,
                    cluster_cidr=a.cluster_cidr,
                    routes=a.routes == "true",
                    cni=cni,
                )
            )
        if a.network_policy == "true":
            await _bridge_through_iptables(runner)
            controllers.append(PolicyController(ctx, runner, node_name=a.node_name))
        informers.start()
        tasks = [asyncio.create_task(c.run(), name=c.name) for c in controllers]
        host, _, port = a.health_bind_address.rpartition(":")
        if int(port):
            server = health_server(host or "127.0.0.1", int(port))
            tasks.append(asyncio.create_task(server.serve(), name="health"))
        await until_signalled(tasks)
        for c in controllers:
            await c.stop()
        await informers.stop()


def main(argv: list[str] | None = None) -> None:
    start("netagent", parse_args(argv), run)


if __name__ == "__main__":
    main()
