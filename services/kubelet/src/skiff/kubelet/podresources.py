"""The pod-resources API (``PodResourcesLister`` v1, kube's ``apis/podresources``) on
``<root>/pod-resources/kubelet.sock``, for monitoring agents: the devices each running
pod's containers hold (``List``, ``Get``) and the devices the node has
(``GetAllocatableResources``). Exclusive CPUs, memory and dynamic resources are not
managed by Skiff's kubelet and are answered empty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from skiff.log import get_logger
from skiff.podresources.v1 import api_pb2 as pr
from skiff.podresources.v1 import api_pb2_grpc as pr_grpc

from .devicemanager import DeviceManager
from .devicemanager.checkpoint import NO_NUMA

log = get_logger(__name__)

SOCKET = "kubelet.sock"


def _devices(resource: str, by_numa: dict[int, list[str]]) -> list[pr.ContainerDevices]:
    """One entry per NUMA node, as kube's ``containerDevicesFromResourceDeviceInstances``."""
    out = []
    for node, ids in sorted(by_numa.items()):
        d = pr.ContainerDevices(resource_name=resource, device_ids=sorted(ids))
        if node != NO_NUMA:
            d.topology.nodes.append(pr.NUMANode(ID=node))
        out.append(d)
    return out


class PodResources(pr_grpc.PodResourcesListerServicer):
    """Answers from the device manager and the kubelet's active pods."""

    def __init__(
        self, devices: DeviceManager, active_pods: Callable[[], Iterable[dict[str, Any]]]
    ) -> None:
        self.devices = devices
        self.active_pods = active_pods

    def _pod(self, pod: dict[str, Any]) -> pr.PodResources:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        out = pr.PodResources(name=meta["name"], namespace=meta.get("namespace", ""))
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            container = pr.ContainerResources(name=c["name"])
            for entry, _ep in self.devices.allocations(meta["uid"], c["name"]):
                container.devices.extend(_devices(entry.resource, entry.devices))
            out.containers.append(container)
        return out

    async def List(
        self, request: pr.ListPodResourcesRequest, context: Any
    ) -> pr.ListPodResourcesResponse:
        pods = sorted(
            self.active_pods(),
            key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"]),
        )
        return pr.ListPodResourcesResponse(pod_resources=[self._pod(p) for p in pods])

    async def Get(
        self, request: pr.GetPodResourcesRequest, context: Any
    ) -> pr.GetPodResourcesResponse:
        for p in self.active_pods():
            meta = p["metadata"]
            if meta["name"] == request.pod_name and meta.get("namespace") == request.pod_namespace:
                return pr.GetPodResourcesResponse(pod_resources=self._pod(p))
        await context.abort(
            grpc.StatusCode.NOT_FOUND,
            f"pod {request.pod_name} in namespace {request.pod_namespace} not found",
        )
        raise AssertionError("unreachable")

    async def GetAllocatableResources(
        self, request: pr.AllocatableResourcesRequest, context: Any
    ) -> pr.AllocatableResourcesResponse:
        out = pr.AllocatableResourcesResponse()
        for resource, devices in sorted(self.devices.devices.items()):
            by_numa: dict[int, list[str]] = {}
            for d in devices.values():
                if d.healthy:
                    by_numa.setdefault(d.numa_node, []).append(d.id)
            out.devices.extend(_devices(resource, by_numa))
        return out


def _clear(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (directory / SOCKET).unlink()


async def serve(directory: Path, servicer: PodResources) -> aio.Server:
    """Serve the API on ``<directory>/kubelet.sock`` (a stale socket is replaced)."""
    _clear(directory)
    server = aio.server()
    pr_grpc.add_PodResourcesListerServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix://{directory / SOCKET}")
    await server.start()
    log.info("pod-resources API serving", socket=str(directory / SOCKET))
    return server
