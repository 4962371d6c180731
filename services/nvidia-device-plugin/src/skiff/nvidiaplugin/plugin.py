"""The ``DevicePlugin`` service for one resource of GPUs (or MIG devices, or replicas):
its devices with their health and NUMA node, ``Allocate`` with the device nodes, the
driver's files and ``NVIDIA_VISIBLE_DEVICES``, and a preferred allocation that keeps a
request on one NUMA node and spreads replicas over distinct GPUs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from skiff.log import get_logger

from .health import HealthMonitor
from .hostfiles import HostFiles
from .resources import Device, Resource

log = get_logger(__name__)


class GpuPlugin(dp_grpc.DevicePluginServicer):
    """Serves one :class:`~.resources.Resource`."""

    def __init__(
        self,
        resource: Resource,
        health: HealthMonitor,
        files: HostFiles,
        *,
        fail_requests_greater_than_one: bool = False,
    ) -> None:
        self.resource = resource
        self.health = health
        self.files = files
        self.fail_requests_greater_than_one = fail_requests_greater_than_one
        self.by_id = {d.id: d for d in resource.devices}
        self._changed = asyncio.Condition()
        self._version = 0

    @property
    def options(self) -> dp.DevicePluginOptions:
        return dp.DevicePluginOptions(get_preferred_allocation_available=True)

    def healthy(self, d: Device) -> bool:
        """A device is unhealthy when it, or the GPU it is on, is."""
        return self.health.healthy(d.uuid) and self.health.healthy(d.gpu.uuid)

    def listed(self) -> list[dp.Device]:
        out = []
        for d in self.resource.devices:
            device = dp.Device(ID=d.id, health="Healthy" if self.healthy(d) else "Unhealthy")
            if d.numa is not None:
                device.topology.nodes.append(dp.NUMANode(ID=d.numa))
            out.append(device)
        return out

    async def changed(self) -> None:
        """Health changed: send the list again."""
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    async def GetDevicePluginOptions(
        self, request: dp.Empty, context: Any
    ) -> dp.DevicePluginOptions:
        return self.options

    async def ListAndWatch(
        self, request: dp.Empty, context: Any
    ) -> AsyncIterator[dp.ListAndWatchResponse]:
        seen = -1
        while True:
            async with self._changed:
                while self._version == seen:
                    await self._changed.wait()
                seen = self._version
            yield dp.ListAndWatchResponse(devices=self.listed())

    async def GetPreferredAllocation(
        self, request: dp.PreferredAllocationRequest, context: Any
    ) -> dp.PreferredAllocationResponse:
        answers = []
        for r in request.container_requests:
            chosen = self.prefer(
                list(r.available_deviceIDs), list(r.must_include_deviceIDs), r.allocation_size
            )
            answers.append(dp.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return dp.PreferredAllocationResponse(container_responses=answers)

    def prefer(self, available: list[str], must: list[str], size: int) -> list[str]:
        """``must`` and then the devices of one NUMA node that can hold the rest (one with
        enough distinct GPUs, then the fullest fit), replicas of distinct GPUs first, by
        GPU index."""
        chosen = list(must)
        rest = [self.by_id[i] for i in available if i in self.by_id and i not in must]
        need = size - len(chosen)
        if need <= 0:
            return chosen[:size]
        used_gpus = {self.by_id[i].gpu.uuid for i in must if i in self.by_id}

        def order(d: Device) -> tuple[int, int, int]:
            return (d.gpu.uuid in used_gpus, d.gpu.index, d.replica or 0)

        groups: dict[int | None, list[Device]] = {}
        for d in rest:
            groups.setdefault(d.numa, []).append(d)
        fits = [n for n, ds in groups.items() if len(ds) >= need]
        if fits:
            # Distinct GPUs for the whole request if a node has them, then the fullest fit.
            def fit(n: int | None) -> tuple[bool, int, int]:
                distinct = len({d.gpu.uuid for d in groups[n]})
                return (distinct < need, len(groups[n]), n if n is not None else -1)

            node = min(fits, key=fit)
            pool = groups[node]
        else:
            pool = rest
        picked: list[Device] = []
        left = list(pool)
        while left and len(picked) < need:
            d = min(left, key=order)  # again each time: a GPU once used goes last
            left.remove(d)
            picked.append(d)
            used_gpus.add(d.gpu.uuid)
        return chosen + [d.id for d in picked]

    async def Allocate(self, request: dp.AllocateRequest, context: Any) -> dp.AllocateResponse:
        answers = []
        for r in request.container_requests:
            ids = list(r.devices_ids)
            unknown = [i for i in ids if i not in self.by_id]
            if unknown:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown {self.resource.name} device(s): {', '.join(unknown)}",
                )
            if self.resource.shared and self.fail_requests_greater_than_one and len(ids) > 1:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"request for {len(ids)} {self.resource.name}: shared GPUs are "
                    "given one per container (failRequestsGreaterThanOne)",
                )
            answers.append(self.container_response([self.by_id[i] for i in ids]))
        return dp.AllocateResponse(container_responses=answers)

    def container_response(self, devices: list[Device]) -> dp.ContainerAllocateResponse:
        uuids = list(dict.fromkeys(d.uuid for d in devices))  # replicas of one GPU: once
        gpus = list({d.gpu.uuid: d.gpu for d in devices}.values())
        migs = [d.mig for d in devices if d.mig is not None]
        answer = dp.ContainerAllocateResponse()
        answer.envs["NVIDIA_VISIBLE_DEVICES"] = ",".join(uuids)
        for node in self.files.device_nodes(gpus, migs):
            answer.devices.append(
                dp.DeviceSpec(container_path=node, host_path=node, permissions="rw")
            )
        for path in self.files.driver_files():
            answer.mounts.append(dp.Mount(container_path=path, host_path=path, read_only=True))
        log.info("allocated", resource=self.resource.name, devices=[d.id for d in devices])
        return answer
