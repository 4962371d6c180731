"""The in-tree plugins, named as in kube-scheduler (and Skiff's GPUBinPacking), and the
default registry."""

from __future__ import annotations

from skiff.scheduler.framework.interface import Registry
from skiff.scheduler.plugins.default_binder import DefaultBinder
from skiff.scheduler.plugins.default_preemption import DefaultPreemption
from skiff.scheduler.plugins.gpu_binpacking import GPUBinPacking
from skiff.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from skiff.scheduler.plugins.node_affinity import NodeAffinity
from skiff.scheduler.plugins.node_name import NodeName
from skiff.scheduler.plugins.node_ports import NodePorts
from skiff.scheduler.plugins.node_resources import (
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
)
from skiff.scheduler.plugins.node_unschedulable import NodeUnschedulable
from skiff.scheduler.plugins.pod_topology_spread import PodTopologySpread
from skiff.scheduler.plugins.taint_toleration import TaintToleration
from skiff.scheduler.plugins.volume_binding import VolumeBinding

__all__ = [
    "DefaultBinder",
    "DefaultPreemption",
    "GPUBinPacking",
    "InterPodAffinity",
    "NodeAffinity",
    "NodeName",
    "NodePorts",
    "NodeResourcesBalancedAllocation",
    "NodeResourcesFit",
    "NodeUnschedulable",
    "PodTopologySpread",
    "TaintToleration",
    "VolumeBinding",
    "default_registry",
]


def default_registry() -> Registry:
    """Plugin name -> factory for every in-tree plugin (the classes are their factories)."""
    plugins = (
        NodeUnschedulable,
        NodeName,
        TaintToleration,
        NodeAffinity,
        NodePorts,
        NodeResourcesFit,
        VolumeBinding,
        PodTopologySpread,
        InterPodAffinity,
        DefaultPreemption,
        NodeResourcesBalancedAllocation,
        GPUBinPacking,
        DefaultBinder,
    )
    return {p.name: p for p in plugins}
