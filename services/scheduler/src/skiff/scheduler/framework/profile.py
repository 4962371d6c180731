"""Scheduler profiles (kube's ``KubeSchedulerProfile`` and ``default_plugins.go``).

Owns :class:`Profile` (the scheduler name, the plugins enabled per extension point, score
weights, plugin args, ``percentageOfNodesToScore``) and kube-scheduler's defaults for it.
``config.py`` builds profiles from a ``KubeSchedulerConfiguration``; the runtime's
:class:`~skiff.scheduler.framework.runtime.Framework` builds the plugins a profile names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.scheduler.framework.interface import ExtensionPoint

DEFAULT_SCHEDULER_NAME = "default-scheduler"

# kube-scheduler 1.32's default multi-point plugins (apis/config/v1/default_plugins.go),
# less the ones for volume limits and zones, images and queueing, in the same order; plus
# Skiff's GPUBinPacking (a score that only orders nodes when some have GPUs).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "VolumeBinding",
    "PodTopologySpread",
    "InterPodAffinity",
    "DefaultPreemption",
    "NodeResourcesBalancedAllocation",
    "GPUBinPacking",
    "DefaultBinder",
)
DEFAULT_SCORE_WEIGHTS: dict[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "GPUBinPacking": 2,
}


@dataclass(slots=True)
class Profile:
    """A scheduler profile (``KubeSchedulerProfile``).

    ``plugins`` are enabled, in order, at every extension point they implement (like
    ``multiPoint``), except where ``disabled[point]`` names them (or ``"*"``);
    ``enabled[point]`` adds plugins to one point only.
    """

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: list[str] = field(default_factory=lambda: list(DEFAULT_PLUGINS))
    enabled: dict[ExtensionPoint, list[str]] = field(default_factory=dict)
    disabled: dict[ExtensionPoint, set[str]] = field(default_factory=dict)
    score_weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Plugin name -> its args: configuration values only (``pluginConfig[].args``); the API
    client and the listers reach plugins through the framework's ``Handle``."""
    percentage_of_nodes_to_score: int | None = None
    """Stop filtering once this % of the nodes fit (0/None: adaptive, 50% - n/125, >= 5%)."""


def default_profile(**changes: Any) -> Profile:
    """kube-scheduler's default profile (with ``changes`` applied to its fields)."""
    return Profile(**changes)
