"""One registered device plugin as the kubelet sees it (kube's ``endpoint`` and plugin
client): a gRPC channel to its socket, the ``ListAndWatch`` stream that keeps its device
list, and the calls made at admission and container start, each with a deadline so that a
hung plugin fails only the pods that need it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from grpc import aio

from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from skiff.log import get_logger

from .checkpoint import NO_NUMA

log = get_logger(__name__)

HEALTHY, UNHEALTHY = "Healthy", "Unhealthy"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device as its plugin last listed it."""

    id: str
    healthy: bool
    numa: tuple[int, ...] = ()

    @property
    def numa_node(self) -> int:
        """The NUMA node it is counted on (its first; ``NO_NUMA`` when it has none)."""
        return self.numa[0] if self.numa else NO_NUMA


class PluginError(Exception):
    """A plugin call failed or answered something the kubelet cannot use."""


def parse_devices(resource: str, devices: list[dp.Device]) -> dict[str, DeviceInfo]:
    """A ``ListAndWatch`` answer as devices by ID; PluginError for an answer that cannot
    be used (an empty or repeated ID, an unknown health)."""
    out: dict[str, DeviceInfo] = {}
    for d in devices:
        if not d.ID:
            raise PluginError(f"{resource}: a device without an ID")
        if d.ID in out:
            raise PluginError(f"{resource}: device ID {d.ID!r} listed more than once")
        if d.health not in (HEALTHY, UNHEALTHY):
            raise PluginError(
                f"{resource}: device {d.ID!r} has health {d.health!r}, "
                f'not "{HEALTHY}" or "{UNHEALTHY}"'
            )
        numa = tuple(n.ID for n in d.topology.nodes) if d.HasField("topology") else ()
        out[d.ID] = DeviceInfo(d.ID, d.health == HEALTHY, numa)
    return out


class Endpoint:
    """The connection to one plugin: ``run`` follows its ``ListAndWatch`` until the
    stream ends (the plugin stopped) or :meth:`stop`."""

    def __init__(
        self,
        resource: str,
        socket: str,
        options: dp.DevicePluginOptions,
        on_devices: Callable[[Endpoint, dict[str, DeviceInfo]], None],
    ) -> None:
        self.resource = resource
        self.socket = socket
        self.options = options
        self._on_devices = on_devices
        self._channel = aio.insecure_channel(f"unix://{socket}")
        self._stub = dp_grpc.DevicePluginStub(self._channel)
        self._task: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()
        """Set once the stream has ended: the plugin is gone (or was replaced)."""

    async def connect(self, timeout: float) -> None:
        """Wait until the plugin's socket answers (PluginError if it does not)."""
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout)
        except (TimeoutError, grpc.RpcError) as e:
            await self._channel.close()
            raise PluginError(f"failed to dial device plugin: {self.socket}: {e!r}") from None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"device-plugin-{self.resource}")

    async def _run(self) -> None:
        try:
            stream = self._stub.ListAndWatch(dp.Empty())
            async for answer in stream:
                try:
                    devices = parse_devices(self.resource, list(answer.devices))
                except PluginError as e:
                    log.error("device list refused; the previous one stands", error=str(e))
                    continue
                self._on_devices(self, devices)
            log.warning("device plugin closed its ListAndWatch stream", resource=self.resource)
        except grpc.RpcError as e:
            if not self.stopped.is_set():
                log.warning(
                    "device plugin stream ended",
                    resource=self.resource,
                    error=e.details() if hasattr(e, "details") else str(e),
                )
        finally:
            self.stopped.set()

    async def stop(self) -> None:
        """Close the stream and the channel (the plugin is replaced or the kubelet stops)."""
        self.stopped.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._channel.close()

    async def allocate(self, device_ids: list[str], timeout: float) -> dp.ContainerAllocateResponse:
        """``Allocate`` for one container's devices."""
        request = dp.AllocateRequest(
            container_requests=[dp.ContainerAllocateRequest(devices_ids=device_ids)]
        )
        answer = await self._call("Allocate", self._stub.Allocate, request, timeout)
        if len(answer.container_responses) != 1:
            raise PluginError(
                f"device plugin {self.resource} answered Allocate for one container with "
                f"{len(answer.container_responses)} container responses"
            )
        return answer.container_responses[0]

    async def preferred(
        self, available: list[str], must_include: list[str], size: int, timeout: float
    ) -> list[str]:
        """``GetPreferredAllocation`` for one container."""
        request = dp.PreferredAllocationRequest(
            container_requests=[
                dp.ContainerPreferredAllocationRequest(
                    available_deviceIDs=available,
                    must_include_deviceIDs=must_include,
                    allocation_size=size,
                )
            ]
        )
        answer = await self._call(
            "GetPreferredAllocation", self._stub.GetPreferredAllocation, request, timeout
        )
        if len(answer.container_responses) != 1:
            raise PluginError(
                f"device plugin {self.resource} answered GetPreferredAllocation with "
                f"{len(answer.container_responses)} container responses"
            )
        return list(answer.container_responses[0].deviceIDs)

    async def pre_start(self, device_ids: list[str], timeout: float) -> None:
        request = dp.PreStartContainerRequest(devices_ids=device_ids)
        await self._call("PreStartContainer", self._stub.PreStartContainer, request, timeout)

    async def _call(self, name: str, method, request, timeout: float):  # type: ignore[no-untyped-def]
        try:
            return await method(request, timeout=timeout)
        except grpc.RpcError as e:
            code = e.code() if hasattr(e, "code") else None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PluginError(
                    f"device plugin {self.resource} did not answer {name} within {timeout:g}s"
                ) from None
            details = e.details() if hasattr(e, "details") else str(e)
            raise PluginError(f"device plugin {self.resource} {name}: {details}") from None
