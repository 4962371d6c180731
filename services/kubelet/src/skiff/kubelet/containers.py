"""Containers, as kuberuntime_container.go: init containers one at a time, then app
containers; each started with its image, config (environment, mounts, resources,
securityContext) and postStart hook; restarted per restartPolicy with the kubelet's
back-off (``CrashLoopBackOff``); and, while it runs, its probes: liveness and startup
failures restart it, readiness is read by the pod status.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from skiff.api.pods import grace_period
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer
from skiff.cri.client import CriClient, CriError, pb

from .devicemanager import DeviceManager, PluginError
from .images import ImageManager
from .pod_context import (
    BACKOFF_MAX,
    CONTAINER_NAME,
    POD_UID,
    PodContext,
    backoff_delay,
    pod_ref,
)
from .podspec import ConfigError, container_env, expand, linux_resources, service_env
from .probes import LIVENESS, READINESS, STARTUP, ProbeManager
from .security import container_security
from .volumes import VolumeError, VolumeManager


class ContainersMixin:
    """Starting, restarting and probing a pod's containers."""

    # Set up by Kubelet.__init__.
    cri: CriClient
    node_ip: str
    services: Informer
    events: EventRecorder
    probes: ProbeManager
    volumes: VolumeManager
    images: ImageManager
    devices: DeviceManager

    if TYPE_CHECKING:  # from the other parts of Kubelet

        def _enqueue(self, pod: dict[str, Any]) -> None: ...
        async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any]: ...
        @staticmethod
        def _namespaces(pod: dict[str, Any]) -> pb.NamespaceOption: ...
        async def _stop_container(
            self,
            pod: dict[str, Any] | None,
            spec: dict[str, Any] | None,
            cid: str,
            *,
            grace: int,
            run_pre_stop: bool = True,
        ) -> None: ...

    async def _status(self, ctx: PodContext, c: pb.Container) -> pb.ContainerStatus:
        if c.id not in ctx.statuses:
            ctx.statuses[c.id] = (await self.cri.container_status(c.id)).status
        return ctx.statuses[c.id]

    async def _sync_init(self, ctx: PodContext, paths: dict[str, str]) -> bool:
        """Run init containers one at a time; True once all have succeeded."""
        for spec in ctx.pod["spec"].get("initContainers") or []:
            history = ctx.history.get(spec["name"]) or []
            if history and history[0].state == pb.CONTAINER_EXITED:
                st = await self._status(ctx, history[0])
                if st.exit_code == 0:
                    continue
                if ctx.pod["spec"].get("restartPolicy") == "Never":
                    ctx.init_failed = True
                    return False
            await self._sync_container(ctx, spec, paths, init=True)
            return False
        return True

    async def _sync_ephemeral(self, ctx: PodContext, paths: dict[str, str]) -> None:
        """Start each ephemeral container (``kubectl debug``) once; never restarted."""
        for spec in ctx.pod["spec"].get("ephemeralContainers") or []:
            if not ctx.history.get(spec["name"]):
                await self._start_container(ctx, spec, paths, 0)

    async def _sync_container(
        self, ctx: PodContext, spec: dict[str, Any], paths: dict[str, str], *, init: bool
    ) -> None:
        pod, name = ctx.pod, spec["name"]
        history = ctx.history.get(name) or []
        latest = history[0] if history else None
        attempt = 0
        if latest is not None:
            if latest.state == pb.CONTAINER_RUNNING:
                if not init:
                    await self._watch_probes(ctx, spec, latest)
                return
            st = await self._status(ctx, latest)
            if latest.state == pb.CONTAINER_CREATED:
                await self.cri.remove_container(latest.id)  # created but never started
                history.pop(0)
                attempt = latest.metadata.attempt
            else:
                policy = pod["spec"].get("restartPolicy") or "Always"
                if init:
                    restart = st.exit_code != 0 and policy != "Never"
                else:
                    restart = policy == "Always" or (policy == "OnFailure" and st.exit_code != 0)
                if not restart:
                    return
                delay = backoff_delay(latest.metadata.attempt)
                if st.finished_at and st.started_at:
                    if (st.finished_at - st.started_at) / 1e9 > 2 * BACKOFF_MAX:
                        delay = 0.0  # ran long enough: the back-off starts over
                remaining = st.finished_at / 1e9 + delay - time.time()
                if remaining > 0:
                    ctx.waiting[name] = (
                        "CrashLoopBackOff",
                        f"back-off {delay:g}s restarting failed container={name} "
                        f"pod={pod_ref(pod)}",
                    )
                    self.events.emit(
                        pod,
                        "Warning",
                        "BackOff",
                        f"Back-off restarting failed container {name} in pod {pod_ref(pod)}",
                    )
                    ctx.after(remaining)
                    return
                attempt = latest.metadata.attempt + 1
        await self._start_container(ctx, spec, paths, attempt)

    async def _start_container(
        self, ctx: PodContext, spec: dict[str, Any], paths: dict[str, str], attempt: int
    ) -> None:
        pod, name = ctx.pod, spec["name"]
        image = await self.images.ensure(ctx, spec)
        if image is None:
            return
        try:
            config = await self._container_config(ctx, spec, attempt, paths, image)
        except (ConfigError, VolumeError) as e:
            ctx.waiting[name] = ("CreateContainerConfigError", str(e))
            self.events.emit(pod, "Warning", "Failed", f"Error: {e}")
            ctx.after(5.0)
            return
        try:
            cid = await self.cri.create_container(ctx.sandbox_id, config, ctx.sandbox_config)
        except CriError as e:
            ctx.waiting[name] = ("CreateContainerError", e.message)
            self.events.emit(pod, "Warning", "Failed", f"Error: {e.message}")
            ctx.after(5.0)
            return
        self.events.emit(pod, "Normal", "Created", f"Created container {name}")
        try:
            await self.cri.start_container(cid)
        except CriError as e:
            # The container is now exited (StartError); the restart policy and back-off
            # take it from here, as with any other failure.
            ctx.waiting[name] = ("RunContainerError", e.message)
            self.events.emit(pod, "Warning", "Failed", f"Error: {e.message}")
            ctx.after(1.0)
            return
        self.events.emit(pod, "Normal", "Started", f"Started container {name}")
        ctx.history.setdefault(name, []).insert(
            0,
            pb.Container(
                id=cid,
                metadata=pb.ContainerMetadata(name=name, attempt=attempt),
                state=pb.CONTAINER_RUNNING,
                labels={CONTAINER_NAME: name},
            ),
        )
        if handler := (spec.get("lifecycle") or {}).get("postStart"):
            ok, message = await self._run_handler(ctx.pod, spec, cid, ctx.pod_ip, handler, 30)
            if not ok:
                self.events.emit(
                    pod, "Warning", "FailedPostStartHook", f"PostStartHook failed: {message}"
                )
                await self._stop_container(pod, spec, cid, grace=2, run_pre_stop=False)
        ctx.after(1.0)

    async def _watch_probes(self, ctx: PodContext, spec: dict[str, Any], c: pb.Container) -> None:
        """Start probes for a running container; restart it when liveness/startup fail."""
        st = await self._status(ctx, c)
        pod = ctx.pod
        self.probes.ensure(
            pod["metadata"]["uid"],
            spec,
            c.id,
            ctx.pod_ip,
            st.started_at / 1e9 or time.time(),
            lambda: self._enqueue(pod),
        )
        for kind in (STARTUP, LIVENESS):
            result = self.probes.result(c.id, kind)
            if result is None or result.ok is not False:
                continue
            probe_name = kind.capitalize()
            self.events.emit(
                pod, "Warning", "Unhealthy", f"{probe_name} probe failed: {result.message}"
            )
            self.events.emit(
                pod,
                "Normal",
                "Killing",
                f"Container {spec['name']} failed {kind} probe, will be restarted",
            )
            grace = grace_period(pod)
            await self._stop_container(pod, spec, c.id, grace=grace)
            self.probes.stop({c.id})
            ctx.after(0.1)
            return
        readiness = self.probes.result(c.id, READINESS)
        if readiness is not None and readiness.ok is False and readiness.failures:
            self.events.emit(
                pod, "Warning", "Unhealthy", f"Readiness probe failed: {readiness.message}"
            )

    async def _container_config(
        self,
        ctx: PodContext,
        spec: dict[str, Any],
        attempt: int,
        paths: dict[str, str],
        image: pb.Image,
    ) -> pb.ContainerConfig:
        pod = ctx.pod
        links = service_env(
            self.services.list(),
            pod["metadata"]["namespace"],
            pod["spec"].get("enableServiceLinks", True) is not False,
        )
        variables = dict(
            await container_env(
                pod, spec, self._lookup, pod_ip=ctx.pod_ip, host_ip=self.node_ip, services=links
            )
        )
        try:
            devices = await self.devices.container_options(pod["metadata"]["uid"], spec["name"])
        except PluginError as e:
            raise ConfigError(str(e)) from None
        # The plugins' variables come first: the container's own win over them (kube's
        # order in GenerateRunContainerOptions).
        plugin_env = {k: v for d in devices for k, v in sorted(d.envs.items())}
        env = [pb.KeyValue(key=k, value=v) for k, v in plugin_env.items() if k not in variables]
        env += [pb.KeyValue(key=k, value=v) for k, v in variables.items()]
        annotations = {"io.kubernetes.container.restartCount": str(attempt)}
        for d in devices:
            annotations.update(d.annotations)
        namespaces = self._namespaces(pod)
        target = spec.get("targetContainerName")
        running = [c for c in ctx.history.get(target) or [] if c.state == pb.CONTAINER_RUNNING]
        if target and running:
            # An ephemeral container debugging another sees that one's processes.
            namespaces.pid = pb.TARGET
            namespaces.target_id = running[0].id
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec["name"], attempt=attempt),
            image=pb.ImageSpec(image=image.id or spec["image"]),
            command=[expand(c, variables) for c in spec.get("command") or []],
            args=[expand(a, variables) for a in spec.get("args") or []],
            working_dir=spec.get("workingDir") or "",
            envs=env,
            mounts=self.volumes.mounts(pod, spec, paths)
            + [
                pb.Mount(
                    container_path=m.container_path, host_path=m.host_path, readonly=m.read_only
                )
                for d in devices
                for m in d.mounts
            ],
            devices=[
                pb.Device(
                    container_path=x.container_path,
                    host_path=x.host_path,
                    permissions=x.permissions,
                )
                for d in devices
                for x in d.devices
            ],
            CDI_devices=[pb.CDIDevice(name=c.name) for d in devices for c in d.cdi_devices],
            labels={POD_UID: pod["metadata"]["uid"], CONTAINER_NAME: spec["name"]},
            annotations=annotations,
            log_path=f"{spec['name']}/{attempt}.log",
            stdin=bool(spec.get("stdin")),
            stdin_once=bool(spec.get("stdinOnce")),
            tty=bool(spec.get("tty")),
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(**linux_resources(spec)),
                security_context=container_security(pod, spec, namespaces, image),
            ),
        )

    async def _run_handler(
        self,
        pod: dict[str, Any],
        spec: dict[str, Any],
        cid: str,
        pod_ip: str,
        handler: dict[str, Any],
        timeout: float,
    ) -> tuple[bool, str]:
        """Run a lifecycle hook (exec, httpGet or sleep) within ``timeout`` seconds."""
        if sl := handler.get("sleep"):
            await asyncio.sleep(min(float(sl.get("seconds") or 0), timeout))
            return True, ""
        return await self.probes.prober.run(
            {**handler, "timeoutSeconds": timeout}, spec, cid, pod_ip
        )
