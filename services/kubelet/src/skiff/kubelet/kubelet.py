"""The kubelet: registers its Node, heartbeats a Lease and runs bound pods on containerd.

Level-triggered: every pod bound to this node is a key in a work queue; ``sync(key)``
compares what the API wants with what the runtime has and takes the next steps, as the
kubelet's ``SyncPod``: volumes, sandbox, init containers one at a time, app containers,
restarts with exponential back-off, probe verdicts, and a status report. Everything it
needs to decide is read back from the runtime (sandboxes and containers carry the pod
uid, container name and attempt in their labels and metadata), so a restarted kubelet
adopts what runs without restarting it. Deleting a pod runs preStop hooks, stops the
containers within the grace period, tears down the sandbox (and so its CNI attachment)
and volumes, and then confirms the deletion to the API.

This module owns the :class:`Kubelet` itself, its state and its ``run`` loop; as kube's
kubelet is one struct over many files, its parts are mixins, one per module:
``node_status`` (Node, Lease, conditions, podCIDR, device resources), ``pod_workers``
(queue, workers, admission, ``sync``, orphans), ``static`` (static and mirror pods),
``sandbox``, ``containers`` (start, restart, init containers, probes), ``termination``
(stopping) and ``pod_status``;
the image manager (``images``), probes, volumes and the device manager
(``devicemanager``) are collaborators.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from skiff.api.errors import ApiError
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient
from skiff.log import get_logger

from . import podresources
from .containers import ContainersMixin
from .devicemanager import DeviceManager
from .images import ImageManager
from .network import PodNetwork
from .node_status import NodeStatusMixin
from .pod_status import PodStatusMixin
from .pod_workers import PodWorkersMixin
from .probes import ProbeManager, Prober
from .sandbox import SandboxMixin
from .static import StaticPodsMixin
from .termination import TerminationMixin
from .tokens import TokenManager
from .volumes import VolumeManager

log = get_logger(__name__)


class Kubelet(
    NodeStatusMixin,
    PodWorkersMixin,
    StaticPodsMixin,
    SandboxMixin,
    ContainersMixin,
    TerminationMixin,
    PodStatusMixin,
):
    """Runs the pods the API binds to ``node_name`` through ``cri``."""

    def __init__(
        self,
        client: ApiClient,
        cri: CriClient,
        node_name: str,
        *,
        log_root: Path,
        root: Path | None = None,
        node_ip: str = "127.0.0.1",
        kubelet_port: int = 0,
        lease_period: float = 10.0,
        workers: int = 4,
        cluster_dns: list[str] | None = None,
        cluster_domain: str = "cluster.local",
        resolv_conf: Path | None = None,
        manifest_dir: Path | None = None,
        file_check_period: float = 5.0,
        status_period: float = 10.0,
        report_period: float = 60.0,
        pod_cidr: str = "",
        network: PodNetwork | None = None,
        device_plugin_timeout: float = 30.0,
    ) -> None:
        super().__init__(workers=workers)  # the pod workers' queue (PodWorkersMixin)
        self.client = client
        self.cri = cri
        self.node_name = node_name
        self.node_ip = node_ip
        self.kubelet_port = kubelet_port
        self.log_root = log_root
        self.root = root or log_root.parent / "kubelet"
        self.lease_period = lease_period
        self.cluster_dns = cluster_dns or []
        self.cluster_domain = cluster_domain
        self.resolv_conf = resolv_conf
        self.pods = Informer(client, "pods", field_selector=f"spec.nodeName={node_name}")
        self.informers.append(self.pods)
        # Services for the containers' service variables, as the kubelet's service lister.
        self.services = Informer(client, "services")
        self.pods.add_handler(
            lambda p: self._enqueue(p), lambda _o, n: self._enqueue(n), lambda p: self._enqueue(p)
        )
        self.lease = NodeLease(client, node_name)
        self.events = EventRecorder(client, "kubelet", node_name)
        self.probes = ProbeManager(Prober(cri))
        self.volumes = VolumeManager(
            self.root, self._lookup, secrets_in_memory=True, tokens=TokenManager(self._token)
        )
        self.images = ImageManager(cri, self.events)
        self.manifest_dir = manifest_dir
        self.file_check_period = file_check_period
        self.static_pods: dict[str, dict[str, Any]] = {}  # "namespace/name" → static pod
        self.status_period = status_period
        self.report_period = report_period
        self.pod_cidr = pod_cidr
        self.network = network
        """The node's pod network (None: not the kubelet's to manage, always ready)."""
        self._node: dict[str, Any] | None = None
        self._status_sent = 0.0
        self._status_wake = asyncio.Event()
        self.devices = DeviceManager(
            self.root / "device-plugins",
            self._status_wake.set,
            rpc_timeout=device_plugin_timeout,
        )
        """Device plugins and the devices they give pods (``devicemanager``)."""

    async def run(self) -> None:
        pod_resources = None
        try:
            await self.devices.start()
            pod_resources = await podresources.serve(
                self.root / "pod-resources",
                podresources.PodResources(self.devices, self._active_pods),
            )
        except (OSError, RuntimeError) as e:  # e.g. a socket path over the 107-byte limit
            log.error("device manager not started; device plugins cannot register", error=str(e))
        try:
            await self._run()
        finally:
            if pod_resources is not None:
                await pod_resources.stop(0.5)
            await self.devices.stop()

    async def _run(self) -> None:
        tasks: list[asyncio.Task[None]] = []
        if self.manifest_dir is not None:
            # Static pods run before the API answers, as kube's kubelet runs them: the
            # control plane itself may be among them (skiffadm's static pods). The pod
            # workers (Reconciler.run, PodWorkersMixin's base) start at once for them.
            self._refresh_static()
            tasks.append(
                asyncio.create_task(super().run(wait_for_caches=False), name="kubelet-pod-workers")
            )
            tasks.append(asyncio.create_task(self._static_loop(), name="kubelet-static-pods"))
        try:
            await self._register_until_answered()
            tasks.append(asyncio.create_task(self.pods.run(), name="kubelet-pods"))
            tasks.append(asyncio.create_task(self.services.run(), name="kubelet-services"))
            await self.pods.wait_synced()
            await self.services.wait_synced()  # no API pod starts without its variables
            await self._remove_orphans()
            if self.manifest_dir is None:
                tasks.append(asyncio.create_task(super().run(), name="kubelet-pod-workers"))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        try:
            await self._heartbeat()
        finally:
            self.queue.shut_down()
            self.probes.stop_all()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _register_until_answered(self) -> None:
        """Register the Node, trying again (up to every 7 s) while the API does not answer
        or refuses: the control plane may still be starting, maybe as our static pods."""
        delay = 0.5
        while True:
            try:
                await self.register()
                return
            except ApiError as e:
                log.warning("node registration failed; trying again", error=e.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 7.0)

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.client.get(kind, name, namespace)

    async def _token(self, namespace: str, account: str, request: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_subresource(
            "serviceaccounts", account, "token", request, namespace
        )
