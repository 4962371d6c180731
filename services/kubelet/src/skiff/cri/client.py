"""Asyncio client for a CRI v1 runtime (containerd's CRI plugin) over a unix socket.

Usage::

    async with CriClient("unix:///run/containerd/containerd.sock") as cri:
        ref = await cri.pull_image("docker.io/library/busybox:1.36")
        sandbox_id = await cri.run_pod_sandbox(sandbox_config)
        ...

Every call has a deadline (``timeout`` seconds, 2 minutes for PullImage) and every gRPC
failure is raised as :class:`CriError` carrying the status code and the runtime's message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import grpc
from grpc import aio

from skiff.cri.v1 import api_pb2 as pb
from skiff.cri.v1 import api_pb2_grpc as pb_grpc

__all__ = [
    "DEFAULT_ENDPOINT",
    "CriClient",
    "CriError",
    "ExecResult",
    "pb",
]

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
DEFAULT_TIMEOUT = 30.0
DEFAULT_PULL_TIMEOUT = 120.0
# The kubelet's limit for CRI messages; ExecSync output and big ListContainers replies need it.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

ImageRef = str | pb.ImageSpec


class CriError(Exception):
    """A CRI call failed: gRPC status ``code`` and the runtime's ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str, method: str = "") -> None:
        self.code = code
        self.message = message
        self.method = method
        where = f"{method}: " if method else ""
        super().__init__(f"{where}{code.name}: {message}")

    @property
    def not_found(self) -> bool:
        """True when the runtime reported the object as missing."""
        return self.code == grpc.StatusCode.NOT_FOUND

    @property
    def unavailable(self) -> bool:
        """True when the runtime could not be reached."""
        return self.code == grpc.StatusCode.UNAVAILABLE

    @property
    def deadline_exceeded(self) -> bool:
        """True when the call ran past its deadline."""
        return self.code == grpc.StatusCode.DEADLINE_EXCEEDED


class ExecResult(NamedTuple):
    """Outcome of ExecSync; unpacks as ``(exit_code, stdout, stderr)``."""

    exit_code: int
    stdout: bytes
    stderr: bytes


def _target(endpoint: str) -> str:
    """Accept ``unix:///path``, ``unix:/path`` or a bare socket path."""
    if endpoint.startswith("/"):
        return "unix://" + endpoint
    return endpoint


def _image_spec(image: ImageRef) -> pb.ImageSpec:
    return pb.ImageSpec(image=image) if isinstance(image, str) else image


class CriClient:
    """Typed asyncio client for the CRI ``RuntimeService`` and ``ImageService``."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.endpoint = _target(endpoint)
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._max_message_bytes = max_message_bytes
        self._channel: aio.Channel | None = None
        self._runtime: pb_grpc.RuntimeServiceStub | None = None
        self._images: pb_grpc.ImageServiceStub | None = None

    # ----------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Open the channel (lazy: the socket is dialled on the first call)."""
        if self._channel is not None:
            return
        self._channel = aio.insecure_channel(
            self.endpoint,
            options=[
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.max_send_message_length", self._max_message_bytes),
            ],
        )
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    async def close(self) -> None:
        """Close the channel; in-flight calls are cancelled."""
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._runtime = self._images = None
            await channel.close()

    async def __aenter__(self) -> CriClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def runtime(self) -> pb_grpc.RuntimeServiceStub:
        """The raw RuntimeService stub."""
        if self._runtime is None:
            raise RuntimeError("CriClient is not connected")
        return self._runtime

    @property
    def images(self) -> pb_grpc.ImageServiceStub:
        """The raw ImageService stub."""
        if self._images is None:
            raise RuntimeError("CriClient is not connected")
        return self._images

    async def _call(self, method: Any, name: str, request: Any, timeout: float | None) -> Any:
        """Invoke one unary call with a deadline, mapping gRPC errors to CriError."""
        try:
            return await method(request, timeout=self.timeout if timeout is None else timeout)
        except aio.AioRpcError as e:
            raise CriError(e.code(), e.details() or "", name) from None

    # ------------------------------------------------------------- runtime

    async def version(
        self, api_version: str = "v1", *, timeout: float | None = None
    ) -> pb.VersionResponse:
        """Runtime name, version and CRI API version."""
        req = pb.VersionRequest(version=api_version)
        return await self._call(self.runtime.Version, "Version", req, timeout)

    async def status(
        self, verbose: bool = False, *, timeout: float | None = None
    ) -> pb.StatusResponse:
        """Runtime conditions (RuntimeReady, NetworkReady) and handlers."""
        req = pb.StatusRequest(verbose=verbose)
        return await self._call(self.runtime.Status, "Status", req, timeout)

    # ----------------------------------------------------------- sandboxes

    async def run_pod_sandbox(
        self,
        config: pb.PodSandboxConfig,
        runtime_handler: str = "",
        *,
        timeout: float | None = None,
    ) -> str:
        """Create and start a pod sandbox; returns its id."""
        req = pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        resp = await self._call(self.runtime.RunPodSandbox, "RunPodSandbox", req, timeout)
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float | None = None) -> None:
        """Stop a sandbox and its containers (idempotent)."""
        req = pb.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        await self._call(self.runtime.StopPodSandbox, "StopPodSandbox", req, timeout)

    async def remove_pod_sandbox(
        self, pod_sandbox_id: str, *, timeout: float | None = None
    ) -> None:
        """Remove a sandbox and its containers (idempotent)."""
        req = pb.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id)
        await self._call(self.runtime.RemovePodSandbox, "RemovePodSandbox", req, timeout)

    async def pod_sandbox_status(
        self, pod_sandbox_id: str, verbose: bool = False, *, timeout: float | None = None
    ) -> pb.PodSandboxStatusResponse:
        """Status of one sandbox; NOT_FOUND when it does not exist."""
        req = pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=verbose)
        return await self._call(self.runtime.PodSandboxStatus, "PodSandboxStatus", req, timeout)

    async def list_pod_sandbox(
        self,
        *,
        id: str = "",
        state: int | None = None,
        label_selector: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[pb.PodSandbox]:
        """Sandboxes matching all given filters (``state`` is a ``pb.PodSandboxState``)."""
        flt = pb.PodSandboxFilter(id=id, label_selector=dict(label_selector or {}))
        if state is not None:
            flt.state.state = state
        req = pb.ListPodSandboxRequest(filter=flt)
        resp = await self._call(self.runtime.ListPodSandbox, "ListPodSandbox", req, timeout)
        return list(resp.items)

    # ---------------------------------------------------------- containers

    async def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
        *,
        timeout: float | None = None,
    ) -> str:
        """Create a container in a sandbox; returns its id."""
        req = pb.CreateContainerRequest(
            pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config
        )
        resp = await self._call(self.runtime.CreateContainer, "CreateContainer", req, timeout)
        return resp.container_id

    async def start_container(self, container_id: str, *, timeout: float | None = None) -> None:
        """Start a created container."""
        req = pb.StartContainerRequest(container_id=container_id)
        await self._call(self.runtime.StartContainer, "StartContainer", req, timeout)

    async def stop_container(
        self, container_id: str, grace_period: int = 0, *, timeout: float | None = None
    ) -> None:
        """Stop a container, killing it after ``grace_period`` seconds.

        The RPC deadline is extended by the grace period.
        """
        req = pb.StopContainerRequest(container_id=container_id, timeout=grace_period)
        deadline = (self.timeout if timeout is None else timeout) + max(grace_period, 0)
        await self._call(self.runtime.StopContainer, "StopContainer", req, deadline)

    async def remove_container(self, container_id: str, *, timeout: float | None = None) -> None:
        """Remove a container (idempotent)."""
        req = pb.RemoveContainerRequest(container_id=container_id)
        await self._call(self.runtime.RemoveContainer, "RemoveContainer", req, timeout)

    async def list_containers(
        self,
        *,
        id: str = "",
        pod_sandbox_id: str = "",
        state: int | None = None,
        label_selector: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> list[pb.Container]:
        """Containers matching all given filters (``state`` is a ``pb.ContainerState``)."""
        flt = pb.ContainerFilter(
            id=id, pod_sandbox_id=pod_sandbox_id, label_selector=dict(label_selector or {})
        )
        if state is not None:
            flt.state.state = state
        req = pb.ListContainersRequest(filter=flt)
        resp = await self._call(self.runtime.ListContainers, "ListContainers", req, timeout)
        return list(resp.containers)

    async def container_status(
        self, container_id: str, verbose: bool = False, *, timeout: float | None = None
    ) -> pb.ContainerStatusResponse:
        """Status of one container; NOT_FOUND when it does not exist."""
        req = pb.ContainerStatusRequest(container_id=container_id, verbose=verbose)
        return await self._call(self.runtime.ContainerStatus, "ContainerStatus", req, timeout)

    async def update_container_resources(
        self,
        container_id: str,
        linux: pb.LinuxContainerResources,
        annotations: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Apply new Linux resource limits to a container."""
        req = pb.UpdateContainerResourcesRequest(
            container_id=container_id, linux=linux, annotations=dict(annotations or {})
        )
        await self._call(
            self.runtime.UpdateContainerResources, "UpdateContainerResources", req, timeout
        )

    async def reopen_container_log(
        self, container_id: str, *, timeout: float | None = None
    ) -> None:
        """Ask the runtime to reopen the container's log file (after rotation)."""
        req = pb.ReopenContainerLogRequest(container_id=container_id)
        await self._call(self.runtime.ReopenContainerLog, "ReopenContainerLog", req, timeout)

    # ----------------------------------------------------- exec and friends

    async def exec_sync(
        self, container_id: str, cmd: Iterable[str], timeout: float = 0
    ) -> ExecResult:
        """Run ``cmd`` in a container and wait; returns ``(exit_code, stdout, stderr)``.

        ``timeout`` (seconds, 0 = none) bounds the command in the runtime; the RPC deadline
        is that plus the client's default timeout.
        """
        req = pb.ExecSyncRequest(
            container_id=container_id, cmd=list(cmd), timeout=math.ceil(max(timeout, 0))
        )
        deadline = self.timeout + max(timeout, 0)
        resp = await self._call(self.runtime.ExecSync, "ExecSync", req, deadline)
        return ExecResult(resp.exit_code, resp.stdout, resp.stderr)

    async def exec(
        self,
        container_id: str,
        cmd: Iterable[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        timeout: float | None = None,
    ) -> str:
        """Prepare an exec session; returns the streaming server URL."""
        req = pb.ExecRequest(
            container_id=container_id,
            cmd=list(cmd),
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
        )
        resp = await self._call(self.runtime.Exec, "Exec", req, timeout)
        return resp.url

    async def attach(
        self,
        container_id: str,
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        timeout: float | None = None,
    ) -> str:
        """Prepare an attach session; returns the streaming server URL."""
        req = pb.AttachRequest(
            container_id=container_id,
            tty=tty,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr and not tty,
        )
        resp = await self._call(self.runtime.Attach, "Attach", req, timeout)
        return resp.url

    async def port_forward(
        self, pod_sandbox_id: str, ports: Iterable[int] = (), *, timeout: float | None = None
    ) -> str:
        """Prepare a port-forward session; returns the streaming server URL."""
        req = pb.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports))
        resp = await self._call(self.runtime.PortForward, "PortForward", req, timeout)
        return resp.url

    # -------------------------------------------------------------- images

    async def list_images(
        self, image: ImageRef | None = None, *, timeout: float | None = None
    ) -> list[pb.Image]:
        """Images on the node, optionally only those matching ``image``."""
        req = pb.ListImagesRequest()
        if image is not None:
            req.filter.image.CopyFrom(_image_spec(image))
        resp = await self._call(self.images.ListImages, "ListImages", req, timeout)
        return list(resp.images)

    async def image_status(
        self, image: ImageRef, *, timeout: float | None = None
    ) -> pb.Image | None:
        """The image, or None when it is not present on the node."""
        req = pb.ImageStatusRequest(image=_image_spec(image))
        resp = await self._call(self.images.ImageStatus, "ImageStatus", req, timeout)
        return resp.image if resp.HasField("image") else None

    async def pull_image(
        self,
        image: ImageRef,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
        *,
        timeout: float | None = None,
    ) -> str:
        """Pull an image; returns the image reference (id) the runtime stored it under."""
        req = pb.PullImageRequest(image=_image_spec(image))
        if auth is not None:
            req.auth.CopyFrom(auth)
        if sandbox_config is not None:
            req.sandbox_config.CopyFrom(sandbox_config)
        deadline = self.pull_timeout if timeout is None else timeout
        resp = await self._call(self.images.PullImage, "PullImage", req, deadline)
        return resp.image_ref

    async def remove_image(self, image: ImageRef, *, timeout: float | None = None) -> None:
        """Remove an image (idempotent)."""
        req = pb.RemoveImageRequest(image=_image_spec(image))
        await self._call(self.images.RemoveImage, "RemoveImage", req, timeout)

    async def image_fs_info(self, *, timeout: float | None = None) -> pb.ImageFsInfoResponse:
        """Usage of the filesystem(s) holding images."""
        req = pb.ImageFsInfoRequest()
        return await self._call(self.images.ImageFsInfo, "ImageFsInfo", req, timeout)
