"""Printers of the ``node.k8s.io`` group: RuntimeClasses."""

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


def _print_runtime_class(obj: dict, now: float) -> Cells:
    return [name_of(obj), obj.get("handler", ""), age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("node.k8s.io", "RuntimeClass"): TablePrinter(
        (NAME_COL, Col("Handler", "string", "RuntimeClass Handler"), AGE_COL),
        _print_runtime_class,
    ),
}
