"""A first kubelet: registers its Node, heartbeats a Lease and runs bound pods on containerd.

Level-triggered: every pod bound to this node is a key in a work queue; ``sync(key)``
compares what the API wants with what the runtime has (sandboxes and containers found by
their ``io.kubernetes.pod.uid`` / container-name labels, so a restarted kubelet adopts
what runs) and acts: create the sandbox and containers, report status, and on deletion
stop everything and confirm the deletion to the API.

Not yet: probes, restart back-off beyond a simple delay, volumes, init containers,
the kubelet HTTPS API (logs/exec). Those are the rest of issue 4.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff.api.errors import ApiError
from skiff.client.informer import Informer
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient
from skiff.client.workqueue import ShutDown, WorkQueue
from skiff.cri.client import CriClient, CriError, pb
from skiff.log import get_logger

from .podspec import ConfigError, container_env, linux_resources
from .runtime import remove_sandboxes

log = get_logger(__name__)

POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NS = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(ns: int) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def host_capacity(root: Path = Path("/")) -> dict[str, str]:
    mem_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{mem_kib}Ki",
        "pods": "110",
        "ephemeral-storage": f"{shutil.disk_usage(root).total // 1024}Ki",
    }


class Kubelet:
    """Runs the pods the API binds to ``node_name`` through ``cri``."""

    def __init__(
        self,
        client: ApiClient,
        cri: CriClient,
        node_name: str,
        *,
        log_root: Path,
        lease_period: float = 10.0,
        workers: int = 4,
    ) -> None:
        self.client = client
        self.cri = cri
        self.node_name = node_name
        self.log_root = log_root
        self.lease_period = lease_period
        self.queue: WorkQueue[str] = WorkQueue("pods")
        self.pods = Informer(client, "pods", field_selector=f"spec.nodeName={node_name}")
        self.pods.add_handler(
            lambda p: self._enqueue(p), lambda _o, n: self._enqueue(n), lambda p: self._enqueue(p)
        )
        self.workers = workers
        self.lease = NodeLease(client, node_name)

    def _enqueue(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        self.queue.add(f"{meta.get('namespace')}/{meta['name']}/{meta.get('uid')}")

    # -- node --------------------------------------------------------------------------

    async def register(self) -> None:
        version = await self.cri.version()
        uname = platform.uname()
        capacity = host_capacity()
        now = _now()
        status = {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                },
                *(
                    {
                        "type": t,
                        "status": "False",
                        "reason": r,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": now,
                    }
                    for t, r in (
                        ("MemoryPressure", "KubeletHasSufficientMemory"),
                        ("DiskPressure", "KubeletHasNoDiskPressure"),
                        ("PIDPressure", "KubeletHasSufficientPID"),
                    )
                ),
            ],
            "addresses": [{"type": "Hostname", "address": self.node_name}],
            "nodeInfo": {
                "kernelVersion": uname.release,
                "osImage": _os_image(),
                "containerRuntimeVersion": f"{version.runtime_name}://{version.runtime_version}",
                "kubeletVersion": "v1.32.0-skiff",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        }
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": status,
        }
        try:
            await self.client.create("nodes", node)
        except ApiError as e:
            if e.code != 409:
                raise
            current = await self.client.get("nodes", self.node_name)
            current["status"] = status
            await self.client.update("nodes", current, subresource="status")
        await self.lease.renew()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        await self.register()
        tasks = [asyncio.create_task(self.pods.run(), name="kubelet-pods")]
        await self.pods.wait_synced()
        tasks += [
            asyncio.create_task(self._worker(), name=f"pod-worker-{i}") for i in range(self.workers)
        ]
        try:
            while True:
                await asyncio.sleep(self.lease_period)
                try:
                    await self.lease.renew()
                except ApiError as e:
                    log.warning("node lease renewal failed", error=e.message)
        finally:
            self.queue.shut_down()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                requeue = await self.sync(key)
                self.queue.forget(key)
                if requeue:
                    self.queue.add_after(key, requeue)
            except (ApiError, CriError) as e:
                log.warning("pod sync failed; retrying", pod=key, error=str(e))
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

    async def sync(self, key: str) -> float:
        """Bring the runtime in line with the API for one pod; seconds until a re-check."""
        ns, name, uid = key.split("/", 2)
        pod = self.pods.get(f"{ns}/{name}")
        if pod is not None and pod["metadata"].get("uid") != uid:
            pod = None  # a newer pod of the same name: this key is about the old one
        sandboxes = [s for s in await self.cri.list_pod_sandbox(label_selector={POD_UID: uid})]
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            await self._kill(sandboxes, pod)
            if pod is not None:
                try:
                    await self.client.delete(
                        "pods", name, ns, grace_period_seconds=0, preconditions={"uid": uid}
                    )
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise
            return 0
        ready = [s for s in sandboxes if s.state == pb.SANDBOX_READY]
        if ready:
            sandbox_id = ready[0].id
        else:
            await self._kill(sandboxes, pod)
            sandbox_id = await self.cri.run_pod_sandbox(self._sandbox_config(pod))
        sandbox_config = self._sandbox_config(pod)
        containers = {
            c.labels.get(CONTAINER_NAME): c
            for c in await self.cri.list_containers(pod_sandbox_id=sandbox_id)
        }
        policy = pod["spec"].get("restartPolicy", "Always")
        recheck = 5.0
        pod_ip: str | None = None
        config_errors: dict[str, str] = {}
        for spec in pod["spec"].get("containers") or []:
            current = containers.get(spec["name"])
            if current is not None and current.state == pb.CONTAINER_EXITED:
                st = (await self.cri.container_status(current.id)).status
                if policy == "Always" or (policy == "OnFailure" and st.exit_code != 0):
                    await self.cri.remove_container(current.id)
                    current = None
                    recheck = 1.0
            if current is None:
                attempt = 0
                if pod_ip is None:
                    pod_ip = (await self.cri.pod_sandbox_status(sandbox_id)).status.network.ip
                try:
                    config = await self._container_config(pod, spec, attempt, pod_ip)
                except ConfigError as e:
                    # As the kubelet: the container waits in CreateContainerConfigError.
                    config_errors[spec["name"]] = str(e)
                    recheck = 5.0
                    continue
                cid = await self.cri.create_container(sandbox_id, config, sandbox_config)
                await self.cri.start_container(cid)
        await self._report(pod, sandbox_id, config_errors)
        return recheck

    async def _kill(self, sandboxes: list[Any], pod: dict[str, Any] | None) -> None:
        grace = 30
        if pod is not None:
            grace = int(
                pod["metadata"].get("deletionGracePeriodSeconds")
                or pod["spec"].get("terminationGracePeriodSeconds")
                or 30
            )
        await remove_sandboxes(self.cri, sandboxes, grace=min(grace, 30))

    def _sandbox_config(self, pod: dict[str, Any]) -> pb.PodSandboxConfig:
        meta, spec = pod["metadata"], pod["spec"]
        host_network = bool(spec.get("hostNetwork"))
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], attempt=0
            ),
            hostname="" if host_network else (spec.get("hostname") or meta["name"])[:63],
            log_directory=str(self.log_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"),
            labels={POD_UID: meta["uid"], POD_NAME: meta["name"], POD_NS: meta["namespace"]},
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self._namespaces(pod)
                )
            ),
        )

    @staticmethod
    def _namespaces(pod: dict[str, Any]) -> pb.NamespaceOption:
        """As the kubelet: own PID namespace per container unless shareProcessNamespace."""
        spec = pod["spec"]
        return pb.NamespaceOption(
            network=pb.NODE if spec.get("hostNetwork") else pb.POD,
            pid=pb.NODE
            if spec.get("hostPID")
            else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER),
            ipc=pb.NODE if spec.get("hostIPC") else pb.POD,
        )

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.client.get(kind, name, namespace)

    async def _container_config(
        self, pod: dict[str, Any], spec: dict[str, Any], attempt: int, pod_ip: str
    ) -> pb.ContainerConfig:
        env = [
            pb.KeyValue(key=k, value=v)
            for k, v in await container_env(pod, spec, self._lookup, pod_ip=pod_ip)
        ]
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec["name"], attempt=attempt),
            image=pb.ImageSpec(image=spec["image"]),
            command=spec.get("command") or [],
            args=spec.get("args") or [],
            working_dir=spec.get("workingDir") or "",
            envs=env,
            labels={POD_UID: pod["metadata"]["uid"], CONTAINER_NAME: spec["name"]},
            log_path=f"{spec['name']}/{attempt}.log",
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(**linux_resources(spec)),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=self._namespaces(pod)
                ),
            ),
        )

    async def _report(
        self, pod: dict[str, Any], sandbox_id: str, config_errors: dict[str, str]
    ) -> None:
        sb = (await self.cri.pod_sandbox_status(sandbox_id)).status
        statuses = []
        all_ready = True
        by_name = {
            c.labels.get(CONTAINER_NAME): c
            for c in await self.cri.list_containers(pod_sandbox_id=sandbox_id)
        }
        phase = "Running"
        for spec in pod["spec"].get("containers") or []:
            c = by_name.get(spec["name"])
            if c is None:
                waiting = {"reason": "ContainerCreating"}
                if spec["name"] in config_errors:
                    waiting = {
                        "reason": "CreateContainerConfigError",
                        "message": config_errors[spec["name"]],
                    }
                statuses.append(
                    {
                        "name": spec["name"],
                        "image": spec["image"],
                        "ready": False,
                        "restartCount": 0,
                        "state": {"waiting": waiting},
                    }
                )
                all_ready = False
                continue
            st = (await self.cri.container_status(c.id)).status
            if st.state == pb.CONTAINER_RUNNING:
                state = {"running": {"startedAt": _ts(st.started_at)}}
            elif st.state == pb.CONTAINER_EXITED:
                state = {
                    "terminated": {
                        "exitCode": st.exit_code,
                        "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
                        "startedAt": _ts(st.started_at),
                        "finishedAt": _ts(st.finished_at),
                    }
                }
                all_ready = False
            else:
                state = {"waiting": {"reason": "ContainerCreating"}}
                all_ready = False
            statuses.append(
                {
                    "name": spec["name"],
                    "image": spec["image"],
                    "imageID": st.image_ref,
                    "containerID": f"containerd://{c.id}",
                    "ready": st.state == pb.CONTAINER_RUNNING,
                    "started": st.state == pb.CONTAINER_RUNNING,
                    "restartCount": int(c.metadata.attempt),
                    "state": state,
                }
            )
        if (
            statuses
            and all("terminated" in s["state"] for s in statuses)
            and pod["spec"].get("restartPolicy", "Always") != "Always"
        ):
            failed = any(s["state"]["terminated"]["exitCode"] for s in statuses)
            phase = "Failed" if failed else "Succeeded"
        elif not any("running" in s["state"] for s in statuses):
            phase = "Pending"
        now = _now()
        cond = "True" if all_ready else "False"
        status = {
            "phase": phase,
            "hostIP": "",
            "podIP": sb.network.ip or None,
            "podIPs": [{"ip": sb.network.ip}] if sb.network.ip else None,
            "startTime": (pod.get("status") or {}).get("startTime") or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": cond},
                {"type": "Ready", "status": cond},
            ],
            "containerStatuses": statuses,
        }
        old = pod.get("status") or {}
        if {k: old.get(k) for k in ("phase", "podIP", "containerStatuses")} == {
            k: status.get(k) for k in ("phase", "podIP", "containerStatuses")
        }:
            return
        meta = pod["metadata"]
        await self.client.patch(
            "pods",
            meta["name"],
            {"status": status},
            meta["namespace"],
            type="merge",
            subresource="status",
        )


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"
