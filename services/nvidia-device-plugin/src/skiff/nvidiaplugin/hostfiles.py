"""What a container needs from the host to use a GPU without NVIDIA's container runtime,
found as the NVIDIA container toolkit's CDI generation finds it: the device nodes (the
GPU's ``/dev/nvidia<minor>``, ``nvidiactl``, ``nvidia-uvm``, ``nvidia-uvm-tools``, and
for a MIG device its ``nvidia-caps`` capability nodes) and the driver's user-space
libraries and binaries, mounted read-only at their host paths.

``root`` is where the host's file system is seen (``/`` on the host, the host mount in a
DaemonSet's container); paths handed to the kubelet are the host's own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .nvml import GpuInfo, MigInfo

CONTROL_NODES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools")
LIBRARY_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/nvidia/lib64",
)
BINARY_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/local/nvidia/bin")
LIBRARIES = re.compile(
    r"^lib(cuda|cudadebugger|nvidia-(ml|cfg|ptxjitcompiler|nvvm|opencl|gpucomp|allocator|"
    r"encode|opticalflow|fbc|pkcs11.*))\.so(\.[0-9.]+)?$"
)
BINARIES = (
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
)
_CAP_MINOR = re.compile(r"DeviceFileMinor:\s*(\d+)")


@dataclass(frozen=True, slots=True)
class HostFiles:
    """The host's NVIDIA files as seen under ``root``."""

    root: Path = Path("/")

    def _exists(self, host_path: str) -> bool:
        return (self.root / host_path.lstrip("/")).exists()

    def device_nodes(self, gpus: list[GpuInfo], migs: list[MigInfo]) -> list[str]:
        """Host paths of the device nodes for these GPUs (and MIG devices), existing ones."""
        nodes = [f"/dev/nvidia{g.minor}" for g in gpus]
        nodes += [n for n in CONTROL_NODES if self._exists(n)]
        by_uuid = {g.uuid: g for g in gpus}
        for m in migs:
            parent = by_uuid.get(m.parent_uuid)
            if parent is not None:
                nodes += self._mig_caps(parent.minor, m)
        return list(dict.fromkeys(nodes))

    def _mig_caps(self, minor: int, mig: MigInfo) -> list[str]:
        base = f"proc/driver/nvidia/capabilities/gpu{minor}/mig/gi{mig.gpu_instance}"
        out = []
        for access in (f"{base}/access", f"{base}/ci{mig.compute_instance}/access"):
            try:
                text = (self.root / access).read_text()
            except OSError:
                continue
            if m := _CAP_MINOR.search(text):
                out.append(f"/dev/nvidia-caps/nvidia-cap{m.group(1)}")
        return out

    def driver_files(self) -> list[str]:
        """Host paths of the driver's libraries and tools (read-only mounts)."""
        out: list[str] = []
        for d in LIBRARY_DIRS:
            folder = self.root / d.lstrip("/")
            try:
                names = sorted(p.name for p in folder.iterdir())
            except OSError:
                continue
            out += [f"{d}/{n}" for n in names if LIBRARIES.match(n)]
        for d in BINARY_DIRS:
            out += [f"{d}/{b}" for b in BINARIES if self._exists(f"{d}/{b}")]
        return out
