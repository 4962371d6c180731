"""N simulated nodes in one process.

Each node registers itself with realistic capacity, renews its Lease in
``kube-node-lease`` every 10 s, and acts as the kubelet for the pods bound to it:
marks them Running and Ready with a pod IP, and finishes their deletion. No
container runs: these nodes exist to drive the scheduler and controllers at scale,
never to claim that workloads run.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.informer import Informer
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient
from skiff.log import get_logger

log = get_logger(__name__)

HOLLOW_LABEL = "skiff.io/hollow-node"
# Addresses are data only: nothing ever sends traffic to them.
NODE_NET = ipaddress.ip_network("198.18.0.0/16")
POD_NET = ipaddress.ip_network("10.192.0.0/12")


@dataclass(slots=True)
class NodeShape:
    """Capacity of each hollow node."""

    cpu: str = "8"
    memory: str = "32Gi"
    pods: int = 110
    ephemeral_storage: str = "100Gi"
    gpus: int = 0
    labels: dict[str, str] | None = None
    taints: list[dict[str, str]] | None = None


class HollowNodes:
    """Registers ``count`` nodes named ``<prefix><i>`` and runs their pods."""

    def __init__(
        self,
        client: ApiClient,
        count: int,
        *,
        prefix: str = "hollow-",
        shape: NodeShape | None = None,
        lease_period: float = 10.0,
        concurrency: int = 16,
    ) -> None:
        self.client = client
        self.count = count
        self.prefix = prefix
        self.shape = shape or NodeShape()
        self.lease_period = lease_period
        self.names = [f"{prefix}{i}" for i in range(count)]
        self._index = {n: i for i, n in enumerate(self.names)}
        self._pod_ips: dict[str, itertools.count] = {}
        self._subnets = list(itertools.islice(POD_NET.subnets(new_prefix=24), count))
        self._leases: dict[str, NodeLease] = {}
        self._sem = asyncio.Semaphore(concurrency)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pods = Informer(client, "pods", field_selector="spec.nodeName!=")
        self.pods.add_handler(on_add=self._on_pod, on_update=lambda _o, n: self._on_pod(n))

    def node_object(self, name: str) -> dict[str, Any]:
        i = self._index[name]
        s = self.shape
        capacity = {
            "cpu": s.cpu,
            "memory": s.memory,
            "pods": str(s.pods),
            "ephemeral-storage": s.ephemeral_storage,
        }
        if s.gpus:
            capacity["nvidia.com/gpu"] = str(s.gpus)
        now = rfc3339()
        conditions = [
            {
                "type": t,
                "status": "False",
                "reason": f"KubeletHas{r}",
                "message": m,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
            for t, r, m in (
                ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory"),
                ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"),
            )
        ]
        conditions.append(
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "hollow kubelet is posting ready status",
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            HOLLOW_LABEL: "true",
            **(s.labels or {}),
        }
        node: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": str(self._subnets[i])},
            "status": {
                "capacity": capacity,
                "allocatable": dict(capacity),
                "conditions": conditions,
                "addresses": [
                    {"type": "InternalIP", "address": str(NODE_NET[i + 1])},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {
                    "kubeletVersion": "v1.32.0-skiff-hollow",
                    "osImage": "hollow",
                    "kernelVersion": "hollow",
                    "containerRuntimeVersion": "hollow://0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kubeProxyVersion": "",
                },
            },
        }
        if s.taints:
            node["spec"]["taints"] = s.taints
        return node

    async def register(self) -> None:
        """Create (or refresh) every node and its Lease."""

        async def one(name: str) -> None:
            async with self._sem:
                node = self.node_object(name)
                try:
                    await self.client.create("nodes", node)
                except ApiError as e:
                    if e.code != 409:
                        raise
                    current = await self.client.get("nodes", name)
                    current["status"] = node["status"]
                    await self.client.update("nodes", current, subresource="status")
                await self._renew(name)

        await asyncio.gather(*(one(n) for n in self.names))
        log.info("hollow nodes registered", count=self.count)

    async def _renew(self, name: str) -> None:
        lease = self._leases.get(name)
        if lease is None:
            lease = self._leases[name] = NodeLease(self.client, name)
        await lease.renew()

    async def run(self) -> None:
        """Register, then keep Leases fresh and run bound pods until cancelled."""
        await self.register()
        workers = [
            asyncio.create_task(self._pod_worker(), name=f"hollow-pods-{i}") for i in range(4)
        ]
        informer = asyncio.create_task(self.pods.run(), name="hollow-pod-informer")
        try:
            while True:
                await asyncio.sleep(self.lease_period)
                await self._renew_all()
        finally:
            for t in (*workers, informer):
                t.cancel()
            await asyncio.gather(*workers, informer, return_exceptions=True)

    async def _renew_all(self) -> None:
        async def one(name: str) -> None:
            async with self._sem:
                try:
                    await self._renew(name)
                except ApiError as e:
                    log.warning("lease renewal failed", node=name, error=e.message)

        await asyncio.gather(*(one(n) for n in self.names))

    # -- the kubelet part --------------------------------------------------------------

    def _on_pod(self, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node not in self._index:
            return
        meta = pod["metadata"]
        phase = (pod.get("status") or {}).get("phase")
        if meta.get("deletionTimestamp") or phase not in ("Running", "Succeeded", "Failed"):
            self._queue.put_nowait(pod)

    async def _pod_worker(self) -> None:
        while True:
            pod = await self._queue.get()
            try:
                await self._sync_pod(pod)
            except ApiError as e:
                if e.code not in (404, 409):
                    log.warning(
                        "hollow pod sync failed", pod=pod["metadata"]["name"], error=e.message
                    )

    async def _sync_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        if meta.get("deletionTimestamp"):
            await self.client.delete(
                "pods", name, ns, grace_period_seconds=0, preconditions={"uid": meta["uid"]}
            )
            return
        node = pod["spec"]["nodeName"]
        now = rfc3339()
        containers = pod["spec"].get("containers") or []
        ready = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        status = {
            "phase": "Running",
            "conditions": ready,
            "hostIP": str(NODE_NET[self._index[node] + 1]),
            "podIP": self._next_pod_ip(node),
            "startTime": now,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "containerID": f"hollow://{meta.get('uid', '')}/{c['name']}",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in containers
            ],
        }
        status["podIPs"] = [{"ip": status["podIP"]}]
        await self.client.patch(
            "pods", name, {"status": status}, ns, type="merge", subresource="status"
        )

    def _next_pod_ip(self, node: str) -> str:
        subnet = self._subnets[self._index[node]]
        counter = self._pod_ips.setdefault(node, itertools.count(1))
        return str(subnet[next(counter) % 253 + 1])
