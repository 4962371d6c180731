"""``skiff-proxy``: route this node's Service traffic through iptables."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from skiff.component import api_client, start, until_signalled
from skiff.controller.controller import ControllerContext
from skiff.controller.informers import SharedInformers
from skiff.iptables import IptablesRunner
from skiff.log import get_logger

from .controller import ProxyController
from .iptables.proxier import IptablesProxier
from .server import server

log = get_logger(__name__)


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-proxy", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER"), help="API server URL")
    p.add_argument(
        "--hostname-override",
        dest="node_name",
        default=os.environ.get("SKIFF_NODE_NAME", socket.gethostname().lower()),
        help="this node's name (its endpoints are the local ones)",
    )
    p.add_argument(
        "--cluster-cidr",
        default=os.environ.get("SKIFF_CLUSTER_CIDR", "10.244.0.0/16"),
        help="the pods' range: traffic from outside it to a cluster IP is masqueraded",
    )
    p.add_argument("--sync-period", type=float, default=30.0, help="seconds between full syncs")
    p.add_argument(
        "--min-sync-period", type=float, default=1.0, help="least seconds between two syncs"
    )
    p.add_argument(
        "--healthz-bind-address",
        default=os.environ.get("SKIFF_PROXY_HEALTHZ", "0.0.0.0:10256"),
        help="host:port for /healthz and /metrics (port 0: off)",
    )
    p.add_argument(
        "--cleanup", action="store_true", help="remove every rule the proxy wrote, then exit"
    )
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def _sysctls(runner: IptablesRunner) -> None:
    # NodePorts on 127.0.0.1 (as kube-proxy); forwarding; and traffic between pods on one
    # bridge through iptables, or a pod reaching a Service whose endpoint shares its
    # bridge is never DNATed back (kubeadm checks for br_netfilter for the same reason).
    await runner.modprobe("br_netfilter")
    for name in (
        "net.ipv4.conf.all.route_localnet",
        "net.ipv4.ip_forward",
        "net.bridge.bridge-nf-call-iptables",
    ):
        await runner.sysctl(name, "1")


async def run(a: argparse.Namespace) -> None:
    runner = IptablesRunner()
    proxier = IptablesProxier(runner, node_name=a.node_name, cluster_cidr=a.cluster_cidr)
    if a.cleanup:
        await proxier.cleanup()
        log.info("removed the proxy's rules")
        return
    await _sysctls(runner)
    async with api_client(a, "skiff-proxy") as client:
        informers = SharedInformers(client)
        controller = ProxyController(
            ControllerContext(client, informers),
            proxier,
            sync_period=a.sync_period,
            min_sync_period=a.min_sync_period,
        )
        informers.start()
        tasks = [asyncio.create_task(controller.run(), name="proxy")]
        host, port = _host_port(a.healthz_bind_address)
        http = server(controller, host, port) if port else None
        if http is not None:
            tasks.append(asyncio.create_task(http.serve(), name="healthz"))
        await until_signalled(tasks)
        await controller.health.close()
        await informers.stop()
        # Rules stay: traffic keeps flowing while the proxy restarts (as kube-proxy).
        log.info("proxy stopped; rules left in place")


def main(argv: list[str] | None = None) -> None:
    start("proxy", parse_args(argv), run)


if __name__ == "__main__":
    main()
