"""Schema types for server-side apply: SMD's ``typed`` atoms from the OpenAPI schemas.

Types come from the Kubernetes OpenAPI schemas (:mod:`skiff.apiserver.schema`):
``x-kubernetes-list-type``/``-list-map-keys`` (falling back to the strategic merge
patch markers, as kube-openapi does), ``x-kubernetes-map-type``. Unknown definitions
(custom resources) are "deduced": maps are granular, lists atomic. Also the path
element each list item is known by (``k:`` or ``v:``).
"""

from __future__ import annotations

from typing import Any

from skiff.apiserver import schema as _schema
from skiff.apiserver.apply.fieldset import dumps

# Defaults of list-map key fields (from the OpenAPI ``default``s kubernetes-validate drops);
# SMD uses them when an item omits the key, e.g. a container port without ``protocol``.
_KEY_DEFAULTS: dict[tuple[str | None, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}

MISSING: Any = object()
"""A key absent from a map (``None`` is a value)."""

_SCALAR, _STRUCT, _LIST, _DEDUCED = "scalar", "struct", "list", "deduced"
LEAF, MAP, SEQ = 0, 1, 2  # the shape a value takes under its type


class SchemaType:
    """A compiled OpenAPI schema: what SMD calls an atom (scalar, map/struct, list)."""

    __slots__ = ("_elem", "_elem_schema", "_fields", "_props", "atomic", "item_def", "keys", "kind")

    def __init__(self, kind: str, atomic: bool = False) -> None:
        self.kind = kind
        self.atomic = atomic
        self.keys: tuple[str, ...] = ()
        self.item_def: str | None = None
        self._props: dict[str, Any] = {}
        self._elem_schema: dict[str, Any] | None = None
        self._elem: SchemaType | None = None
        self._fields: dict[str, tuple[SchemaType, bool]] = {}

    def child(self, key: str) -> tuple[SchemaType, bool]:
        """Type of a map entry, and whether it is a declared (struct) field."""
        hit = self._fields.get(key)
        if hit is not None:
            return hit
        ps = self._props.get(key)
        if ps is not None:
            hit = (_compile(ps), True)
            self._fields[key] = hit
            return hit
        return (self.elem, False)

    @property
    def elem(self) -> SchemaType:
        """Type of map values (undeclared keys) or list items."""
        if self._elem is None:
            self._elem = _DEDUCED_T if self._elem_schema is None else _compile(self._elem_schema)
        return self._elem

    @property
    def declared_fields(self) -> dict[str, Any]:
        """The schema's ``properties``: struct fields by name."""
        return self._props


_DEDUCED_T = SchemaType(_DEDUCED)
_DEDUCED_T._elem = _DEDUCED_T
_SCALAR_T = SchemaType(_SCALAR)
_COMPILED: dict[int, tuple[dict[str, Any], SchemaType]] = {}


def _compile(s: dict[str, Any]) -> SchemaType:
    hit = _COMPILED.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1]
    t = _build_type(s)
    _COMPILED[id(s)] = (s, t)  # holding ``s`` keeps its id from being reused
    return t


def _build_type(s: dict[str, Any]) -> SchemaType:
    r = s
    if "$ref" in s:
        try:
            r = _schema.resolve(s)
        except KeyError:
            return _DEDUCED_T
        if any(k.startswith("x-kubernetes-") for k in s):
            r = {**r, **{k: v for k, v in s.items() if k.startswith("x-kubernetes-")}}
    typ = r.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), None)
    atomic_map = r.get("x-kubernetes-map-type") == "atomic"
    if "properties" in r or typ == "object" or "additionalProperties" in r:
        t = SchemaType(_STRUCT, atomic_map)
        t._props = r.get("properties") or {}
        ap = r.get("additionalProperties")
        t._elem_schema = ap if isinstance(ap, dict) else None
        return t
    if typ == "array":
        items = r.get("items")
        items = items if isinstance(items, dict) else {}
        t = SchemaType(_LIST)
        t._elem_schema = items
        t.item_def = _schema.ref_name(items)
        list_type = r.get("x-kubernetes-list-type")
        if list_type is not None:
            keys = r.get("x-kubernetes-list-map-keys") or ()
            t.atomic = list_type == "atomic" or (list_type == "map" and not keys)
            t.keys = tuple(sorted(keys)) if list_type == "map" else ()
        else:
            strategy = str(r.get("x-kubernetes-patch-strategy", "")).split(",")
            merge_key = r.get("x-kubernetes-patch-merge-key")
            t.atomic = "merge" not in strategy
            t.keys = (merge_key,) if merge_key and not t.atomic else ()
        return t
    if typ is None and not any(k in r for k in ("oneOf", "anyOf", "allOf", "format")):
        return _DEDUCED_T
    return _SCALAR_T


_ROOTS: dict[str, SchemaType] = {}
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def root_type(definition: str) -> SchemaType:
    t = _ROOTS.get(definition)
    if t is None:
        defn = _schema.definitions().get(definition)
        if defn is not None:
            t = _compile(defn)
        else:
            # Unknown kinds (custom resources): typed metadata, everything else deduced.
            t = SchemaType(_STRUCT)
            t._props = {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": _schema.REF_PREFIX + _OBJECT_META},
            }
        _ROOTS[definition] = t
    return t


def shape_of(v: Any, t: SchemaType) -> int:
    kind = t.kind
    if kind is _STRUCT:
        return MAP if not t.atomic and isinstance(v, dict) else LEAF
    if kind is _LIST:
        return SEQ if not t.atomic and isinstance(v, list) else LEAF
    if kind is _DEDUCED:
        return MAP if isinstance(v, dict) else LEAF
    return LEAF


def _item_pe(item: Any, t: SchemaType) -> str | None:
    """The path element of a list item (``k:`` or ``v:``), None when it has none."""
    keys = t.keys
    if keys:
        if not isinstance(item, dict):
            return None
        kv: dict[str, Any] = {}
        for k in keys:
            v = item.get(k, MISSING)
            if v is MISSING:
                v = _KEY_DEFAULTS.get((t.item_def, k), MISSING)
                if v is MISSING:
                    continue
            kv[k] = v
        return "k:" + dumps(kv)
    if item is None or isinstance(item, (dict, list)):
        return None
    return "v:" + dumps(item)


def list_pes(items: list[Any], t: SchemaType) -> list[str] | None:
    """Path elements of every item, or None when the list can only be treated as atomic."""
    out = []
    for item in items:
        pe = _item_pe(item, t)
        if pe is None:
            return None
        out.append(pe)
    return out


def api_version_of(definition: str) -> str | None:
    defn = _schema.definitions().get(definition) or {}
    gvks = defn.get("x-kubernetes-group-version-kind") or []
    if len(gvks) != 1:
        return None
    g, v = gvks[0].get("group", ""), gvks[0].get("version", "")
    return f"{g}/{v}" if g else v
