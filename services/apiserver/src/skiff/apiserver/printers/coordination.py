"""Printers of the ``coordination.k8s.io`` group: Leases and their holders."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
)


def _print_lease(obj: dict, now: float) -> Cells:
    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
    return [name_of(obj), holder, age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("coordination.k8s.io", "Lease"): TablePrinter(
        (
            NAME_COL,
            Col("Holder", "string", ("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
            AGE_COL,
        ),
        _print_lease,
    ),
}
