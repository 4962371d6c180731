"""The node lifecycle controllers' settings (kube's ``nodelifecycle/config``).

:class:`LifecycleSettings` is ``NodeLifecycleControllerConfiguration``, which the
controller manager fills from its flags (see ``__main__``; Go durations are read by
:func:`skiff.api.timestamps.parse_duration`).
"""

from __future__ import annotations

from dataclasses import dataclass


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
