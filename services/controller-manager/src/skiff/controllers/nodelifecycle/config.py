"""The node lifecycle controllers' settings (kube's ``nodelifecycle/config``).

:class:`LifecycleSettings` is ``NodeLifecycleControllerConfiguration``, which the
controller manager fills from its flags (see ``__main__``); :func:`parse_duration` reads
the Go durations those flags take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``40s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """kube-controller-manager's node lifecycle flags (``NodeLifecycleControllerConfiguration``)."""

    monitor_grace_period: float = 40.0
    startup_grace_period: float = 60.0
    eviction_rate: float = 0.1
    secondary_eviction_rate: float = 0.01
    large_cluster_threshold: int = 50
    unhealthy_zone_threshold: float = 0.55
    pod_eviction_qps: float = 20.0
    pod_eviction_burst: int = 100
