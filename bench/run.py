"""API server benchmarks (``make bench``); results go to docs/benchmarks.md by hand.

Starts its own etcd, NATS and apiserver on loopback (as the tests do) and measures:
1. pod creates/s and latency with 32 concurrent clients, beside raw etcd CAS creates/s
   from Python with the same concurrency (the baseline);
2. 1,000 watchers on one apiserver while 100 writes/s land: completeness (all 1,000) and
   delivery latency, sampled on one watcher in ten (watchers 0, 10, 20, ...: every event
   each of them reads), from the writer's clock just before it sends the write to the
   watcher process reading the event;
3. listing 5,000 pods from the watch cache, beside a raw etcd range of the same keys;
4. the apiserver's RSS with 10,000 pods stored.
With ``--profile``, py-spy samples the apiserver during the pod creates (1.) and the top
frames go to the results (``pod_creates_profile_top``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import ssl as ssl_mod
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from cluster import Cluster, start_cluster  # noqa: E402
from skiff.apiserver.storage.etcd import EtcdBackend  # noqa: E402

NS = "bench"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def pod(name: str, extra: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "tier": "web"},
            "annotations": extra or {},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox:1.36",
                    "command": ["sleep", "3600"],
                    "ports": [{"containerPort": 8080}],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"},
                    },
                    "env": [{"name": "MODE", "value": "bench"}],
                }
            ]
        },
    }


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client: it spends far less CPU than httpx, which
    matters when the load generator shares two cores with the server it measures."""

    def __init__(self, url: str, ssl: ssl_mod.SSLContext | None = None, headers: str = "") -> None:
        """``ssl`` for https (with the client's certificate, if any); ``headers``: extra
        header lines (``Authorization: Bearer ...\r\n``)."""
        self.host, port = url.removeprefix("http://").removeprefix("https://").split(":")
        self.port = int(port)
        self.ssl = ssl
        self.headers = headers
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", ctype: str = "application/json"
    ) -> tuple[int, bytes]:
        try:
            return await self._request(method, path, body, ctype)
        except (asyncio.IncompleteReadError, ConnectionError):
            # The server closed an idle keep-alive connection: reconnect once.
            self.close()
            self.writer = None
            return await self._request(method, path, body, ctype)

    async def _request(self, method: str, path: str, body: bytes, ctype: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.host, self.port, ssl=self.ssl
            )
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{self.headers}"
            f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        status = int(raw[9:12])
        length = 0
        for line in raw.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def _concurrent(n: int, total: int, fn) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    lat: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await fn(i)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(n)))
    return time.perf_counter() - t0, lat


async def pooled(clients: list[RawHttp], total: int, send) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    """``_concurrent`` with one worker per connection in ``clients``, each request lent a
    connection of its own: ``await send(client, i)`` for i in 0..total-1."""
    free = list(clients)

    async def one(i: int) -> None:
        cl = free.pop()
        try:
            await send(cl, i)
        finally:
            free.append(cl)

    return await _concurrent(len(clients), total, one)


def machine() -> str:
    """The machine line of every benchmark's results."""
    return f"{platform.node()} {os.cpu_count()} CPUs, {platform.python_version()}"


async def bench_etcd_baseline(c: Cluster, total: int, conc: int) -> dict:
    async with EtcdBackend(c.etcd_endpoint) as etcd:
        value = orjson.dumps(pod("x"))

        async def one(i: int) -> None:
            await etcd.create(f"/bench/raw/{i}", value)

        wall, lat = await _concurrent(conc, total, one)
    return {
        "ops": total,
        "per_s": total / wall,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
    }


async def bench_creates(
    c: Cluster,
    total: int,
    conc: int,
    start: int = 0,
    *,
    plural: str = "pods",
    body=None,  # type: ignore[no-untyped-def]
) -> dict:
    """``total`` creates of core/v1 ``plural`` by ``conc`` concurrent clients (pods by default)."""
    clients = [RawHttp(c.url) for _ in range(conc)]
    free = list(clients)
    failures = 0
    path = f"/api/v1/namespaces/{NS}/{plural}"
    make = body or (lambda i: pod(f"p{i}"))

    async def one(i: int) -> None:
        nonlocal failures
        client = free.pop()
        try:
            status, _ = await client.request("POST", path, orjson.dumps(make(start + i)))
        finally:
            free.append(client)
        if status != 201:
            failures += 1

    wall, lat = await _concurrent(conc, total, one)
    for cl in clients:
        cl.close()
    return {
        "ops": total,
        "failures": failures,
        "per_s": total / wall,
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
    }


_RV = re.compile(rb'"sent":"([0-9.]+)"')


def _watch_proc(url: str, n: int, rv: str, expect: int, out: mp.Queue, ready: mp.Event) -> None:
    """One process holding ``n`` raw HTTP watches; reports delivery latencies."""

    async def main() -> None:
        host, port = url.removeprefix("http://").split(":")
        lat: list[float] = []
        counts = [0] * n
        opened = 0

        async def one(k: int) -> None:
            nonlocal opened
            reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
            writer.write(
                (
                    f"GET /api/v1/namespaces/{NS}/configmaps?watch=1&resourceVersion={rv}"
                    f"&timeoutSeconds=600 HTTP/1.1\r\nHost: {host}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            opened += 1
            try:
                while counts[k] < expect:
                    line = await reader.readline()
                    if not line:
                        break
                    m = _RV.search(line)
                    if m:
                        counts[k] += 1
                        if k % 10 == 0:  # sample latencies on 1 in 10 watchers
                            lat.append(time.time() - float(m.group(1)))
            finally:
                writer.close()

        tasks = [asyncio.create_task(one(k)) for k in range(n)]
        while opened < n:
            await asyncio.sleep(0.05)
        ready.set()
        await asyncio.wait(tasks, timeout=120)
        out.put({"counts": counts, "lat": lat})

    asyncio.run(main())


async def bench_watchers(c: Cluster, watchers: int, rate: int, seconds: int) -> dict:
    async with httpx.AsyncClient(base_url=c.url, timeout=30) as http:
        rv = (await http.get(f"/api/v1/namespaces/{NS}/configmaps")).json()["metadata"][
            "resourceVersion"
        ]
        total = rate * seconds
        out: mp.Queue = mp.Queue()
        ready = mp.Event()
        proc = mp.Process(target=_watch_proc, args=(c.url, watchers, rv, total, out, ready))
        proc.start()
        while not ready.is_set():
            await asyncio.sleep(0.1)
        write_lat: list[float] = []
        writer = RawHttp(c.url)
        t_start = time.perf_counter()
        for i in range(total):
            target = t_start + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.time()
            status, body = await writer.request(
                "POST",
                f"/api/v1/namespaces/{NS}/configmaps",
                orjson.dumps({"metadata": {"name": f"w{i}"}, "data": {"sent": repr(t0)}}),
            )
            assert status == 201, body
            write_lat.append(time.time() - t0)
        achieved = total / (time.perf_counter() - t_start)
        writer.close()
        result = await asyncio.to_thread(out.get, True, 180)
        proc.join(10)
    counts = result["counts"]
    lat = result["lat"]
    return {
        "watchers": watchers,
        "writes": total,
        "write_rate": achieved,
        "all_events_delivered": all(x == total for x in counts),
        # Latencies come from watchers 0, 10, 20, ... only (every event each of them read).
        "latency_watchers_sampled": len(range(0, watchers, 10)),
        "latency_samples": len(lat),
        "min_events_seen": min(counts),
        "p50_ms": pct(lat, 50) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
        "write_p50_ms": pct(write_lat, 50) * 1e3,
        "write_p99_ms": pct(write_lat, 99) * 1e3,
    }


async def bench_list(c: Cluster, n_expected: int, rounds: int) -> dict:
    client = RawHttp(c.url)
    path = f"/api/v1/namespaces/{NS}/pods"
    # A consistent list first: it returns once the cache has applied every write.
    await client.request("GET", path)

    async def timed(query: str) -> tuple[float, bytes]:
        t0 = time.perf_counter()
        _, body = await client.request("GET", path + query)
        return time.perf_counter() - t0, body

    cached = [await timed("?resourceVersion=0") for _ in range(rounds)]
    consistent = [await timed("") for _ in range(rounds)]
    client.close()
    body = cached[-1][1]
    count = len(orjson.loads(body)["items"])
    async with EtcdBackend(c.etcd_endpoint) as etcd:
        raw = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            kvs, _ = await etcd.range_all(f"/registry/core/pods/{NS}/")
            raw.append(time.perf_counter() - t0)
    assert count == n_expected, (count, n_expected)
    return {
        "items": count,
        "bytes": len(body),
        "cache_p50_ms": statistics.median(t for t, _ in cached) * 1e3,
        "consistent_p50_ms": statistics.median(t for t, _ in consistent) * 1e3,
        "raw_etcd_range_p50_ms": statistics.median(raw) * 1e3,
        "raw_items": len(kvs),
    }


def write_result(path: str | Path, results: dict) -> None:
    """Write a benchmark's results as JSON (``bench/results/``) and print them."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "machine": machine(),
        "date": time.strftime("%F %T"),
    }
    with tempfile.TemporaryDirectory(prefix="skiff-bench-") as tmp:
        c = start_cluster(Path(tmp))
        try:
            async with httpx.AsyncClient(base_url=c.url) as http:
                await http.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
            pid = c.apiservers[0].popen.pid  # type: ignore[union-attr]
            results["rss_idle_mb"] = rss_mb(pid)
            print("raw etcd CAS creates ...", flush=True)
            results["etcd_baseline"] = await bench_etcd_baseline(c, args.creates, 32)
            spy = None
            if args.profile:
                # Imported here: scheduler.py imports this module.
                from scheduler import py_spy, top_frames

                spy = py_spy(pid, 3600, Path(tmp))  # stopped when the creates end
                await asyncio.sleep(2)  # attached before the load starts
            print("pod creates ...", flush=True)
            results["pod_creates"] = await bench_creates(c, args.creates, 32)
            if spy is not None:
                spy.kill(signal.SIGINT)  # py-spy writes its profile and exits
                results["pod_creates_profile_top"] = top_frames(Path(tmp) / "prof.txt", 40)
            results["pod_creates"]["vs_etcd"] = (
                results["pod_creates"]["per_s"] / results["etcd_baseline"]["per_s"]
            )
            print("watchers ...", flush=True)
            results["watch"] = await bench_watchers(c, args.watchers, args.rate, args.seconds)
            have = args.creates
            if have < args.list_pods:
                await bench_creates(c, args.list_pods - have, 32, start=have)
                have = args.list_pods
            print(f"list of {have} pods ...", flush=True)
            results["list"] = await bench_list(c, have, 5)
            print(f"filling to {args.pods} pods ...", flush=True)
            if have < args.pods:
                await bench_creates(c, args.pods - have, 32, start=have)
            results["rss_with_pods_mb"] = rss_mb(pid)
            results["pods_stored"] = args.pods
        finally:
            c.stop()
    return results


def main() -> None:
    # Stop the cluster this run started (the finally in run()) on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    p.add_argument("--creates", type=int, default=5000)
    p.add_argument("--watchers", type=int, default=1000)
    p.add_argument("--rate", type=int, default=100)
    p.add_argument("--seconds", type=int, default=20)
    p.add_argument("--list-pods", type=int, default=5_000)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the apiserver during the pod creates (their rate then counts for nothing)",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "apiserver.json"))
    args = p.parse_args()
    results = asyncio.run(run(args))
    write_result(args.out, results)


if __name__ == "__main__":
    main()
