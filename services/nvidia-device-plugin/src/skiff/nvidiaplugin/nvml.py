"""What the plugin asks of NVML, as an interface (:class:`Nvml`) and its real binding
(:class:`PynvmlBackend`, NVIDIA's ``nvidia-ml-py``). Tests fill the same interface with
:class:`skiff.nvidiaplugin.fake.FakeNvml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class NvmlError(Exception):
    """NVML failed (no driver, no such device, a query the device cannot answer)."""


@dataclass(frozen=True, slots=True)
class MigInfo:
    """A MIG device: its UUID, the profile name (``1g.10gb``) and its parent GPU."""

    uuid: str
    profile: str
    parent_uuid: str
    gpu_instance: int
    compute_instance: int


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """A GPU as NVML lists it."""

    index: int
    uuid: str
    name: str
    memory_mib: int
    minor: int
    pci_bus_id: str
    numa_node: int | None = None
    mig_enabled: bool = False
    migs: tuple[MigInfo, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class XidEvent:
    """A critical-error event: the device (GPU or MIG UUID) and its XID."""

    uuid: str
    xid: int


class Nvml(Protocol):
    """The plugin's view of NVML."""

    def init(self) -> None:
        """NvmlError when NVML (the driver) is not there."""

    def driver_version(self) -> str: ...

    def cuda_version(self) -> str:
        """``12.4``, from NVML's CUDA driver version."""

    def gpus(self) -> list[GpuInfo]: ...

    def usable(self, uuid: str) -> bool:
        """Whether the device answers queries (it is not lost or waiting for a reset)."""

    def watch(self, uuids: list[str]) -> None:
        """Subscribe to critical XID events of these devices (those that support it)."""

    def wait(self, timeout: float) -> list[XidEvent]:
        """The events that came within ``timeout`` seconds (none: an empty list)."""

    def shutdown(self) -> None: ...


def numa_of(pci_bus_id: str, sysfs: Path = Path("/sys/bus/pci/devices")) -> int | None:
    """The NUMA node of a PCI device from sysfs (None when the machine has none)."""
    bus = pci_bus_id.lower()
    if len(bus.split(":")[0]) == 8:  # NVML's 00000000:65:00.0 → sysfs's 0000:65:00.0
        bus = bus[4:]
    try:
        node = int((sysfs / bus / "numa_node").read_text().strip())
    except (OSError, ValueError):
        return None
    return node if node >= 0 else None


def mig_profile(slices: int, memory_mib: int) -> str:
    """NVIDIA's MIG profile name from a MIG device's slices and memory (``1g.10gb``)."""
    gb = (memory_mib + 1023) // 1024
    return f"{slices}g.{gb}gb"


class PynvmlBackend:
    """:class:`Nvml` on NVIDIA's ``pynvml`` (``nvidia-ml-py``)."""

    def __init__(self) -> None:
        import pynvml  # the real binding; imported here so that tests need no driver

        self.n: Any = pynvml
        self._events: Any = None
        self._handles: dict[str, Any] = {}

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except self.n.NVMLError as e:
            raise NvmlError(str(e)) from None

    @staticmethod
    def _str(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def init(self) -> None:
        self._call(self.n.nvmlInit)

    def driver_version(self) -> str:
        return self._str(self._call(self.n.nvmlSystemGetDriverVersion))

    def cuda_version(self) -> str:
        v = int(self._call(self.n.nvmlSystemGetCudaDriverVersion))
        return f"{v // 1000}.{v % 1000 // 10}"

    def _migs(self, handle: Any, parent: str) -> tuple[MigInfo, ...]:
        out = []
        count = int(self._call(self.n.nvmlDeviceGetMaxMigDeviceCount, handle))
        for i in range(count):
            try:
                mig = self.n.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except self.n.NVMLError:
                continue  # an empty slot
            uuid = self._str(self._call(self.n.nvmlDeviceGetUUID, mig))
            attrs = self._call(self.n.nvmlDeviceGetAttributes, mig)
            self._handles[uuid] = mig
            out.append(
                MigInfo(
                    uuid=uuid,
                    profile=mig_profile(attrs.gpuInstanceSliceCount, attrs.memorySizeMB),
                    parent_uuid=parent,
                    gpu_instance=int(self._call(self.n.nvmlDeviceGetGpuInstanceId, mig)),
                    compute_instance=int(self._call(self.n.nvmlDeviceGetComputeInstanceId, mig)),
                )
            )
        return tuple(out)

    def gpus(self) -> list[GpuInfo]:
        out = []
        for i in range(int(self._call(self.n.nvmlDeviceGetCount))):
            h = self._call(self.n.nvmlDeviceGetHandleByIndex, i)
            uuid = self._str(self._call(self.n.nvmlDeviceGetUUID, h))
            self._handles[uuid] = h
            bus = self._str(self._call(self.n.nvmlDeviceGetPciInfo, h).busId)
            try:
                mig_on = self.n.nvmlDeviceGetMigMode(h)[0] == self.n.NVML_DEVICE_MIG_ENABLE
            except self.n.NVMLError:
                mig_on = False  # not a MIG-capable GPU
            out.append(
                GpuInfo(
                    index=i,
                    uuid=uuid,
                    name=self._str(self._call(self.n.nvmlDeviceGetName, h)),
                    memory_mib=int(self._call(self.n.nvmlDeviceGetMemoryInfo, h).total) >> 20,
                    minor=int(self._call(self.n.nvmlDeviceGetMinorNumber, h)),
                    pci_bus_id=bus,
                    numa_node=numa_of(bus),
                    mig_enabled=mig_on,
                    migs=self._migs(h, uuid) if mig_on else (),
                )
            )
        return out

    def usable(self, uuid: str) -> bool:
        h = self._handles.get(uuid)
        if h is None:
            return False
        try:
            self.n.nvmlDeviceGetMemoryInfo(h)
            return True
        except self.n.NVMLError:
            return False

    def watch(self, uuids: list[str]) -> None:
        if self._events is None:
            self._events = self._call(self.n.nvmlEventSetCreate)
        for uuid in uuids:
            h = self._handles.get(uuid)
            if h is None:
                continue
            try:
                supported = self.n.nvmlDeviceGetSupportedEventTypes(h)
                wanted = self.n.nvmlEventTypeXidCriticalError & supported
                if wanted:
                    self.n.nvmlDeviceRegisterEvents(h, wanted, self._events)
            except self.n.NVMLError:
                continue  # MIG devices and some boards do not support events

    def wait(self, timeout: float) -> list[XidEvent]:
        if self._events is None:
            return []
        try:
            data = self.n.nvmlEventSetWait_v2(self._events, int(timeout * 1000))
        except self.n.NVMLError_Timeout:
            return []
        except self.n.NVMLError as e:
            raise NvmlError(str(e)) from None
        uuid = self._str(self._call(self.n.nvmlDeviceGetUUID, data.device))
        return [XidEvent(uuid, int(data.eventData))]

    def shutdown(self) -> None:
        if self._events is not None:
            try:
                self.n.nvmlEventSetFree(self._events)
            except self.n.NVMLError:
                pass
        try:
            self.n.nvmlShutdown()
        except self.n.NVMLError:
            pass
