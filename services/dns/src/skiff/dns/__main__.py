"""``skiff-dns``: the cluster's DNS server (Kubernetes DNS-based service discovery)."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from pathlib import Path

from skiff.component import api_client, start, until_signalled
from skiff.controller.controller import ControllerContext
from skiff.controller.informers import SharedInformers
from skiff.log import get_logger

from .autopath import PodIndex
from .controller import DnsController
from .forward import Forwarder, resolv_conf_nameservers, without_self
from .handler import Handler
from .health import server as health_server
from .publish import keep_published, unpublish
from .records import ClusterRecords
from .server import Resolver, serve

log = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="skiff-dns", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER"), help="API server URL")
    p.add_argument(
        "--cluster-domain", default=os.environ.get("SKIFF_CLUSTER_DOMAIN", "cluster.local")
    )
    p.add_argument("--bind-address", default=os.environ.get("SKIFF_DNS_ADDRESS", "0.0.0.0"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SKIFF_DNS_PORT", "53")))
    p.add_argument(
        "--upstream",
        action="append",
        default=[u for u in os.environ.get("SKIFF_DNS_UPSTREAM", "").split(",") if u],
        help="resolver for names outside the cluster, host[:port] (repeatable; "
        "env SKIFF_DNS_UPSTREAM, comma-separated; default: the nameservers of --resolv-conf)",
    )
    p.add_argument("--resolv-conf", default="/etc/resolv.conf")
    p.add_argument("--ttl", type=int, default=5, help="TTL of the cluster's records")
    p.add_argument(
        "--autopath",
        action="store_true",
        default=os.environ.get("SKIFF_DNS_AUTOPATH") == "1",
        help="answer pods' search-path fan-out on the server (watches pods for their namespaces)",
    )
    p.add_argument(
        "--health-port", type=int, default=int(os.environ.get("SKIFF_DNS_HEALTH_PORT", "8080"))
    )
    p.add_argument(
        "--ready-port", type=int, default=int(os.environ.get("SKIFF_DNS_READY_PORT", "8181"))
    )
    p.add_argument(
        "--publish-as-kube-dns",
        action="store_true",
        default=os.environ.get("SKIFF_DNS_PUBLISH") == "1",
        help="publish this server (its own address) as kube-system/kube-dns while it runs",
    )
    p.add_argument("--cluster-dns-ip", default="10.96.0.10", help="kube-dns' cluster IP")
    p.add_argument("--log-level", default=os.environ.get("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    upstreams = a.upstream or resolv_conf_nameservers(Path(a.resolv_conf))
    targets = without_self(upstreams, (a.bind_address, a.port))
    forwarder = Forwarder(targets) if targets else None
    if forwarder is None:
        log.warning("no upstream resolver: names outside the cluster are refused")
    records = ClusterRecords(a.cluster_domain)
    async with api_client(a, "skiff-dns") as client:
        informers = SharedInformers(client)
        pods = PodIndex() if a.autopath else None
        controller = DnsController(ControllerContext(client, informers), records, pods=pods)
        informers.start()
        resolver = Resolver(Handler(records, forwarder, ttl=a.ttl), forwarder, pods)
        udp, tcp, port = await serve(resolver, a.bind_address, a.port)
        log.info("serving DNS", address=a.bind_address, port=port, zone=records.zone)
        slice_name = f"kube-dns-{socket.gethostname().lower()}"
        tasks = [asyncio.create_task(controller.run(), name="dns")]
        if a.publish_as_kube_dns:
            me = socket.gethostbyname(socket.gethostname())
            tasks.append(
                asyncio.create_task(
                    keep_published(client, me, port, a.cluster_dns_ip, slice_name),
                    name="publish",
                )
            )
            log.info("publishing as kube-system/kube-dns", address=me, port=port)
        for hp in {a.health_port, a.ready_port} - {0}:
            tasks.append(asyncio.create_task(health_server(controller, a.bind_address, hp).serve()))
        await until_signalled(tasks)
        udp.close()
        tcp.close()
        if a.publish_as_kube_dns:
            await unpublish(client, slice_name)
        await informers.stop()


def main(argv: list[str] | None = None) -> None:
    start("dns", parse_args(argv), run)


if __name__ == "__main__":
    main()
