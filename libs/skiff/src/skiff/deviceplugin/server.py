"""A device plugin's side of the protocol: serve a ``DevicePlugin`` servicer on a socket in
the kubelet's device-plugins directory, register it, and start over when the kubelet
restarts (it removes the sockets it finds and creates ``kubelet.sock`` anew) or when the
plugin's own socket disappears. A refused registration ends :meth:`PluginServer.run`, as
the API asks of a plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

import grpc
from grpc import aio

from skiff.log import get_logger

from . import KUBELET_SOCKET, VERSION
from .v1beta1 import api_pb2 as dp
from .v1beta1 import api_pb2_grpc as dp_grpc

log = get_logger(__name__)

POLL_SECONDS = 0.5


class RegistrationRefused(Exception):
    """The kubelet refused the registration (its message)."""


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


class PluginServer:
    """Serves ``servicer`` as ``resource`` at ``<directory>/<endpoint>``."""

    def __init__(
        self,
        servicer: dp_grpc.DevicePluginServicer,
        resource: str,
        *,
        directory: Path,
        endpoint: str,
        options: dp.DevicePluginOptions | None = None,
    ) -> None:
        self.servicer = servicer
        self.resource = resource
        self.directory = directory
        self.endpoint = endpoint
        self.options = options or dp.DevicePluginOptions()
        self.registered = asyncio.Event()
        """Set while registered with the current kubelet."""

    @property
    def socket(self) -> Path:
        return self.directory / self.endpoint

    async def run(self) -> None:
        """Serve and register until cancelled (RegistrationRefused when refused)."""
        while True:
            # The kubelet clears the directory's sockets when it starts, then creates its
            # own: serve only once it is there.
            await self._wait_for_kubelet()
            server = await self._serve()
            try:
                kubelet = await self._register()
                await self._wait_for_restart(kubelet)
            finally:
                self.registered.clear()
                await server.stop(0.5)
            log.info("kubelet restarted or our socket is gone; serving again")

    async def _serve(self) -> aio.Server:
        self.directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        server = aio.server()
        dp_grpc.add_DevicePluginServicer_to_server(self.servicer, server)
        server.add_insecure_port(f"unix://{self.socket}")
        await server.start()
        return server

    async def _wait_for_kubelet(self) -> None:
        kubelet = self.directory / KUBELET_SOCKET
        if _inode(kubelet) is None:
            log.info("waiting for the kubelet", socket=str(kubelet))
        while _inode(kubelet) is None:
            await asyncio.sleep(POLL_SECONDS)

    async def _register(self) -> int:
        """Register once ``kubelet.sock`` answers; the inode of the socket registered with."""
        kubelet = self.directory / KUBELET_SOCKET
        while True:
            await self._wait_for_kubelet()
            inode = _inode(kubelet)
            try:
                async with aio.insecure_channel(f"unix://{kubelet}") as channel:
                    await dp_grpc.RegistrationStub(channel).Register(
                        dp.RegisterRequest(
                            version=VERSION,
                            endpoint=self.endpoint,
                            resource_name=self.resource,
                            options=self.options,
                        ),
                        timeout=10,
                    )
            except grpc.RpcError as e:
                code = e.code() if hasattr(e, "code") else None
                if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    message = e.details() if hasattr(e, "details") else str(e)
                    raise RegistrationRefused(message or str(code)) from None
            else:
                if inode is not None:
                    log.info("registered with the kubelet", resource=self.resource)
                    self.registered.set()
                    return inode
            await asyncio.sleep(POLL_SECONDS)

    async def _wait_for_restart(self, kubelet_inode: int) -> None:
        kubelet = self.directory / KUBELET_SOCKET
        ours = _inode(self.socket)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if _inode(kubelet) != kubelet_inode or _inode(self.socket) != ours:
                return


def default_directory() -> Path:
    """``$SKIFF_DEVICE_PLUGIN_DIR``, else kube's ``/var/lib/kubelet/device-plugins``."""
    return Path(os.environ.get("SKIFF_DEVICE_PLUGIN_DIR", "/var/lib/kubelet/device-plugins"))
