"""Custom resources in the generic store: their strategy (kube's ``customresource``
registry: the version's schema prunes, defaults and validates), the ``scale`` subresource
over the CRD's replica paths, and ``kubectl get``'s columns from
``additionalPrinterColumns``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api import errors
from skiff.api.errors import Cause
from skiff.api.resources import ResourceInfo
from skiff.apiserver import validation

from ..printers.common import (
    NAME_COL,
    OM,
    Col,
    Doc,
    TablePrinter,
    name_of,
    translate_timestamp_since,
)
from ..registry.apps.workloads import ScaleREST, scale_object
from ..registry.strategy import STATUS, Strategy, Subresource
from . import jsonpath
from .served import Column, CustomResource, ScalePaths, Version

Obj = dict[str, Any]

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


class CustomResourceStrategy(Strategy):
    """One served version of a custom resource."""

    allow_unconditional_update = False  # kube: "must be specified for an update"

    def __init__(self, info: ResourceInfo, version: Version, resource: CustomResource) -> None:
        self.version = version
        self.resource = resource
        super().__init__(info)

    def make_subresources(self) -> Iterable[Subresource]:
        subs: list[Subresource] = [STATUS]
        if self.version.scale is not None:
            subs.append(CustomScaleREST(self.version.scale))
        return subs

    def decode_fields(self, obj: Obj) -> tuple[list[Cause], list[str]]:
        meta_errors, meta_unknown = validation.validate_object(obj["metadata"], _OBJECT_META)
        type_errors = [Cause(f"metadata.{c.field}", c.message, c.reason) for c in meta_errors]
        unknown = [f"metadata.{p.lstrip('.')}" for p in meta_unknown]
        if self.version.schema is not None:
            unknown.extend(self.version.schema.prune(obj))
        return type_errors, unknown

    def prepare_for_create(self, obj: Obj) -> None:
        if self.resource.terminating:
            raise errors.method_not_allowed(
                "create not allowed while custom resource definition is terminating"
            )
        super().prepare_for_create(obj)

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        if self.version.schema is not None:
            self.version.schema.default(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        if self.version.schema is None:
            return []
        return self.version.schema.validate(obj)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        if self.version.schema is None:
            return []
        return self.version.schema.validate_update(obj, old)


# -- scale ---------------------------------------------------------------------------


def _get(obj: Obj, path: str) -> Any:
    found = jsonpath.find(obj, jsonpath.parse(path)) if path else []
    return found[0] if found else None


def _set(obj: Obj, path: str, value: Any) -> None:
    steps = jsonpath.parse(path)
    cur = obj
    for _, key in steps[:-1]:
        nxt = cur.get(key)
        if not isinstance(nxt, dict):
            nxt = cur[key] = {}
        cur = nxt
    cur[steps[-1][1]] = value


class CustomScaleREST(ScaleREST):
    """``<custom>/scale``: the autoscaling/v1 Scale read from and written to the CRD's
    ``specReplicasPath``, ``statusReplicasPath`` and ``labelSelectorPath``."""

    def __init__(self, paths: ScalePaths) -> None:
        self.paths = paths

    def scale_of(self, obj: Obj) -> Obj:
        spec_replicas = _get(obj, self.paths.spec_replicas)
        status_replicas = _get(obj, self.paths.status_replicas)
        selector = _get(obj, self.paths.label_selector)
        return scale_object(
            obj["metadata"],
            spec_replicas if isinstance(spec_replicas, int) else 0,
            status_replicas if isinstance(status_replicas, int) else 0,
            selector if isinstance(selector, str) and selector else None,
        )

    def set_replicas(self, obj: Obj, replicas: int) -> None:
        _set(obj, self.paths.spec_replicas, replicas)


# -- kubectl get -------------------------------------------------------------------------


def _cell(column: Column, steps: list[jsonpath.Step] | None, obj: Obj, now: float) -> Any:
    if steps is None:
        return None
    found = jsonpath.find(obj, steps)
    if not found or found[0] is None:
        return None
    value = found[0]
    kind = column.type
    if kind == "string":
        return jsonpath.text(value)
    if kind == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, bool):
        return value
    if kind == "date" and isinstance(value, str):
        return translate_timestamp_since(value, now) if value else "<invalid>"
    return None


def _doc(c: Column) -> Doc:
    if c.description:
        return c.description
    if c.json_path == ".metadata.creationTimestamp":
        return (OM, "creationTimestamp")
    return f"Custom resource definition column (in JSONPath format): {c.json_path}"


def table_printer(version: Version) -> TablePrinter:
    """The Table columns of a custom resource version: Name, then its printer columns."""
    columns = tuple(version.columns)
    paths: list[list[jsonpath.Step] | None] = []
    for c in columns:
        try:
            paths.append(jsonpath.parse(c.json_path))
        except jsonpath.JSONPathError:
            paths.append(None)
    cols = (NAME_COL, *(Col(c.name, c.type, _doc(c), c.priority, c.format) for c in columns))

    def cells(obj: Obj, now: float) -> list[Any]:
        return [name_of(obj), *(_cell(c, p, obj, now) for c, p in zip(columns, paths, strict=True))]

    return TablePrinter(cols, cells)
