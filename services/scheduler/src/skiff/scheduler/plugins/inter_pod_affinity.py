"""InterPodAffinity: required pod affinity and anti-affinity (``plugins/interpodaffinity``).

Filter, in kube-scheduler's order:

1. the pod's required podAffinity terms: every term's topology domain of the node must
   already run a matching pod (or no pod in the cluster matches and the pod matches its
   own terms: the first pod of a group that wants to be together);
2. the pod's required podAntiAffinity terms: no matching pod in the node's domain;
3. symmetry: no pod already in the node's domain has a required anti-affinity term that
   matches the incoming pod.

Terms whose topologyKey is ``kubernetes.io/hostname`` (the usual case, and the only one
the LimitPodHardAntiAffinityTopology admission plugin allows for anti-affinity) are
checked against the node's own pods; other keys are counted over the whole cluster in
PreFilter. Preferred (soft) terms are not scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skiff.scheduler.framework.interface import CycleState, Handle, PreFilterResult, Status
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import LABEL_HOSTNAME, AffinityTerm, NodeInfo, PodInfo

NAME = "InterPodAffinity"
ERR_REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_REASON_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"

_KEY = "PreFilter" + NAME
_REJECT_AFFINITY = Status.unresolvable(ERR_REASON_AFFINITY, plugin=NAME)
_REJECT_ANTI_AFFINITY = Status.unschedulable(ERR_REASON_ANTI_AFFINITY, plugin=NAME)
_REJECT_EXISTING = Status.unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)

_Pair = tuple[str, str]


def _bump(counts: dict[Any, int], key: Any, delta: int) -> None:
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


@dataclass(slots=True)
class _State:
    affinity: tuple[AffinityTerm, ...]
    anti_affinity: tuple[AffinityTerm, ...]
    local: bool
    """Anti-affinity terms are all hostname-keyed and there is no affinity term:
    check the node's own pods instead of cluster-wide counts."""
    self_match: bool
    namespace_labels: Mapping[str, Mapping[str, str]]
    affinity_counts: dict[_Pair, int] = field(default_factory=dict)
    anti_affinity_counts: dict[_Pair, int] = field(default_factory=dict)
    existing: dict[str, dict[str, int]] = field(default_factory=dict)
    """topology key -> value -> existing pods there whose anti-affinity matches the pod."""

    def clone(self) -> _State:
        return _State(
            self.affinity,
            self.anti_affinity,
            self.local,
            self.self_match,
            self.namespace_labels,
            dict(self.affinity_counts),
            dict(self.anti_affinity_counts),
            {k: dict(v) for k, v in self.existing.items()},
        )

    def update_existing(
        self, incoming: PodInfo, existing: PodInfo, node: NodeInfo, delta: int
    ) -> None:
        ns_labels = self.namespace_labels.get(incoming.namespace)
        for term in existing.required_anti_affinity:
            value = node.labels.get(term.topology_key)
            if value is not None and term.matches(incoming, ns_labels):
                values = self.existing.setdefault(term.topology_key, {})
                _bump(values, value, delta)

    def update_incoming(self, existing: PodInfo, node: NodeInfo, delta: int) -> None:
        ns_labels = self.namespace_labels.get(existing.namespace)
        labels = node.labels
        if self.affinity and all(t.matches(existing, ns_labels) for t in self.affinity):
            for term in self.affinity:
                value = labels.get(term.topology_key)
                if value is not None:
                    _bump(self.affinity_counts, (term.topology_key, value), delta)
        for term in self.anti_affinity:
            value = labels.get(term.topology_key)
            if value is not None and term.matches(existing, ns_labels):
                _bump(self.anti_affinity_counts, (term.topology_key, value), delta)


class InterPodAffinity:
    """Filter on required pod (anti-)affinity, both the pod's and the existing pods'."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        pi = state.pod_info
        assert pi is not None
        if pi.parse_error is not None:
            return None, Status.unresolvable(f"parsing pod: {pi.parse_error}", plugin=NAME)
        affinity, anti = pi.required_affinity, pi.required_anti_affinity
        s = _State(
            affinity,
            anti,
            local=not affinity and all(t.topology_key == LABEL_HOSTNAME for t in anti),
            self_match=bool(affinity)
            and all(t.matches(pi, snapshot.namespace_labels.get(pi.namespace)) for t in affinity),
            namespace_labels=snapshot.namespace_labels,
        )
        for node in snapshot.nodes_with_required_anti_affinity():
            for existing in node.pods_with_required_anti_affinity.values():
                s.update_existing(pi, existing, node, 1)
        if not affinity and not anti and not s.existing:
            return None, Status.skip()
        if not s.local:
            for node in snapshot.node_infos:
                for existing in node.pod_infos.values():
                    s.update_incoming(existing, node, 1)
        state.write(_KEY, s)
        return None, None

    def add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        s: _State = state.read(_KEY)
        s.update_existing(pod, pod_to_add, node_info, 1)
        if not s.local:
            s.update_incoming(pod_to_add, node_info, 1)
        return None

    def remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        s: _State = state.read(_KEY)
        s.update_existing(pod, pod_to_remove, node_info, -1)
        if not s.local:
            s.update_incoming(pod_to_remove, node_info, -1)
        return None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        s: _State = state.read(_KEY)
        labels = node_info.labels
        if s.affinity:
            pods_exist = True
            for term in s.affinity:
                value = labels.get(term.topology_key)
                if value is None:
                    return _REJECT_AFFINITY
                if s.affinity_counts.get((term.topology_key, value), 0) <= 0:
                    pods_exist = False
            if not pods_exist and (s.affinity_counts or not s.self_match):
                return _REJECT_AFFINITY
        if s.anti_affinity:
            if s.local:
                if LABEL_HOSTNAME in labels and self._local_match(s, node_info):
                    return _REJECT_ANTI_AFFINITY
            else:
                for term in s.anti_affinity:
                    value = labels.get(term.topology_key)
                    if (
                        value is not None
                        and s.anti_affinity_counts.get((term.topology_key, value), 0) > 0
                    ):
                        return _REJECT_ANTI_AFFINITY
        if s.existing:
            for key, values in s.existing.items():
                value = labels.get(key)
                if value is not None and values.get(value, 0) > 0:
                    return _REJECT_EXISTING
        return None

    @staticmethod
    def _local_match(s: _State, node: NodeInfo) -> bool:
        ns_labels = s.namespace_labels
        for term in s.anti_affinity:
            if not term.may_match_on(node):
                continue
            for existing in node.pod_infos.values():
                if term.matches(existing, ns_labels.get(existing.namespace)):
                    return True
        return False
