"""Printers of the ``apiregistration.k8s.io`` group: APIServices, as kube-aggregator's
table convertor prints them (``Local`` or the Service, ``True`` or ``False (Reason)``)."""

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


def _print_apiservice(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    service = spec.get("service")
    shown = f"{service.get('namespace') or ''}/{service.get('name') or ''}" if service else "Local"
    available = "Unknown"
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Available":
            status = str(c.get("status") or "")
            available = status
            if status != "True" and c.get("reason"):
                available = f"{status} ({c['reason']})"
    return [name_of(obj), shown, available, age(obj, now)]


PRINTERS = {
    ("apiregistration.k8s.io", "APIService"): TablePrinter(
        (
            NAME_COL,
            Col("Service", "string", "The reference to the service that hosts this API endpoint."),
            Col("Available", "string", "Whether this service is available."),
            AGE_COL,
        ),
        _print_apiservice,
    ),
}
