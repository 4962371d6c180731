"""From GPUs to advertised devices: which resources the plugin serves and the device IDs of
each, per the MIG strategy and the sharing configuration.

- MIG strategy ``none``: every GPU is one ``nvidia.com/gpu``. ``single``: every GPU has
  MIG on with one profile, and its MIG devices are ``nvidia.com/gpu``. ``mixed``: GPUs
  without MIG are ``nvidia.com/gpu``, MIG devices ``nvidia.com/mig-<profile>``.
- Time-slicing (NVIDIA's ``sharing.timeSlicing`` configuration): a resource's devices are
  each advertised ``replicas`` times (``<uuid>::<n>``), as ``<name>`` or, renamed,
  ``<name>.shared``. Skiff adds ``models`` to a resource entry: the replicas apply only to
  GPUs whose product name contains one of them, so that one node can share its small GPUs
  and not its large ones (NVIDIA's plugin has one setting for all).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .nvml import GpuInfo, MigInfo

GPU = "nvidia.com/gpu"
STRATEGIES = ("none", "single", "mixed")


class ConfigError(Exception):
    """A configuration (or a GPU layout for the MIG strategy) the plugin cannot serve."""


@dataclass(frozen=True, slots=True)
class Replicas:
    """One ``timeSlicing.resources`` entry."""

    name: str
    replicas: int
    rename: str = ""
    models: tuple[str, ...] = ()

    def applies(self, gpu: GpuInfo) -> bool:
        return not self.models or any(m.lower() in gpu.name.lower() for m in self.models)


@dataclass(frozen=True, slots=True)
class Sharing:
    """The time-slicing configuration."""

    resources: tuple[Replicas, ...] = ()
    fail_requests_greater_than_one: bool = False

    @property
    def strategy(self) -> str:
        return "time-slicing" if self.resources else "none"

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> Sharing:
        """NVIDIA's ``{"version": "v1", "sharing": {"timeSlicing": {...}}}`` (JSON or
        YAML already read); ConfigError naming what is wrong."""
        if not doc:
            return cls()
        if doc.get("version", "v1") != "v1":
            raise ConfigError(f'unsupported config version "{doc.get("version")}"')
        ts = ((doc.get("sharing") or {}).get("timeSlicing")) or {}
        rename_default = bool(ts.get("renameByDefault"))
        out = []
        for i, r in enumerate(ts.get("resources") or []):
            where = f"sharing.timeSlicing.resources[{i}]"
            name = r.get("name")
            if not isinstance(name, str) or not name.startswith("nvidia.com/"):
                raise ConfigError(f"{where}.name: must be an nvidia.com/ resource")
            replicas = r.get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
                raise ConfigError(f"{where}.replicas: must be an integer of at least 2")
            rename = r.get("rename") or (f"{name.split('/')[1]}.shared" if rename_default else "")
            models = tuple(str(m) for m in r.get("models") or ())
            out.append(Replicas(name, replicas, rename, models))
        return cls(tuple(out), bool(ts.get("failRequestsGreaterThanOne")))

    @classmethod
    def load(cls, path: Path | None) -> Sharing:
        if path is None:
            return cls()
        text = path.read_text()
        try:
            doc = json.loads(text)
        except ValueError:
            import yaml  # a YAML config, as NVIDIA's plugin takes

            doc = yaml.safe_load(text)
        return cls.parse(doc or {})


@dataclass(frozen=True, slots=True)
class Device:
    """One advertised device: its ID, the GPU it is on, the MIG device it is (if one)."""

    id: str
    gpu: GpuInfo
    mig: MigInfo | None = None
    replica: int | None = None

    @property
    def uuid(self) -> str:
        """The UUID a container is given (the GPU's or the MIG device's)."""
        return self.mig.uuid if self.mig is not None else self.gpu.uuid

    @property
    def numa(self) -> int | None:
        return self.gpu.numa_node


@dataclass
class Resource:
    name: str
    devices: list[Device] = field(default_factory=list)
    shared: bool = False


def _base(gpus: Iterable[GpuInfo], strategy: str) -> dict[str, list[Device]]:
    gpus = list(gpus)
    out: dict[str, list[Device]] = {}
    if strategy == "none":
        out[GPU] = [Device(g.uuid, g) for g in gpus]
    elif strategy == "single":
        profiles = {m.profile for g in gpus for m in g.migs}
        if any(not g.mig_enabled or not g.migs for g in gpus) or len(profiles) > 1:
            raise ConfigError(
                "MIG strategy single needs every GPU in MIG mode with one profile; found "
                + ", ".join(
                    f"{g.uuid}: " + (",".join(sorted({m.profile for m in g.migs})) or "no MIG")
                    for g in gpus
                )
            )
        out[GPU] = [Device(m.uuid, g, m) for g in gpus for m in g.migs]
    elif strategy == "mixed":
        for g in gpus:
            if g.mig_enabled:
                for m in g.migs:
                    out.setdefault(f"nvidia.com/mig-{m.profile}", []).append(Device(m.uuid, g, m))
            else:
                out.setdefault(GPU, []).append(Device(g.uuid, g))
    else:
        raise ConfigError(f'unknown MIG strategy "{strategy}": one of {", ".join(STRATEGIES)}')
    return out


def advertised(gpus: Iterable[GpuInfo], strategy: str, sharing: Sharing) -> list[Resource]:
    """The resources to serve, each with its devices (replicated where shared)."""
    out: dict[str, Resource] = {}
    for name, devices in _base(gpus, strategy).items():
        rule = next((r for r in sharing.resources if r.name == name), None)
        for d in devices:
            if rule is None or not rule.applies(d.gpu):
                out.setdefault(name, Resource(name)).devices.append(d)
                continue
            target = f"nvidia.com/{rule.rename}" if rule.rename else name
            res = out.setdefault(target, Resource(target, shared=True))
            res.shared = True
            res.devices += [Device(f"{d.id}::{i}", d.gpu, d.mig, i) for i in range(rule.replicas)]
    return [out[k] for k in sorted(out)]
