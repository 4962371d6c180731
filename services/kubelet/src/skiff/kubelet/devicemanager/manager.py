"""The kubelet's device manager (kube's ``cm/devicemanager``): serves ``Registration`` on
``<root>/device-plugins/kubelet.sock``, follows each plugin's devices, reports them as the
Node's extended resources, and hands devices to containers at pod admission.

- Registration: version ``v1beta1``, an extended resource name (a domain outside
  ``kubernetes.io``), an endpoint in the directory; a resource already served by a running
  plugin at another socket is refused. A plugin that registers again at the same socket
  (it restarted) replaces the old connection.
- Devices: capacity counts every listed device, allocatable the healthy ones. When a
  plugin goes away its devices turn unhealthy (allocatable 0) and, if it does not come
  back within ``grace`` seconds, the resource is removed (capacity 0), as kube does.
- Allocation: per container, init containers first; an init container's devices may be
  reused by the containers after it (not a restartable sidecar's). Devices come from the
  plugin's preferred allocation when it offers one, else from one NUMA node when one can
  hold them all. ``Allocate`` runs outside any lock and with a deadline, so a hung plugin
  fails its own pods' admission (``UnexpectedAdmissionError``) and nobody else's.
- The checkpoint (:mod:`.checkpoint`) is written after each change.
"""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from skiff.api.names import is_extended
from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.deviceplugin.v1beta1 import api_pb2_grpc as dp_grpc
from skiff.log import get_logger

from . import checkpoint
from .allocation import AllocationMixin
from .checkpoint import Entry
from .endpoint import DeviceInfo, Endpoint, PluginError

log = get_logger(__name__)

SUPPORTED_VERSIONS = ("v1beta1",)
KUBELET_SOCKET = "kubelet.sock"
DIAL_TIMEOUT = 5.0
STOP_GRACE = 300.0  # kube's endpointStopGracePeriod
REREGISTER_WAIT = 30.0
"""How long after a start admission waits for plugins the checkpoint knows."""


class RegistrationError(Exception):
    """A registration the kubelet refuses (the message goes back to the plugin)."""


class _Registration(dp_grpc.RegistrationServicer):
    def __init__(self, manager: DeviceManager) -> None:
        self.manager = manager

    async def Register(self, request: dp.RegisterRequest, context: Any) -> dp.Empty:
        try:
            await self.manager.register(request)
        except RegistrationError as e:
            log.warning(
                "device plugin registration refused",
                resource=request.resource_name,
                endpoint=request.endpoint,
                error=str(e),
            )
            # kube's plugin server answers a refusal as an error of code Unknown.
            await context.abort(grpc.StatusCode.UNKNOWN, str(e))
        return dp.Empty()


class DeviceManager(AllocationMixin):
    """Device plugins of one node; see the module's description."""

    def __init__(
        self,
        directory: Path,
        on_change: Callable[[], None] = lambda: None,
        *,
        rpc_timeout: float = 30.0,
        grace: float = STOP_GRACE,
        reregister_wait: float = REREGISTER_WAIT,
    ) -> None:
        self.directory = directory
        self.on_change = on_change
        self.rpc_timeout = rpc_timeout
        self.grace = grace
        self.reregister_wait = reregister_wait
        self.started_at = time.monotonic()
        self.endpoints: dict[str, Endpoint] = {}
        self.devices: dict[str, dict[str, DeviceInfo]] = {}
        self.removed: set[str] = set()
        """Resources whose plugin went away for good: reported with capacity 0."""
        self.entries: dict[tuple[str, str, str], Entry] = {}
        self._stopped_since: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._server: aio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def checkpoint_path(self) -> Path:
        return self.directory / checkpoint.FILE_NAME

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Read the checkpoint, clear stale sockets (plugins watch for ``kubelet.sock`` to
        be created again and register anew), serve Registration."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        entries, registered = checkpoint.load(self.checkpoint_path)
        for e in entries:
            self.entries[(e.pod_uid, e.container, e.resource)] = e
        now = time.monotonic()
        for resource, ids in registered.items():
            # Unhealthy until the plugin lists them again; gone after the grace period.
            self.devices[resource] = {d: DeviceInfo(d, False) for d in ids}
            self._stopped_since[resource] = now
        for path in self.directory.iterdir():
            with contextlib.suppress(OSError):
                if path.name != checkpoint.FILE_NAME and stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()
        server = aio.server()
        dp_grpc.add_RegistrationServicer_to_server(_Registration(self), server)
        server.add_insecure_port(f"unix://{self.directory / KUBELET_SOCKET}")
        await server.start()
        self._server = server
        self._spawn(self._expire(), "device-plugin-grace")
        log.info("device manager serving", socket=str(self.directory / KUBELET_SOCKET))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)
        for ep in list(self.endpoints.values()):
            await ep.stop()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- registration and devices ---------------------------------------------------------

    async def register(self, request: dp.RegisterRequest) -> None:
        """Accept a plugin (RegistrationError with kube's words when not)."""
        resource, endpoint = request.resource_name, request.endpoint
        if request.version not in SUPPORTED_VERSIONS:
            supported = "[" + " ".join(f'"{v}"' for v in SUPPORTED_VERSIONS) + "]"
            raise RegistrationError(
                f'requested API version "{request.version}" is not supported by kubelet. '
                f"Supported versions are {supported}"
            )
        if not is_extended(resource):
            raise RegistrationError(f'the ResourceName "{resource}" is invalid')
        if not endpoint or "/" in endpoint or endpoint in (".", "..", KUBELET_SOCKET):
            raise RegistrationError(
                f'bad endpoint "{endpoint}": must be a socket name in {self.directory}'
            )
        socket = str(self.directory / endpoint)
        old = self.endpoints.get(resource)
        if old is not None and not old.stopped.is_set() and old.socket != socket:
            raise RegistrationError(
                f'resource "{resource}" is already registered by the running device plugin '
                f"at {old.socket}"
            )
        options = request.options if request.HasField("options") else dp.DevicePluginOptions()
        ep = Endpoint(resource, socket, options, self._devices_listed)
        try:
            await ep.connect(DIAL_TIMEOUT)
        except PluginError as e:
            raise RegistrationError(str(e)) from None
        if old is not None:
            await old.stop()
        self.endpoints[resource] = ep
        self.removed.discard(resource)
        ep.start()
        self._spawn(self._follow(ep), f"device-plugin-{resource}-stopped")
        log.info("device plugin registered", resource=resource, endpoint=socket)

    def _devices_listed(self, ep: Endpoint, devices: dict[str, DeviceInfo]) -> None:
        if self.endpoints.get(ep.resource) is not ep:
            return  # a replaced plugin's last words
        before = self.devices.get(ep.resource)
        self.devices[ep.resource] = devices
        self._stopped_since.pop(ep.resource, None)
        if before != devices:
            log.info(
                "devices updated",
                resource=ep.resource,
                devices=len(devices),
                healthy=sum(d.healthy for d in devices.values()),
            )
            self._save()
            self.on_change()

    async def _follow(self, ep: Endpoint) -> None:
        """When a plugin's stream ends, its devices turn unhealthy (allocatable 0)."""
        await ep.stopped.wait()
        if self.endpoints.get(ep.resource) is not ep:
            return
        devices = self.devices.get(ep.resource) or {}
        self.devices[ep.resource] = {d: DeviceInfo(d, False, i.numa) for d, i in devices.items()}
        self._stopped_since[ep.resource] = time.monotonic()
        log.warning("device plugin gone; its devices are unhealthy", resource=ep.resource)
        self.on_change()

    async def _expire(self) -> None:
        """Remove the resources of plugins gone longer than the grace period."""
        while True:
            await asyncio.sleep(min(self.grace, 10.0))
            now = time.monotonic()
            gone = [r for r, t in self._stopped_since.items() if now - t >= self.grace]
            for resource in gone:
                ep = self.endpoints.get(resource)
                if ep is not None and not ep.stopped.is_set():
                    continue
                log.info("device plugin resource removed", resource=resource)
                self.devices.pop(resource, None)
                self.endpoints.pop(resource, None)
                self._stopped_since.pop(resource, None)
                self.removed.add(resource)
            if gone:
                self._save()
                self.on_change()

    def capacity(self) -> tuple[dict[str, int], dict[str, int]]:
        """The Node's capacity and allocatable for each device resource (removed ones
        at 0, as kube reports them)."""
        capacity = {r: len(d) for r, d in self.devices.items()}
        allocatable = {r: sum(i.healthy for i in d.values()) for r, d in self.devices.items()}
        for r in self.removed - capacity.keys():
            capacity[r] = allocatable[r] = 0
        return capacity, allocatable

    def is_device_resource(self, name: str) -> bool:
        return name in self.devices or any(k[2] == name for k in self.entries)

    def _save(self) -> None:
        registered = {r: list(d) for r, d in self.devices.items()}
        done = [e for e in self.entries.values() if e.response is not None]
        try:
            checkpoint.save(self.checkpoint_path, done, registered)
        except OSError as e:
            log.error("device manager checkpoint not written", error=str(e))
