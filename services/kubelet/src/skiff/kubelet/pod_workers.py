"""Pod workers, as pod_workers.go and the kubelet's ``syncPod``: pod keys on a work queue,
the workers that take them (the controller runtime's :class:`Reconciler`: one key never in
two workers; failures retried with back-off), the level-triggered ``sync(key)`` that walks
one pod through volumes, sandbox, init and app containers and status (or termination),
and the removal at start of what pods deleted while the kubelet was down left behind.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from skiff import tracing
from skiff.api.errors import ApiError
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.controller.controller import Reconciler
from skiff.cri.client import CriClient, CriError, pb
from skiff.log import get_logger

from .devicemanager import AdmissionError, DeviceManager, NotReady
from .pod_context import CONTAINER_NAME, POD_UID, PodContext
from .probes import ProbeManager
from .static import is_mirror, mirror_hash
from .volumes import VolumeError, VolumeManager

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.kubelet")


class PodWorkersMixin(Reconciler):
    """The work queue of pod keys (``namespace/name/uid``) and what a worker does with one:
    the controller runtime's queue and workers (:class:`Reconciler`) around :meth:`sync`.
    """

    name = "kubelet"

    # Set up by Kubelet.__init__.
    client: ApiClient
    cri: CriClient
    node_ip: str
    pods: Informer
    events: EventRecorder
    probes: ProbeManager
    volumes: VolumeManager
    devices: DeviceManager
    static_pods: dict[str, dict[str, Any]]

    if TYPE_CHECKING:  # from the other parts of Kubelet

        async def _confirm_deletion(self, pod: dict[str, Any]) -> None: ...
        async def _terminate(
            self, pod: dict[str, Any] | None, sandboxes: list[pb.PodSandbox], uid: str
        ) -> None: ...
        async def _stop_finished(
            self, pod: dict[str, Any], sandboxes: list[pb.PodSandbox]
        ) -> None: ...
        async def _ensure_sandbox(
            self, ctx: PodContext, sandboxes: list[pb.PodSandbox]
        ) -> bool: ...
        async def _sync_init(self, ctx: PodContext, paths: dict[str, str]) -> bool: ...
        async def _sync_container(
            self, ctx: PodContext, spec: dict[str, Any], paths: dict[str, str], *, init: bool
        ) -> None: ...
        async def _sync_ephemeral(self, ctx: PodContext, paths: dict[str, str]) -> None: ...
        async def _report(self, ctx: PodContext) -> None: ...

    def _enqueue(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = mirror_hash(pod) or meta.get("uid")  # a mirror pod stands for its static pod
        self.queue.add(f"{meta.get('namespace')}/{meta['name']}/{uid}")

    async def _remove_orphans(self) -> None:
        """Sandboxes of pods the API no longer has (deleted while the kubelet was down)."""
        known = {p["metadata"]["uid"] for p in self.pods.list()}
        known |= {p["metadata"]["uid"] for p in self.static_pods.values()}
        seen: set[str] = set()
        for sb in await self.cri.list_pod_sandbox():
            uid = sb.labels.get(POD_UID) or sb.metadata.uid
            if uid and uid not in known and uid not in seen:
                seen.add(uid)
                ns, name = sb.metadata.namespace, sb.metadata.name
                self.queue.add(f"{ns}/{name}/{uid}")
        for uid in self.volumes.known_pods() - known - seen:
            await self.volumes.teardown(uid)
        # Devices stay with the pods that still run (the checkpoint said who holds what).
        self.devices.retain(self._active_uids())

    def _active_pods(self) -> list[dict[str, Any]]:
        """The pods that hold resources (kube's ``GetActivePods``): bound here, neither
        finished nor being deleted."""
        pods = [*self.pods.list(), *self.static_pods.values()]
        return [
            p
            for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def _active_uids(self) -> set[str]:
        return {p["metadata"]["uid"] for p in self._active_pods()}

    async def _admit(self, key: str, pod: dict[str, Any]) -> float | None:
        """Admit the pod (its devices); None when admitted, else seconds until a re-check
        (0: rejected for good)."""
        # Until the informer has listed, every API pod would look gone.
        active = self._active_uids if self.pods.has_synced() else None
        try:
            await self.devices.admit(pod, active)
        except AdmissionError as e:
            await self._reject(pod, e.reason, e.message)
            return 0
        except NotReady as e:
            log.info("pod admission waits", pod=key, reason=str(e))
            return 1.0
        return None

    async def _reject(self, pod: dict[str, Any], reason: str, message: str) -> None:
        """Refuse a pod at admission (kube's ``rejectPod``): an event and a Failed phase."""
        log.warning("pod rejected", pod=pod["metadata"]["name"], reason=reason, message=message)
        self.events.emit(pod, "Warning", reason, message)
        meta = pod["metadata"]
        status = {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}"}
        await self.client.patch(
            "pods", meta["name"], {"status": status}, meta["namespace"],
            type="merge", subresource="status",
        )  # fmt: skip

    # -- the Reconciler's hooks: a worker's sync of one key -------------------------------

    async def reconcile(self, key: str) -> float | None:
        return await self.sync(key) or None  # 0: nothing to re-check

    def reconcile_span(self, key: str) -> AbstractContextManager[object]:
        ns, name, _ = key.split("/", 2)
        return _tracer.start_as_current_span(
            "kubelet.SyncPod",
            # Linked to the trace of the write that created the pod.
            links=tracing.links_to(self.pods.trace_of(f"{ns}/{name}")),
            attributes={"k8s.pod": key},
        )

    def log_retry(self, key: str, error: Exception) -> None:
        if isinstance(error, (ApiError, CriError)):
            log.warning("pod sync failed; retrying", pod=key, error=str(error))
        else:
            log.exception("pod sync crashed; retrying", pod=key)

    async def sync(self, key: str) -> float:
        """Bring the runtime in line with the API for one pod; seconds until a re-check."""
        ns, name, uid = key.split("/", 2)
        pod = self.pods.get(f"{ns}/{name}")
        static = self.static_pods.get(f"{ns}/{name}")
        if static is not None and static["metadata"]["uid"] == uid:
            pod = copy.deepcopy(static)
            mirror = self.pods.get(f"{ns}/{name}")
            if mirror is not None and mirror_hash(mirror) == uid:
                if mirror["metadata"].get("deletionTimestamp"):
                    await self._confirm_deletion(mirror)  # it comes back; the pod runs on
                else:
                    pod["status"] = copy.deepcopy(mirror.get("status") or {})
        elif pod is not None and is_mirror(pod):
            if pod["metadata"].get("deletionTimestamp"):
                await self._confirm_deletion(pod)  # the mirror comes back; the pod runs on
            pod = None  # a mirror never runs by itself: its static pod is gone or changed
        if pod is not None and pod["metadata"].get("uid") != uid:
            pod = None  # a newer pod of the same name: this key is about the old one
        sandboxes = list(await self.cri.list_pod_sandbox(label_selector={POD_UID: uid}))
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            await self._terminate(pod, sandboxes, uid)
            if pod is not None:
                await self._confirm_deletion(pod)
            return 0
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            await self._stop_finished(pod, sandboxes)
            return 0

        wait = await self._admit(key, pod)
        if wait is not None:
            return wait
        ctx = PodContext(pod)
        try:
            paths = await self.volumes.setup(pod, pod_ip="", host_ip=self.node_ip)
        except (VolumeError, ApiError) as e:
            message = str(e) if isinstance(e, VolumeError) else e.message
            self.events.emit(pod, "Warning", "FailedMount", message)
            await self._report(ctx)
            return 5.0
        if not await self._ensure_sandbox(ctx, sandboxes):
            await self._report(ctx)
            return ctx.requeue or 5.0
        for c in await self.cri.list_containers(pod_sandbox_id=ctx.sandbox_id):
            ctx.history.setdefault(c.labels.get(CONTAINER_NAME, c.metadata.name), []).append(c)
        for items in ctx.history.values():
            items.sort(key=lambda c: (c.metadata.attempt, c.created_at), reverse=True)
            for old in items[2:]:  # keep the latest and the one before (logs --previous)
                if old.state != pb.CONTAINER_RUNNING:
                    await self.cri.remove_container(old.id)
            del items[2:]
        ctx.init_done = await self._sync_init(ctx, paths)
        if ctx.init_done:
            for spec in pod["spec"].get("containers") or []:
                await self._sync_container(ctx, spec, paths, init=False)
            await self._sync_ephemeral(ctx, paths)
        live = {
            c.id
            for items in ctx.history.values()
            for c in items[:1]
            if c.state == pb.CONTAINER_RUNNING
        }
        self.probes.stop_pod(uid, keep=live)
        await self._report(ctx)
        return ctx.requeue or 10.0
