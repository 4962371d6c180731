"""Printers of the ``policy`` group: PodDisruptionBudgets."""

from __future__ import annotations

from typing import Any

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

_NOT_SET = "N/A"


def _int_or_string(value: Any) -> str:
    return _NOT_SET if value is None else str(value)


def _print_pdb(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    return [
        name_of(obj),
        _int_or_string(spec.get("minAvailable")),
        _int_or_string(spec.get("maxUnavailable")),
        to_int((obj.get("status") or {}).get("disruptionsAllowed")),
        age(obj, now),
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("policy", "PodDisruptionBudget"): TablePrinter(
        (
            NAME_COL,
            Col("Min Available", "string", "The minimum number of pods that must be available."),
            Col("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
            Col(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE_COL,
        ),
        _print_pdb,
    ),
}
