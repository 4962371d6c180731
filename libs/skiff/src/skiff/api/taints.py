"""Taints and tolerations (``Toleration.ToleratesTaint``), for the scheduler's filters, the
DaemonSet controller and node lifecycle's taint eviction alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

# The well-known taint keys (k8s.io/api/core/v1 well_known_taints.go).
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


class Taint(NamedTuple):
    """A node taint (``key=value:effect``)."""

    key: str
    value: str
    effect: str

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Taint:
        return cls(raw.get("key") or "", raw.get("value") or "", raw.get("effect") or "")


class Toleration(NamedTuple):
    """A pod toleration; ``operator`` is ``Equal`` (also for "") or ``Exists``."""

    key: str
    operator: str
    value: str
    effect: str

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Toleration:
        return cls(
            raw.get("key") or "",
            raw.get("operator") or "",
            raw.get("value") or "",
            raw.get("effect") or "",
        )

    def tolerates(self, taint: Taint) -> bool:
        """``ToleratesTaint``: an empty effect or key matches any; Exists ignores the value."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True
        return self.operator in ("", "Equal") and self.value == taint.value


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether a toleration (as in a pod spec) tolerates a taint (as in a node spec)."""
    return Toleration.of(toleration).tolerates(Taint.of(taint))


def tolerates_taint(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    """Whether any toleration tolerates ``taint``."""
    return any(t.tolerates(taint) for t in tolerations)


def parse_tolerations(raw: Iterable[Mapping[str, Any]] | None) -> tuple[Toleration, ...]:
    """A pod spec's tolerations, parsed (entries that are not mappings are skipped)."""
    return tuple(Toleration.of(t) for t in raw or () if isinstance(t, Mapping))
