"""The NVIDIA device plugin's logic against a fake NVML (GPUs, MIG devices, XID events)
behind the interface the real binding fills: resources per MIG strategy and time-slicing,
health from XIDs with recovery, Allocate's device nodes, driver files and environment,
preferred allocations, node labels. The plugin with the kubelet's device manager:
``tests/e2e/test_nvidia_plugin.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from skiff.deviceplugin.v1beta1 import api_pb2 as dp
from skiff.nvidiaplugin.fake import FakeNvml
from skiff.nvidiaplugin.health import HealthMonitor
from skiff.nvidiaplugin.hostfiles import HostFiles
from skiff.nvidiaplugin.labels import gpu_labels
from skiff.nvidiaplugin.nvml import GpuInfo, MigInfo, XidEvent, mig_profile, numa_of
from skiff.nvidiaplugin.plugin import GpuPlugin
from skiff.nvidiaplugin.resources import ConfigError, Sharing, advertised

H100 = "NVIDIA H100 80GB HBM3"
T4 = "Tesla T4"


def gpu(i: int, name: str = H100, numa: int | None = 0, migs: tuple[str, ...] = ()) -> GpuInfo:
    uuid = f"GPU-{i:04d}"
    mig_infos = tuple(MigInfo(f"MIG-{i}-{j}", p, uuid, j + 1, 0) for j, p in enumerate(migs))
    return GpuInfo(i, uuid, name, 81559 if name == H100 else 15360, i, f"00000000:{i:02X}:00.0",
                   numa, bool(migs), mig_infos)  # fmt: skip


def sharing(*resources: dict[str, Any], rename: bool = False, one: bool = False) -> Sharing:
    return Sharing.parse({"version": "v1", "sharing": {"timeSlicing": {
        "renameByDefault": rename, "failRequestsGreaterThanOne": one,
        "resources": list(resources)}}})  # fmt: skip


def summary(resources: Any) -> dict[str, list[str]]:
    return {r.name: [d.id for d in r.devices] for r in resources}


def test_resources_per_strategy_and_sharing() -> None:
    plain = [gpu(0), gpu(1)]
    assert summary(advertised(plain, "none", Sharing())) == {
        "nvidia.com/gpu": ["GPU-0000", "GPU-0001"]}  # fmt: skip
    mig = [gpu(0, migs=("1g.10gb", "1g.10gb")), gpu(1, migs=("1g.10gb",))]
    assert summary(advertised(mig, "single", Sharing())) == {
        "nvidia.com/gpu": ["MIG-0-0", "MIG-0-1", "MIG-1-0"]}  # fmt: skip
    mixed = [gpu(0, migs=("3g.40gb", "1g.10gb")), gpu(1)]
    assert summary(advertised(mixed, "mixed", Sharing())) == {
        "nvidia.com/gpu": ["GPU-0001"],
        "nvidia.com/mig-1g.10gb": ["MIG-0-1"],
        "nvidia.com/mig-3g.40gb": ["MIG-0-0"],
    }
    with pytest.raises(ConfigError, match="MIG strategy single needs every GPU in MIG mode"):
        advertised(mixed, "single", Sharing())
    # Time-slicing, for one model only (Skiff's addition), renamed or not.
    two_models = [gpu(0, T4), gpu(1, H100)]
    shared = advertised(two_models, "none", sharing({"name": "nvidia.com/gpu", "replicas": 2,
                                                     "models": ["T4"]}, rename=True))  # fmt: skip
    assert summary(shared) == {
        "nvidia.com/gpu": ["GPU-0001"],
        "nvidia.com/gpu.shared": ["GPU-0000::0", "GPU-0000::1"],
    }
    everyone = advertised(two_models, "none", sharing({"name": "nvidia.com/gpu", "replicas": 3}))
    assert [d.id for d in everyone[0].devices][:3] == ["GPU-0000::0", "GPU-0000::1", "GPU-0000::2"]
    assert everyone[0].shared and len(everyone[0].devices) == 6


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": "v2"}, 'unsupported config version "v2"'),
        ({"sharing": {"timeSlicing": {"resources": [{"name": "gpu", "replicas": 2}]}}},
         "sharing.timeSlicing.resources[0].name: must be an nvidia.com/ resource"),
        ({"sharing": {"timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 1}]}}},
         "sharing.timeSlicing.resources[0].replicas: must be an integer of at least 2"),
    ],
)  # fmt: skip
def test_bad_configuration(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        Sharing.parse(doc)
    assert str(e.value) == message


def test_helpers(tmp_path: Path) -> None:
    assert mig_profile(1, 9856) == "1g.10gb" and mig_profile(3, 40192) == "3g.40gb"
    (tmp_path / "0000:65:00.0").mkdir()
    (tmp_path / "0000:65:00.0" / "numa_node").write_text("1\n")
    (tmp_path / "0000:18:00.0").mkdir()
    (tmp_path / "0000:18:00.0" / "numa_node").write_text("-1\n")
    assert numa_of("00000000:65:00.0", tmp_path) == 1
    assert numa_of("00000000:18:00.0", tmp_path) is None
    assert numa_of("00000000:99:00.0", tmp_path) is None


def test_health_from_xids_and_recovery() -> None:
    nvml = FakeNvml([gpu(0)])
    now = [100.0]
    health = HealthMonitor(nvml, recover_after=30, clock=lambda: now[0])
    assert not health.events([XidEvent("GPU-0000", 13), XidEvent("GPU-0000", 31)])
    assert health.healthy("GPU-0000")
    assert health.events([XidEvent("GPU-0000", 79)])  # fallen off the bus
    assert not health.healthy("GPU-0000")
    nvml.lose("GPU-0000")
    now[0] += 60
    assert not health.recover()  # NVML does not answer: still unhealthy
    nvml.recover("GPU-0000")
    now[0] += 10
    health.events([XidEvent("GPU-0000", 48)])  # another critical XID: the wait starts over
    now[0] += 20
    assert not health.recover()
    now[0] += 11
    assert health.recover() and health.healthy("GPU-0000")


class Context:
    async def abort(self, code: Any, details: str) -> None:
        raise PermissionError(f"{code.name}: {details}")


def request(*ids: str) -> dp.AllocateRequest:
    return dp.AllocateRequest(container_requests=[dp.ContainerAllocateRequest(devices_ids=ids)])


def host_root(tmp: Path) -> Path:
    """A host file system with the control nodes, two driver libraries, nvidia-smi and a
    MIG device's capability files."""
    for f in ("dev/nvidiactl", "dev/nvidia-uvm", "usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
              "usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", "usr/lib/x86_64-linux-gnu/libc.so.6",
              "usr/bin/nvidia-smi"):  # fmt: skip
        (tmp / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp / f).write_text("")
    caps = tmp / "proc/driver/nvidia/capabilities/gpu0/mig/gi1"
    (caps / "ci0").mkdir(parents=True)
    (caps / "access").write_text("DeviceFileMinor: 21\nDeviceFileMode: 292\n")
    (caps / "ci0" / "access").write_text("DeviceFileMinor: 22\n")
    return tmp


async def test_allocate_and_preferences(tmp_path: Path) -> None:
    files = HostFiles(host_root(tmp_path))
    gpus = [gpu(0, numa=0), gpu(1, numa=1), gpu(2, numa=1)]
    health = HealthMonitor(FakeNvml(gpus))
    [res] = advertised(gpus, "none", sharing({"name": "nvidia.com/gpu", "replicas": 2}, one=True))
    plugin = GpuPlugin(res, health, files, fail_requests_greater_than_one=True)
    ctx = Context()
    answer = await plugin.Allocate(request("GPU-0001::1"), ctx)
    [c] = answer.container_responses
    assert c.envs["NVIDIA_VISIBLE_DEVICES"] == "GPU-0001"
    assert [d.host_path for d in c.devices] == ["/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    assert all(d.permissions == "rw" and d.container_path == d.host_path for d in c.devices)
    assert [m.host_path for m in c.mounts] == [
        "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        "/usr/bin/nvidia-smi",
    ]
    assert all(m.read_only for m in c.mounts)
    with pytest.raises(PermissionError, match="shared GPUs are given one per container"):
        await plugin.Allocate(request("GPU-0001::1", "GPU-0002::0"), ctx)
    with pytest.raises(PermissionError, match=r"unknown nvidia\.com/gpu device"):
        await plugin.Allocate(request("GPU-9"), ctx)
    # Preferred: one NUMA node, distinct GPUs first.
    every = [d.id for d in res.devices]
    assert plugin.prefer(every, [], 2) == ["GPU-0001::0", "GPU-0002::0"]
    assert plugin.prefer(every, ["GPU-0000::1"], 2) == ["GPU-0000::1", "GPU-0000::0"]
    # A MIG device gets its parent's node and its capability nodes.
    mig_gpus = [gpu(0, migs=("1g.10gb",))]
    [mig_res] = advertised(mig_gpus, "mixed", Sharing())
    mig = GpuPlugin(mig_res, HealthMonitor(FakeNvml(mig_gpus)), files)
    [c] = (await mig.Allocate(request("MIG-0-0"), ctx)).container_responses
    assert c.envs["NVIDIA_VISIBLE_DEVICES"] == "MIG-0-0"
    assert [d.host_path for d in c.devices] == [
        "/dev/nvidia0", "/dev/nvidiactl", "/dev/nvidia-uvm",
        "/dev/nvidia-caps/nvidia-cap21", "/dev/nvidia-caps/nvidia-cap22"]  # fmt: skip
    # A GPU's XID makes its replicas unhealthy; the list carries NUMA nodes.
    health.events([XidEvent("GPU-0001", 79)])
    listed = {d.ID: (d.health, [n.ID for n in d.topology.nodes]) for d in plugin.listed()}
    assert listed["GPU-0001::0"] == ("Unhealthy", [1])
    assert listed["GPU-0002::1"] == ("Healthy", [1])


def test_labels() -> None:
    got = gpu_labels([gpu(0), gpu(1)], "550.54.15", "12.4", "none", Sharing())
    assert got == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.count": "2",
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/mig.strategy": "none",
        "nvidia.com/mig.capable": "false",
        "nvidia.com/cuda.driver-version.full": "550.54.15",
        "nvidia.com/cuda.driver-version.major": "550",
        "nvidia.com/cuda.driver-version.minor": "54",
        "nvidia.com/cuda.driver-version.revision": "15",
        "nvidia.com/cuda.runtime-version.full": "12.4",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "4",
    }
    shared = gpu_labels([gpu(0)], "550.54.15", "12.4", "none",
                        sharing({"name": "nvidia.com/gpu", "replicas": 4}))  # fmt: skip
    assert shared["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3-SHARED"
    assert shared["nvidia.com/gpu.replicas"] == "4"
    assert shared["nvidia.com/gpu.sharing-strategy"] == "time-slicing"
    assert gpu_labels([], "", "", "none", Sharing()) == {}
