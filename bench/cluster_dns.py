"""DNS benchmark (``make bench``): queries per second and p99 of skiff-dns.

Each server runs in a process of its own on loopback; a load generator in another process
keeps 64 queries in flight over UDP for 5 s and times each answer:

- skiff-dns with 10,000 ClusterIP Services and 1,000 headless Services of 10 endpoints
  (10,000 pod addresses), asked for cluster names, then for an external name it has
  cached (the upstream, a bare responder of our own, answered it once);
- the ceiling of the language, in the same run: a bare asyncio UDP responder that
  answers every query with fixed bytes (no parsing).

Also the server's RSS with those records. Anchors (not measured here): CoreDNS answered
about 33,700 internal QPS on 2 vCPUs and needs about (pods + services) * 0.86 KB + 49 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import rss_mb, write_result  # noqa: E402


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- servers (each run as `python bench/dns.py serve-...`) -----------------------------------


async def serve_skiff(port: int, upstream: int) -> None:
    from skiff.dns.autopath import PodIndex
    from skiff.dns.forward import Forwarder
    from skiff.dns.handler import Handler
    from skiff.dns.records import ClusterRecords
    from skiff.dns.server import Resolver, serve

    records = ClusterRecords("cluster.local")
    for i in range(10_000):
        svc = {
            "metadata": {"name": f"s{i}", "namespace": "bench"},
            "spec": {"clusterIP": f"10.96.{i // 250}.{i % 250 + 1}", "ports": [{"port": 80}]},
        }
        records.set_service(f"bench/s{i}", svc, [])
    for i in range(1_000):
        svc = {"metadata": {"name": f"h{i}", "namespace": "bench"}, "spec": {"clusterIP": "None"}}
        eps = [
            {
                "addresses": [f"10.244.{(i * 10 + j) // 250}.{(i * 10 + j) % 250 + 1}"],
                "hostname": f"h{i}-{j}",
                "conditions": {"ready": True},
            }
            for j in range(10)
        ]
        records.set_service(f"bench/h{i}", svc, [{"endpoints": eps, "ports": []}])
    forwarder = Forwarder([("127.0.0.1", upstream)])
    pods = PodIndex()  # the load generator on 127.0.0.1 is a pod of "bench"; 127.0.0.2 is none
    pods.set_pod(
        {"metadata": {"name": "client", "namespace": "bench"}, "status": {"podIP": "127.0.0.1"}}
    )
    await serve(Resolver(Handler(records, forwarder), forwarder, pods), "0.0.0.0", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


class _Bare(asyncio.DatagramProtocol):
    """Answers anything with its own id and a fixed answer for example.test."""

    ANSWER = bytes.fromhex(
        "b02f81000001000100000000076578616d706c6504746573740000010001"
        "c00c000100010000012c0004c0000207"
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data[:2] + self.ANSWER[2:], addr)  # type: ignore[attr-defined]


async def serve_bare(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(_Bare, local_addr=("127.0.0.1", port))
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- the load generator --------------------------------------------------------------------


async def load(port: int, name: str, seconds: float, window: int) -> dict[str, float]:
    import dns.message

    loop = asyncio.get_running_loop()
    wires = []
    for i in range(window):
        q = dns.message.make_query(name, "A")
        q.id = i
        wires.append(q.to_wire())
    sent: dict[int, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    end = time.perf_counter() + seconds

    class Client(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, _addr: object) -> None:
            qid = int.from_bytes(data[:2], "big")
            t0 = sent.pop(qid, None)
            now = time.perf_counter()
            if t0 is not None:
                latencies.append(now - t0)
            if now < end:
                sent[qid] = time.perf_counter()
                self.t.sendto(wires[qid])  # type: ignore[attr-defined]
            elif not sent:
                done.set()

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    start = time.perf_counter()
    for qid, wire in enumerate(wires):
        sent[qid] = time.perf_counter()
        transport.sendto(wire)
    try:
        await asyncio.wait_for(done.wait(), seconds + 5)
    except TimeoutError:
        pass  # a few lost datagrams: count what came back
    elapsed = min(time.perf_counter(), end) - start
    transport.close()
    latencies.sort()
    return {
        "qps": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
    }


async def resolve(
    port: int, source: str, names: list[str], seconds: float, window: int
) -> dict[str, float]:
    """``window`` resolvers, each asking ``names`` in turn (a pod's search path) until one
    has an answer: resolutions per second and their p99."""
    import dns.asyncquery
    import dns.message
    import dns.rcode

    latencies: list[float] = []
    end = time.perf_counter() + seconds

    async def one_resolver() -> None:
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            for name in names:
                q = dns.message.make_query(name, "A")
                r = await dns.asyncquery.udp(q, "127.0.0.1", port=port, source=source, timeout=2)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    break
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(one_resolver() for _ in range(window)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "resolutions_per_s": round(len(latencies) / elapsed),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "queries_per_resolution": 1 if len(names) == 1 else len(names),
    }


def _resolve(port: int, source: str, names: list[str], seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "resolve", str(port), source, str(seconds), *names],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _start(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _load(port: int, name: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "load", str(port), name, str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", nargs="?", default="bench")
    p.add_argument("args", nargs="*")
    a = p.parse_args()
    if a.mode == "serve-skiff":
        asyncio.run(serve_skiff(int(a.args[0]), int(a.args[1])))
        return
    if a.mode == "serve-bare":
        asyncio.run(serve_bare(int(a.args[0])))
        return
    if a.mode == "resolve":
        port, source, secs, *names = a.args
        print(json.dumps(asyncio.run(resolve(int(port), source, names, float(secs), 16))))
        return
    if a.mode == "load":
        print(json.dumps(asyncio.run(load(int(a.args[0]), a.args[1], float(a.args[2]), 64))))
        return
    seconds = 5.0
    bare_port, skiff_port = _free_port(), _free_port()
    bare = _start("serve-bare", str(bare_port))
    skiff = _start("serve-skiff", str(skiff_port), str(bare_port))
    try:
        result = {
            "bare_responder": _load(bare_port, "example.test", seconds),
            "cluster_name": _load(skiff_port, "s1234.bench.svc.cluster.local", seconds),
            "headless_pod_name": _load(skiff_port, "h5-3.h5.bench.svc.cluster.local", seconds),
            "cached_external": _load(skiff_port, "example.test", seconds),
            # An outside name from a pod: its resolver walks the search path (ndots:5)...
            "external_via_search_path": _resolve(
                skiff_port,
                "127.0.0.2",
                [
                    "example.test.bench.svc.cluster.local",
                    "example.test.svc.cluster.local",
                    "example.test.cluster.local",
                    "example.test",
                ],
                seconds,
            ),
            # ... or the server does (autopath): one round trip.
            "external_with_autopath": _resolve(
                skiff_port, "127.0.0.1", ["example.test.bench.svc.cluster.local"], seconds
            ),
            "rss_mb": round(rss_mb(skiff.pid), 1),
            "records": "10,000 ClusterIP Services + 10,000 headless endpoints",
            "cpus": os.cpu_count(),
        }
        b = result["bare_responder"]["qps"]  # type: ignore[index]
        for k in ("cluster_name", "headless_pod_name", "cached_external"):
            result[k]["ratio_to_bare"] = round(result[k]["qps"] / b, 2)  # type: ignore[index]
            result[k]["fraction_of_coredns_33700"] = round(result[k]["qps"] / 33_700, 2)  # type: ignore[index]
    finally:
        for proc in (bare, skiff):
            proc.kill()
            proc.wait()
    write_result(ROOT / "bench" / "results" / "dns.json", result)


if __name__ == "__main__":
    main()
