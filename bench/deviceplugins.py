"""Device plugins (``make bench``): what the kubelet's device manager costs, on one real
node (etcd, NATS, an apiserver, the project's containerd and a ``skiff-kubelet`` process,
as ``bench/kubelet.py``).

- Pod start: ``--pods`` pods created at once, from create to ``Running`` seen through a
  watch, each asking for one device of the sample device plugin (``skiff.deviceplugin.
  sample``, device nodes this benchmark makes) beside the same number asking for none, in
  the same run, the order alternating per round: the ratio is admission, ``Allocate``
  and the devices in the CRI config.
- ``ListAndWatch`` → Node: a plugin served from this process flips one device's health
  ``--flips`` times; each time from the plugin's send to a watch of the Node seeing
  ``allocatable`` change (the device manager, the kubelet's status PATCH, the apiserver
  and its watch), p50/p99.

Writes ``bench/results/deviceplugins.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from kubelet import NODE, NS, _wait_node, clear_node, kubelet_startup, pod, summary  # noqa: E402
from run import pct, write_result  # noqa: E402
from runtime import start_containerd  # noqa: E402

from cluster import Proc, start_cluster  # noqa: E402
from skiff.client.rest import ApiClient  # noqa: E402
from skiff.cri.client import CriClient  # noqa: E402
from skiff.deviceplugin.server import PluginServer  # noqa: E402
from skiff.deviceplugin.v1beta1 import api_pb2 as dp  # noqa: E402
from skiff.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc  # noqa: E402
from skiff.kubelet.containerd_setup import (  # noqa: E402
    RuntimePaths,
    ensure_shared_netns_dir,
    remove_sandboxes,
    teardown_network,
    write_cni_config,
)

BRIDGE, CIDR = "skiffbench1", "10.244.253.0/24"
SAMPLE, FLIPPED = "example.com/sample", "example.com/flipped"


def device_pod(name: str) -> dict:
    p = pod(name)
    p["spec"]["containers"][0]["resources"] = {"limits": {SAMPLE: "1"}}
    return p


class Flipper(dp_grpc.DevicePluginServicer):
    """Two devices; :meth:`flip` sends the list with the first one's health flipped."""

    def __init__(self) -> None:
        self.healthy = True
        self.sent: asyncio.Queue[float] = asyncio.Queue()
        self._wake = asyncio.Event()

    def flip(self) -> None:
        self.healthy = not self.healthy
        self._wake.set()

    async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        while True:
            health = "Healthy" if self.healthy else "Unhealthy"
            devices = [dp.Device(ID="a", health=health), dp.Device(ID="b", health="Healthy")]
            self.sent.put_nowait(time.perf_counter())
            yield dp.ListAndWatchResponse(devices=devices)
            await self._wake.wait()
            self._wake.clear()


async def allocatable(client: ApiClient) -> str | None:
    node = await client.get("nodes", NODE)
    return ((node.get("status") or {}).get("allocatable") or {}).get(FLIPPED)


async def flips(client: ApiClient, plugin_dir: Path, count: int) -> list[float]:
    flipper = Flipper()
    server = PluginServer(flipper, FLIPPED, directory=plugin_dir, endpoint="flipper.sock")
    task = asyncio.create_task(server.run())
    try:
        for _ in range(300):
            if await allocatable(client) == "2":
                break
            await asyncio.sleep(0.1)
        out = []
        _, rv = await client.list_all("nodes")
        for _ in range(count):
            while not flipper.sent.empty():
                flipper.sent.get_nowait()
            want = "1" if flipper.healthy else "2"
            flipper.flip()
            sent = await flipper.sent.get()
            async for ev in client.watch_events(
                "nodes", field_selector=f"metadata.name={NODE}", resource_version=rv
            ):
                rv = ev.object.get("metadata", {}).get("resourceVersion", rv)
                got = ((ev.object.get("status") or {}).get("allocatable") or {}).get(FLIPPED)
                if got == want:
                    out.append(time.perf_counter() - sent)
                    break
        return out
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def bench(a: argparse.Namespace, url: str, endpoint: str, base: Path,
                start: Any) -> dict:  # fmt: skip
    results: dict = {"pods": a.pods, "machine": f"{os.cpu_count()} CPUs",
                     "date": time.strftime("%F %T")}  # fmt: skip
    async with CriClient(endpoint) as cri, ApiClient(url) as client:
        start()
        await _wait_node(client)
        await client.create("namespaces", {"metadata": {"name": NS}})
        for make, tag in ((pod, "warm"), (device_pod, "warmdev")):
            await kubelet_startup(client, 1, tag, make)
            await clear_node(client, cri)
        rounds = []
        for r in range(a.rounds):
            order = ["devices", "none"] if r % 2 == 0 else ["none", "devices"]
            row: dict = {"order": order}
            for side in order:
                make = device_pod if side == "devices" else pod
                lat, wall = await kubelet_startup(client, a.pods, f"{side[0]}{r}", make)
                row[side] = summary(lat, wall)
                await clear_node(client, cri)
            row["p50_devices_vs_none"] = round(row["devices"]["p50_s"] / row["none"]["p50_s"], 2)
            rounds.append(row)
            print(f"round {r + 1}: {row}", flush=True)
        results["pod_start"] = rounds
        lat = await flips(client, base / "node" / "kubelet" / "device-plugins", a.flips)
        results["listandwatch_to_node_allocatable"] = {
            "flips": len(lat),
            "p50_ms": round(pct(lat, 50) * 1000, 1),
            "p99_ms": round(pct(lat, 99) * 1000, 1),
        }
    return results


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pods", type=int, default=20)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--flips", type=int, default=50)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "deviceplugins.json"))
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="skiff-dp-bench-"))
    (base / "cluster").mkdir()
    cluster = start_cluster(base / "cluster")
    ensure_shared_netns_dir()
    paths = RuntimePaths(base / "node")
    write_cni_config(paths, CIDR, bridge=BRIDGE, name="skiffbench1")
    paths, containerd = start_containerd(base / "node")
    devices = base / "devices"
    devices.mkdir()
    for i in range(a.pods):
        os.mknod(devices / f"dev{i}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    plugin_dir = base / "node" / "kubelet" / "device-plugins"
    kubelet = Proc("kubelet", [
        sys.executable, "-m", "skiff.kubelet", "--server", cluster.url, "--node-name", NODE,
        "--runtime-dir", str(base / "node"), "--pod-cidr", CIDR, "--bridge", BRIDGE,
        "--network-name", "skiffbench1", "--port", "0", "--log-level", "warning",
        "--node-status-update-frequency", "10"], base / "kubelet.log")  # fmt: skip
    plugin = Proc("plugin", [
        sys.executable, "-m", "skiff.deviceplugin.sample", "--resource", SAMPLE,
        "--devices-dir", str(devices), "--plugin-dir", str(plugin_dir), "--log-level",
        "warning"], base / "plugin.log")  # fmt: skip

    def start() -> None:
        kubelet.start()
        plugin.start()

    try:
        results = asyncio.run(bench(a, cluster.url, paths.endpoint, base, start))
        write_result(a.out, results)
    finally:
        plugin.stop()
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
