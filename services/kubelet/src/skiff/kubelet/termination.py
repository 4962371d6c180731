"""Stopping, as kuberuntime's killContainer/killPodWithSyncResult: preStop hooks, SIGTERM
and SIGKILL at the end of the grace period, sandbox removal (and so its CNI teardown),
volume teardown for deleted pods, and the stop of a finished (Succeeded/Failed) pod,
whose containers and logs are kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from skiff.api.pods import grace_period
from skiff.client.events import EventRecorder
from skiff.cri.client import CriClient, CriError, pb

from .devicemanager import DeviceManager
from .pod_context import CONTAINER_NAME
from .probes import ProbeManager
from .volumes import VolumeManager


class TerminationMixin:
    """Stopping containers and removing sandboxes within the pod's grace period."""

    # Set up by Kubelet.__init__.
    cri: CriClient
    events: EventRecorder
    probes: ProbeManager
    volumes: VolumeManager
    devices: DeviceManager

    if TYPE_CHECKING:  # from the other parts of Kubelet

        async def _run_handler(
            self,
            pod: dict[str, Any],
            spec: dict[str, Any],
            cid: str,
            pod_ip: str,
            handler: dict[str, Any],
            timeout: float,
        ) -> tuple[bool, str]: ...

    async def _stop_container(
        self,
        pod: dict[str, Any] | None,
        spec: dict[str, Any] | None,
        cid: str,
        *,
        grace: int,
        run_pre_stop: bool = True,
    ) -> None:
        """preStop hook, then SIGTERM and SIGKILL once the rest of the grace period is up."""
        started = time.monotonic()
        handler = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if run_pre_stop and handler and pod is not None and grace > 0:
            pod_ip = ((pod.get("status") or {}).get("podIP")) or ""
            try:
                ok, message = await asyncio.wait_for(
                    self._run_handler(pod, spec or {}, cid, pod_ip, handler, grace), grace
                )
            except TimeoutError:
                ok, message = False, f"did not finish within {grace}s"
            if not ok:
                self.events.emit(
                    pod, "Warning", "FailedPreStopHook", f"PreStopHook failed: {message}"
                )
        remaining = max(2, grace - int(time.monotonic() - started)) if grace > 0 else 0
        try:
            await self.cri.stop_container(cid, grace_period=remaining)
        except CriError as e:
            if not e.not_found():
                raise

    async def _stop_sandbox_containers(
        self, pod: dict[str, Any] | None, sandbox_id: str, grace: int
    ) -> None:
        specs = {}
        if pod is not None:
            for c in (pod["spec"].get("initContainers") or []) + (
                pod["spec"].get("containers") or []
            ):
                specs[c["name"]] = c
        running = [
            c
            for c in await self.cri.list_containers(pod_sandbox_id=sandbox_id)
            if c.state == pb.CONTAINER_RUNNING
        ]
        for c in running:
            name = c.labels.get(CONTAINER_NAME, c.metadata.name)
            if pod is not None:
                self.events.emit(pod, "Normal", "Killing", f"Stopping container {name}")
        await asyncio.gather(
            *(
                self._stop_container(
                    pod, specs.get(c.labels.get(CONTAINER_NAME, "")), c.id, grace=grace
                )
                for c in running
            )
        )
        self.probes.stop({c.id for c in running})

    async def _remove_sandboxes(
        self, pod: dict[str, Any] | None, sandboxes: list[pb.PodSandbox], grace: int = 2
    ) -> None:
        for sb in sandboxes:
            await self._stop_sandbox_containers(pod, sb.id, grace)
            for c in await self.cri.list_containers(pod_sandbox_id=sb.id):
                await self.cri.remove_container(c.id)
            await self.cri.stop_pod_sandbox(sb.id)
            await self.cri.remove_pod_sandbox(sb.id)

    async def _terminate(
        self, pod: dict[str, Any] | None, sandboxes: list[pb.PodSandbox], uid: str
    ) -> None:
        grace = 2
        if pod is not None:
            meta = pod["metadata"]
            value = meta.get("deletionGracePeriodSeconds")
            grace = grace_period(pod) if value is None else int(value)
        await self._remove_sandboxes(pod, sandboxes, grace)
        self.probes.stop_pod(uid)
        await self.volumes.teardown(uid)
        self.devices.release(uid)

    async def _stop_finished(self, pod: dict[str, Any], sandboxes: list[pb.PodSandbox]) -> None:
        """A Succeeded/Failed pod: nothing runs, the network is released, logs are kept."""
        grace = grace_period(pod)
        for sb in sandboxes:
            if sb.state == pb.SANDBOX_READY:
                await self._stop_sandbox_containers(pod, sb.id, grace)
                await self.cri.stop_pod_sandbox(sb.id)
        self.devices.release(pod["metadata"]["uid"])  # a finished pod holds no devices
