"""A sample device plugin (as Kubernetes' ``sample-device-plugin``): its devices are the
files of a directory you create, so that the kubelet's device manager can be run end to
end on any machine.

- Each entry of ``--devices-dir`` is a device with that ID; an ``<id>.unhealthy`` file
  beside it marks it unhealthy; entries that come and go are listed again (the directory
  is read every half second). An ``<id>.numa`` file holding a number puts it on that NUMA
  node.
- ``Allocate`` gives a character or block device node as a device node at
  ``/dev/sample/<id>`` (cgroup ``rw``), any other file as a read-only mount at
  ``/run/sample/<id>``, and ``SAMPLE_DEVICES=<ids>`` in the environment.
- ``--preferred``: ``GetPreferredAllocation`` prefers the highest IDs (so that its use can
  be seen); ``--pre-start``: ``PreStartContainer`` is asked for and appends the IDs to
  ``<devices-dir>/../prestart.log``; ``--hang-allocate S``: ``Allocate`` waits ``S``
  seconds first (a hung plugin).

Run: ``python -m skiff.deviceplugin.sample --resource example.com/sample --devices-dir D``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from skiff.log import get_logger, setup_logging

from .server import PluginServer, RegistrationRefused, default_directory
from .v1beta1 import api_pb2 as dp
from .v1beta1 import api_pb2_grpc as dp_grpc

log = get_logger(__name__)

SCAN_SECONDS = 0.5
_MARKERS = (".unhealthy", ".numa")


class SamplePlugin(dp_grpc.DevicePluginServicer):
    """Fake devices backed by the files of ``devices_dir``."""

    def __init__(
        self,
        devices_dir: Path,
        *,
        preferred: bool = False,
        pre_start: bool = False,
        hang_allocate: float = 0.0,
    ) -> None:
        self.devices_dir = devices_dir
        self.preferred = preferred
        self.pre_start = pre_start
        self.hang_allocate = hang_allocate

    @property
    def options(self) -> dp.DevicePluginOptions:
        return dp.DevicePluginOptions(
            pre_start_required=self.pre_start, get_preferred_allocation_available=self.preferred
        )

    def scan(self) -> list[dp.Device]:
        """The devices as the directory has them now."""
        out = []
        names = {p.name for p in self.devices_dir.iterdir()} if self.devices_dir.is_dir() else set()
        for name in sorted(names):
            if name.endswith(_MARKERS) or name.startswith("."):
                continue
            health = "Unhealthy" if f"{name}.unhealthy" in names else "Healthy"
            device = dp.Device(ID=name, health=health)
            if f"{name}.numa" in names:
                try:
                    node = int((self.devices_dir / f"{name}.numa").read_text().strip())
                    device.topology.nodes.append(dp.NUMANode(ID=node))
                except (OSError, ValueError):
                    pass
            out.append(device)
        return out

    async def GetDevicePluginOptions(
        self, request: dp.Empty, context: Any
    ) -> dp.DevicePluginOptions:
        return self.options

    async def ListAndWatch(
        self, request: dp.Empty, context: Any
    ) -> AsyncIterator[dp.ListAndWatchResponse]:
        last = None
        while True:
            devices = self.scan()
            key = [(d.ID, d.health, tuple(n.ID for n in d.topology.nodes)) for d in devices]
            if key != last:
                last = key
                log.info("devices listed", devices=[f"{d.ID}:{d.health}" for d in devices])
                yield dp.ListAndWatchResponse(devices=devices)
            await asyncio.sleep(SCAN_SECONDS)

    async def GetPreferredAllocation(
        self, request: dp.PreferredAllocationRequest, context: Any
    ) -> dp.PreferredAllocationResponse:
        answers = []
        for r in request.container_requests:
            chosen = list(r.must_include_deviceIDs)
            for d in sorted(r.available_deviceIDs, reverse=True):
                if len(chosen) >= r.allocation_size:
                    break
                if d not in chosen:
                    chosen.append(d)
            answers.append(dp.ContainerPreferredAllocationResponse(deviceIDs=chosen))
        return dp.PreferredAllocationResponse(container_responses=answers)

    async def Allocate(self, request: dp.AllocateRequest, context: Any) -> dp.AllocateResponse:
        if self.hang_allocate:
            log.info("Allocate hangs", seconds=self.hang_allocate)
            await asyncio.sleep(self.hang_allocate)
        known = {d.ID: d for d in self.scan()}
        answers = []
        for r in request.container_requests:
            answer = dp.ContainerAllocateResponse()
            for d in r.devices_ids:
                if d not in known:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown device {d!r}")
                path = self.devices_dir / d
                mode = path.stat().st_mode
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                    answer.devices.append(
                        dp.DeviceSpec(
                            container_path=f"/dev/sample/{d}", host_path=str(path), permissions="rw"
                        )
                    )
                else:
                    answer.mounts.append(
                        dp.Mount(
                            container_path=f"/run/sample/{d}", host_path=str(path), read_only=True
                        )
                    )
            answer.envs["SAMPLE_DEVICES"] = ",".join(r.devices_ids)
            answer.annotations["example.com/sample-devices"] = ",".join(r.devices_ids)
            answers.append(answer)
        log.info("allocated", requests=[list(r.devices_ids) for r in request.container_requests])
        return dp.AllocateResponse(container_responses=answers)

    async def PreStartContainer(
        self, request: dp.PreStartContainerRequest, context: Any
    ) -> dp.PreStartContainerResponse:
        _append(self.devices_dir.parent / "prestart.log", ",".join(request.devices_ids))
        return dp.PreStartContainerResponse()


def _append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="skiff-sample-device-plugin", description=__doc__.split("\n")[0]
    )
    p.add_argument("--resource", default="example.com/sample", help="the extended resource name")
    p.add_argument("--devices-dir", type=Path, required=True, help="one file per device")
    p.add_argument(
        "--plugin-dir", type=Path, default=None, help="the kubelet's device-plugins directory"
    )
    p.add_argument("--endpoint", default="", help="the socket's name (default: from the resource)")
    p.add_argument("--preferred", action="store_true")
    p.add_argument("--pre-start", action="store_true")
    p.add_argument("--hang-allocate", type=float, default=0.0)
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


async def run(a: argparse.Namespace) -> None:
    plugin = SamplePlugin(
        a.devices_dir, preferred=a.preferred, pre_start=a.pre_start, hang_allocate=a.hang_allocate
    )
    endpoint = a.endpoint or a.resource.replace("/", "-").replace(".", "-") + ".sock"
    server = PluginServer(
        plugin,
        a.resource,
        directory=a.plugin_dir or default_directory(),
        endpoint=endpoint,
        options=plugin.options,
    )
    task = asyncio.create_task(server.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    except RegistrationRefused as e:
        log.error("registration refused; stopping", error=str(e))
        raise SystemExit(1) from None


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    setup_logging("sample-device-plugin", level=a.log_level)
    asyncio.run(run(a))


if __name__ == "__main__":
    main()
