"""The controller manager's configuration (kube's ``KubeControllerManagerConfiguration``).

``__main__`` fills it from the flags (each falling back to its environment variable);
:class:`~.manager.ControllerManager` hands every controller its part when it builds
them. Controllers never read the environment themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .certificates import SigningSettings
from .nodeipam import NodeIpamSettings
from .nodelifecycle import LifecycleSettings
from .volumebinding import DEFAULT_BASE_DIR

CRONJOB_CLOCK_CHECK_INTERVAL = 1.0
"""How often the CronJob controller looks for clock jumps (0.2 s on a test clock)."""


@dataclass(frozen=True, slots=True)
class ControllerManagerConfig:
    """What the controllers are configured with, beyond their worker counts."""

    node_lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    """``--node-monitor-grace-period``, ``--node-eviction-rate``, …"""
    node_ipam: NodeIpamSettings = field(default_factory=NodeIpamSettings)
    """``--allocate-node-cidrs``, ``--cluster-cidr``, ``--node-cidr-mask-size*``."""
    pv_hostpath_dir: str = DEFAULT_BASE_DIR
    """``--skiff-pv-hostpath-dir``: where the hostPath provisioner puts volumes."""
    cronjob_clock_check_interval: float = CRONJOB_CLOCK_CHECK_INTERVAL
    """Seconds between the CronJob controller's clock-jump checks."""
    signing: SigningSettings = field(default_factory=SigningSettings)
    """``--cluster-signing-cert-file``/``-key-file``/``-duration`` (the signer runs with them)."""
    root_ca: str = ""
    """``--root-ca-file``'s PEM (the root CA publisher runs only with one)."""
    terminated_pod_gc_threshold: int = 12_500
    """``--terminated-pod-gc-threshold``: terminated pods kept before the oldest are
    deleted (0: none are)."""
    resource_quota_sync_period: float = 300.0
    """``--resource-quota-sync-period``: seconds between full recounts of each quota."""
