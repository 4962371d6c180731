"""Kubelet benchmark (``make bench``): pod startup latency on one real node.

Starts etcd, NATS and an apiserver (as the tests do), the project's own containerd and a
``skiff-kubelet`` process. Creates 30 busybox pods bound to the node at once and records,
from a watch, when each is seen Running (created → Running, image present). Beside it, in
the same run, the raw CRI sequence the kubelet drives (RunPodSandbox with CNI +
CreateContainer + StartContainer) for 30 pods at once, straight from Python. Reports
p50/p99 of both and the kubelet's RSS with the 30 pods running.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from run import pct, rss_mb  # noqa: E402
from runtime import start_containerd  # noqa: E402

from cluster import Proc, start_cluster  # noqa: E402
from skiff.client.rest import ApiClient  # noqa: E402
from skiff.cri.client import CriClient, pb  # noqa: E402
from skiff.kubelet.containerd_setup import (  # noqa: E402
    RuntimePaths,
    ensure_shared_netns_dir,
    teardown_network,
    write_cni_config,
)

NODE = "bench-node"
BRIDGE = "skiffbench0"
CIDR = "10.244.252.0/24"
NS = "kubelet-bench"


def pod(i: int) -> dict:
    return {
        "metadata": {"name": f"p{i}"},
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


async def raw_cri(cri: CriClient, count: int, log_dir: Path) -> list[float]:
    """The CRI calls of one pod start, ``count`` pods at once; seconds per pod."""

    async def one(i: int) -> float:
        start = time.perf_counter()
        sandbox = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=f"raw{i}", namespace="raw", uid=f"raw-{i}"),
            hostname=f"raw{i}",
            log_directory=str(log_dir / f"raw{i}"),
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
        return time.perf_counter() - start

    results = await asyncio.gather(*(one(i) for i in range(count)))
    for sb in await cri.list_pod_sandbox(label_selector={"bench": "raw"}):
        await cri.stop_pod_sandbox(sb.id)
        await cri.remove_pod_sandbox(sb.id)
    return list(results)


async def kubelet_startup(url: str, count: int) -> tuple[list[float], float]:
    """Create ``count`` pods at once; seconds from create to Running seen through a watch."""
    async with ApiClient(url) as client:
        await client.create("namespaces", {"metadata": {"name": NS}})
        _, rv = await client.list_all("pods", NS)
        running: dict[str, float] = {}
        created: dict[str, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async for ev in client.watch_events("pods", NS, resource_version=rv):
                obj = ev.object
                name = obj["metadata"]["name"]
                if (obj.get("status") or {}).get("phase") == "Running" and name not in running:
                    running[name] = time.perf_counter()
                    if len(running) == count:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()

        async def create(i: int) -> None:
            created[f"p{i}"] = time.perf_counter()
            await client.create("pods", pod(i), NS)

        await asyncio.gather(*(create(i) for i in range(count)))
        await asyncio.wait_for(done.wait(), 120)
        wall = time.perf_counter() - t0
        watcher.cancel()
        return [running[n] - created[n] for n in running], wall


async def cleanup(url: str) -> None:
    async with ApiClient(url) as client:
        items, _ = await client.list_all("pods", NS)
        for item in items:
            await client.delete("pods", item["metadata"]["name"], NS)
        for _ in range(300):
            items, _ = await client.list_all("pods", NS)
            if not items:
                return
            await asyncio.sleep(0.2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=30)
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="skiff-kubelet-bench-"))
    (base / "cluster").mkdir()
    cluster = start_cluster(base / "cluster")
    ensure_shared_netns_dir()
    paths = RuntimePaths(base / "node")
    write_cni_config(paths, CIDR, bridge=BRIDGE, name="skiffbench")
    paths, containerd = start_containerd(base / "node")
    kubelet: Proc | None = None
    try:
        raw, alone = asyncio.run(_raw(paths.endpoint, base, a.pods))
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
        kubelet.start()
        asyncio.run(_wait_node(cluster.url))
        latencies, wall = asyncio.run(kubelet_startup(cluster.url, a.pods))
        assert kubelet.popen is not None
        rss = rss_mb(kubelet.popen.pid)
        asyncio.run(cleanup(cluster.url))
        print(f"pods: {a.pods} created at once on one node (busybox present)")
        print(
            f"kubelet created→Running: p50 {pct(latencies, 50):.2f} s, "
            f"p99 {pct(latencies, 99):.2f} s, all Running after {wall:.2f} s"
        )
        print(
            f"raw CRI sandbox+create+start, {a.pods} at once: p50 {pct(raw, 50):.2f} s, "
            f"p99 {pct(raw, 99):.2f} s; one pod alone: p50 {pct(alone, 50):.2f} s"
        )
        print(f"ratio p50 kubelet/raw: {pct(latencies, 50) / pct(raw, 50):.2f}x")
        print(f"kubelet RSS with {a.pods} pods: {rss:.0f} MB")
    finally:
        if kubelet is not None:
            kubelet.stop()
        asyncio.run(_remove_all(paths.endpoint))
        containerd.stop()
        teardown_network(BRIDGE)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


async def _raw(endpoint: str, base: Path, count: int) -> tuple[list[float], list[float]]:
    """(``count`` pods at once, 5 pods one after another)."""
    async with CriClient(endpoint) as cri:
        together = await raw_cri(cri, count, base / "raw-logs")
        alone = [(await raw_cri(cri, 1, base / "raw-logs"))[0] for _ in range(5)]
        return together, alone


async def _wait_node(url: str) -> None:
    async with ApiClient(url) as client:
        for _ in range(150):
            items, _ = await client.list_all("nodes")
            if any(n["metadata"]["name"] == NODE for n in items):
                return
            await asyncio.sleep(0.2)
    raise TimeoutError("the kubelet did not register its node")


async def _remove_all(endpoint: str) -> None:
    async with CriClient(endpoint) as cri:
        for sb in await cri.list_pod_sandbox():
            await cri.stop_pod_sandbox(sb.id)
            await cri.remove_pod_sandbox(sb.id)


if __name__ == "__main__":
    main()
