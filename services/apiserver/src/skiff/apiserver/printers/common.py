"""What every Table printer shares: columns, cell formatting and building the Table.

Age and duration formatting (Go's ``duration.HumanDuration``), the label and selector
strings of ``kubectl get``, the :class:`Col`/:class:`TablePrinter` definitions each
API group's module fills in, the default printers for types kube-apiserver has no
printer for, and :func:`render_table`, which turns objects into a ``meta.k8s.io/v1``
Table with a given printer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skiff.api import errors
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import parse_time, rfc3339
from skiff.apiserver import schema

INCLUDE_NONE = "None"
INCLUDE_METADATA = "Metadata"
INCLUDE_OBJECT = "Object"

NONE = "<none>"
UNKNOWN = "<unknown>"
UNSET = "<unset>"

Cells = list[Any]
Printer = Callable[[dict, float], Cells]

# ---------------------------------------------------------------------------
# durations and timestamps


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration``: "5s", "2m10s", "3h", "4d", "2y45d"..."""
    secs = int(seconds)  # truncates toward zero, as Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


_parse_ts = functools.lru_cache(maxsize=8192)(parse_time)


def timestamp(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp; ``None`` when unset."""
    if not value or not isinstance(value, str):
        return None
    return _parse_ts(value)


def translate_timestamp_since(value: str | None, now: float) -> str:
    """Age of an RFC 3339 timestamp relative to ``now`` (epoch seconds), ``<unknown>`` if unset."""
    ts = timestamp(value)
    if ts is None:
        return UNKNOWN
    return human_duration(now - ts)


def age(obj: dict, now: float) -> str:
    """The Age cell: time since ``metadata.creationTimestamp``."""
    return translate_timestamp_since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def name_of(obj: dict) -> str:
    """The Name cell."""
    return (obj.get("metadata") or {}).get("name", "")


# ---------------------------------------------------------------------------
# formatting helpers shared by several printers


def format_labels(labels: dict[str, str] | None) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: dict | None) -> str | None:
    """``LabelSelectorAsSelector(...).String()``; ``None`` when the selector is invalid."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator")
        values = sorted(expr.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(values)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return None
    reqs.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in reqs)


def load_balancer_addresses(load_balancer: dict | None) -> list[str]:
    """The IPs (or else hostnames) of a load balancer's ingress points, sorted and
    deduplicated (Services' EXTERNAL-IP, Ingresses' ADDRESS)."""
    found = set()
    for ing in (load_balancer or {}).get("ingress") or ():
        if ing.get("ip"):
            found.add(ing["ip"])
        elif ing.get("hostname"):
            found.add(ing["hostname"])
    return sorted(found)


def format_label_selector(selector: dict | None) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    s = selector_string(selector)
    if s is None:
        return "<error>"
    return s or NONE


def containers_cells(pod_spec: dict | None) -> tuple[str, str]:
    """The Containers and Images cells of a pod template."""
    containers = (pod_spec or {}).get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def template_spec(spec: dict) -> dict:
    """``spec.template.spec`` of a workload."""
    return (spec.get("template") or {}).get("spec") or {}


def replicas_row(obj: dict, now: float, selector: str) -> Cells:
    """ReplicaSet and ReplicationController rows, which differ only in the selector's form."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = containers_cells(template_spec(spec))
    return [
        name_of(obj),
        to_int(spec.get("replicas", 1)),
        to_int(status.get("replicas")),
        to_int(status.get("readyReplicas")),
        age(obj, now),
        names,
        images,
        selector,
    ]


def to_int(value: Any) -> int:
    """An integer field, 0 when unset or not a number."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def has_condition(conditions: list[dict], ctype: str) -> bool:
    """Whether the first condition of type ``ctype`` is ``True``."""
    for c in conditions:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return False


# ---------------------------------------------------------------------------
# column definitions

OM = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
CORE = "io.k8s.api.core.v1."

Doc = str | tuple[str, str]
"""A literal description, or ``(definition, field)`` whose schema description is used."""


@dataclass(frozen=True, slots=True)
class Col:
    """One column definition: name, OpenAPI type, description, priority, format."""

    name: str
    type: str
    doc: Doc
    priority: int = 0
    format: str = ""


def _describe(doc: Doc) -> str:
    if isinstance(doc, str):
        return doc
    definition, prop = doc
    try:
        props = schema.definitions().get(definition, {}).get("properties") or {}
    except (OSError, ValueError):
        return ""
    return (props.get(prop) or {}).get("description", "")


NAME_COL = Col("Name", "string", (OM, "name"), format="name")
AGE_COL = Col("Age", "string", (OM, "creationTimestamp"))
CONTAINERS_COL = Col("Containers", "string", "Names of each container in the template.", 1)
IMAGES_COL = Col("Images", "string", "Images referenced by each container in the template.", 1)
READY_PODS_COL = Col("Ready", "string", "Number of the pod with ready state")


@dataclass(frozen=True, slots=True)
class TablePrinter:
    """A type's columns, its row cells, and (for pods) its row conditions."""

    columns: tuple[Col, ...]
    cells: Printer
    conditions: Callable[[dict], list[dict] | None] | None = None
    order: Callable[[list[dict]], list[dict]] | None = None
    """The order of a list's rows, where kube's list printer sorts them (FlowSchemas)."""


# ---------------------------------------------------------------------------
# printers for types kube-apiserver has no printer for


def _created_at(obj: dict) -> str:
    ts = timestamp((obj.get("metadata") or {}).get("creationTimestamp"))
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return rfc3339(int(ts))


def _print_default(obj: dict, now: float) -> Cells:
    return [name_of(obj), _created_at(obj)]


def _print_name_age(obj: dict, now: float) -> Cells:
    return [name_of(obj), age(obj, now)]


DEFAULT_PRINTER = TablePrinter(
    (NAME_COL, Col("Created At", "date", (OM, "creationTimestamp"))), _print_default
)
"""rest.DefaultTableConvertor's columns, for built-in types without a printer."""

FALLBACK_PRINTER = TablePrinter(
    (NAME_COL, Col("Age", "date", (OM, "creationTimestamp"))), _print_name_age
)
"""Anything else (custom resources) prints like a CRD without additionalPrinterColumns."""


# ---------------------------------------------------------------------------
# the Table


@functools.cache
def _column_definitions(columns: tuple[Col, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": _describe(c.doc),
            "priority": c.priority,
        }
        for c in columns
    )


def columns_of(printer: TablePrinter) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of ``printer``'s tables (shared dicts: do not mutate)."""
    return list(_column_definitions(printer.columns))


def render_table(
    printer: TablePrinter,
    info: ResourceInfo,
    objects: list[dict],
    *,
    include_object: str = INCLUDE_METADATA,
    list_meta: dict | None = None,
    now: datetime | None = None,
    no_headers: bool = False,
) -> dict:
    """Render ``objects`` of type ``info`` with ``printer``; see ``printers.table_for``."""
    include_object = include_object or INCLUDE_METADATA
    if include_object not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')
    print_cells = printer.cells
    print_conditions = printer.conditions
    now_ts = (now or datetime.now(UTC)).timestamp()
    kind, api_version = info.kind, info.api_version

    rows = []
    if printer.order is not None:
        objects = printer.order(objects)
    for obj in objects:
        row: dict[str, Any] = {"cells": print_cells(obj, now_ts)}
        if print_conditions is not None:
            conditions = print_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        if include_object == INCLUDE_METADATA:
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        elif include_object == INCLUDE_OBJECT:
            if "kind" not in obj or "apiVersion" not in obj:
                obj = {"kind": kind, "apiVersion": api_version, **obj}
            row["object"] = obj
        rows.append(row)

    metadata: dict[str, Any] = {}
    if list_meta:
        for key in ("resourceVersion", "continue"):
            if list_meta.get(key):
                metadata[key] = list_meta[key]
        if list_meta.get("remainingItemCount") is not None:
            metadata["remainingItemCount"] = list_meta["remainingItemCount"]

    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": None if no_headers else columns_of(printer),
        "rows": rows,
    }
