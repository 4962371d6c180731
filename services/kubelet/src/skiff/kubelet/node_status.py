"""The kubelet's Node, as kubelet_node_status.go: registration (capacity, node info,
addresses, the kubelet endpoint), the device plugins' extended resources, conditions
(Ready from the runtime; memory, disk and PID pressure from eviction-style thresholds),
the Lease and status heartbeats, and following the ``spec.podCIDR`` a controller assigns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.nodelease import NodeLease
from skiff.client.rest import ApiClient
from skiff.cri.client import CriClient, CriError, pb
from skiff.log import get_logger

from .devicemanager import DeviceManager
from .network import PodNetwork

log = get_logger(__name__)


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


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


class NodeStatusMixin:
    """Registers the Node and keeps its Lease and status current."""

    # Set up by Kubelet.__init__.
    client: ApiClient
    cri: CriClient
    node_name: str
    node_ip: str
    kubelet_port: int
    root: Path
    lease: NodeLease
    lease_period: float
    status_period: float
    report_period: float
    pod_cidr: str
    network: PodNetwork | None
    _node: dict[str, Any] | None
    _status_sent: float
    _status_wake: asyncio.Event
    devices: DeviceManager

    def _capacity(self) -> tuple[dict[str, str], dict[str, str]]:
        """The Node's capacity and allocatable: the host's, and each device plugin's
        resource (every device; the healthy ones)."""
        capacity = host_capacity()
        allocatable = dict(capacity)
        devices, healthy = self.devices.capacity()
        capacity.update({r: str(n) for r, n in devices.items()})
        allocatable.update({r: str(n) for r, n in healthy.items()})
        return capacity, allocatable

    async def register(self) -> None:
        version = await self.cri.version()
        uname = platform.uname()
        capacity, allocatable = self._capacity()
        now = rfc3339()
        status: dict[str, Any] = {
            "capacity": capacity,
            "allocatable": allocatable,
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
        if await self._follow_pod_cidr(self._node):
            await self.update_node_status(force=True)
        await self.lease.renew()

    async def _heartbeat(self) -> None:
        """Renew the Lease every ``lease_period``; check the status every ``status_period``,
        and at once when a device plugin's devices change (``_status_wake``, as kube's
        device manager asks for a node status update)."""
        next_status = time.monotonic() + self.status_period
        next_lease = time.monotonic() + self.lease_period
        while True:
            # Waiting for the pod network (for the node IPAM controller's podCIDR): look
            # every second, so that the node turns Ready as soon as it can.
            waiting = self.network is not None and not self.network.ready
            wait = max(0.0, next_lease - time.monotonic())
            if waiting:
                wait = min(wait, 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status_wake.wait(), wait)
            woken = self._status_wake.is_set()
            self._status_wake.clear()
            try:
                if time.monotonic() >= next_lease:
                    next_lease = time.monotonic() + self.lease_period
                    await self.lease.renew()
                if woken or waiting or time.monotonic() >= next_status:
                    next_status = time.monotonic() + self.status_period
                    await self.update_node_status()
            except ApiError as e:
                log.warning("node heartbeat failed", error=e.message)

    async def _follow_pod_cidr(self, node: dict[str, Any] | None) -> bool:
        """Configure the pod network for ``spec.podCIDR`` (it wins over ``--pod-cidr``), or
        for the flag until the node IPAM controller assigns one; True when the network
        became ready."""
        cidr = ((node or {}).get("spec") or {}).get("podCIDR") or self.pod_cidr
        if cidr != self.pod_cidr:
            log.info("pod CIDR assigned", pod_cidr=cidr, previous=self.pod_cidr or None)
            self.pod_cidr = cidr
        net = self.network
        if net is None or not cidr or (net.ready and net.cidr == cidr):
            return False
        in_use = 0  # sandboxes with an address on the bridge (host-network ones have none)
        for sb in await self.cri.list_pod_sandbox(state=pb.SANDBOX_READY):
            status = (await self.cri.pod_sandbox_status(sb.id)).status
            in_use += status.linux.namespaces.options.network != pb.NODE
        return net.configure(cidr, in_use)

    async def _node_conditions(self) -> dict[str, tuple[str, str, str]]:
        """type → (status, reason, message), from the host and the runtime."""
        out: dict[str, tuple[str, str, str]] = {}
        try:
            await self.cri.status()
            out["Ready"] = ("True", "KubeletReady", "kubelet is posting ready status")
        except CriError as e:
            out["Ready"] = ("False", "KubeletNotReady", f"container runtime is down: {e.message}")
        if out["Ready"][0] == "True" and self.network is not None and not self.network.ready:
            out["Ready"] = ("False", "KubeletNotReady", self.network.status_message())
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
        """Post conditions when one changes, else a heartbeat every ``report_period``."""
        conditions = await self._node_conditions()
        current = {t: v[0] for t, v in conditions.items()}
        stale = time.monotonic() - self._status_sent > self.report_period
        node = await self.client.get("nodes", self.node_name)
        self._node = node
        await self._follow_pod_cidr(node)
        old = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
        # Compare with what the API holds, not with what we last sent: the node lifecycle
        # controller may have marked us Unknown meanwhile (Kubernetes' shouldPatchNodeStatus).
        posted = {t: c.get("status") for t, c in old.items()}
        patch: dict[str, Any] = {}
        devices, healthy = self.devices.capacity()
        node_status = node.get("status") or {}
        for key, values in (("capacity", devices), ("allocatable", healthy)):
            held = node_status.get(key) or {}
            changed = {r: str(n) for r, n in values.items() if held.get(r) != str(n)}
            if changed:
                patch[key] = changed
        unchanged = all(posted.get(t) == v for t, v in current.items())
        if unchanged and not patch and not stale and not force:
            return
        patch["conditions"] = condition_list(conditions, old, rfc3339())
        await self.client.patch(
            "nodes",
            self.node_name,
            {"status": patch},
            type="strategic",
            subresource="status",
        )
        self._status_sent = time.monotonic()
