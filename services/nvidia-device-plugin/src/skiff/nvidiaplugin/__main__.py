"""``skiff-nvidia-device-plugin``: run as a DaemonSet on every node (or as a process next
to the kubelet). Finds the GPUs through NVML, serves one device plugin per resource,
follows XID events for health, and labels the node.

On a node without NVIDIA GPUs (no driver, or no device) it says so once, advertises
nothing and waits, rather than crash-looping as a DaemonSet's pod.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from pathlib import Path

from skiff.component import api_client
from skiff.deviceplugin.server import PluginServer, RegistrationRefused, default_directory
from skiff.log import get_logger, setup_logging

from . import labels
from .fake import FakeNvml
from .health import HealthMonitor
from .hostfiles import HostFiles
from .nvml import Nvml, NvmlError, PynvmlBackend
from .plugin import GpuPlugin
from .resources import STRATEGIES, ConfigError, Sharing, advertised

log = get_logger(__name__)

RECOVERY_CHECK_SECONDS = 5.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="skiff-nvidia-device-plugin")
    p.add_argument(
        "--plugin-dir",
        type=Path,
        default=None,
        help="the kubelet's device-plugins directory (default: "
        "$SKIFF_DEVICE_PLUGIN_DIR or /var/lib/kubelet/device-plugins)",
    )
    p.add_argument("--mig-strategy", choices=STRATEGIES, default=env("MIG_STRATEGY", "none"))
    p.add_argument(
        "--config",
        type=Path,
        default=env("CONFIG_FILE") or None,
        help="NVIDIA's device plugin configuration (sharing.timeSlicing)",
    )
    p.add_argument(
        "--driver-root",
        type=Path,
        default=Path(env("NVIDIA_DRIVER_ROOT", "/")),
        help="where the host's driver files are seen (the host mount in a pod)",
    )
    p.add_argument(
        "--recover-after",
        type=float,
        default=30.0,
        help="seconds without a critical XID before a usable device is healthy",
    )
    p.add_argument("--fake-nvml", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--node-name",
        default=env("NODE_NAME", ""),
        help="label this Node with what was found (none: no labels)",
    )
    p.add_argument("--server", default=env("SKIFF_SERVER"))
    p.add_argument("--kubeconfig", default=env("KUBECONFIG"))
    p.add_argument("--log-level", default=env("SKIFF_LOG_LEVEL", "info"))
    return p.parse_args(argv)  # fmt: skip


def _nvml(a: argparse.Namespace) -> Nvml | None:
    if a.fake_nvml is not None:
        return FakeNvml.load(a.fake_nvml)
    try:
        return PynvmlBackend()
    except ImportError:
        return None


async def _health(nvml: Nvml, monitor: HealthMonitor, plugins: list[GpuPlugin]) -> None:
    """XID events (NVML's wait, in a thread) and recovery checks; plugins told of changes."""
    next_check = asyncio.get_running_loop().time() + RECOVERY_CHECK_SECONDS
    while True:
        try:
            events = await asyncio.to_thread(nvml.wait, 1.0)
        except NvmlError as e:
            log.warning("NVML event wait failed", error=str(e))
            await asyncio.sleep(1.0)
            events = []
        changed = monitor.events(events)
        if asyncio.get_running_loop().time() >= next_check:
            next_check += RECOVERY_CHECK_SECONDS
            changed = monitor.recover() or changed
        if changed:
            for p in plugins:
                await p.changed()


async def _idle(reason: str) -> None:
    log.warning(f"{reason}; advertising nothing")
    await asyncio.Event().wait()


async def run(a: argparse.Namespace, nvml: Nvml | None = None) -> None:
    """The plugin; ``nvml`` replaces the one the flags choose (tests)."""
    try:
        sharing = Sharing.load(a.config)
    except (OSError, ConfigError) as e:
        raise SystemExit(f"configuration {a.config}: {e}") from None
    nvml = nvml or _nvml(a)
    if nvml is None:
        return await _idle("no NVML binding (nvidia-ml-py) found")
    try:
        nvml.init()
        gpus = nvml.gpus()
    except NvmlError as e:
        return await _idle(f"no NVIDIA driver or GPU found ({e})")
    if not gpus:
        return await _idle("no NVIDIA GPU found")
    try:
        resources = advertised(gpus, a.mig_strategy, sharing)
    except ConfigError as e:
        return await _idle(str(e))
    log.info(
        "GPUs found",
        driver=nvml.driver_version(),
        gpus=[f"{g.index}:{g.name}:{g.uuid}" for g in gpus],
        resources={r.name: len(r.devices) for r in resources},
    )
    monitor = HealthMonitor(nvml, recover_after=a.recover_after)
    nvml.watch([g.uuid for g in gpus] + [m.uuid for g in gpus for m in g.migs])
    files = HostFiles(a.driver_root)
    one_each = sharing.fail_requests_greater_than_one
    plugins = [
        GpuPlugin(r, monitor, files, fail_requests_greater_than_one=one_each) for r in resources
    ]
    directory = a.plugin_dir or default_directory()
    tasks = [asyncio.create_task(_health(nvml, monitor, plugins), name="nvml-health")]
    for p in plugins:
        endpoint = "nvidia-" + p.resource.name.split("/")[1].replace(".", "-") + ".sock"
        server = PluginServer(p, p.resource.name, directory=directory, endpoint=endpoint,
                              options=p.options)  # fmt: skip
        tasks.append(asyncio.create_task(server.run(), name=f"plugin-{p.resource.name}"))
    if a.node_name:
        values = labels.gpu_labels(
            gpus, nvml.driver_version(), nvml.cuda_version(), a.mig_strategy, sharing
        )
        async with api_client(a, "skiff-nvidia-device-plugin") as client:
            await labels.apply(client, a.node_name, values)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for t in done:
            t.result()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        nvml.shutdown()


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    setup_logging("nvidia-device-plugin", level=a.log_level)

    async def supervised() -> None:
        task = asyncio.create_task(run(a))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(supervised())
    except RegistrationRefused as e:
        raise SystemExit(f"registration refused: {e}") from None


if __name__ == "__main__":
    main()
