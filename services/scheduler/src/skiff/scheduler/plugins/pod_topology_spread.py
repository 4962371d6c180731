"""PodTopologySpread: spread matching pods over topology domains (``plugins/podtopologyspread``).

Filter: the pod's ``whenUnsatisfiable: DoNotSchedule`` constraints — placing the pod in the
node's domain must keep ``pods there + 1 - fewest pods in any domain <= maxSkew``.
Score: the ``ScheduleAnyway`` constraints, or, for a pod without constraints, the system
defaults (hostname maxSkew 3, zone maxSkew 5) over the pods of the same controller (same
controller ownerReference uid; kube-scheduler derives that set from the Services,
ReplicaSets and StatefulSets selecting the pod). Fewer matching pods in a node's domains
scores higher.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.selectors import IN, LabelSelector, Requirement, selector_from_dict
from skiff.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    CycleState,
    Handle,
    PreFilterResult,
    Status,
)
from skiff.scheduler.plugins.node_affinity import RequiredNodeAffinity
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import LABEL_HOSTNAME, NodeInfo, PodInfo, Toleration, exact_label

NAME = "PodTopologySpread"
ERR_REASON_CONSTRAINTS_NOT_MATCH = "node(s) didn't match pod topology spread constraints"
ERR_REASON_NODE_LABEL_NOT_MATCH = ERR_REASON_CONSTRAINTS_NOT_MATCH + " (missing required label)"
LABEL_ZONE = "topology.kubernetes.io/zone"

SYSTEM_DEFAULT_CONSTRAINTS: tuple[dict[str, Any], ...] = (
    {"maxSkew": 3, "topologyKey": LABEL_HOSTNAME, "whenUnsatisfiable": "ScheduleAnyway"},
    {"maxSkew": 5, "topologyKey": LABEL_ZONE, "whenUnsatisfiable": "ScheduleAnyway"},
)

_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME
_REJECT = Status.unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH, plugin=NAME)
_REJECT_LABEL = Status.unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH, plugin=NAME)


@dataclass(slots=True, frozen=True)
class _Constraint:
    max_skew: int
    topology_key: str
    selector: LabelSelector
    min_domains: int
    honor_node_affinity: bool
    honor_node_taints: bool
    owner_uid: str | None = None
    """Set for system-default constraints: pods match by controller uid, not selector."""
    exact: tuple[str, str] | None = None

    def count(self, node: NodeInfo, namespace: str) -> int:
        """Non-terminating pods on ``node`` in ``namespace`` that the constraint selects."""
        if self.owner_uid is not None:
            return node.owner_counts.get(self.owner_uid, 0)
        if self.exact is not None and not node.has_label((namespace,), self.exact):
            return 0
        matches = self.selector.matches
        return sum(
            1
            for p in node.pod_infos.values()
            if p.namespace == namespace and not p.terminating and matches(p.labels)
        )

    def includes(
        self, node: NodeInfo, affinity: RequiredNodeAffinity, tolerations: tuple[Toleration, ...]
    ) -> bool:
        """``matchNodeInclusionPolicies``: whether the node's domain counts at all."""
        if self.honor_node_affinity and not affinity.matches(node):
            return False
        if self.honor_node_taints:
            for taint in node.hard_taints:
                if not any(t.tolerates(taint) for t in tolerations):
                    return False
        return True


def _constraints(
    pod: PodInfo, raw: Sequence[Mapping[str, Any]], when: str, owner_uid: str | None = None
) -> list[_Constraint]:
    out: list[_Constraint] = []
    for c in raw:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != when:
            continue
        selector = selector_from_dict(c.get("labelSelector"))
        keys = [k for k in c.get("matchLabelKeys") or () if k in pod.labels]
        if keys and not selector.matches_nothing:
            extra = [Requirement(k, IN, (pod.labels[k],)) for k in keys]
            selector = LabelSelector([*selector.requirements, *extra])
        out.append(
            _Constraint(
                max_skew=int(c.get("maxSkew") or 1),
                topology_key=c.get("topologyKey") or "",
                selector=selector,
                min_domains=int(c.get("minDomains") or 1),
                honor_node_affinity=c.get("nodeAffinityPolicy", "Honor") != "Ignore",
                honor_node_taints=c.get("nodeTaintsPolicy", "Ignore") == "Honor",
                owner_uid=owner_uid,
                exact=exact_label(selector),
            )
        )
    return out


@dataclass(slots=True)
class _FilterState:
    constraints: list[_Constraint]
    affinity: RequiredNodeAffinity
    tolerations: tuple[Toleration, ...]
    namespace: str
    self_match: list[int]
    counts: list[dict[str, int]]
    """Per constraint: topology value -> matching pods in that domain."""
    minimum: list[int] = field(default_factory=list)

    def recompute_minimum(self) -> None:
        self.minimum = [
            0 if len(counts) < c.min_domains else min(counts.values(), default=0)
            for c, counts in zip(self.constraints, self.counts, strict=True)
        ]

    def clone(self) -> _FilterState:
        return _FilterState(
            self.constraints,
            self.affinity,
            self.tolerations,
            self.namespace,
            self.self_match,
            [dict(c) for c in self.counts],
            list(self.minimum),
        )

    def update(self, pod: PodInfo, node: NodeInfo, delta: int) -> None:
        if pod.namespace != self.namespace or pod.terminating:
            return
        labels = node.labels
        if any(c.topology_key not in labels for c in self.constraints):
            return
        for c, counts in zip(self.constraints, self.counts, strict=True):
            if c.includes(node, self.affinity, self.tolerations) and c.selector.matches(pod.labels):
                value = labels[c.topology_key]
                counts[value] = counts.get(value, 0) + delta
        self.recompute_minimum()


@dataclass(slots=True)
class _ScoreState:
    constraints: list[_Constraint]
    weights: list[float]
    counts: list[dict[str, int] | None]
    """Per constraint: topology value -> pods (None for hostname: counted per node)."""
    ignored: set[str]
    node_names: list[str]
    namespace: str


class PodTopologySpread:
    """Filter on DoNotSchedule spread constraints, score on soft and system-default ones."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._defaulting = args.get("defaultingType") or "System"
        self._default_constraints: tuple[Mapping[str, Any], ...] = (
            SYSTEM_DEFAULT_CONSTRAINTS
            if self._defaulting == "System"
            else tuple(args.get("defaultConstraints") or ())
        )

    # -- filter -------------------------------------------------------------

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        pi = state.pod_info
        assert pi is not None
        raw = (pod.get("spec") or {}).get("topologySpreadConstraints") or ()
        try:
            constraints = _constraints(pi, raw, "DoNotSchedule")
        except (ApiError, ValueError) as exc:
            return None, Status.unresolvable(f"parsing pod: {exc}", plugin=NAME)
        if not constraints:
            return None, Status.skip()
        s = _FilterState(
            constraints,
            RequiredNodeAffinity.of(pod),
            pi.tolerations,
            pi.namespace,
            [1 if c.selector.matches(pi.labels) else 0 for c in constraints],
            [{} for _ in constraints],
        )
        keys = [c.topology_key for c in constraints]
        for node in snapshot.node_infos:
            labels = node.labels
            if any(k not in labels for k in keys):
                continue
            for c, counts in zip(constraints, s.counts, strict=True):
                if c.includes(node, s.affinity, s.tolerations):
                    value = labels[c.topology_key]
                    counts[value] = counts.get(value, 0) + c.count(node, pi.namespace)
        s.recompute_minimum()
        state.write(_PRE_FILTER_KEY, s)
        return None, None

    def add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        s: _FilterState = state.read(_PRE_FILTER_KEY)
        s.update(pod_to_add, node_info, 1)
        return None

    def remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        s: _FilterState = state.read(_PRE_FILTER_KEY)
        s.update(pod_to_remove, node_info, -1)
        return None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        s: _FilterState = state.read(_PRE_FILTER_KEY)
        labels = node_info.labels
        for i, c in enumerate(s.constraints):
            value = labels.get(c.topology_key)
            if value is None:
                return _REJECT_LABEL
            skew = s.counts[i].get(value, 0) + s.self_match[i] - s.minimum[i]
            if skew > c.max_skew:
                return _REJECT
        return None

    # -- score --------------------------------------------------------------

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        pi = state.pod_info
        snapshot = state.snapshot
        assert pi is not None and snapshot is not None
        if not nodes:
            return Status.skip()
        raw = (pod.get("spec") or {}).get("topologySpreadConstraints") or ()
        try:
            if raw:
                constraints = _constraints(pi, raw, "ScheduleAnyway")
                require_all = True
            elif pi.controller_uid is not None:
                constraints = _constraints(
                    pi, self._default_constraints, "ScheduleAnyway", pi.controller_uid
                )
                require_all = False
            else:
                constraints = []
                require_all = False
        except (ApiError, ValueError) as exc:
            return Status.as_error(f"parsing pod: {exc}", plugin=NAME)
        if not require_all:
            # A system-default domain no feasible node has adds nothing to any score.
            constraints = [c for c in constraints if any(c.topology_key in n.labels for n in nodes)]
        if not constraints:
            return Status.skip()

        keys = [c.topology_key for c in constraints]
        ignored: set[str] = set()
        counts: list[dict[str, int] | None] = [
            None if c.topology_key == LABEL_HOSTNAME else {} for c in constraints
        ]
        for node in nodes:
            labels = node.labels
            if require_all and any(k not in labels for k in keys):
                ignored.add(node.name)
                continue
            for c, domain in zip(constraints, counts, strict=True):
                if domain is not None:
                    domain.setdefault(labels.get(c.topology_key, ""), 0)
        weights = []
        for domain in counts:
            size = len(nodes) - len(ignored) if domain is None else len(domain)
            weights.append(math.log(size + 2))

        affinity = RequiredNodeAffinity.of(pod)
        namespace = pi.namespace
        for c, domain in zip(constraints, counts, strict=True):
            if not domain:
                continue
            key = c.topology_key
            check = (c.honor_node_affinity and not affinity.empty) or c.honor_node_taints
            uid = c.owner_uid
            for node in snapshot.node_infos:
                labels = node.labels
                if require_all and any(k not in labels for k in keys):
                    continue
                value = labels.get(key, "")
                if value not in domain:
                    continue
                if check and not c.includes(node, affinity, pi.tolerations):
                    continue
                if uid is not None:
                    domain[value] += node.owner_counts.get(uid, 0)
                else:
                    domain[value] += c.count(node, namespace)

        state.write(
            _PRE_SCORE_KEY,
            _ScoreState(
                constraints, weights, counts, ignored, [n.name for n in nodes], pi.namespace
            ),
        )
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        s: _ScoreState = state.read(_PRE_SCORE_KEY)
        if node_info.name in s.ignored:
            return 0
        labels = node_info.labels
        total = 0.0
        for c, weight, domain in zip(s.constraints, s.weights, s.counts, strict=True):
            value = labels.get(c.topology_key)
            if value is None:
                continue
            if domain is not None:
                count = domain.get(value, 0)
            elif c.owner_uid is not None:
                count = node_info.owner_counts.get(c.owner_uid, 0)
            else:
                count = c.count(node_info, s.namespace)
            total += count * weight + (c.max_skew - 1)
        return int(total + 0.5)  # math.Round for a non-negative value

    def normalize_scores(
        self, state: CycleState, pod: dict[str, Any], scores: list[int]
    ) -> Status | None:
        s: _ScoreState = state.read(_PRE_SCORE_KEY)
        ignored = s.ignored
        names = s.node_names
        valid = [sc for name, sc in zip(names, scores, strict=True) if name not in ignored]
        if not valid:
            scores[:] = [0] * len(scores)
            return None
        lowest, highest = min(valid), max(valid)
        for i, name in enumerate(names):
            if name in ignored:
                scores[i] = 0
            elif highest == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (highest + lowest - scores[i]) // highest
        return None
