"""Hollow nodes register, heartbeat and run the pods bound to them (no containers)."""

from __future__ import annotations

import asyncio

from clusterenv import hollow_env

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.hollownode.nodes import NodeShape


async def _until(pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_hollow_nodes_run_pods(cluster: Cluster) -> None:
    async with hollow_env(
        cluster,
        None,  # its pod goes to "default"
        nodes=5,
        prefix="hn-",
        shape=NodeShape(gpus=2),
        lease_period=0.5,
        scheduler=False,
        wait_nodes=False,  # registration is what this test checks
    ) as env:
        client = env.client

        async def registered() -> bool:
            items, _ = await client.list_all("nodes", label_selector="skiff.io/hollow-node")
            return len([n for n in items if n["metadata"]["name"].startswith("hn-")]) == 5

        await _until(registered)
        node = await client.get("nodes", "hn-3")
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "2"
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True"

        async def has_lease() -> bool:  # the Lease follows its Node by one request
            try:
                await client.get("leases.coordination.k8s.io", "hn-3", "kube-node-lease")
                return True
            except ApiError:
                return False

        await _until(has_lease)
        lease = await client.get("leases.coordination.k8s.io", "hn-3", "kube-node-lease")
        first = lease["spec"]["renewTime"]

        async def renewed() -> bool:
            lease = await client.get("leases.coordination.k8s.io", "hn-3", "kube-node-lease")
            return lease["spec"]["renewTime"] != first

        await _until(renewed)
        await client.create(
            "pods",
            {
                "metadata": {"name": "on-hollow"},
                "spec": {"nodeName": "hn-1", "containers": [{"name": "c", "image": "busybox"}]},
            },
            "default",
        )

        async def running() -> bool:
            pod = await client.get("pods", "on-hollow", "default")
            return (pod.get("status") or {}).get("phase") == "Running"

        await _until(running)
        pod = await client.get("pods", "on-hollow", "default")
        assert pod["status"]["podIP"].startswith("10.")
        assert pod["status"]["containerStatuses"][0]["ready"] is True
        # Graceful deletion: the hollow kubelet confirms and the pod goes away.
        await client.delete("pods", "on-hollow", "default")

        async def gone() -> bool:
            items, _ = await client.list_all(
                "pods", "default", field_selector="metadata.name=on-hollow"
            )
            return not items

        await _until(gone)
