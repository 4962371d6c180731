"""N simulated nodes in one process.

Each node registers itself with realistic capacity, renews its Lease in
``kube-node-lease`` every 10 s, and acts as the kubelet for the pods bound to it:
marks them Running and Ready with a pod IP, and finishes their deletion. No
container runs: these nodes exist to drive the scheduler and controllers at scale,
never to claim that workloads run.

The kubelet part is a controller (:class:`HollowKubelet`): an informer of bound pods
turns every event of a pod on one of these nodes into its key, and a level-triggered
``reconcile(key)`` reads the pod from the cache and writes what its kubelet would (one
status patch to start it, one delete to finish it). Failures are retried with the
work queue's per-key back-off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.informer import Backoff, Informer
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient, Obj
from skiff.controller.controller import Controller, ControllerContext, TerminalError
from skiff.controller.informers import SharedInformers
from skiff.controller.ownwrites import OwnWrites
from skiff.controller.podcontrol import force_delete_pod
from skiff.log import get_logger

log = get_logger(__name__)

HOLLOW_LABEL = "skiff.io/hollow-node"
# Addresses are data only: nothing ever sends traffic to them.
NODE_NET = ipaddress.ip_network("198.18.0.0/16")
POD_NET = ipaddress.ip_network("10.192.0.0/12")
POD_WORKERS = 4
"""Pods started or finished at once, over all the nodes of one process."""
SETTLED = ("Running", "Succeeded", "Failed")


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
        """Bounds registration and Lease renewals in flight."""
        self.kubelet = HollowKubelet(ControllerContext(client, SharedInformers(client)), self)
        self.pods = self.kubelet.pods

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

    def owns(self, node: str | None) -> bool:
        """Whether ``node`` is one of these hollow nodes."""
        return node in self._index

    def host_ip(self, node: str) -> str:
        return str(NODE_NET[self._index[node] + 1])

    async def register(self) -> None:
        """Create (or refresh) every node and its Lease.

        Transient failures (conflicts, throttling, server and connection errors) are
        retried with back-off, as the kubelet retries its registration.
        """

        async def one(name: str) -> None:
            backoff = Backoff()
            while True:
                try:
                    async with self._sem:
                        await self._register(name)
                    return
                except ApiError as e:
                    if not _transient(e):
                        raise
                    delay = backoff.next()
                    log.warning(
                        "node registration failed; retrying",
                        node=name,
                        code=e.code,
                        error=e.message,
                        delay=round(delay, 2),
                    )
                await asyncio.sleep(delay)

        await asyncio.gather(*(one(n) for n in self.names))
        log.info("hollow nodes registered", count=self.count)

    async def _register(self, name: str) -> None:
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

    async def _renew(self, name: str) -> None:
        lease = self._leases.get(name)
        if lease is None:
            lease = self._leases[name] = NodeLease(self.client, name)
        await lease.renew()

    async def run(self) -> None:
        """Register, then keep Leases fresh and run bound pods until cancelled."""
        await self.register()
        kubelet = asyncio.create_task(self.kubelet.run(), name="hollow-kubelet")
        try:
            while True:
                await asyncio.sleep(self.lease_period)
                await self._renew_all()
        finally:
            kubelet.cancel()
            await asyncio.gather(kubelet, return_exceptions=True)
            await self.kubelet.stop()

    async def _renew_all(self) -> None:
        async def one(name: str) -> None:
            async with self._sem:
                try:
                    await self._renew(name)
                except ApiError as e:
                    log.warning("lease renewal failed", node=name, code=e.code, error=e.message)
                except Exception:  # the next beat tries again; never end the heartbeats
                    log.exception("lease renewal failed", node=name)

        await asyncio.gather(*(one(n) for n in self.names))

    def next_pod_ip(self, node: str) -> str:
        subnet = self._subnets[self._index[node]]
        counter = self._pod_ips.setdefault(node, itertools.count(1))
        return str(subnet[next(counter) % 253 + 1])


def _transient(e: ApiError) -> bool:
    return e.code in (409, 429) or e.code >= 500


class HollowKubelet(Controller):
    """The kubelet of every hollow node of one process: the pods bound to them, by key.

    Its informer holds bound pods only (``spec.nodeName!=``), so it is its own rather
    than the shared one of every pod; :meth:`run` runs it.
    """

    name = "hollow-kubelet"

    def __init__(self, ctx: ControllerContext, nodes: HollowNodes) -> None:
        super().__init__(ctx, workers=POD_WORKERS)
        self.nodes = nodes
        self.pods = Informer(ctx.client, "pods", field_selector="spec.nodeName!=")
        self.informers.append(self.pods)  # synced before the workers start
        self.pods.add_handler(self._on_pod, lambda _old, new: self._on_pod(new), self._on_pod)
        self.own_writes = OwnWrites()
        """Running statuses written that the cache does not show yet."""

    def _on_pod(self, pod: Obj) -> None:
        if self.nodes.owns((pod.get("spec") or {}).get("nodeName")):
            self.enqueue(pod)

    async def run(self) -> None:
        informer = asyncio.create_task(self.pods.run(), name=self.pods.name)
        try:
            await super().run()
        finally:
            informer.cancel()
            await asyncio.gather(informer, return_exceptions=True)

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None:  # gone
            self.own_writes.forget(key)
            return None
        node = (pod.get("spec") or {}).get("nodeName")
        if not self.nodes.owns(node):
            return None
        if pod["metadata"].get("deletionTimestamp"):
            await self._finish(pod)
            return None
        if (pod.get("status") or {}).get("phase") in SETTLED:
            return None
        if self.own_writes.pending(key, self.pods.get):
            return None  # our Running status is on its way; its event requeues the pod
        written = await self._start(pod, node)
        if written is not None:
            self.own_writes.wrote(key, written)
        return None

    async def _finish(self, pod: Obj) -> None:
        """Confirm a terminating pod's deletion (nothing runs, so nothing to stop)."""
        await force_delete_pod(self.client, pod)

    async def _start(self, pod: Obj, node: str) -> Obj | None:
        """Write Running and Ready; the pod as written, or None when it is gone."""
        meta = pod["metadata"]
        now = rfc3339()
        pod_ip = self.nodes.next_pod_ip(node)
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
            "hostIP": self.nodes.host_ip(node),
            "podIP": pod_ip,
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
            "podIPs": [{"ip": pod_ip}],
        }
        try:
            return await self.client.patch(
                "pods",
                meta["name"],
                {"status": status},
                meta.get("namespace"),
                type="merge",
                subresource="status",
            )
        except ApiError as e:
            if e.code == 404:
                return None
            if e.code in (400, 422):
                raise TerminalError(f"status refused: {e.message}") from e
            raise
