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
"""

from __future__ import annotations

import asyncio
import copy
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from skiff import tracing
from skiff.api.errors import ApiError
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient
from skiff.client.workqueue import ShutDown, WorkQueue
from skiff.cri.client import CriClient, CriError, pb
from skiff.log import get_logger

from .podspec import ConfigError, container_env, expand, linux_resources, service_env
from .probes import LIVENESS, READINESS, STARTUP, ProbeManager, Prober
from .security import container_security
from .static import CONFIG_HASH, is_mirror, mirror_hash, mirror_of, scan
from .volumes import VolumeError, VolumeManager

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.kubelet")

POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NS = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"

BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0
_PROTOCOLS = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ts(ns: int) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def backoff_delay(restarts: int) -> float:
    """Delay before restart number ``restarts + 1``: 0, 10 s, 20 s, … up to 5 min."""
    if restarts <= 0:
        return 0.0
    return min(BACKOFF_INITIAL * 2 ** (restarts - 1), BACKOFF_MAX)


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


def host_pressure(root: Path) -> dict[str, bool]:
    """Eviction-style signals: memory.available < 100Mi, nodefs.available < 10 %,
    pid.available < 10 %."""
    available_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available_kib = int(line.split()[1])
    try:
        usage = shutil.disk_usage(root if root.exists() else Path("/"))
        disk = usage.free / usage.total < 0.10
    except OSError:
        disk = False
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
        pids = (pid_max - procs) / pid_max < 0.10
    except (OSError, ValueError):
        pids = False
    return {
        "MemoryPressure": available_kib < 100 * 1024,
        "DiskPressure": disk,
        "PIDPressure": pids,
    }


def condition_list(
    conditions: dict[str, tuple[str, str, str]], old: dict[str, dict[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Node conditions (type → status, reason, message) as the API holds them, keeping the
    transition time of those whose status did not change."""
    out = []
    for ctype, (value, reason, message) in conditions.items():
        prev = old.get(ctype) or {}
        cond = {
            "type": ctype,
            "status": value,
            "reason": reason,
            "lastHeartbeatTime": now,
            "lastTransitionTime": prev.get("lastTransitionTime")
            if prev.get("status") == value
            else now,
        }
        if message:
            cond["message"] = message
        out.append(cond)
    return out


def pod_ref(pod: dict[str, Any]) -> str:
    """``name_namespace(uid)``, as the kubelet names pods in messages."""
    m = pod["metadata"]
    return f"{m['name']}_{m['namespace']}({m['uid']})"


@dataclass
class _PodContext:
    """What one sync learned about a pod's containers, for its actions and its status."""

    pod: dict[str, Any]
    sandbox_id: str = ""
    sandbox_config: pb.PodSandboxConfig | None = None
    pod_ip: str = ""
    history: dict[str, list[pb.Container]] = field(default_factory=dict)
    statuses: dict[str, pb.ContainerStatus] = field(default_factory=dict)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    init_done: bool = False
    init_failed: bool = False
    requeue: float = 0.0

    def after(self, seconds: float) -> None:
        """Ask for a re-sync in ``seconds`` (the soonest request wins)."""
        seconds = max(seconds, 0.05)
        self.requeue = seconds if not self.requeue else min(self.requeue, seconds)


class Kubelet:
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
        manifest_dir: Path | None = None,
        file_check_period: float = 5.0,
        status_period: float = 10.0,
        pod_cidr: str = "",
        on_pod_cidr: Callable[[str], None] | None = None,
    ) -> None:
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
        self.queue: WorkQueue[str] = WorkQueue("pods")
        self.pods = Informer(client, "pods", field_selector=f"spec.nodeName={node_name}")
        # Services for the containers' service variables, as the kubelet's service lister.
        self.services = Informer(client, "services")
        self.pods.add_handler(
            lambda p: self._enqueue(p), lambda _o, n: self._enqueue(n), lambda p: self._enqueue(p)
        )
        self.workers = workers
        self.lease = NodeLease(client, node_name)
        self.events = EventRecorder(client, "kubelet", node_name)
        self.probes = ProbeManager(Prober(cri))
        self.volumes = VolumeManager(self.root, self._lookup, secrets_in_memory=True)
        self._pull_backoff: dict[str, tuple[float, float]] = {}  # image → (retry at, delay)
        self.manifest_dir = manifest_dir
        self.file_check_period = file_check_period
        self.static_pods: dict[str, dict[str, Any]] = {}  # "namespace/name" → static pod
        self.status_period = status_period
        self.pod_cidr = pod_cidr
        self.on_pod_cidr = on_pod_cidr
        self._node: dict[str, Any] | None = None
        self._status_sent = 0.0

    def _enqueue(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = mirror_hash(pod) or meta.get("uid")  # a mirror pod stands for its static pod
        self.queue.add(f"{meta.get('namespace')}/{meta['name']}/{uid}")

    # -- node --------------------------------------------------------------------------

    async def register(self) -> None:
        version = await self.cri.version()
        uname = platform.uname()
        capacity = host_capacity()
        now = _now()
        status: dict[str, Any] = {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": condition_list(await self._node_conditions(), {}, now),
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}},
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
            self._node = await self.client.create("nodes", node)
        except ApiError as e:
            if e.code != 409:
                raise
            current = await self.client.get("nodes", self.node_name)
            current["status"] = status
            self._node = await self.client.update("nodes", current, subresource="status")
        self._status_sent = time.monotonic()
        self._follow_pod_cidr(self._node)
        await self.lease.renew()

    def _follow_pod_cidr(self, node: dict[str, Any] | None) -> None:
        """Use ``spec.podCIDR`` once the controller assigns one (it wins over the flag)."""
        cidr = ((node or {}).get("spec") or {}).get("podCIDR") or ""
        if cidr and cidr != self.pod_cidr:
            log.info("pod CIDR assigned", pod_cidr=cidr, previous=self.pod_cidr)
            self.pod_cidr = cidr
            if self.on_pod_cidr is not None:
                self.on_pod_cidr(cidr)

    async def _node_conditions(self) -> dict[str, tuple[str, str, str]]:
        """type → (status, reason, message), from the host and the runtime."""
        out: dict[str, tuple[str, str, str]] = {}
        try:
            await self.cri.status()
            out["Ready"] = ("True", "KubeletReady", "kubelet is posting ready status")
        except CriError as e:
            out["Ready"] = ("False", "KubeletNotReady", f"container runtime is down: {e.message}")
        pressure = host_pressure(self.root)
        for ctype, (low, high) in {
            "MemoryPressure": ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory"),
            "DiskPressure": ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
            "PIDPressure": ("KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
        }.items():
            hit = pressure[ctype]
            out[ctype] = ("True" if hit else "False", high if hit else low, "")
        return out

    async def update_node_status(self, *, force: bool = False) -> None:
        """Post conditions when one changes, else a heartbeat every minute."""
        conditions = await self._node_conditions()
        current = {t: v[0] for t, v in conditions.items()}
        stale = time.monotonic() - self._status_sent > 60
        node = await self.client.get("nodes", self.node_name)
        self._node = node
        self._follow_pod_cidr(node)
        old = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
        # Compare with what the API holds, not with what we last sent: the node lifecycle
        # controller may have marked us Unknown meanwhile (Kubernetes' shouldPatchNodeStatus).
        posted = {t: c.get("status") for t, c in old.items()}
        if all(posted.get(t) == v for t, v in current.items()) and not stale and not force:
            return
        body = condition_list(conditions, old, _now())
        await self.client.patch(
            "nodes",
            self.node_name,
            {"status": {"conditions": body}},
            type="strategic",
            subresource="status",
        )
        self._status_sent = time.monotonic()

    # -- running -----------------------------------------------------------------------

    async def run(self) -> None:
        await self.register()
        tasks = [
            asyncio.create_task(self.pods.run(), name="kubelet-pods"),
            asyncio.create_task(self.services.run(), name="kubelet-services"),
        ]
        await self.pods.wait_synced()
        await self.services.wait_synced()  # no container starts without its variables
        if self.manifest_dir is not None:
            self._refresh_static()
        await self._remove_orphans()
        tasks += [
            asyncio.create_task(self._worker(), name=f"pod-worker-{i}") for i in range(self.workers)
        ]
        if self.manifest_dir is not None:
            tasks.append(asyncio.create_task(self._static_loop(), name="kubelet-static-pods"))
        next_status = time.monotonic() + self.status_period
        try:
            while True:
                await asyncio.sleep(self.lease_period)
                try:
                    await self.lease.renew()
                    if time.monotonic() >= next_status:
                        next_status = time.monotonic() + self.status_period
                        await self.update_node_status()
                except ApiError as e:
                    log.warning("node heartbeat failed", error=e.message)
        finally:
            self.queue.shut_down()
            self.probes.stop_all()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

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

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            ns, name, _ = key.split("/", 2)
            try:
                with _tracer.start_as_current_span(
                    "kubelet.SyncPod",
                    # Linked to the trace of the write that created the pod.
                    links=tracing.links_to(self.pods.trace_of(f"{ns}/{name}")),
                    attributes={"k8s.pod": key},
                ):
                    requeue = await self.sync(key)
                self.queue.forget(key)
                if requeue:
                    self.queue.add_after(key, requeue)
            except (ApiError, CriError) as e:
                log.warning("pod sync failed; retrying", pod=key, error=str(e))
                self.queue.add_rate_limited(key)
            except Exception:
                log.exception("pod sync crashed; retrying", pod=key)
                self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)

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

        ctx = _PodContext(pod)
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
        live = {
            c.id
            for items in ctx.history.values()
            for c in items[:1]
            if c.state == pb.CONTAINER_RUNNING
        }
        self.probes.stop_pod(uid, keep=live)
        await self._report(ctx)
        return ctx.requeue or 10.0

    async def _confirm_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                "pods",
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    # -- static pods ---------------------------------------------------------------------

    def _refresh_static(self) -> None:
        """Re-read the manifest folder; enqueue static pods that appeared, changed or went."""
        assert self.manifest_dir is not None
        new = scan(self.manifest_dir, self.node_name)
        for key in set(new) | set(self.static_pods):
            old_pod, new_pod = self.static_pods.get(key), new.get(key)
            old_uid = old_pod["metadata"]["uid"] if old_pod else None
            new_uid = new_pod["metadata"]["uid"] if new_pod else None
            if old_uid != new_uid:  # added, removed, or edited (the old stops, the new starts)
                for uid in (old_uid, new_uid):
                    if uid:
                        self.queue.add(f"{key}/{uid}")
        self.static_pods = new

    async def _static_loop(self) -> None:
        while True:
            await asyncio.sleep(self.file_check_period)
            self._refresh_static()
            try:
                await self._sync_mirrors()
            except ApiError as e:
                log.warning("mirror pod sync failed", error=e.message)

    async def _sync_mirrors(self) -> None:
        """One mirror pod in the API per static pod; none for static pods that are gone."""
        for key, static in self.static_pods.items():
            current = self.pods.get(key)
            uid = static["metadata"]["uid"]
            if current is None:
                try:
                    await self.client.create(
                        "pods", mirror_of(static, self._node), static["metadata"]["namespace"]
                    )
                except ApiError as e:
                    if e.code != 409:
                        raise
            elif not is_mirror(current):
                log.warning("a pod of the API has a static pod's name", pod=key)
            elif mirror_hash(current) != uid and not current["metadata"].get("deletionTimestamp"):
                await self._confirm_deletion(current)  # outdated: recreated next round
        for pod in self.pods.list():
            meta = pod["metadata"]
            if is_mirror(pod) and f"{meta['namespace']}/{meta['name']}" not in self.static_pods:
                await self._confirm_deletion(pod)

    # -- sandbox -------------------------------------------------------------------------

    async def _ensure_sandbox(self, ctx: _PodContext, sandboxes: list[pb.PodSandbox]) -> bool:
        pod = ctx.pod
        ready = sorted(
            (s for s in sandboxes if s.state == pb.SANDBOX_READY),
            key=lambda s: s.created_at,
            reverse=True,
        )
        attempt = max((s.metadata.attempt for s in sandboxes), default=-1) + 1
        if ready:
            sandbox = ready[0]
            ctx.sandbox_id = sandbox.id
            ctx.sandbox_config = self._sandbox_config(pod, sandbox.metadata.attempt)
            stale = [s for s in sandboxes if s.id != sandbox.id]
        else:
            stale = sandboxes
        if stale:
            await self._remove_sandboxes(pod, stale)
        if not ready:
            ctx.sandbox_config = self._sandbox_config(pod, attempt if sandboxes else 0)
            try:
                ctx.sandbox_id = await self.cri.run_pod_sandbox(ctx.sandbox_config)
            except CriError as e:
                self.events.emit(
                    pod,
                    "Warning",
                    "FailedCreatePodSandBox",
                    f"Failed to create pod sandbox: {e.message}",
                )
                ctx.after(5.0)
                return False
        if pod["spec"].get("hostNetwork"):
            ctx.pod_ip = self.node_ip
        else:
            ctx.pod_ip = (await self.cri.pod_sandbox_status(ctx.sandbox_id)).status.network.ip
        return True

    def _sandbox_config(self, pod: dict[str, Any], attempt: int = 0) -> pb.PodSandboxConfig:
        meta, spec = pod["metadata"], pod["spec"]
        host_network = bool(spec.get("hostNetwork"))
        ports = [
            pb.PortMapping(
                protocol=_PROTOCOLS.get(p.get("protocol") or "TCP", pb.TCP),
                container_port=int(p["containerPort"]),
                host_port=int(p["hostPort"]),
                host_ip=p.get("hostIP") or "",
            )
            for c in spec.get("containers") or []
            for p in c.get("ports") or []
            if p.get("hostPort")
        ]
        qos = ((pod.get("status") or {}).get("qosClass") or "BestEffort").lower()
        cgroup = (
            f"/kubepods/pod{meta['uid']}"
            if qos == "guaranteed"
            else (f"/kubepods/{qos}/pod{meta['uid']}")
        )
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(
                name=meta["name"], namespace=meta["namespace"], uid=meta["uid"], attempt=attempt
            ),
            hostname="" if host_network else (spec.get("hostname") or meta["name"])[:63],
            log_directory=str(self.log_root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"),
            dns_config=self._dns_config(pod),
            port_mappings=ports,
            labels={POD_UID: meta["uid"], POD_NAME: meta["name"], POD_NS: meta["namespace"]},
            annotations=dict(meta.get("annotations") or {}),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=self._namespaces(pod)
                ),
            ),
        )

    def _dns_config(self, pod: dict[str, Any]) -> pb.DNSConfig | None:
        """As the kubelet's DNS configurer; no cluster DNS → the host's resolv.conf."""
        spec = pod["spec"]
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        extra = spec.get("dnsConfig") or {}
        servers: list[str] = []
        searches: list[str] = []
        options: list[str] = []
        if policy == "None":
            pass
        elif (
            policy in ("ClusterFirst", "ClusterFirstWithHostNet")
            and self.cluster_dns
            and (not spec.get("hostNetwork") or policy == "ClusterFirstWithHostNet")
        ):
            ns = pod["metadata"]["namespace"]
            d = self.cluster_domain
            servers = list(self.cluster_dns)
            searches = [f"{ns}.svc.{d}", f"svc.{d}", d]
            options = ["ndots:5"]
        elif not extra:
            return None  # the runtime copies the host's resolv.conf
        servers += extra.get("nameservers") or []
        searches += extra.get("searches") or []
        for o in extra.get("options") or []:
            options.append(f"{o['name']}:{o['value']}" if o.get("value") else o["name"])
        return pb.DNSConfig(servers=servers, searches=searches, options=options)

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

    # -- containers ----------------------------------------------------------------------

    async def _status(self, ctx: _PodContext, c: pb.Container) -> pb.ContainerStatus:
        if c.id not in ctx.statuses:
            ctx.statuses[c.id] = (await self.cri.container_status(c.id)).status
        return ctx.statuses[c.id]

    async def _sync_init(self, ctx: _PodContext, paths: dict[str, str]) -> bool:
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

    async def _sync_container(
        self, ctx: _PodContext, spec: dict[str, Any], paths: dict[str, str], *, init: bool
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
        self, ctx: _PodContext, spec: dict[str, Any], paths: dict[str, str], attempt: int
    ) -> None:
        pod, name = ctx.pod, spec["name"]
        image = await self._ensure_image(ctx, spec)
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

    async def _watch_probes(self, ctx: _PodContext, spec: dict[str, Any], c: pb.Container) -> None:
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
            grace = int(pod["spec"].get("terminationGracePeriodSeconds") or 30)
            await self._stop_container(pod, spec, c.id, grace=grace)
            self.probes.stop({c.id})
            ctx.after(0.1)
            return
        readiness = self.probes.result(c.id, READINESS)
        if readiness is not None and readiness.ok is False and readiness.failures:
            self.events.emit(
                pod, "Warning", "Unhealthy", f"Readiness probe failed: {readiness.message}"
            )

    async def _ensure_image(self, ctx: _PodContext, spec: dict[str, Any]) -> pb.Image | None:
        """The container's image, pulled as imagePullPolicy says; None when it cannot be had."""
        pod, name, ref = ctx.pod, spec["name"], spec["image"]
        policy = spec.get("imagePullPolicy") or "IfNotPresent"
        present = await self.cri.image_status(ref)
        if policy == "Never":
            if present is None:
                ctx.waiting[name] = (
                    "ErrImageNeverPull",
                    f'Container image "{ref}" is not present with pull policy of Never',
                )
                ctx.after(10.0)
            return present
        if present is not None and policy == "IfNotPresent":
            self.events.emit(
                pod, "Normal", "Pulled", f'Container image "{ref}" already present on machine'
            )
            return present
        retry_at, delay = self._pull_backoff.get(ref, (0.0, 0.0))
        if present is None and time.monotonic() < retry_at:
            ctx.waiting[name] = ("ImagePullBackOff", f'Back-off pulling image "{ref}"')
            self.events.emit(pod, "Normal", "BackOff", f'Back-off pulling image "{ref}"')
            ctx.after(retry_at - time.monotonic())
            return None
        self.events.emit(pod, "Normal", "Pulling", f'Pulling image "{ref}"')
        started = time.monotonic()
        try:
            await self.cri.pull_image(ref, sandbox_config=ctx.sandbox_config)
        except CriError as e:
            if present is not None:
                # imagePullPolicy Always with no registry reachable (locally built images):
                # run what is here rather than refuse, and say so.
                log.info("pull failed; using the image present", image=ref, error=e.message)
                self.events.emit(
                    pod,
                    "Normal",
                    "Pulled",
                    f'Container image "{ref}" already present on machine (pull failed: '
                    "no registry reachable?)",
                )
                return present
            delay = min(max(delay * 2, BACKOFF_INITIAL), BACKOFF_MAX)
            self._pull_backoff[ref] = (time.monotonic() + delay, delay)
            ctx.waiting[name] = ("ErrImagePull", e.message)
            self.events.emit(pod, "Warning", "Failed", f'Failed to pull image "{ref}": {e.message}')
            ctx.after(delay)
            return None
        self._pull_backoff.pop(ref, None)
        self.events.emit(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{ref}" in {time.monotonic() - started:.3f}s',
        )
        return await self.cri.image_status(ref)

    async def _lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.client.get(kind, name, namespace)

    async def _container_config(
        self,
        ctx: _PodContext,
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
        env = [pb.KeyValue(key=k, value=v) for k, v in variables.items()]
        namespaces = self._namespaces(pod)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=spec["name"], attempt=attempt),
            image=pb.ImageSpec(image=image.id or spec["image"]),
            command=[expand(c, variables) for c in spec.get("command") or []],
            args=[expand(a, variables) for a in spec.get("args") or []],
            working_dir=spec.get("workingDir") or "",
            envs=env,
            mounts=self.volumes.mounts(pod, spec, paths),
            labels={POD_UID: pod["metadata"]["uid"], CONTAINER_NAME: spec["name"]},
            annotations={"io.kubernetes.container.restartCount": str(attempt)},
            log_path=f"{spec['name']}/{attempt}.log",
            stdin=bool(spec.get("stdin")),
            stdin_once=bool(spec.get("stdinOnce")),
            tty=bool(spec.get("tty")),
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(**linux_resources(spec)),
                security_context=container_security(pod, spec, namespaces, image),
            ),
        )

    # -- stopping ------------------------------------------------------------------------

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
            if value is None:
                value = pod["spec"].get("terminationGracePeriodSeconds")
            grace = 30 if value is None else int(value)
        await self._remove_sandboxes(pod, sandboxes, grace)
        self.probes.stop_pod(uid)
        await self.volumes.teardown(uid)

    async def _stop_finished(self, pod: dict[str, Any], sandboxes: list[pb.PodSandbox]) -> None:
        """A Succeeded/Failed pod: nothing runs, the network is released, logs are kept."""
        grace = int(pod["spec"].get("terminationGracePeriodSeconds") or 30)
        for sb in sandboxes:
            if sb.state == pb.SANDBOX_READY:
                await self._stop_sandbox_containers(pod, sb.id, grace)
                await self.cri.stop_pod_sandbox(sb.id)

    # -- status --------------------------------------------------------------------------

    async def _container_status(
        self, ctx: _PodContext, spec: dict[str, Any], *, init: bool
    ) -> dict[str, Any]:
        name = spec["name"]
        history = ctx.history.get(name) or []
        out: dict[str, Any] = {
            "name": name,
            "image": spec["image"],
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
        }
        latest = history[0] if history else None

        async def terminated(c: pb.Container) -> dict[str, Any]:
            st = await self._status(ctx, c)
            term: dict[str, Any] = {
                "exitCode": st.exit_code,
                "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
                "startedAt": _ts(st.started_at),
                "finishedAt": _ts(st.finished_at),
                "containerID": f"containerd://{c.id}",
            }
            if st.message:
                term["message"] = st.message
            return term

        if latest is not None and latest.state != pb.CONTAINER_CREATED:
            st = await self._status(ctx, latest)
            out["restartCount"] = int(latest.metadata.attempt)
            out["imageID"] = st.image_ref
            out["containerID"] = f"containerd://{latest.id}"
        if name in ctx.waiting:
            reason, message = ctx.waiting[name]
            out["state"] = {"waiting": {"reason": reason, "message": message}}
            if latest is not None and latest.state == pb.CONTAINER_EXITED:
                out["lastState"] = {"terminated": await terminated(latest)}
            return out
        if latest is None or latest.state == pb.CONTAINER_CREATED:
            reason = "ContainerCreating"
            if not init and ctx.pod["spec"].get("initContainers") and not ctx.init_done:
                reason = "PodInitializing"
            out["state"] = {"waiting": {"reason": reason}}
            return out
        previous = history[1] if len(history) > 1 else None
        if previous is not None and previous.state == pb.CONTAINER_EXITED:
            out["lastState"] = {"terminated": await terminated(previous)}
        if latest.state == pb.CONTAINER_RUNNING:
            st = await self._status(ctx, latest)
            out["state"] = {"running": {"startedAt": _ts(st.started_at)}}
            startup = self.probes.result(latest.id, STARTUP)
            readiness = self.probes.result(latest.id, READINESS)
            out["started"] = startup is None or bool(startup.ok)
            if init:
                out["ready"] = False
            elif "readinessProbe" in spec:
                out["ready"] = bool(out["started"] and readiness is not None and readiness.ok)
            else:
                out["ready"] = out["started"]
        else:
            out["state"] = {"terminated": await terminated(latest)}
            out["ready"] = init and out["state"]["terminated"]["exitCode"] == 0
        return out

    def _phase(self, ctx: _PodContext, statuses: list[dict[str, Any]]) -> str:
        """As the kubelet's getPhase."""
        if ctx.init_failed:
            return "Failed"
        if not ctx.init_done:
            return "Pending"
        policy = ctx.pod["spec"].get("restartPolicy") or "Always"
        running = waiting = stopped = succeeded = failed = 0
        for s in statuses:
            state = s.get("state") or {}
            if "running" in state:
                running += 1
            elif "terminated" in state:
                stopped += 1
                if state["terminated"]["exitCode"] == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif "terminated" in (s.get("lastState") or {}):
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if policy == "Always":
                return "Running"
            if policy == "OnFailure":
                return "Succeeded" if stopped == succeeded else "Running"
            return "Failed" if failed else "Succeeded"
        return "Pending"

    async def _report(self, ctx: _PodContext) -> None:
        pod = ctx.pod
        spec = pod["spec"]
        old = pod.get("status") or {}
        init_statuses = [
            await self._container_status(ctx, c, init=True)
            for c in spec.get("initContainers") or []
        ]
        statuses = [
            await self._container_status(ctx, c, init=False) for c in spec.get("containers") or []
        ]
        phase = self._phase(ctx, statuses)
        containers_ready = bool(statuses) and all(s["ready"] for s in statuses)
        reasons: dict[str, tuple[str, str]] = {}
        if not ctx.init_done:
            pending = [s["name"] for s in init_statuses if not s["ready"]]
            reasons["Initialized"] = (
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending)}]",
            )
        if not containers_ready:
            unready = [s["name"] for s in statuses if not s["ready"]]
            msg = f"containers with unready status: [{' '.join(unready)}]"
            reasons["ContainersReady"] = ("ContainersNotReady", msg)
            reasons["Ready"] = ("ContainersNotReady", msg)
        if phase in ("Succeeded", "Failed"):
            reasons["ContainersReady"] = reasons["Ready"] = ("PodCompleted", "")
        truth = {
            "PodScheduled": True,
            "Initialized": ctx.init_done or phase == "Succeeded",
            "ContainersReady": containers_ready and phase not in ("Succeeded", "Failed"),
            "Ready": containers_ready and phase not in ("Succeeded", "Failed"),
        }
        if phase == "Succeeded":
            reasons.pop("Initialized", None)
        old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
        now = _now()
        conditions = []
        for ctype, ok in truth.items():
            value = "True" if ok else "False"
            prev = old_conditions.get(ctype) or {}
            cond: dict[str, Any] = {
                "type": ctype,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": prev.get("lastTransitionTime")
                if prev.get("status") == value
                else now,
            }
            if not ok and ctype in reasons:
                cond["reason"], message = reasons[ctype]
                if message:
                    cond["message"] = message
            conditions.append(cond)
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.node_ip,
            "hostIPs": [{"ip": self.node_ip}],
            "podIP": ctx.pod_ip or None,
            "podIPs": [{"ip": ctx.pod_ip}] if ctx.pod_ip else None,
            "startTime": old.get("startTime") or now,
            "conditions": conditions,
            "containerStatuses": statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        if all(old.get(k) == v for k, v in status.items()):
            return
        meta = pod["metadata"]
        try:
            await self.client.patch(
                "pods",
                meta["name"],
                {"status": status},
                meta["namespace"],
                type="merge",
                subresource="status",
            )
        except ApiError as e:
            if e.code != 404 or CONFIG_HASH not in (meta.get("annotations") or {}):
                raise
            # A static pod whose mirror is not (yet) in the API: nothing to report to.


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"
