"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
whatever columns the server sends. The columns and cell formatting here follow
kube-apiserver 1.32 (``pkg/printers/internalversion/printers.go``): like the real
server, every row carries the ``-o wide`` (priority 1) cells too and kubectl drops
them unless asked.

One module per API group holds that group's printers (``PRINTERS``, keyed by
``(group, kind)``); :mod:`.common` holds the Table itself, the column type, the
shared cell formatting and the printers of types kube-apiserver prints by default.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from skiff.api.resources import ResourceInfo
from skiff.apiserver.printers import (
    admissionregistration,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    coordination,
    core,
    discovery,
    events,
    flowcontrol,
    networking,
    node,
    pods,
    policy,
    rbac,
    scheduling,
    storage,
)
from skiff.apiserver.printers.common import (
    DEFAULT_PRINTER,
    FALLBACK_PRINTER,
    INCLUDE_METADATA,
    INCLUDE_NONE,
    INCLUDE_OBJECT,
    TablePrinter,
    columns_of,
    format_label_selector,
    format_labels,
    human_duration,
    render_table,
    translate_timestamp_since,
)

__all__ = [
    "CUSTOM",
    "INCLUDE_METADATA",
    "INCLUDE_NONE",
    "INCLUDE_OBJECT",
    "column_definitions",
    "format_label_selector",
    "format_labels",
    "human_duration",
    "table_for",
    "translate_timestamp_since",
]

_PRINTERS: dict[tuple[str, str], TablePrinter] = {
    **pods.PRINTERS,
    **autoscaling.PRINTERS,
    **flowcontrol.PRINTERS,
    **core.PRINTERS,
    **events.PRINTERS,
    **apps.PRINTERS,
    **batch.PRINTERS,
    **certificates.PRINTERS,
    **discovery.PRINTERS,
    **storage.PRINTERS,
    **rbac.PRINTERS,
    **coordination.PRINTERS,
    **scheduling.PRINTERS,
    **networking.PRINTERS,
    **node.PRINTERS,
    **policy.PRINTERS,
    **admissionregistration.PRINTERS,
    **apiregistration.PRINTERS,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): DEFAULT_PRINTER,
}

CUSTOM: dict[ResourceInfo, TablePrinter] = {}
"""The printers of the custom resources served now, from their printer columns (kept by
:mod:`skiff.apiserver.apiextensions`)."""


def _printer(info: ResourceInfo) -> TablePrinter:
    if info.custom:
        return CUSTOM.get(info, FALLBACK_PRINTER)
    return _PRINTERS.get((info.group, info.kind), FALLBACK_PRINTER)


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of ``info``'s tables (shared dicts: do not mutate)."""
    return columns_of(_printer(info))


def table_for(
    info: ResourceInfo,
    objects: list[dict],
    *,
    include_object: str = INCLUDE_METADATA,
    list_meta: dict | None = None,
    now: datetime | None = None,
    no_headers: bool = False,
) -> dict:
    """Render ``objects`` of type ``info`` as a ``meta.k8s.io/v1`` Table.

    ``include_object`` is the ``includeObject`` query parameter: ``None``, ``Metadata``
    (a PartialObjectMetadata per row, kubectl's default) or ``Object``. ``list_meta``
    supplies ``resourceVersion``/``continue``/``remainingItemCount``. Embedded objects
    and metadata are shared with ``objects``, not copied.
    """
    return render_table(
        _printer(info),
        info,
        objects,
        include_object=include_object,
        list_meta=list_meta,
        now=now,
        no_headers=no_headers,
    )
