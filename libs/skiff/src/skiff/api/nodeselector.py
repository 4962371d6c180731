"""Node selector terms (``NodeSelectorTerm``), compiled once and matched against nodes.

Used wherever Kubernetes matches nodes by label and name: a pod's required node affinity
(the scheduler's NodeAffinity plugin) and a PersistentVolume's ``nodeAffinity`` (the
scheduler's VolumeBinding plugin, the volume binder). The expressions of a term are
ANDed; a list of terms is ORed by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_IN, _NOT_IN, _EXISTS, _NOT_EXISTS, _GT, _LT = range(6)
_OPS = {
    "In": _IN,
    "NotIn": _NOT_IN,
    "Exists": _EXISTS,
    "DoesNotExist": _NOT_EXISTS,
    "Gt": _GT,
    "Lt": _LT,
}
_INT_RE = re.compile(r"^[+-]?[0-9]+$")

_Requirement = tuple[str, int, Any]


def _parse_int(text: Any) -> int | None:
    if isinstance(text, str) and _INT_RE.match(text):
        return int(text)
    return None


def _compile_expression(expr: Mapping[str, Any]) -> _Requirement:
    """One ``NodeSelectorRequirement``; raises ValueError where Kubernetes' parser does."""
    key = expr.get("key") or ""
    op = _OPS.get(expr.get("operator") or "")
    values = list(expr.get("values") or ())
    if op is None:
        raise ValueError(f"{expr.get('operator')!r} is not a valid node selector operator")
    if op in (_IN, _NOT_IN):
        if not values:
            raise ValueError("values set can't be empty")
        return (key, op, frozenset(values))
    if op in (_EXISTS, _NOT_EXISTS):
        if values:
            raise ValueError("values set must be empty for exists and does not exist")
        return (key, op, None)
    number = _parse_int(values[0]) if len(values) == 1 else None
    if number is None:
        raise ValueError("for 'Gt', 'Lt' operators, exactly one integer value is required")
    return (key, op, number)


def _compile_field(expr: Mapping[str, Any]) -> tuple[str, bool, str]:
    op = expr.get("operator")
    values = list(expr.get("values") or ())
    if op not in ("In", "NotIn"):
        raise ValueError(f"{op!r} is not a valid node field selector operator")
    if len(values) != 1:
        raise ValueError(f"unexpected number of value ({len(values)}) for node field selector")
    return (expr.get("key") or "", op == "NotIn", values[0])


def _requirement_matches(labels: Mapping[str, str], key: str, op: int, arg: Any) -> bool:
    value = labels.get(key)
    if op == _IN:
        return value is not None and value in arg
    if op == _NOT_IN:
        return value is None or value not in arg
    if op == _EXISTS:
        return value is not None
    if op == _NOT_EXISTS:
        return value is None
    number = _parse_int(value)
    if number is None:
        return False
    return number > arg if op == _GT else number < arg


@dataclass(slots=True, frozen=True)
class NodeSelectorTerm:
    """A compiled ``NodeSelectorTerm``; an empty or invalid term matches no node."""

    expressions: tuple[_Requirement, ...]
    fields: tuple[tuple[str, bool, str], ...]
    valid: bool = True

    @classmethod
    def compile(cls, term: Mapping[str, Any] | None) -> NodeSelectorTerm:
        term = term or {}
        exprs = term.get("matchExpressions") or ()
        fields = term.get("matchFields") or ()
        if not exprs and not fields:
            return cls((), (), valid=False)
        try:
            return cls(
                tuple(_compile_expression(e) for e in exprs),
                tuple(_compile_field(f) for f in fields),
            )
        except ValueError:
            return cls((), (), valid=False)

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if not self.valid:
            return False
        for key, op, arg in self.expressions:
            if not _requirement_matches(labels, key, op, arg):
                return False
        for key, negate, value in self.fields:
            got = node_name if key == "metadata.name" else ""
            if (got == value) == negate:
                return False
        return True


def node_matches(
    terms: list[Mapping[str, Any]] | None, labels: Mapping[str, str], node_name: str
) -> bool:
    """Whether a node matches any of ``terms`` (raw ``nodeSelectorTerms``; None: any node)."""
    if terms is None:
        return True
    return any(NodeSelectorTerm.compile(t).matches(labels, node_name) for t in terms)
