"""Pod admission and device allocation (kube's device manager ``Allocate`` and the
resource-fit admission that runs before it), and what a container gets from its devices.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from skiff.api.resourcequota import pod_resources, quantities
from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.log import get_logger

from .checkpoint import Entry
from .endpoint import DeviceInfo, Endpoint, PluginError

log = get_logger(__name__)


class AdmissionError(Exception):
    """A pod the device manager does not admit: ``reason`` and message as kube's."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class NotReady(Exception):
    """A device plugin the checkpoint knows has not registered again since the kubelet
    started: admission waits for it (for a while) rather than refusing the pod."""


def unexpected(error: Exception) -> AdmissionError:
    """kube's ``UnexpectedAdmissionError`` for an allocation that failed."""
    return AdmissionError(
        "UnexpectedAdmissionError", f"Allocate failed due to {error}, which is unexpected"
    )


def _containers(pod: dict[str, Any]) -> Iterator[tuple[dict[str, Any], bool]]:
    """(container, init) in admission order."""
    spec = pod.get("spec") or {}
    for c in spec.get("initContainers") or []:
        yield c, True
    for c in spec.get("containers") or []:
        yield c, False


def _sidecar(container: dict[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def numa_choice(free: list[DeviceInfo], needed: int) -> list[str]:
    """``needed`` devices, from one NUMA node when one has enough (the fullest fit), else
    node by node; by ID within a node."""
    by_node: dict[int, list[str]] = {}
    for d in sorted(free, key=lambda d: d.id):
        by_node.setdefault(d.numa_node, []).append(d.id)
    fits = [n for n, ids in by_node.items() if len(ids) >= needed]
    if fits:
        best = min(fits, key=lambda n: (len(by_node[n]), n))
        return by_node[best][:needed]
    out: list[str] = []
    for n in sorted(by_node, key=lambda n: (-len(by_node[n]), n)):
        out += by_node[n][: needed - len(out)]
    return out


class AllocationMixin:
    """The allocation half of :class:`DeviceManager`."""

    if TYPE_CHECKING:
        endpoints: dict[str, Endpoint]
        devices: dict[str, dict[str, DeviceInfo]]
        entries: dict[tuple[str, str, str], Entry]
        rpc_timeout: float
        started_at: float
        reregister_wait: float
        _locks: dict[str, asyncio.Lock]

        def is_device_resource(self, name: str) -> bool: ...
        def _save(self) -> None: ...

    def _counts(self, pod: dict[str, Any]) -> dict[str, dict[str, int]]:
        """container → device resource → count (from limits; requests equal them)."""
        out: dict[str, dict[str, int]] = {}
        for c, _init in _containers(pod):
            limits = quantities((c.get("resources") or {}).get("limits"))
            out[c["name"]] = {r: int(q) for r, q in limits.items() if self.is_device_resource(r)}
        return out

    def held(self, resource: str, *, but: str = "") -> set[str]:
        """Devices of ``resource`` that pods (other than pod ``but``) hold."""
        return {
            d
            for (uid, _c, r), e in self.entries.items()
            if r == resource and uid != but
            for d in e.device_ids
        }

    async def admit(
        self, pod: dict[str, Any], active: Callable[[], set[str]] | None = None
    ) -> None:
        """Allocate the devices of every container of ``pod`` that has none yet
        (AdmissionError when it cannot be done; what this call allocated is released).
        ``active``: the uids of the pods that hold resources; before allocating, the
        devices of every other pod are free (kube's UpdateAllocatedDevices), even those
        whose containers are still stopping."""
        counts = self._counts(pod)
        uid = pod["metadata"]["uid"]
        if all((uid, c, r) in self.entries for c, rs in counts.items() for r in rs):
            return  # nothing asked, or admitted before (a restarted kubelet's checkpoint)
        if active is not None:
            self.retain(active() | {uid})
        self._fits(pod, uid, counts)
        before = set(self.entries)
        try:
            reusable: dict[str, set[str]] = {}
            for c, init in _containers(pod):
                for resource, needed in sorted(counts[c["name"]].items()):
                    key = (uid, c["name"], resource)
                    entry = self.entries.get(key)
                    if entry is None:
                        entry = await self._allocate(
                            uid, c["name"], resource, needed, reusable.get(resource, set())
                        )
                    ids = set(entry.device_ids)
                    if init and not _sidecar(c):
                        reusable[resource] = ids
                    else:
                        reusable[resource] = reusable.get(resource, set()) - ids
        except (PluginError, AdmissionError) as e:
            for key in set(self.entries) - before:
                del self.entries[key]
            if isinstance(e, PluginError):
                raise unexpected(e) from None
            raise

    def _fits(self, pod: dict[str, Any], uid: str, counts: dict[str, dict[str, int]]) -> None:
        """The resource-fit admission (kube's ``OutOf<resource>``): the pod's request and
        what other pods hold within the healthy devices."""
        # The pod's effective limit (kube's PodLimits: the largest init container or the
        # app containers and sidecars); requests equal limits for extended resources.
        limits = pod_resources(pod.get("spec") or {}, "limits")
        for resource in sorted({r for rs in counts.values() for r in rs}):
            self._wait_for_plugin(resource)
            requested = int(limits.get(resource, 0))
            used = len(self.held(resource, but=uid))
            capacity = sum(d.healthy for d in (self.devices.get(resource) or {}).values())
            if requested + used > capacity:
                raise AdmissionError(
                    f"OutOf{resource}",
                    f"Node didn't have enough resource: {resource}, requested: {requested}, "
                    f"used: {used}, capacity: {capacity}",
                )

    def _wait_for_plugin(self, resource: str) -> None:
        """NotReady while a plugin the kubelet knew before it restarted may still come
        back (kube refuses such pods; plugins take a moment to notice the restart)."""
        ep = self.endpoints.get(resource)
        if ep is not None and not ep.stopped.is_set():
            return
        if time.monotonic() - self.started_at < self.reregister_wait:
            raise NotReady(f"waiting for the device plugin of {resource} to register again")

    async def _allocate(
        self, uid: str, container: str, resource: str, needed: int, reusable: set[str]
    ) -> Entry:
        lock = self._locks.setdefault(resource, asyncio.Lock())
        async with lock:  # one choice at a time per resource; other resources go on
            ep = self.endpoints.get(resource)
            if ep is None or ep.stopped.is_set():
                raise PluginError(f"cannot allocate unregistered device {resource}")
            devices = self.devices.get(resource) or {}
            healthy = {d for d, i in devices.items() if i.healthy}
            chosen = sorted(reusable & healthy)[:needed]
            free = sorted(healthy - self.held(resource) - set(chosen))
            if len(chosen) + len(free) < needed:
                raise PluginError(
                    f"requested number of devices unavailable for {resource}. "
                    f"Requested: {needed}, Available: {len(chosen) + len(free)}"
                )
            if len(chosen) < needed:
                chosen += await self._choose(ep, devices, free, chosen, needed)
            chosen.sort()  # a set, as kube hands it over
            entry = Entry(uid, container, resource)
            for d in chosen:
                entry.devices.setdefault(devices[d].numa_node, []).append(d)
            self.entries[(uid, container, resource)] = entry  # reserved; Allocate follows
        try:
            answer = await ep.allocate(chosen, self.rpc_timeout)
        except PluginError:
            self.entries.pop((uid, container, resource), None)
            raise
        entry.response = answer.SerializeToString()
        self._save()
        log.info(
            "devices allocated", pod_uid=uid, container=container, resource=resource, ids=chosen
        )
        return entry

    async def _choose(
        self,
        ep: Endpoint,
        devices: dict[str, DeviceInfo],
        free: list[str],
        chosen: list[str],
        needed: int,
    ) -> list[str]:
        """The devices to add to ``chosen``: the plugin's preference when it has one and
        it is usable, else the NUMA-aware choice."""
        rest = needed - len(chosen)
        if ep.options.get_preferred_allocation_available:
            try:
                preferred = await ep.preferred(
                    sorted(free + chosen), chosen, needed, self.rpc_timeout
                )
            except PluginError as e:
                log.warning("preferred allocation unavailable", resource=ep.resource, error=str(e))
            else:
                extra = [d for d in preferred if d not in chosen]
                if len(set(extra)) == rest and set(extra) <= set(free):
                    return extra
                log.warning(
                    "preferred allocation ignored", resource=ep.resource, preferred=preferred
                )
        return numa_choice([devices[d] for d in free], rest)

    def release(self, uid: str) -> None:
        """Free the devices of a pod that is gone or finished."""
        gone = [k for k in self.entries if k[0] == uid]
        for k in gone:
            del self.entries[k]
        if gone:
            log.info("devices released", pod_uid=uid)
            self._save()

    def retain(self, uids: Iterable[str]) -> None:
        """Free the devices of every pod but ``uids`` (the active pods after a restart)."""
        keep = set(uids)
        for uid in {k[0] for k in self.entries} - keep:
            self.release(uid)

    def allocations(self, uid: str, container: str) -> list[tuple[Entry, Endpoint | None]]:
        """The container's entries with their plugin (None when it is not registered)."""
        return [
            (e, self.endpoints.get(r))
            for (u, c, r), e in sorted(self.entries.items())
            if u == uid and c == container and e.response is not None
        ]

    async def container_options(
        self, uid: str, container: str
    ) -> list[dp.ContainerAllocateResponse]:
        """What the container's plugins said it needs (envs, mounts, device nodes,
        annotations, CDI devices), after their ``PreStartContainer`` where they asked for
        it (PluginError when one fails)."""
        out = []
        for entry, ep in self.allocations(uid, container):
            if ep is not None and ep.options.pre_start_required:
                if ep.stopped.is_set():
                    raise PluginError(f"device plugin {entry.resource} is not registered")
                await ep.pre_start(entry.device_ids, self.rpc_timeout)
            answer = dp.ContainerAllocateResponse()
            answer.ParseFromString(entry.response or b"")
            out.append(answer)
        return out
