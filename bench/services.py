"""Service allocation benchmark (``make bench``): what assigning cluster IPs and node ports
costs a create.

Starts etcd, NATS and an apiserver (as the tests do) and creates, with 32 concurrent
clients: ConfigMaps and headless Services (the baselines, in the same run: the same write
path with no allocation; the headless ones also pay for Service defaulting and
validation), ClusterIP Services (an IP from the default /12, picked blind and claimed in
the Service's own etcd transaction), then NodePort Services until the 2,768-port range is
75% full (where conflicts make the allocator read what is taken).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from run import NS, bench_creates, write_result  # noqa: E402

from cluster import start_cluster  # noqa: E402
from skiff.client.rest import ApiClient  # noqa: E402


def config_map(i: int) -> dict:
    return {"metadata": {"name": f"cm{i}"}, "data": {"k": "v"}}


def service(i: int, kind: str = "ClusterIP", headless: bool = False) -> dict:
    spec = {"type": kind, "selector": {"app": f"a{i}"}, "ports": [{"port": 80}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"metadata": {"name": f"{'headless' if headless else kind.lower()}{i}"}, "spec": spec}


async def run(args: argparse.Namespace) -> dict:
    c = start_cluster(Path(tempfile.mkdtemp(prefix="skiff-svc-bench-")))
    try:
        async with ApiClient(c.url) as client:
            await client.create("namespaces", {"metadata": {"name": NS}})
        baseline = await bench_creates(c, args.creates, 32, plural="configmaps", body=config_map)
        headless = await bench_creates(
            c, args.creates, 32, plural="services", body=lambda i: service(i, headless=True)
        )
        cluster_ip = await bench_creates(c, args.creates, 32, plural="services", body=service)
        node_ports = await bench_creates(
            c, args.node_ports, 32, plural="services", body=lambda i: service(i, "NodePort")
        )
        return {
            "configmap_creates": baseline,
            "headless_service_creates": headless,
            "clusterip_service_creates": cluster_ip,
            "nodeport_service_creates": node_ports,
            "headless_vs_configmap": headless["per_s"] / baseline["per_s"],
            "clusterip_vs_headless": cluster_ip["per_s"] / headless["per_s"],
            "clusterip_vs_configmap": cluster_ip["per_s"] / baseline["per_s"],
            "nodeport_vs_configmap": node_ports["per_s"] / baseline["per_s"],
        }
    finally:
        c.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--creates", type=int, default=2000)
    p.add_argument("--node-ports", type=int, default=2076, help="75%% of 30000-32767")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "services.json"))
    a = p.parse_args()
    write_result(a.out, asyncio.run(run(a)))


if __name__ == "__main__":
    main()
