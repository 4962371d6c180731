"""Device plugins end to end: the sample device plugin (fake devices backed by device
nodes this test creates) registered with the real kubelet on real containerd and the
scheduler: the Node's resource, two devices visible in a container (device nodes and
environment), a third request Pending with ``Insufficient``, the devices back after
deletion (in the pod-resources API and ``kubectl describe node``), the kubelet's own
admission refusal, kill -9 of the kubelet (running pods keep their devices and are not
restarted), the plugin killed (allocatable 0) and back, a plugin whose Allocate hangs
failing only its pod; and the NVIDIA plugin's process with a fake NVML."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from grpc import aio
from runtime import CNI_PLUGINS, CONTAINERD, needs, start_containerd

from cluster import Cluster, Proc
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient
from skiff.kubelet.containerd_setup import (
    RuntimePaths,
    ensure_shared_netns_dir,
    teardown_network,
    write_cni_config,
)
from skiff.podresources.v1 import api_pb2 as pr
from skiff.podresources.v1 import api_pb2_grpc as pr_grpc

BRIDGE, NET, CIDR = "skiffdp0", "skiffdp", "10.244.249.0/24"
NODE = "dp-node"
SAMPLE, HUNG = "example.com/sample", "example.com/hung"

pytestmark = needs(*CONTAINERD, "iptables", paths=(CNI_PLUGINS / "bridge",))


class Node:
    def __init__(self, cluster: Cluster, client: ApiClient, cri: CriClient, base: Path) -> None:
        self.cluster, self.client, self.cri, self.base = cluster, client, cri, base
        self.kubelet: Proc | None = None
        self.plugins: dict[str, Proc] = {}

    @property
    def root(self) -> Path:
        """The kubelet's ``--root-dir`` (kube's /var/lib/kubelet)."""
        return self.base / "var-lib-kubelet"

    @property
    def plugin_dir(self) -> Path:
        return self.root / "device-plugins"

    def start_kubelet(self) -> None:
        args = [
            sys.executable, "-m", "skiff.kubelet", "--server", self.cluster.url,
            "--node-name", NODE, "--runtime-dir", str(self.base), "--pod-cidr", CIDR,
            "--bridge", BRIDGE, "--network-name", NET, "--port", "0", "--lease-period", "1",
            "--node-status-update-frequency", "1", "--node-status-report-frequency", "2",
            "--device-plugin-timeout", "3", "--root-dir", str(self.root),
        ]  # fmt: skip
        self.kubelet = Proc("kubelet", args, self.base / "kubelet.log")
        self.kubelet.start()

    def start_plugin(self, resource: str, devices: Path, *extra: str) -> None:
        args = [
            sys.executable, "-m", "skiff.deviceplugin.sample", "--resource", resource,
            "--devices-dir", str(devices), "--plugin-dir", str(self.plugin_dir), *extra,
        ]  # fmt: skip
        name = resource.split("/")[1]
        self.plugins[resource] = Proc(name, args, self.base / f"plugin-{name}.log")
        self.plugins[resource].start()


def make_devices(directory: Path, n: int) -> None:
    """``n`` character device nodes (the null device's numbers: harmless to hand out)."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = directory / f"dev{i}"
        if not path.exists():
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.fixture(scope="module")
async def node(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Node]:
    base = Path(tmp_path_factory.mktemp("dp"))
    ensure_shared_netns_dir()
    write_cni_config(RuntimePaths(base), CIDR, bridge=BRIDGE, name=NET)
    paths, containerd = start_containerd(base)
    scheduler = cluster.start_scheduler("--leader-elect", "false")
    try:
        async with ApiClient(cluster.url) as client, CriClient(paths.endpoint) as cri:
            n = Node(cluster, client, cri, base)
            n.start_kubelet()
            try:
                yield n
            finally:
                for p in n.plugins.values():
                    p.stop()
                if n.kubelet is not None:
                    n.kubelet.stop()
                with contextlib.suppress(ApiError):
                    await client.delete("nodes", NODE)
                for sb in await cri.list_pod_sandbox():
                    await cri.stop_pod_sandbox(sb.id)
                    await cri.remove_pod_sandbox(sb.id)
    finally:
        scheduler.stop()
        cluster.schedulers.remove(scheduler)
        containerd.stop()
        teardown_network(BRIDGE)


async def until(check: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < end, f"{what} not met in time"
        await asyncio.sleep(0.2)


def pod(name: str, resource: str = SAMPLE, count: int = 0, *, bind: bool = False) -> dict[str, Any]:
    limits = {"limits": {resource: str(count)}} if count else {}
    spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": 1,
        # The shared cluster holds other modules' (simulated) nodes.
        "nodeSelector": {"kubernetes.io/hostname": NODE},
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"],
                        "resources": limits}],
    }  # fmt: skip
    if bind:
        spec["nodeName"] = NODE  # straight to the kubelet, past the scheduler
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def get(node: Node, name: str) -> dict[str, Any]:
    return await node.client.get("pods", name, "default")


async def phase(node: Node, name: str, want: str, timeout: float = 60.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        p = await get(node, name)
        return p if (p.get("status") or {}).get("phase") == want else None

    return await until(check, timeout, f"pod {name} {want}")


async def resources(node: Node, resource: str) -> tuple[str | None, str | None]:
    try:
        st = (await node.client.get("nodes", NODE)).get("status") or {}
    except ApiError:  # not registered yet
        return None, None
    return (st.get("capacity") or {}).get(resource), (st.get("allocatable") or {}).get(resource)


async def sh(node: Node, name: str, script: str) -> str:
    cid = (await get(node, name))["status"]["containerStatuses"][0]["containerID"].split("//")[1]
    result = await node.cri.exec_sync(cid, ["sh", "-c", script], timeout=10)
    return result.stdout.decode()


async def test_device_plugin_end_to_end(node: Node, kubeconfig: Path) -> None:
    devs = node.base / "devices"
    make_devices(devs, 3)
    node.start_plugin(SAMPLE, devs)

    async def advertised() -> bool:
        return await resources(node, SAMPLE) == ("3", "3")

    await until(advertised, 60, "the node's example.com/sample")

    # Two devices: distinct, visible in the container as device nodes and environment.
    await node.client.create("pods", pod("two", count=2), "default")
    await phase(node, "two", "Running")
    seen = (await sh(node, "two", "ls /dev/sample; echo $SAMPLE_DEVICES")).split()
    assert seen == ["dev0", "dev1", "dev0,dev1"]
    assert "c" in await sh(node, "two", "ls -l /dev/sample/dev0 | cut -c1")

    # Two more do not fit: the scheduler keeps the pod Pending, Insufficient.
    await node.client.create("pods", pod("waits", count=2), "default")

    async def unschedulable() -> str:
        conds = (await get(node, "waits")).get("status", {}).get("conditions") or []
        return next((c.get("message", "") for c in conds if c.get("reason") == "Unschedulable"), "")

    assert f"Insufficient {SAMPLE}" in await until(unschedulable, 30, "Insufficient")
    # A pod bound past the scheduler is refused by the kubelet's admission, as kube's.
    await node.client.create("pods", pod("refused", count=2, bind=True), "default")
    refused = await phase(node, "refused", "Failed")
    assert refused["status"]["reason"] == f"OutOf{SAMPLE}"
    assert refused["status"]["message"] == (
        f"Pod was rejected: Node didn't have enough resource: {SAMPLE}, requested: 2, "
        "used: 2, capacity: 3"
    )

    # The devices come back when the pod goes: the waiting pod gets them.
    await node.client.delete("pods", "two", "default", grace_period_seconds=0)
    await phase(node, "waits", "Running", 90)
    held = (await sh(node, "waits", "echo $SAMPLE_DEVICES")).strip().split(",")
    assert len(held) == 2
    # kubectl describe node: the resource, and what the pods on the node hold of it.
    described = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "--kubeconfig", str(kubeconfig), "describe", "node", NODE],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    text = described.stdout
    capacity = text.split("Capacity:")[1].split("Allocatable:")[0]
    assert f"{SAMPLE}:" in capacity and capacity.split(f"{SAMPLE}:")[1].split()[0] == "3"
    allocated = text.split("Allocated resources:")[1]
    assert allocated.split(SAMPLE)[1].split()[:2] == ["2", "2"]  # requests, limits
    # Monitoring agents see the same through the pod-resources API.
    socket = node.root / "pod-resources" / "kubelet.sock"
    async with aio.insecure_channel(f"unix://{socket}") as channel:
        stub = pr_grpc.PodResourcesListerStub(channel)
        got = await stub.Get(pr.GetPodResourcesRequest(pod_name="waits", pod_namespace="default"))
        [devices] = got.pod_resources.containers[0].devices
        assert (devices.resource_name, sorted(devices.device_ids)) == (SAMPLE, sorted(held))
        node_devices = await stub.GetAllocatableResources(pr.AllocatableResourcesRequest())
        assert sorted(d for x in node_devices.devices for d in x.device_ids) == [
            "dev0", "dev1", "dev2"]  # fmt: skip

    # kill -9 the kubelet: the pod keeps running and keeps its devices.
    before = (await get(node, "waits"))["status"]["containerStatuses"][0]
    assert node.kubelet is not None
    node.kubelet.kill()
    node.start_kubelet()
    await node.client.create("pods", pod("one", count=1, bind=True), "default")
    await phase(node, "one", "Running", 90)
    after = (await get(node, "waits"))["status"]["containerStatuses"][0]
    assert (after["containerID"], after["restartCount"]) == (before["containerID"], 0)
    free = {"dev0", "dev1", "dev2"} - set(held)
    assert (await sh(node, "one", "echo $SAMPLE_DEVICES")).strip() in free

    # The plugin killed: nothing allocatable, capacity kept; back when it restarts.
    node.plugins[SAMPLE].kill()

    async def drained() -> bool:
        return await resources(node, SAMPLE) == ("3", "0")

    await until(drained, 30, "allocatable 0")
    node.start_plugin(SAMPLE, devs)
    await until(advertised, 30, "allocatable back")
    for name in ("waits", "one", "refused"):
        await node.client.delete("pods", name, "default", grace_period_seconds=0)


async def test_a_hung_allocate_fails_only_its_pod(node: Node) -> None:
    devs = node.base / "hung-devices"
    make_devices(devs, 1)
    node.start_plugin(HUNG, devs, "--hang-allocate", "600")

    async def advertised() -> bool:
        return await resources(node, HUNG) == ("1", "1")

    await until(advertised, 60, "the node's example.com/hung")
    await node.client.create("pods", pod("stuck", HUNG, 1), "default")
    await node.client.create("pods", pod("free"), "default")
    await phase(node, "free", "Running")
    stuck = await phase(node, "stuck", "Failed", 30)
    assert stuck["status"]["reason"] == "UnexpectedAdmissionError"
    assert stuck["status"]["message"] == (
        f"Pod was rejected: Allocate failed due to device plugin {HUNG} did not answer "
        "Allocate within 3s, which is unexpected"
    )
    events, _ = await node.client.list_all(
        "events", "default", field_selector="involvedObject.name=stuck"
    )
    assert any(e.get("reason") == "UnexpectedAdmissionError" for e in events)
    for name in ("stuck", "free"):
        await node.client.delete("pods", name, "default", grace_period_seconds=0)


async def test_the_nvidia_plugin_process(node: Node) -> None:
    """``skiff-nvidia-device-plugin`` as a process on the real kubelet, its NVML faked from
    a file (no GPU here): the Node's ``nvidia.com/gpu`` and GPU feature discovery's labels
    written through the API; a pod is allocated a GPU (seen in the pod-resources API)."""
    fake = node.base / "nvml.json"
    fake.write_text(json.dumps({"driver": "550.54.15", "cuda": "12.4", "gpus": [
        {"uuid": "GPU-aaaa", "name": "NVIDIA H100 80GB HBM3", "memoryMiB": 81559, "numa": 0},
        {"uuid": "GPU-bbbb", "name": "NVIDIA H100 80GB HBM3", "memoryMiB": 81559, "numa": 0},
    ]}))  # fmt: skip
    args = [
        sys.executable, "-m", "skiff.nvidiaplugin", "--fake-nvml", str(fake),
        "--plugin-dir", str(node.plugin_dir), "--node-name", NODE,
        "--server", node.cluster.url,
    ]  # fmt: skip
    plugin = Proc("nvidia", args, node.base / "plugin-nvidia.log")
    plugin.start()
    try:

        async def advertised() -> bool:
            return await resources(node, "nvidia.com/gpu") == ("2", "2")

        await until(advertised, 60, "the node's nvidia.com/gpu")
        labels = (await node.client.get("nodes", NODE))["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
        assert labels["nvidia.com/gpu.count"] == "2"
        assert labels["nvidia.com/cuda.driver-version.major"] == "550"
        # Allocated at admission; the container itself cannot start without /dev/nvidia0.
        await node.client.create("pods", pod("gpu", "nvidia.com/gpu", 1, bind=True), "default")
        socket = node.root / "pod-resources" / "kubelet.sock"

        async def allocated() -> list[str]:
            async with aio.insecure_channel(f"unix://{socket}") as channel:
                stub = pr_grpc.PodResourcesListerStub(channel)
                got = await stub.Get(
                    pr.GetPodResourcesRequest(pod_name="gpu", pod_namespace="default")
                )
            return [d for c in got.pod_resources.containers for x in c.devices
                    for d in x.device_ids]  # fmt: skip

        assert await until(allocated, 30, "a GPU allocated") in (["GPU-aaaa"], ["GPU-bbbb"])
        await node.client.delete("pods", "gpu", "default", grace_period_seconds=0)
    finally:
        plugin.stop()
