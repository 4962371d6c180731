"""The scheduler's cache snapshot: every node's NodeInfo, kept current from informer events.

Mirrors kube-scheduler's ``internal/cache`` (the cache with assumed pods and its
snapshot): the scheduler assumes a pod onto its node as soon as it is placed, and the
informer's later add confirms it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from skiff.scheduler.types import NodeInfo, PodInfo, pod_key

_TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


class Snapshot:
    """The scheduler's view of the cluster: node name -> NodeInfo, in a stable order.

    Kept up to date incrementally from informer events (``add_node``, ``add_pod``...), and
    by the scheduler itself, which *assumes* a pod onto its node as soon as it is placed so
    that the next cycle sees the resources taken before the binding is observed. Scheduling
    is synchronous, so one Snapshot is safely shared by the cycles of one event loop.
    """

    __slots__ = ("_assumed", "_by_name", "_pod_nodes", "namespace_labels", "node_infos")

    def __init__(
        self,
        nodes: Iterable[dict[str, Any]] = (),
        pods: Iterable[dict[str, Any]] = (),
        *,
        namespace_labels: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.node_infos: list[NodeInfo] = []
        """NodeInfos of the nodes that exist, in insertion order (the order nodes are tried)."""
        self._by_name: dict[str, NodeInfo] = {}
        self._pod_nodes: dict[str, str] = {}
        self._assumed: set[str] = set()
        self.namespace_labels: dict[str, Mapping[str, str]] = dict(namespace_labels or {})
        """Namespace name -> labels, for affinity terms with a ``namespaceSelector``."""
        for node in nodes:
            self.add_node(node)
        for pod in pods:
            self.add_pod(pod)

    def __len__(self) -> int:
        return len(self.node_infos)

    def __iter__(self) -> Iterator[NodeInfo]:
        return iter(self.node_infos)

    def __contains__(self, name: object) -> bool:
        info = self._by_name.get(name)  # type: ignore[arg-type]
        return info is not None and info.node is not None

    def get(self, name: str) -> NodeInfo | None:
        """The NodeInfo of an existing node, or None."""
        info = self._by_name.get(name)
        return info if info is not None and info.node is not None else None

    # nodes

    def add_node(self, node: dict[str, Any]) -> NodeInfo:
        """Add a node or replace its object (pods on it are kept)."""
        name = (node.get("metadata") or {}).get("name") or ""
        info = self._by_name.get(name)
        if info is None:
            info = self._by_name[name] = NodeInfo()
        if info.node is None:
            self.node_infos.append(info)
        info.set_node(node)
        return info

    update_node = add_node

    def remove_node(self, name: str) -> None:
        """Remove a node; NodeInfo of its remaining pods is kept until they go."""
        info = self._by_name.get(name)
        if info is None or info.node is None:
            return
        self.node_infos.remove(info)
        info.node = None
        if not info.pod_infos:
            del self._by_name[name]

    # pods

    def add_pod(self, pod: dict[str, Any] | PodInfo) -> PodInfo | None:
        """Account for a pod from the informer (add or update).

        Pods without ``spec.nodeName`` and terminal pods (Succeeded/Failed) are removed
        instead; a pod that was assumed is confirmed.
        """
        pod_dict = pod.pod if isinstance(pod, PodInfo) else pod
        phase = (pod_dict.get("status") or {}).get("phase")
        node_name = (pod_dict.get("spec") or {}).get("nodeName")
        if not node_name or phase in _TERMINAL_PHASES:
            self.remove_pod(pod_dict)
            return None
        info = pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
        self._place(info, node_name)
        self._assumed.discard(info.key)
        return info

    update_pod = add_pod

    def remove_pod(self, pod: dict[str, Any] | PodInfo | str) -> None:
        """Stop accounting for a pod (a dict, PodInfo or key)."""
        if isinstance(pod, str):
            key = pod
        elif isinstance(pod, PodInfo):
            key = pod.key
        else:
            key = pod_key(pod)
        node_name = self._pod_nodes.pop(key, None)
        self._assumed.discard(key)
        if node_name is None:
            return
        info = self._by_name.get(node_name)
        if info is not None:
            info.remove_pod(key)
            if info.node is None and not info.pod_infos:
                del self._by_name[node_name]

    def assume_pod(self, pod: dict[str, Any] | PodInfo, node_name: str) -> PodInfo:
        """Place a pod the scheduler chose for ``node_name`` before its binding is observed."""
        info = pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
        if info.node_name != node_name:
            info = info.with_node(node_name)
        self._place(info, node_name)
        self._assumed.add(info.key)
        return info

    def forget_pod(self, pod: dict[str, Any] | PodInfo | str) -> None:
        """Undo ``assume_pod`` (binding failed); a confirmed pod is left alone."""
        if isinstance(pod, str):
            key = pod
        elif isinstance(pod, PodInfo):
            key = pod.key
        else:
            key = pod_key(pod)
        if key in self._assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def _place(self, info: PodInfo, node_name: str) -> None:
        previous = self._pod_nodes.get(info.key)
        if previous is not None and previous != node_name:
            self.remove_pod(info.key)
        node_info = self._by_name.get(node_name)
        if node_info is None:
            node_info = self._by_name[node_name] = NodeInfo(name=node_name)
        node_info.add_pod(info)
        self._pod_nodes[info.key] = node_name

    def nodes_with_required_anti_affinity(self) -> list[NodeInfo]:
        """NodeInfos running at least one pod with required pod anti-affinity."""
        return [n for n in self.node_infos if n.pods_with_required_anti_affinity]
