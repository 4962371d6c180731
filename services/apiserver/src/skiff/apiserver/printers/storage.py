"""Printers of the ``storage.k8s.io`` group: StorageClasses (``(default)`` marked)."""

from __future__ import annotations

from skiff.api.resources import is_default_storage_class
from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
)

_STORAGE_CLASS = "io.k8s.api.storage.v1.StorageClass"


def _print_storage_class(obj: dict, now: float) -> Cells:
    name = name_of(obj)
    if is_default_storage_class(obj):
        name += " (default)"
    return [
        name,
        obj.get("provisioner") or "",
        obj.get("reclaimPolicy") or "",
        obj.get("volumeBindingMode") or "",
        bool(obj.get("allowVolumeExpansion")),
        age(obj, now),
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("storage.k8s.io", "StorageClass"): TablePrinter(
        (
            NAME_COL,
            Col("Provisioner", "string", (_STORAGE_CLASS, "provisioner")),
            Col("ReclaimPolicy", "string", (_STORAGE_CLASS, "reclaimPolicy")),
            Col("VolumeBindingMode", "string", (_STORAGE_CLASS, "volumeBindingMode")),
            Col("AllowVolumeExpansion", "string", (_STORAGE_CLASS, "allowVolumeExpansion")),
            AGE_COL,
        ),
        _print_storage_class,
    ),
}
