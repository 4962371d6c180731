"""``Toleration.ToleratesTaint`` as Kubernetes defines it."""

from __future__ import annotations

from skiff.api.taints import Taint, Toleration, parse_tolerations, tolerates, tolerates_taint

UNREACHABLE = "node.kubernetes.io/unreachable"


def test_tolerates() -> None:
    taint = {"key": UNREACHABLE, "effect": "NoExecute"}
    assert tolerates({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}, taint)
    assert tolerates({"operator": "Exists"}, taint)  # empty key and effect: every taint
    assert not tolerates({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}, taint)
    assert not tolerates({"key": UNREACHABLE, "value": "x"}, taint)
    assert tolerates({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoSchedule"})
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    assert tolerates({"key": "dedicated", "operator": "Equal", "value": "gpu"}, gpu)
    assert not tolerates({"key": "dedicated", "value": "cpu"}, gpu)
    assert not tolerates({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}, gpu)
    assert not tolerates({"key": "dedicated", "operator": "Lt", "value": "gpu"}, gpu)


def test_parsed_forms() -> None:
    tolerations = parse_tolerations([{"key": "a", "operator": "Exists"}, "junk"])  # type: ignore[list-item]
    assert tolerations == (Toleration("a", "Exists", "", ""),)
    assert tolerates_taint(tolerations, Taint("a", "x", "NoSchedule"))
    assert not tolerates_taint(tolerations, Taint.of({"key": "b", "effect": "NoSchedule"}))
