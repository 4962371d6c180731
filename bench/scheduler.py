"""Scheduler benchmark (``make bench``): 10,000 pods onto 1,000 hollow nodes.

Starts etcd, NATS and an apiserver (as the tests do), one ``skiff-hollow-nodes``
process holding 1,000 nodes and one ``skiff-scheduler``, all on this machine. Pods
are created as fast as 32 clients can; a watch records when each pod is seen bound.
Reports throughput, creation→bound latency, and the scheduler's CPU and RSS.
With ``--profile``, py-spy samples the scheduler and the top frames are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from run import RawHttp, pct, rss_mb, write_result  # noqa: E402

from cluster import VENV_BIN, Proc, start_cluster  # noqa: E402

NS = "sched-bench"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pod(i: int) -> bytes:
    return orjson.dumps(
        {
            "metadata": {"name": f"p{i}", "labels": {"app": f"a{i % 50}"}},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                    }
                ]
            },
        }
    )


async def wait_nodes(url: str, count: int) -> None:
    client = RawHttp(url)
    while True:
        _, body = await client.request("GET", "/api/v1/nodes?resourceVersion=0")
        ready = len(orjson.loads(body)["items"])
        if ready >= count:
            client.close()
            return
        await asyncio.sleep(1)


async def watch_bound(
    url: str, rv: str, total: int, seen: dict[str, float], done: asyncio.Event
) -> None:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=2**24)
    writer.write(
        (
            f"GET /api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv}"
            f"&timeoutSeconds=3600 HTTP/1.1\r\nHost: {host}\r\n\r\n"
        ).encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    while len(seen) < total:
        line = await reader.readline()
        if not line:
            break
        if b'"nodeName"' not in line:
            continue
        now = time.time()
        try:
            ev = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # a chunk-size line of the chunked encoding
        name = ev["object"]["metadata"]["name"]
        if name not in seen and (ev["object"].get("spec") or {}).get("nodeName"):
            seen[name] = now
    writer.close()
    done.set()


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "nodes": args.nodes,
        "pods": args.pods,
        "machine": f"{os.cpu_count()} CPUs",
        "date": time.strftime("%F %T"),
    }
    with tempfile.TemporaryDirectory(prefix="skiff-sched-bench-") as tmp:
        c = start_cluster(Path(tmp))
        procs: list[Proc] = []
        try:
            http = RawHttp(c.url)
            await http.request(
                "POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}})
            )
            hollow = Proc(
                "hollow",
                [
                    str(VENV_BIN / "skiff-hollow-nodes"),
                    "--server",
                    c.url,
                    "--count",
                    str(args.nodes),
                    "--cpu",
                    "32",
                    "--memory",
                    "128Gi",
                    "--pods",
                    "110",
                ],
                Path(tmp) / "hollow.log",
            )
            hollow.start()
            procs.append(hollow)
            t0 = time.monotonic()
            await wait_nodes(c.url, args.nodes)
            results["node_registration_s"] = time.monotonic() - t0
            sched = Proc(
                "scheduler",
                [
                    str(VENV_BIN / "skiff-scheduler"),
                    "--server",
                    c.url,
                    "--port",
                    "0",
                    "--leader-elect",
                    "false",
                ],
                Path(tmp) / "scheduler.log",
            )
            sched.start()
            procs.append(sched)
            await asyncio.sleep(3)  # informers synced
            pid = sched.popen.pid  # type: ignore[union-attr]
            spy = None
            if args.profile:
                spy = py_spy(pid, args.profile, Path(tmp))
            _, body = await http.request("GET", f"/api/v1/namespaces/{NS}/pods")
            rv = orjson.loads(body)["metadata"]["resourceVersion"]
            seen: dict[str, float] = {}
            done = asyncio.Event()
            watcher = asyncio.create_task(watch_bound(c.url, rv, args.pods, seen, done))
            cpu0 = cpu_seconds(pid)
            sent: dict[str, float] = {}
            clients = [RawHttp(c.url) for _ in range(32)]
            counter = iter(range(args.pods))

            async def creator(cl: RawHttp) -> None:
                for i in counter:
                    sent[f"p{i}"] = time.time()
                    status, b = await cl.request("POST", f"/api/v1/namespaces/{NS}/pods", pod(i))
                    assert status == 201, b

            start = time.time()
            await asyncio.gather(*(creator(cl) for cl in clients))
            created = time.time()
            try:
                await asyncio.wait_for(done.wait(), args.timeout)
            except TimeoutError:
                pass
            end = max(seen.values(), default=time.time())
            cpu1 = cpu_seconds(pid)
            lat = [seen[n] - sent[n] for n in seen]
            results.update(
                {
                    "bound": len(seen),
                    "create_s": created - start,
                    "create_per_s": args.pods / (created - start),
                    "schedule_wall_s": end - start,
                    "throughput_pods_per_s": len(seen) / (end - start),
                    "latency_p50_s": pct(lat, 50),
                    "latency_p99_s": pct(lat, 99),
                    "scheduler_cpu_s": cpu1 - cpu0,
                    "scheduler_cpu_per_pod_ms": (cpu1 - cpu0) / max(1, len(seen)) * 1e3,
                    "scheduler_rss_mb": rss_mb(pid),
                    "hollow_rss_mb": rss_mb(hollow.popen.pid),  # type: ignore[union-attr]
                    "apiserver_rss_mb": rss_mb(c.apiservers[0].popen.pid),  # type: ignore[union-attr]
                }
            )
            watcher.cancel()
            for cl in clients:
                cl.close()
            if spy is not None:
                await asyncio.to_thread(spy.popen.wait)  # type: ignore[union-attr]
                results["profile_top"] = top_frames(Path(tmp) / "prof.txt")
        finally:
            for p in procs:
                p.stop()
            c.stop()
    return results


def py_spy(pid: int, seconds: int, folder: Path) -> Proc:
    """Start py-spy sampling ``pid`` for ``seconds`` into ``folder/prof.txt`` (raw format,
    read by :func:`top_frames`)."""
    spy = Proc(
        "py-spy",
        [
            str(VENV_BIN / "py-spy"), "record", "-p", str(pid), "-d", str(seconds),
            "-r", "100", "--nonblocking", "-f", "raw", "-o", str(folder / "prof.txt"),
        ],
        folder / "py-spy.log",
    )  # fmt: skip
    spy.start()
    return spy


def top_frames(path: Path, n: int = 25) -> list[str]:
    """Inclusive share of the most frequent frames in a py-spy raw profile."""
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        k = int(count)
        total += k
        for f in set(stack.split(";")):
            incl[f] += k
    return [f"{v / total * 100:5.1f}% {f[:140]}" for f, v in incl.most_common(n)]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--profile", type=int, default=0, help="py-spy the scheduler for N s")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "scheduler.json"))
    args = p.parse_args()
    results = asyncio.run(run(args))
    write_result(args.out, results)


if __name__ == "__main__":
    main()
