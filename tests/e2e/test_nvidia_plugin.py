"""The NVIDIA device plugin (``skiff-nvidia-device-plugin``) registered with the kubelet's
real device manager over gRPC, with a fake NVML behind the interface the real binding
fills (this machine has no GPU): its resources per MIG strategy become the node's, an
XID takes a GPU's MIG devices out and they come back once NVML answers, a pod gets a GPU
at admission; on a node without a GPU it advertises nothing and keeps running."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from skiff.kubelet.devicemanager import DeviceManager
from skiff.nvidiaplugin.__main__ import parse_args, run
from skiff.nvidiaplugin.fake import FakeNvml
from skiff.nvidiaplugin.nvml import GpuInfo, MigInfo


def gpu(i: int, numa: int | None = 0, migs: tuple[str, ...] = ()) -> GpuInfo:
    uuid = f"GPU-{i:04d}"
    mig_infos = tuple(MigInfo(f"MIG-{i}-{j}", p, uuid, j + 1, 0) for j, p in enumerate(migs))
    return GpuInfo(i, uuid, "NVIDIA H100 80GB HBM3", 81559, i, f"00000000:{i:02X}:00.0",
                   numa, bool(migs), mig_infos)  # fmt: skip


@pytest.fixture
async def kubelet() -> AsyncIterator[tuple[Path, DeviceManager]]:
    root = Path(tempfile.mkdtemp(prefix="nv", dir="/tmp"))
    manager = DeviceManager(root / "dp", rpc_timeout=2.0)
    await manager.start()
    try:
        yield root, manager
    finally:
        await manager.stop()
        shutil.rmtree(root, ignore_errors=True)


def args(root: Path, *extra: str) -> argparse.Namespace:
    return parse_args(["--plugin-dir", str(root / "dp"), "--driver-root", str(root),
                       "--recover-after", "0", *extra])  # fmt: skip


async def until(check: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not check():
        assert loop.time() < end, "timed out"
        await asyncio.sleep(0.05)


async def test_the_plugin_with_the_kubelets_device_manager(
    kubelet: tuple[Path, DeviceManager],
) -> None:
    root, manager = kubelet
    nvml = FakeNvml([gpu(0, numa=0), gpu(1, numa=1, migs=("1g.10gb", "1g.10gb"))])
    task = asyncio.create_task(run(args(root, "--mig-strategy", "mixed"), nvml))
    try:
        await until(lambda: manager.capacity()[1] == {"nvidia.com/gpu": 1,
                                                      "nvidia.com/mig-1g.10gb": 2})  # fmt: skip
        assert nvml.watched == {"GPU-0000", "GPU-0001", "MIG-1-0", "MIG-1-1"}
        # An XID on the MIG devices' GPU takes both out; they come back once NVML answers.
        nvml.lose("GPU-0001")
        nvml.xid("GPU-0001", 79)
        await until(lambda: manager.capacity()[1]["nvidia.com/mig-1g.10gb"] == 0)
        assert manager.capacity()[0]["nvidia.com/mig-1g.10gb"] == 2
        nvml.recover("GPU-0001")
        await until(lambda: manager.capacity()[1]["nvidia.com/mig-1g.10gb"] == 2, 15)
        # A pod gets a GPU through the kubelet's admission.
        limits = {"limits": {"nvidia.com/gpu": "1"}}
        pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
               "spec": {"containers": [{"name": "c", "resources": limits}]}}  # fmt: skip
        await manager.admit(pod)
        [opts] = await manager.container_options("u1", "c")
        assert opts.envs["NVIDIA_VISIBLE_DEVICES"] == "GPU-0000"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class Said:
    """Stands in for the plugin's logger: what it said, by level."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **kw: self.lines.append((level, event))


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> Said:
    import skiff.nvidiaplugin.__main__ as main

    s = Said()
    monkeypatch.setattr(main, "log", s)
    return s


async def test_no_gpu_advertises_nothing(kubelet: tuple[Path, DeviceManager], said: Said) -> None:
    root, manager = kubelet
    task = asyncio.create_task(run(args(root), FakeNvml(missing=True)))
    await asyncio.sleep(0.5)
    assert not task.done()  # waits rather than crash-looping
    assert manager.capacity() == ({}, {})
    assert said.lines == [
        ("warning", "no NVIDIA driver or GPU found (NVML Shared Library Not Found); "
         "advertising nothing")]  # fmt: skip
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_the_real_binding_without_a_gpu(
    kubelet: tuple[Path, DeviceManager], said: Said
) -> None:
    """NVIDIA's ``nvidia-ml-py`` (installed by ``make py-deps``) on this GPU-less machine:
    the plugin finds no driver, says so and waits."""
    from skiff.nvidiaplugin.nvml import NvmlError, PynvmlBackend

    try:
        PynvmlBackend().init()
        pytest.skip("this machine has an NVIDIA driver")
    except NvmlError:
        pass
    root, manager = kubelet
    task = asyncio.create_task(run(args(root)))
    await asyncio.sleep(0.5)
    assert not task.done() and manager.capacity() == ({}, {})
    [(level, line)] = said.lines
    assert level == "warning" and line.startswith("no NVIDIA driver or GPU found")
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
