"""The first kubelet: a pod bound to its node runs as a real container under containerd,
gets an IP from CNI, reports Running, and is torn down when deleted."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime import containerd_available, start_containerd

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient
from skiff.kubelet.kubelet import Kubelet
from skiff.kubelet.runtime import (
    RuntimePaths,
    ensure_shared_netns_dir,
    teardown_network,
    write_cni_config,
)

BRIDGE = "skiffkl0"
NODE = "kl-node"

pytestmark = pytest.mark.skipif(
    not containerd_available() or not shutil.which("iptables"),
    reason="containerd or iptables not installed",
)


@pytest.fixture(scope="module")
async def kubelet(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ApiClient, CriClient]]:
    base = Path(tmp_path_factory.mktemp("kl"))
    ensure_shared_netns_dir()
    write_cni_config(RuntimePaths(base), "10.244.251.0/24", bridge=BRIDGE, name="skiffkl")
    paths, proc = start_containerd(base)
    try:
        async with ApiClient(cluster.url) as client, CriClient(paths.endpoint) as cri:
            kl = Kubelet(client, cri, NODE, log_root=base / "pods", lease_period=1.0)
            task = asyncio.create_task(kl.run())
            try:
                yield client, cri
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                for sb in await cri.list_pod_sandbox():
                    await cri.stop_pod_sandbox(sb.id)
                    await cri.remove_pod_sandbox(sb.id)
    finally:
        proc.stop()
        teardown_network(BRIDGE)


async def _until(pred, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        value = await pred()
        if value:
            return value
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_node_registers(kubelet: tuple[ApiClient, CriClient]) -> None:
    client, _ = kubelet

    async def ready() -> bool:
        try:
            node = await client.get("nodes", NODE)
        except ApiError:
            return False
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    await _until(ready)
    node = await client.get("nodes", NODE)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")

    async def lease() -> dict | None:  # the Lease follows the Node by one request
        try:
            return await client.get("leases.coordination.k8s.io", NODE, "kube-node-lease")
        except ApiError:
            return None

    assert await _until(lease)


async def test_pod_runs_and_is_torn_down(kubelet: tuple[ApiClient, CriClient]) -> None:
    client, cri = kubelet
    await client.create(
        "pods",
        {
            "metadata": {"name": "real"},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 2,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo started; exec sleep 3600"],
                    }
                ],
            },
        },
        "default",
    )

    async def running() -> dict | None:
        pod = await client.get("pods", "real", "default")
        status = pod.get("status") or {}
        return pod if status.get("phase") == "Running" and status.get("podIP") else None

    pod = await _until(running)
    assert pod["status"]["podIP"].startswith("10.244.251.")
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] is True and cs["containerID"].startswith("containerd://")
    # The container really runs: exec into it through CRI.
    cid = cs["containerID"].removeprefix("containerd://")
    result = await cri.exec_sync(cid, ["cat", "/proc/1/cmdline"], timeout=10)
    assert b"sleep" in result.stdout
    await client.delete("pods", "real", "default")

    async def gone() -> bool:
        items, _ = await client.list_all("pods", "default", field_selector="metadata.name=real")
        return not items

    await _until(gone)
    assert not await cri.list_pod_sandbox()


async def test_env_sources_resources_and_config_errors(
    kubelet: tuple[ApiClient, CriClient],
) -> None:
    client, cri = kubelet
    await client.create(
        "configmaps", {"metadata": {"name": "settings"}, "data": {"MODE": "fast"}}, "default"
    )
    await client.create(
        "pods",
        {
            "metadata": {"name": "envy", "labels": {"app": "envy"}},
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "envFrom": [{"configMapRef": {"name": "settings"}}],
                        "env": [
                            {
                                "name": "ME",
                                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                            },
                            {
                                "name": "IP",
                                "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                            },
                        ],
                        "resources": {"limits": {"memory": "32Mi", "cpu": "250m"}},
                    }
                ],
            },
        },
        "default",
    )

    async def running() -> dict | None:
        pod = await client.get("pods", "envy", "default")
        return pod if (pod.get("status") or {}).get("phase") == "Running" else None

    pod = await _until(running)
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    out = (await cri.exec_sync(cid, ["env"], timeout=10)).stdout.decode()
    assert "MODE=fast" in out and "ME=envy" in out
    assert f"IP={pod['status']['podIP']}" in out
    # The memory limit reached the container's cgroup.
    limit = await cri.exec_sync(
        cid, ["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"], timeout=10
    )
    if limit.exit_code == 0:
        assert int(limit.stdout) == 32 * 1024 * 1024
    await client.delete("pods", "envy", "default")

    await client.create(
        "pods",
        {
            "metadata": {"name": "broken"},
            "spec": {
                "nodeName": NODE,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "env": [
                            {
                                "name": "X",
                                "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "k"}},
                            }
                        ],
                    }
                ],
            },
        },
        "default",
    )

    async def config_error() -> dict | None:
        pod = await client.get("pods", "broken", "default")
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        waiting = statuses[0]["state"].get("waiting", {}) if statuses else {}
        return pod if waiting.get("reason") == "CreateContainerConfigError" else None

    pod = await _until(config_error)
    assert pod["status"]["phase"] == "Pending"
    assert (
        'configmap "absent" not found'
        in pod["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    await client.delete("pods", "broken", "default", grace_period_seconds=0)
