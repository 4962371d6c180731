"""NodeAffinity: ``spec.nodeSelector`` and node affinity (``plugins/nodeaffinity``).

Filter: the node must match the nodeSelector map and one of the required
``nodeSelectorTerms`` (terms are ORed, the expressions and fields of a term ANDed).
Score: the sum of the weights of the preferred terms the node matches, normalized to 0-100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from skiff.api.nodeselector import NodeSelectorTerm
from skiff.scheduler.framework.interface import (
    CycleState,
    Handle,
    PreFilterResult,
    Status,
    default_normalize_score,
)
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo

NAME = "NodeAffinity"
ERR_REASON_POD = "node(s) didn't match Pod's node affinity/selector"
ERR_REASON_CONFLICT = "pod affinity terms conflict"

_PRE_FILTER_KEY = "PreFilter" + NAME
_PRE_SCORE_KEY = "PreScore" + NAME


@dataclass(slots=True, frozen=True)
class RequiredNodeAffinity:
    """A pod's hard node constraints: its nodeSelector and required node affinity."""

    node_selector: tuple[tuple[str, str], ...]
    terms: tuple[NodeSelectorTerm, ...] | None
    """None when the pod has no required node affinity (every node passes that part)."""

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> RequiredNodeAffinity:
        spec = pod.get("spec") or {}
        selector = tuple((spec.get("nodeSelector") or {}).items())
        required = _required(spec)
        terms = None
        if required is not None:
            terms = tuple(
                NodeSelectorTerm.compile(t) for t in required.get("nodeSelectorTerms") or ()
            )
        return cls(selector, terms)

    @property
    def empty(self) -> bool:
        return not self.node_selector and self.terms is None

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        for key, value in self.node_selector:
            if labels.get(key) != value:
                return False
        if self.terms is None:
            return True
        name = node.name
        return any(t.matches(labels, name) for t in self.terms)


def _required(spec: Mapping[str, Any]) -> Mapping[str, Any] | None:
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")


def _preferred(spec: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()


def _names_from_fields(terms: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """Node names the terms are limited to by ``metadata.name In`` fields (None: any)."""
    names: set[str] = set()
    for term in terms:
        term_names: set[str] | None = None
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In":
                values = set(f.get("values") or ())
                term_names = values if term_names is None else term_names & values
        if term_names is None:
            return None  # a term without a name restriction: every node may match
        names |= term_names
    return frozenset(names)


class NodeAffinity:
    """Filter and Score by node selector and node affinity."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        required = RequiredNodeAffinity.of(pod)
        if required.empty:
            return None, Status.skip()
        state.write(_PRE_FILTER_KEY, required)
        terms = (_required(pod.get("spec") or {}) or {}).get("nodeSelectorTerms") or ()
        if not terms:
            return None, None
        names = _names_from_fields(terms)
        if names is None:
            return None, None
        if not names:
            return None, Status.unresolvable(ERR_REASON_CONFLICT, plugin=NAME)
        return PreFilterResult(names), None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        required: RequiredNodeAffinity | None = state.get(_PRE_FILTER_KEY)
        if required is None:
            required = RequiredNodeAffinity.of(pod)
        if required.matches(node_info):
            return None
        return _REJECT

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        preferred = [
            (int(p.get("weight") or 0), NodeSelectorTerm.compile(p.get("preference")))
            for p in _preferred(pod.get("spec") or {})
        ]
        preferred = [(w, t) for w, t in preferred if w and t.valid]
        if not preferred:
            return Status.skip()
        state.write(_PRE_SCORE_KEY, preferred)
        return None

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        preferred: list[tuple[int, NodeSelectorTerm]] = state.get(_PRE_SCORE_KEY) or []
        labels, name = node_info.labels, node_info.name
        return sum(w for w, t in preferred if t.matches(labels, name))

    def normalize_scores(
        self, state: CycleState, pod: dict[str, Any], scores: list[int]
    ) -> Status | None:
        default_normalize_score(scores, reverse=False)
        return None


_REJECT = Status.unresolvable(ERR_REASON_POD, plugin=NAME)
