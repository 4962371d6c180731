"""Printers of the ``scheduling.k8s.io`` group: PriorityClasses."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
    to_int,
)

_PRIORITY_CLASS = "io.k8s.api.scheduling.v1.PriorityClass"


def _print_priority_class(obj: dict, now: float) -> Cells:
    return [
        name_of(obj),
        to_int(obj.get("value")),
        bool(obj.get("globalDefault")),
        age(obj, now),
        obj.get("preemptionPolicy") or "",
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("scheduling.k8s.io", "PriorityClass"): TablePrinter(
        (
            NAME_COL,
            Col("Value", "integer", (_PRIORITY_CLASS, "value")),
            Col("Global-Default", "boolean", (_PRIORITY_CLASS, "globalDefault")),
            AGE_COL,
            Col("PreemptionPolicy", "string", (_PRIORITY_CLASS, "preemptionPolicy")),
        ),
        _print_priority_class,
    ),
}
