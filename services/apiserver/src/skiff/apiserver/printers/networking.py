"""Printers of the ``networking.k8s.io`` group: NetworkPolicies."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    format_label_selector,
    name_of,
)

_NETWORK_POLICY = "io.k8s.api.networking.v1.NetworkPolicy"


def _print_network_policy(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    return [name_of(obj), format_label_selector(spec.get("podSelector")), age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("networking.k8s.io", "NetworkPolicy"): TablePrinter(
        (
            NAME_COL,
            Col("Pod-Selector", "string", (_NETWORK_POLICY, "spec.podSelector")),
            AGE_COL,
        ),
        _print_network_policy,
    ),
}
