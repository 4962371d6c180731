"""An NVML of the test's making, behind the same :class:`~.nvml.Nvml` interface the real
binding fills: GPUs (and MIG devices) as given, XID events injected with :meth:`xid`,
devices that stop (and start again) answering with :meth:`lose` and :meth:`recover`.
``FakeNvml.load(path)`` reads the same from a JSON file (``--fake-nvml``), so that the
whole plugin can run on a machine without a GPU."""

from __future__ import annotations

import json
import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nvml import GpuInfo, MigInfo, NvmlError, XidEvent


@dataclass
class FakeNvml:
    """GPUs and events held in memory; thread-safe for :meth:`wait` in a thread."""

    devices: list[GpuInfo] = field(default_factory=list)
    driver: str = "550.54.15"
    cuda: str = "12.4"
    missing: bool = False
    """No driver: :meth:`init` fails as NVML does on a machine without NVIDIA GPUs."""
    lost: set[str] = field(default_factory=set)
    watched: set[str] = field(default_factory=set)
    _events: queue.Queue[XidEvent] = field(default_factory=queue.Queue)

    def init(self) -> None:
        if self.missing:
            raise NvmlError("NVML Shared Library Not Found")

    def driver_version(self) -> str:
        return self.driver

    def cuda_version(self) -> str:
        return self.cuda

    def gpus(self) -> list[GpuInfo]:
        return list(self.devices)

    def usable(self, uuid: str) -> bool:
        return uuid not in self.lost

    def watch(self, uuids: list[str]) -> None:
        self.watched |= set(uuids)

    def wait(self, timeout: float) -> list[XidEvent]:
        try:
            first = self._events.get(timeout=timeout)
        except queue.Empty:
            return []
        out = [first]
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def shutdown(self) -> None:
        pass

    # -- the test's controls ------------------------------------------------------------

    def xid(self, uuid: str, xid: int) -> None:
        self._events.put(XidEvent(uuid, xid))

    def lose(self, uuid: str) -> None:
        self.lost.add(uuid)

    def recover(self, uuid: str) -> None:
        self.lost.discard(uuid)

    @classmethod
    def load(cls, path: Path) -> FakeNvml:
        """``{"gpus": [{"uuid", "name", "memoryMiB", "minor", "pciBusId", "numa",
        "mig": [{"uuid", "profile"}]}], "driver", "cuda", "missing"}``."""
        doc: dict[str, Any] = json.loads(path.read_text())
        gpus = []
        for i, g in enumerate(doc.get("gpus") or []):
            migs = tuple(
                MigInfo(m["uuid"], m["profile"], g["uuid"], j + 1, 0)
                for j, m in enumerate(g.get("mig") or [])
            )
            gpus.append(
                GpuInfo(
                    index=i,
                    uuid=g["uuid"],
                    name=g.get("name", "NVIDIA H100 80GB HBM3"),
                    memory_mib=int(g.get("memoryMiB", 81559)),
                    minor=int(g.get("minor", i)),
                    pci_bus_id=g.get("pciBusId", f"00000000:{0x18 + i:02X}:00.0"),
                    numa_node=g.get("numa"),
                    mig_enabled=bool(migs),
                    migs=migs,
                )
            )
        return cls(
            devices=gpus,
            driver=doc.get("driver", "550.54.15"),
            cuda=doc.get("cuda", "12.4"),
            missing=bool(doc.get("missing")),
        )
