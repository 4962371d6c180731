"""Kubelet benchmark (``make bench``): pod startup latency on one real node.

Starts etcd, NATS and an apiserver (as the tests do), the project's own containerd (local
images imported) and a ``skiff-kubelet`` process. Both sides start from the same warm
state: before any timing, one pod goes through the raw CRI sequence and one through the
kubelet, and both are removed. Then ``--rounds`` rounds, the order alternating (kubelet
first in round 1, raw first in round 2, ...):

- kubelet: ``--pods`` busybox pods bound to the node are created at once; latency is from
  each create request to a watch seeing ``phase: Running``. The kubelet starts them with
  its pod workers (4 by default).
- raw: the CRI sequence the kubelet drives (RunPodSandbox with CNI + CreateContainer +
  StartContainer) from Python for the same number of pods, all submitted at once and run
  at most ``--concurrency`` at a time (default: the kubelet's number of pod workers);
  latency is from the submission to StartContainer returning, so it includes the wait for
  a free slot as the kubelet's includes the wait for a free worker.

Every pod is removed after each phase, and the next phase starts once containerd has no
sandbox left. Last, the floor: one raw pod alone, 5 times one after another. Reports
p50/p99 and the wall time of every phase, the kubelet's RSS with the pods running, and
writes ``bench/results/kubelet.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from run import pct, rss_mb, write_result  # noqa: E402
from runtime import start_containerd  # noqa: E402

from cluster import Proc, start_cluster  # noqa: E402
from skiff.client.rest import ApiClient  # noqa: E402
from skiff.cri.client import CriClient, pb  # noqa: E402
from skiff.kubelet.containerd_setup import (  # noqa: E402
    RuntimePaths,
    ensure_shared_netns_dir,
    remove_sandboxes,
    teardown_network,
    write_cni_config,
)
from skiff.kubelet.kubelet import Kubelet  # noqa: E402

NODE = "bench-node"
BRIDGE = "skiffbench0"
CIDR = "10.244.252.0/24"
NS = "kubelet-bench"
# The kubelet's number of pod workers (``skiff-kubelet`` has no flag for it).
KUBELET_WORKERS: int = inspect.signature(Kubelet.__init__).parameters["workers"].default


def pod(name: str) -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
        },
    }


def summary(latencies: list[float], wall: float) -> dict:
    return {
        "p50_s": round(pct(latencies, 50), 3),
        "p99_s": round(pct(latencies, 99), 3),
        "all_running_s": round(wall, 3),
    }


async def raw_cri(
    cri: CriClient, count: int, concurrency: int, log_dir: Path, tag: str
) -> tuple[list[float], list[float], float]:
    """``count`` pod starts (the kubelet's CRI calls) submitted at once, at most
    ``concurrency`` in progress: (seconds from submission to started, per pod; seconds of
    CRI calls, per pod; wall seconds). The pods are removed afterwards (not timed)."""
    slots = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()

    async def one(i: int) -> tuple[float, float]:
        async with slots:
            start = time.perf_counter()
            name = f"raw-{tag}-{i}"
            sandbox = pb.PodSandboxConfig(
                metadata=pb.PodSandboxMetadata(name=name, namespace="raw", uid=name),
                hostname=name,
                log_directory=str(log_dir / name),
                labels={"bench": "raw"},
            )
            sid = await cri.run_pod_sandbox(sandbox)
            config = pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name="c"),
                image=pb.ImageSpec(image="busybox"),
                command=["sleep", "3600"],
                log_path="c.log",
            )
            cid = await cri.create_container(sid, config, sandbox)
            await cri.start_container(cid)
            end = time.perf_counter()
        return end - t0, end - start

    pairs = await asyncio.gather(*(one(i) for i in range(count)))
    wall = time.perf_counter() - t0
    started = await cri.list_pod_sandbox(label_selector={"bench": "raw"})
    await remove_sandboxes(cri, started, grace=0)
    return [p[0] for p in pairs], [p[1] for p in pairs], wall


async def kubelet_startup(
    client: ApiClient, count: int, tag: str, make: Callable[[str], dict] = pod
) -> tuple[list[float], float]:
    """Create ``count`` pods (``make(name)``) at once; seconds from create to Running seen
    through a watch."""
    _, rv = await client.list_all("pods", NS)
    running: dict[str, float] = {}
    created: dict[str, float] = {}
    done = asyncio.Event()

    async def watch() -> None:
        async for ev in client.watch_events("pods", NS, resource_version=rv):
            obj = ev.object
            name = (obj.get("metadata") or {}).get("name")
            if ev.type == "BOOKMARK" or name is None:
                continue
            if (obj.get("status") or {}).get("phase") == "Running" and name not in running:
                running[name] = time.perf_counter()
                if len(running) == count:
                    done.set()
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    t0 = time.perf_counter()

    async def create(i: int) -> None:
        name = f"{tag}-p{i}"
        created[name] = time.perf_counter()
        await client.create("pods", make(name), NS)

    await asyncio.gather(*(create(i) for i in range(count)))
    await asyncio.wait_for(done.wait(), 120)
    wall = time.perf_counter() - t0
    watcher.cancel()
    return [running[n] - created[n] for n in running], wall


async def clear_node(client: ApiClient, cri: CriClient) -> None:
    """Delete the benchmark's pods and wait until the API has none and containerd no
    sandbox (the kubelet removes them), so that the next phase starts from the same state."""
    items, _ = await client.list_all("pods", NS)
    for item in items:
        await client.delete("pods", item["metadata"]["name"], NS)
    for _ in range(600):
        items, _ = await client.list_all("pods", NS)
        if not items and not await cri.list_pod_sandbox():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("pods or sandboxes left after 120 s")


async def _wait_node(client: ApiClient) -> None:
    for _ in range(150):
        items, _ = await client.list_all("nodes")
        if any(n["metadata"]["name"] == NODE for n in items):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the kubelet did not register its node")


async def bench(
    a: argparse.Namespace, url: str, endpoint: str, base: Path, start_kubelet: Callable[[], int]
) -> dict:
    results: dict = {
        "pods": a.pods,
        "raw_concurrency": a.concurrency,
        "kubelet_workers": KUBELET_WORKERS,
        "machine": f"{os.cpu_count()} CPUs",
        "date": time.strftime("%F %T"),
    }
    logs = base / "raw-logs"
    async with CriClient(endpoint) as cri, ApiClient(url) as client:
        # Warm-up: one raw pod before the kubelet starts (it removes sandboxes it does not
        # know of when it starts), then one through the kubelet; neither is counted.
        _, _, raw_warm = await raw_cri(cri, 1, 1, logs, "warm")
        kubelet_pid = start_kubelet()
        await _wait_node(client)
        await client.create("namespaces", {"metadata": {"name": NS}})
        _, kubelet_warm = await kubelet_startup(client, 1, "warm")
        await clear_node(client, cri)
        results["warmup_s"] = {"raw": round(raw_warm, 3), "kubelet": round(kubelet_warm, 3)}

        rounds = []
        for r in range(a.rounds):
            order = ["kubelet", "raw"] if r % 2 == 0 else ["raw", "kubelet"]
            row: dict = {"order": order}
            for side in order:
                if side == "kubelet":
                    lat, wall = await kubelet_startup(client, a.pods, f"r{r}")
                    row["kubelet"] = summary(lat, wall)
                    row["kubelet"]["rss_mb"] = round(rss_mb(kubelet_pid))
                    await clear_node(client, cri)
                else:
                    lat, cri_time, wall = await raw_cri(cri, a.pods, a.concurrency, logs, f"r{r}")
                    row["raw"] = summary(lat, wall)
                    row["raw"]["cri_calls_p50_s"] = round(pct(cri_time, 50), 3)
            row["p50_kubelet_vs_raw"] = round(row["kubelet"]["p50_s"] / row["raw"]["p50_s"], 2)
            row["all_running_kubelet_vs_raw"] = round(
                row["kubelet"]["all_running_s"] / row["raw"]["all_running_s"], 2
            )
            rounds.append(row)
            print(f"round {r + 1} ({' then '.join(order)}): {row}", flush=True)
        results["rounds"] = rounds

        alone = [(await raw_cri(cri, 1, 1, logs, f"alone{i}"))[0][0] for i in range(5)]
        results["raw_one_pod_alone_s"] = [round(x, 3) for x in alone]
        results["raw_one_pod_alone_p50_s"] = round(pct(alone, 50), 3)
    return results


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=30)
    p.add_argument(
        "--concurrency",
        type=int,
        default=KUBELET_WORKERS,
        help="raw CRI pod starts in progress at once (default: the kubelet's pod workers)",
    )
    p.add_argument("--rounds", type=int, default=2, help="the order alternates between rounds")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "kubelet.json"))
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="skiff-kubelet-bench-"))
    (base / "cluster").mkdir()
    cluster = start_cluster(base / "cluster")
    ensure_shared_netns_dir()
    paths = RuntimePaths(base / "node")
    write_cni_config(paths, CIDR, bridge=BRIDGE, name="skiffbench")
    paths, containerd = start_containerd(base / "node")
    kubelet = Proc(
        "kubelet",
        [
            sys.executable, "-m", "skiff.kubelet", "--server", cluster.url,
            "--node-name", NODE, "--runtime-dir", str(base / "node"),
            "--pod-cidr", CIDR, "--bridge", BRIDGE, "--network-name", "skiffbench",
            "--port", "0", "--log-level", "warning",
        ],
        base / "kubelet.log",
    )  # fmt: skip

    def start_kubelet() -> int:
        kubelet.start()
        assert kubelet.popen is not None
        return kubelet.popen.pid

    try:
        results = asyncio.run(bench(a, cluster.url, paths.endpoint, base, start_kubelet))
        write_result(a.out, results)
    finally:
        kubelet.stop()
        asyncio.run(_remove_all(paths.endpoint))
        containerd.stop()
        teardown_network(BRIDGE)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _remove_all(endpoint: str) -> None:
    async with CriClient(endpoint) as cri:
        await remove_sandboxes(cri, await cri.list_pod_sandbox(), grace=0)


if __name__ == "__main__":
    main()
