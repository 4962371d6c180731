"""Proxy sync benchmark (``make bench``): what a full and a partial iptables sync cost.

In a network namespace of its own (removed afterwards), the proxier syncs 1,000 Services,
10 endpoints each (a full sync), then one endpoint of one Service changes (a partial sync),
several times. The floor, measured in the same run: ``iptables-restore --noflush`` fed the
very same batch directly (so the ratio is what the proxy adds: translating, diffing,
joining text and starting the tool). The partial sync's batch size shows that its cost
follows what changed, not the table's size (the owned chains such as KUBE-SERVICES are
written whole at every sync, as in kube-proxy).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from run import write_result  # noqa: E402

from skiff.iptables import IptablesRunner  # noqa: E402
from skiff.proxy.iptables.proxier import IptablesProxier  # noqa: E402

NS = "skpx-bench"


def service(i: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"s{i}", "namespace": "bench"},
        "spec": {
            "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    }


def endpoints(i: int, n: int, shift: int = 0) -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"s{i}-x",
            "namespace": "bench",
            "labels": {"kubernetes.io/service-name": f"s{i}"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [_address(i * n + j + shift)], "conditions": {"ready": True}}
            for j in range(n)
        ],
    }


def _address(k: int) -> str:
    return f"10.{100 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}"


class Recording(IptablesRunner):
    """The real runner, keeping the last batch it applied."""

    last: bytes = b""

    async def restore(self, data: bytes) -> None:
        self.last = data
        await super().restore(data)


def raw_restore(data: bytes, ns: str = NS) -> float:
    """``iptables-restore --noflush`` of ``data`` in ``ns``, fed directly: seconds."""
    t0 = time.perf_counter()
    subprocess.run(
        ["ip", "netns", "exec", ns, "iptables-restore", "--noflush"], input=data, check=True
    )
    return time.perf_counter() - t0


async def bench(services: int, per: int, rounds: int) -> dict[str, Any]:
    runner = Recording(prefix=["ip", "netns", "exec", NS])
    proxier = IptablesProxier(runner, node_name="n1", cluster_cidr="10.64.0.0/10")
    for i in range(services):
        proxier.on_service(service(i))
        proxier.on_slice(endpoints(i, per))
    t0 = time.perf_counter()
    full = await proxier.sync()
    full_s = time.perf_counter() - t0
    full_batch = runner.last
    raw_full = raw_restore(full_batch)

    partial, raw_partial, sizes, written = [], [], [], []
    for r in range(rounds):
        i = (r * 37) % services
        proxier.on_slice(endpoints(i, per, shift=1 + r))
        t0 = time.perf_counter()
        res = await proxier.sync()
        partial.append(time.perf_counter() - t0)
        sizes.append(len(runner.last))
        raw_partial.append(raw_restore(runner.last))
        written.append(res.chains_written)
    rules = full_batch.count(b"\n-A ")
    return {
        "services": services,
        "endpoints_per_service": per,
        "rules": rules,
        "full_sync_s": round(full_s, 3),
        "full_raw_restore_s": round(raw_full, 3),
        "full_ratio": round(full_s / raw_full, 2),
        "full_batch_bytes": len(full_batch),
        "full_chains_written": full.chains_written,
        "partial_sync_p50_s": round(statistics.median(partial), 4),
        "partial_raw_restore_p50_s": round(statistics.median(raw_partial), 4),
        "partial_ratio": round(statistics.median(partial) / statistics.median(raw_partial), 2),
        "partial_batch_bytes": int(statistics.median(sizes)),
        "partial_chains_written_max": max(written),
    }


POD_NS = "skpx-bench-pod"
SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(128)
while True:
    c, _ = s.accept()
    while c.recv(1 << 20):
        pass
    c.close()
"""
CLIENT = """
import json, socket, sys, time
host, n, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
times = []
for _ in range(n):
    t0 = time.perf_counter()
    c = socket.create_connection((host, int(sys.argv[4])))
    times.append(time.perf_counter() - t0)
    c.close()
times.sort()
c = socket.create_connection((host, int(sys.argv[4])))
block = b"x" * (1 << 20)
t0 = time.perf_counter()
for _ in range(mb):
    c.sendall(block)
c.shutdown(socket.SHUT_WR); c.recv(1)
elapsed = time.perf_counter() - t0
print(json.dumps({"connect_p50_us": round(times[len(times) // 2] * 1e6),
                  "connect_p99_us": round(times[int(len(times) * 0.99)] * 1e6),
                  "throughput_mb_s": round(mb / elapsed)}))
"""


def datapath(connects: int = 2000, megabytes: int = 2000) -> dict[str, Any]:
    """Connection set-up and throughput from the node to a pod: by pod IP, and through a
    ClusterIP (the DNAT's cost), alternated and measured in the same run."""
    import json

    def sh(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True)

    for ns in (NS, POD_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
    server = None
    try:
        sh(
            "ip",
            "link",
            "add",
            "skpxb0",
            "netns",
            NS,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            POD_NS,
        )
        sh("ip", "netns", "exec", NS, "ip", "addr", "add", "10.244.0.1/24", "dev", "skpxb0")
        sh("ip", "netns", "exec", NS, "ip", "link", "set", "skpxb0", "up")
        sh("ip", "netns", "exec", POD_NS, "ip", "addr", "add", "10.244.0.5/24", "dev", "eth0")
        sh("ip", "netns", "exec", POD_NS, "ip", "link", "set", "eth0", "up")
        sh("ip", "netns", "exec", NS, "ip", "route", "add", "10.96.0.0/12", "dev", "skpxb0")
        server = subprocess.Popen(["ip", "netns", "exec", POD_NS, sys.executable, "-c", SERVER])
        runner = IptablesRunner(prefix=["ip", "netns", "exec", NS])
        proxier = IptablesProxier(runner, node_name="n1", cluster_cidr="10.244.0.0/16")
        proxier.on_service(service(0))  # 10.96.0.1:80
        proxier.on_slice(
            {
                **endpoints(0, 1),
                "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}],
            }
        )
        asyncio.run(proxier.sync())
        time.sleep(0.5)
        out: dict[str, Any] = {}
        for label, host, port in (
            ("pod_ip", "10.244.0.5", "8080"),
            ("cluster_ip", "10.96.0.1", "80"),
        ) * 2:
            r = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    NS,
                    sys.executable,
                    "-c",
                    CLIENT,
                    host,
                    str(connects),
                    str(megabytes),
                    port,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            out[label] = json.loads(r.stdout)  # the second round, warm, is kept
        out["connect_p50_ratio"] = round(
            out["cluster_ip"]["connect_p50_us"] / out["pod_ip"]["connect_p50_us"], 2
        )
        out["throughput_ratio"] = round(
            out["cluster_ip"]["throughput_mb_s"] / out["pod_ip"]["throughput_mb_s"], 2
        )
        return out
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for ns in (NS, POD_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def programming_latency_run() -> dict[str, Any]:
    """A cluster and a namespace for :func:`programming_latency`, removed afterwards."""
    import tempfile

    from cluster import start_cluster

    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = start_cluster(Path(tmp))
        try:
            return asyncio.run(programming_latency(cluster.url))
        finally:
            cluster.stop()
            subprocess.run(["ip", "netns", "del", NS], capture_output=True)


async def programming_latency(
    url: str, services: int = 100, seconds: float = 20.0, rate: float = 20.0
) -> dict[str, Any]:
    """Network programming latency under churn, against a real apiserver: the proxy (on the
    controller runtime, its rules in a namespace of its own) while endpoints change
    ``rate`` times a second; each change carries the time it was written
    (``endpoints.kubernetes.io/last-change-trigger-time``) and the proxy reports the time
    from it to its rules being in place (``network_programming_duration_seconds``)."""
    import contextlib
    import random

    from skiff.api.timestamps import micro_time
    from skiff.client.rest import ApiClient
    from skiff.controller.controller import ControllerContext
    from skiff.controller.informers import SharedInformers
    from skiff.proxy import controller as proxy_controller

    seen: list[float] = []

    class Collect:
        def observe(self, value: float) -> None:
            seen.append(value)

    proxy_controller.PROGRAMMING_SECONDS = Collect()  # type: ignore[assignment]
    async with ApiClient(url) as api:
        with contextlib.suppress(Exception):
            await api.create("namespaces", {"metadata": {"name": "bench"}})
        slices = []
        for i in range(services):
            svc = {"metadata": {"name": f"s{i}"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
            await api.create("services", svc, "bench")
            es = endpoints(i, 3) | {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}
            slices.append(await api.create("endpointslices", es, "bench"))
        informers = SharedInformers(api)
        runner = IptablesRunner(prefix=["ip", "netns", "exec", NS])
        proxier = IptablesProxier(runner, node_name="n1", cluster_cidr="10.64.0.0/10")
        ctrl = proxy_controller.ProxyController(
            ControllerContext(api, informers), proxier, min_sync_period=0.1
        )
        informers.start()
        task = asyncio.create_task(ctrl.run())
        while not ctrl.last_sync:
            await asyncio.sleep(0.1)
        seen.clear()
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            k = random.randrange(services)
            es = slices[k]
            es["endpoints"] = endpoints(k, 3, shift=n + 1)["endpoints"]
            annotations = es["metadata"].setdefault("annotations", {})
            annotations["endpoints.kubernetes.io/last-change-trigger-time"] = micro_time()
            slices[k] = await api.update("endpointslices", es, "bench")
            n += 1
            await asyncio.sleep(1 / rate)
        await asyncio.sleep(2)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
    seen.sort()
    return {
        "services": services,
        "changes": n,
        "changes_per_s": rate,
        "min_sync_period_s": 0.1,
        "programmed": len(seen),
        "p50_ms": round(statistics.median(seen) * 1000, 1),
        "p99_ms": round(seen[int(len(seen) * 0.99)] * 1000, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--endpoints", type=int, default=10)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args()
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    subprocess.run(["ip", "netns", "add", NS], check=True)
    try:
        result = asyncio.run(bench(a.services, a.endpoints, a.rounds))
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)
    result["datapath"] = datapath()
    result["programming_latency"] = programming_latency_run()
    write_result(ROOT / "bench" / "results" / "proxy.json", result)


if __name__ == "__main__":
    main()
