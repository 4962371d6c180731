"""Server-side apply and ``metadata.managedFields``.

A Python rendering of ``sigs.k8s.io/structured-merge-diff`` (SMD) and of the
field-manager stack kube-apiserver wraps around it:

* :class:`FieldSet` is a set of field paths, held in the ``FieldsV1`` JSON form
  (``{"f:spec": {"f:replicas": {}}}``): ``f:`` struct fields and map keys,
  ``k:`` list-map items, ``v:`` set items, ``i:`` indices, ``.`` for "the
  element itself" when it also has children.
* :func:`server_side_apply` merges an applied configuration into the live
  object, prunes what the applier stopped applying, reports conflicts (409) and
  records the applier as an ``Apply`` manager.
* :func:`track_update` records ``Update`` ownership for ordinary writes.

Types come from the Kubernetes OpenAPI schemas (:mod:`skiff.apiserver.schema`):
``x-kubernetes-list-type``/``-list-map-keys`` (falling back to the strategic
merge patch markers, as kube-openapi does), ``x-kubernetes-map-type``.
Unknown definitions (custom resources) are "deduced": maps are granular, lists
atomic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError, Cause, Reason, bad_request
from skiff.apiserver import schema as _schema

__all__ = [
    "ANCIENT_CHANGES",
    "APPLY",
    "LAST_APPLIED_ANNOTATION",
    "MAX_UPDATE_MANAGERS",
    "UPDATE",
    "FieldSet",
    "fields_of",
    "format_path",
    "from_fields_v1",
    "server_side_apply",
    "to_fields_v1",
    "track_update",
]

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
MAX_UPDATE_MANAGERS = 10
"""Update entries kept before the oldest are folded into :data:`ANCIENT_CHANGES`."""
ANCIENT_CHANGES = "ancient-changes"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

# Metadata the server owns; never part of anyone's field set, never merged from an apply.
_SYSTEM_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# kube-apiserver's stripMetaManager set, plus the deletion fields the brief excludes.
_STRIP_METADATA = {"f:" + k: {} for k in ("name", "namespace", "clusterName", *_SYSTEM_METADATA)}
_STRIP_TOP = ("f:apiVersion", "f:kind")

# Defaults of list-map key fields (from the OpenAPI ``default``s kubernetes-validate drops);
# SMD uses them when an item omits the key, e.g. a container port without ``protocol``.
_KEY_DEFAULTS: dict[tuple[str | None, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}

_ENC = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)
_dumps = _ENC.encode
_MISSING: Any = object()

# ---------------------------------------------------------------------------
# Field sets.
#
# A node maps path-element strings to child nodes.  A child ``{}`` is a member
# with no children; a child holding ``"."`` is a member with children; any other
# child is a non-member with children.  Nodes are never mutated once built, so
# operations share unchanged subtrees freely.
# ---------------------------------------------------------------------------

_Node = dict[str, Any]


def _mem(sub: _Node) -> bool:
    return not sub or "." in sub


def _kids(sub: _Node) -> _Node:
    if "." not in sub:
        return sub
    out = dict(sub)
    del out["."]
    return out


def _build(member: bool, kids: _Node) -> _Node | None:
    if not kids:
        return {} if member else None
    if member:
        out: _Node = {".": {}}
        out.update(kids)
        return out
    return kids


def _union(a: _Node, b: _Node) -> _Node:
    if not a or a is b:
        return b
    if not b:
        return a
    out = dict(a)
    for k, bv in b.items():
        av = out.get(k)
        if av is None:
            out[k] = bv
        elif av is not bv:
            out[k] = _build(_mem(av) or _mem(bv), _union(_kids(av), _kids(bv)))
    return out


def _difference(a: _Node, b: _Node) -> _Node:
    """SMD ``Difference``: drop b's members from a; children of a b-member stay."""
    if not a or not b:
        return a
    out: _Node | None = None
    for k, bv in b.items():
        av = a.get(k)
        if av is None:
            continue
        a_mem = _mem(av)
        member = a_mem and not _mem(bv)
        a_kids = _kids(av)
        kids = _difference(a_kids, _kids(bv))
        if member == a_mem and kids is a_kids:
            continue
        if out is None:
            out = dict(a)
        nv = _build(member, kids)
        if nv is None:
            del out[k]
        else:
            out[k] = nv
    return a if out is None else out


def _recursive_difference(a: _Node, b: _Node) -> _Node:
    """SMD ``RecursiveDifference``: a b-member takes its whole subtree out of a."""
    if not a or not b:
        return a
    out: _Node | None = None
    for k, bv in b.items():
        av = a.get(k)
        if av is None:
            continue
        if _mem(bv):
            nv = None
        else:
            a_kids = _kids(av)
            kids = _recursive_difference(a_kids, bv)
            if kids is a_kids:
                continue
            nv = _build(_mem(av), kids)
        if out is None:
            out = dict(a)
        if nv is None:
            del out[k]
        else:
            out[k] = nv
    return a if out is None else out


def _intersection(a: _Node, b: _Node) -> _Node:
    if not a or not b:
        return {}
    if len(b) < len(a):
        a, b = b, a
    out: _Node = {}
    for k, av in a.items():
        bv = b.get(k)
        if bv is None:
            continue
        nv = _build(_mem(av) and _mem(bv), _intersection(_kids(av), _kids(bv)))
        if nv is not None:
            out[k] = nv
    return out


def _pe_order(pe: str) -> tuple[int, int, str]:
    kind = pe[:1]
    if pe == ".":
        return (-1, 0, "")
    if kind == "f":
        return (0, 0, pe)
    if kind == "k":
        return (1, 0, pe)
    if kind == "v":
        return (2, 0, pe)
    if kind == "i":
        try:
            return (3, int(pe[2:]), "")
        except ValueError:
            return (3, 0, pe)
    return (4, 0, pe)


def _sorted_copy(node: _Node) -> _Node:
    if not node:
        return {}
    if len(node) == 1:
        ((k, v),) = node.items()
        return {k: _sorted_copy(v)}
    return {k: _sorted_copy(node[k]) for k in sorted(node, key=_pe_order)}


def _canonical_pe(pe: str) -> str:
    if pe.startswith("f:"):
        return pe
    if pe.startswith("k:"):
        keys = json.loads(pe[2:])
        if not isinstance(keys, dict):
            raise ValueError(f"invalid key path element {pe!r}")
        return "k:" + _dumps(keys)
    if pe.startswith("v:"):
        return "v:" + _dumps(json.loads(pe[2:]))
    if pe.startswith("i:"):
        return "i:" + str(int(pe[2:]))
    raise ValueError(f"invalid path element {pe!r}")


def _canonical(node: Any) -> _Node:
    """Validate a FieldsV1 tree and normalize its keys (``k:``/``v:`` JSON, ``.``)."""
    if not isinstance(node, dict):
        raise ValueError("FieldsV1 nodes must be JSON objects")
    out: _Node = {}
    for pe, sub in node.items():
        if pe == ".":
            continue
        kids = _canonical(sub)
        member = not sub or "." in sub
        nv = _build(member, kids)
        if nv is not None:
            key = _canonical_pe(pe)
            out[key] = _union(out[key], nv) if key in out else nv
    return out


def _go_string(v: Any) -> str:
    """``value.ToString`` from SMD, used in human-readable paths."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(_go_string(i) for i in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f"{k}={_go_string(i)}" for k, i in v.items()) + "}"
    return str(v)


def _pe_string(pe: str) -> str:
    if pe.startswith("f:"):
        return "." + pe[2:]
    if pe.startswith("k:"):
        keys = json.loads(pe[2:])
        return "[" + ",".join(f"{k}={_go_string(v)}" for k, v in keys.items()) + "]"
    if pe.startswith("v:"):
        return "[=" + _go_string(json.loads(pe[2:])) + "]"
    if pe.startswith("i:"):
        return "[" + pe[2:] + "]"
    return pe


def format_path(path: tuple[str, ...] | list[str]) -> str:
    """Render a path like Kubernetes does: ``.spec.containers[name="app"].image``."""
    return "".join(_pe_string(pe) for pe in path)


class FieldSet:
    """An immutable set of field paths (SMD ``fieldpath.Set``) in FieldsV1 form."""

    __slots__ = ("_root",)

    def __init__(self, root: _Node | None = None) -> None:
        # ``root`` must already be canonical; use :meth:`from_fields_v1` for input.
        self._root: _Node = root or {}

    @classmethod
    def from_fields_v1(cls, data: dict[str, Any] | None) -> FieldSet:
        """Parse (and normalize) a ``fieldsV1`` object; ``ValueError`` if malformed."""
        return cls(_canonical(data or {}))

    @classmethod
    def from_paths(cls, *paths: tuple[str, ...] | list[str]) -> FieldSet:
        """A set holding the given member paths (tuples of path-element strings)."""
        root: _Node = {}
        for path in paths:
            node: _Node = {}
            for pe in reversed(path):
                node = {_canonical_pe(pe): node}
            root = _union(root, node)
        return cls(root)

    def to_fields_v1(self) -> dict[str, Any]:
        """The ``fieldsV1`` JSON object (a fresh copy, keys sorted like Kubernetes)."""
        return _sorted_copy(self._root)

    def union(self, other: FieldSet) -> FieldSet:
        return FieldSet(_union(self._root, other._root))

    def difference(self, other: FieldSet) -> FieldSet:
        """Members of self not members of other (children of removed members stay)."""
        return FieldSet(_difference(self._root, other._root))

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like :meth:`difference`, but a member of other removes its whole subtree."""
        return FieldSet(_recursive_difference(self._root, other._root))

    def intersection(self, other: FieldSet) -> FieldSet:
        return FieldSet(_intersection(self._root, other._root))

    __or__ = union
    __sub__ = difference
    __and__ = intersection

    def empty(self) -> bool:
        return not self._root

    def __bool__(self) -> bool:
        return bool(self._root)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSet) and self._root == other._root

    def __hash__(self) -> int:
        return hash(_dumps(self._root))

    def __contains__(self, path: object) -> bool:
        if isinstance(path, str):
            path = (path,)
        if not isinstance(path, (tuple, list)) or not path:
            return False
        node = self._root
        for pe in path[:-1]:
            sub = node.get(pe)
            if sub is None:
                return False
            node = sub
        sub = node.get(path[-1])
        return sub is not None and _mem(sub)

    def paths(self) -> Iterator[tuple[str, ...]]:
        """Member paths, each level's members before its children (as SMD iterates)."""
        yield from _iter_paths(self._root, ())

    __iter__ = paths

    def __len__(self) -> int:
        return sum(1 for _ in self.paths())

    def __repr__(self) -> str:
        return f"FieldSet({_dumps(self._root)})"


def _iter_paths(node: _Node, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    keys = sorted((k for k in node if k != "."), key=_pe_order)
    for k in keys:
        if _mem(node[k]):
            yield (*prefix, k)
    for k in keys:
        sub = node[k]
        if sub and (len(sub) > 1 or "." not in sub):
            yield from _iter_paths(sub, (*prefix, k))


def from_fields_v1(data: dict[str, Any] | None) -> FieldSet:
    """Parse a ``fieldsV1`` object into a :class:`FieldSet`."""
    return FieldSet.from_fields_v1(data)


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    """Serialize a :class:`FieldSet` as a ``fieldsV1`` object."""
    return fields.to_fields_v1()


# ---------------------------------------------------------------------------
# Schema types.
# ---------------------------------------------------------------------------

_SCALAR, _STRUCT, _LIST, _DEDUCED = "scalar", "struct", "list", "deduced"
_LEAF, _MAP, _SEQ = 0, 1, 2  # the shape a value takes under its type


class _Type:
    """A compiled OpenAPI schema: what SMD calls an atom (scalar, map/struct, list)."""

    __slots__ = ("_elem", "_elem_schema", "_fields", "_props", "atomic", "item_def", "keys", "kind")

    def __init__(self, kind: str, atomic: bool = False) -> None:
        self.kind = kind
        self.atomic = atomic
        self.keys: tuple[str, ...] = ()
        self.item_def: str | None = None
        self._props: dict[str, Any] = {}
        self._elem_schema: dict[str, Any] | None = None
        self._elem: _Type | None = None
        self._fields: dict[str, tuple[_Type, bool]] = {}

    def child(self, key: str) -> tuple[_Type, bool]:
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
    def elem(self) -> _Type:
        """Type of map values (undeclared keys) or list items."""
        if self._elem is None:
            self._elem = _DEDUCED_T if self._elem_schema is None else _compile(self._elem_schema)
        return self._elem


_DEDUCED_T = _Type(_DEDUCED)
_DEDUCED_T._elem = _DEDUCED_T
_SCALAR_T = _Type(_SCALAR)
_COMPILED: dict[int, tuple[dict[str, Any], _Type]] = {}


def _compile(s: dict[str, Any]) -> _Type:
    hit = _COMPILED.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1]
    t = _build_type(s)
    _COMPILED[id(s)] = (s, t)  # holding ``s`` keeps its id from being reused
    return t


def _build_type(s: dict[str, Any]) -> _Type:
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
        t = _Type(_STRUCT, atomic_map)
        t._props = r.get("properties") or {}
        ap = r.get("additionalProperties")
        t._elem_schema = ap if isinstance(ap, dict) else None
        return t
    if typ == "array":
        items = r.get("items")
        items = items if isinstance(items, dict) else {}
        t = _Type(_LIST)
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


_ROOTS: dict[str, _Type] = {}
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def _root_type(definition: str) -> _Type:
    t = _ROOTS.get(definition)
    if t is None:
        defn = _schema.definitions().get(definition)
        if defn is not None:
            t = _compile(defn)
        else:
            # Unknown kinds (custom resources): typed metadata, everything else deduced.
            t = _Type(_STRUCT)
            t._props = {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"$ref": _schema.REF_PREFIX + _OBJECT_META},
            }
        _ROOTS[definition] = t
    return t


def _shape(v: Any, t: _Type) -> int:
    kind = t.kind
    if kind is _STRUCT:
        return _MAP if not t.atomic and isinstance(v, dict) else _LEAF
    if kind is _LIST:
        return _SEQ if not t.atomic and isinstance(v, list) else _LEAF
    if kind is _DEDUCED:
        return _MAP if isinstance(v, dict) else _LEAF
    return _LEAF


def _item_pe(item: Any, t: _Type) -> str | None:
    """The path element of a list item (``k:`` or ``v:``), None when it has none."""
    keys = t.keys
    if keys:
        if not isinstance(item, dict):
            return None
        kv: dict[str, Any] = {}
        for k in keys:
            v = item.get(k, _MISSING)
            if v is _MISSING:
                v = _KEY_DEFAULTS.get((t.item_def, k), _MISSING)
                if v is _MISSING:
                    continue
            kv[k] = v
        return "k:" + _dumps(kv)
    if item is None or isinstance(item, (dict, list)):
        return None
    return "v:" + _dumps(item)


def _list_pes(items: list[Any], t: _Type) -> list[str] | None:
    """Path elements of every item, or None when the list can only be treated as atomic."""
    out = []
    for item in items:
        pe = _item_pe(item, t)
        if pe is None:
            return None
        out.append(pe)
    return out


# ---------------------------------------------------------------------------
# ToFieldSet, Compare, Merge, prune.
# ---------------------------------------------------------------------------


def _set_of_map(v: dict[str, Any], t: _Type) -> _Node:
    """SMD ``ToFieldSet`` of a map's contents."""
    out: _Node = {}
    for k, cv in v.items():
        ct, declared = t.child(k)
        shape = _shape(cv, ct)
        if shape is _LEAF or not cv:
            if shape is _SEQ and declared:
                continue  # an empty granular list owns nothing
            out["f:" + k] = {}
            continue
        kids = _set_of_map(cv, ct) if shape is _MAP else _set_of_list(cv, ct)
        if kids is None:  # a list we cannot key: atomic
            out["f:" + k] = {}
            continue
        nv = _build(not declared, kids)
        if nv is not None:
            out["f:" + k] = nv
    return out


def _set_of_list(items: list[Any], t: _Type) -> _Node | None:
    pes = _list_pes(items, t)
    if pes is None:
        return None
    et = t.elem
    out: _Node = {}
    for pe, item in zip(pes, items, strict=True):
        if pe in out:
            continue
        if item and _shape(item, et) is _MAP:
            out[pe] = _build(True, _set_of_map(item, et))
        else:
            out[pe] = {}
    return out


def _all_entry(v: Any, t: _Type) -> _Node:
    """Everything under an added or removed entry, itself included (Compare semantics)."""
    shape = _shape(v, t)
    if shape is _LEAF or not v:
        return {}
    if shape is _MAP:
        kids = {"f:" + k: _all_entry(cv, t.child(k)[0]) for k, cv in v.items()}
        return _build(True, kids) or {}
    pes = _list_pes(v, t)
    if pes is None:
        return {}
    et = t.elem
    kids = {}
    for pe, item in zip(pes, v, strict=True):
        if pe not in kids:
            kids[pe] = _all_entry(item, et)
    return _build(True, kids) or {}


class _Diff:
    """SMD ``Comparison``: Added/Modified/Removed field sets, as nodes."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: _Node = {}
        self.modified: _Node = {}
        self.removed: _Node = {}

    def nest(self, pe: str, sub: _Diff) -> None:
        if sub.added:
            self.added[pe] = sub.added
        if sub.modified:
            self.modified[pe] = sub.modified
        if sub.removed:
            self.removed[pe] = sub.removed


def _compare_map(lhs: dict[str, Any], rhs: dict[str, Any], t: _Type, out: _Diff) -> None:
    for k, rv in rhs.items():
        lv = lhs.get(k, _MISSING)
        if lv is rv:
            continue
        if lv is _MISSING:
            out.added["f:" + k] = _all_entry(rv, t.child(k)[0])
        elif lv != rv:
            _compare_entry("f:" + k, lv, rv, t.child(k)[0], out)
    for k, lv in lhs.items():
        if k not in rhs:
            out.removed["f:" + k] = _all_entry(lv, t.child(k)[0])


def _compare_entry(pe: str, lv: Any, rv: Any, t: _Type, out: _Diff) -> None:
    """Compare an entry present, with different values, on both sides."""
    ls, rs = _shape(lv, t), _shape(rv, t)
    # A null container compares like an empty one (SMD reads both as "no items").
    if lv is None and rs is not _LEAF:
        ls, lv = rs, type(rv)()
    elif rv is None and ls is not _LEAF:
        rs, rv = ls, type(lv)()
    if ls is not rs or ls is _LEAF or (not lv and not rv):
        out.modified[pe] = {}
        return
    sub = _Diff()
    if ls is _MAP:
        _compare_map(lv, rv, t, sub)
    elif not _compare_list(lv, rv, t, sub):
        out.modified[pe] = {}
        return
    out.nest(pe, sub)


def _compare_list(lhs: list[Any], rhs: list[Any], t: _Type, out: _Diff) -> bool:
    lpes, rpes = _list_pes(lhs, t), _list_pes(rhs, t)
    if lpes is None or rpes is None:
        return False
    lmap: dict[str, Any] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        lmap.setdefault(pe, item)
    rmap: dict[str, Any] = {}
    for pe, item in zip(rpes, rhs, strict=True):
        rmap.setdefault(pe, item)
    et = t.elem
    for pe, rv in rmap.items():
        lv = lmap.get(pe, _MISSING)
        if lv is _MISSING:
            out.added[pe] = _all_entry(rv, et)
        elif lv is not rv and lv != rv:
            _compare_entry(pe, lv, rv, et, out)
    for pe, lv in lmap.items():
        if pe not in rmap:
            out.removed[pe] = _all_entry(lv, et)
    return True


def _merge_value(lv: Any, rv: Any, t: _Type) -> Any:
    if lv is _MISSING:
        return rv
    shape = _shape(rv, t)
    if shape is _LEAF or _shape(lv, t) is not shape:
        return rv
    if shape is _MAP:
        return _merge_map(lv, rv, t)
    return _merge_list(lv, rv, t)


def _merge_map(lhs: dict[str, Any], rhs: dict[str, Any], t: _Type) -> dict[str, Any]:
    out = dict(lhs)
    for k, rv in rhs.items():
        ct = t.child(k)[0]
        if rv is None:
            lv = out.get(k)
            # Merging "no items" into a non-empty container keeps it (SMD); a null leaf
            # clears the field, as decoding into a typed object would.
            if lv and _shape(lv, ct) is not _LEAF:
                continue
            out.pop(k, None)
            continue
        out[k] = _merge_value(out.get(k, _MISSING), rv, ct)
    return out


def _merge_list(lhs: list[Any], rhs: list[Any], t: _Type) -> list[Any]:
    """Merge list items by key, ordering the result like SMD's merging walker."""
    lpes, rpes = _list_pes(lhs, t), _list_pes(rhs, t)
    if lpes is None or rpes is None:
        return rhs
    et = t.elem
    lmap: dict[str, list[Any]] = {}
    for pe, item in zip(lpes, lhs, strict=True):
        lmap.setdefault(pe, []).append(item)
    rmap: dict[str, Any] = {}
    for pe, item in zip(rpes, rhs, strict=True):
        rmap.setdefault(pe, item)
    lorder, rorder = list(lmap), list(rmap)
    shared = [pe for pe in rorder if pe in lmap]
    shared_i = 0
    out: list[Any] = []
    emitted: set[str] = set()

    def merged(pe: str) -> Any:
        emitted.add(pe)
        items = lmap.get(pe)
        if items is None or len(items) > 1:  # applying over duplicates replaces them
            return rmap[pe]
        return _merge_value(items[0], rmap[pe], et)

    li = ri = 0
    while li < len(lorder) or ri < len(rorder):
        next_shared = shared[shared_i] if shared_i < len(shared) else None
        if li < len(lorder) and ri < len(rorder):
            pe = lorder[li]
            if pe == rorder[ri]:
                out.append(merged(pe))
                li += 1
                ri += 1
                shared_i += 1
                continue
            if pe in rmap and next_shared is not None and next_shared != pe:
                li += 1
                continue
        if li < len(lorder):
            pe = lorder[li]
            if pe not in rmap:
                out.extend(lmap[pe])
                li += 1
                continue
            if pe in emitted:
                li += 1
                continue
        if ri < len(rorder):
            pe = rorder[ri]
            out.append(merged(pe))
            ri += 1
            if next_shared == pe:
                shared_i += 1
        elif li < len(lorder):
            li += 1  # a shared item already emitted from the right; never loop forever
    return out


def _prune_map(v: dict[str, Any], last: _Node, managed: _Node, t: _Type) -> dict[str, Any]:
    """Remove what ``last`` has and ``managed`` lacks (SMD prune + add-back, in one walk).

    Named struct fields count as owned when anything under them is owned
    (SMD's ``EnsureNamedFieldsAreMembers``); map keys and list items only as members.
    """
    out: dict[str, Any] | None = None
    for pe, lsub in last.items():
        if not pe.startswith("f:"):
            continue
        k = pe[2:]
        cv = v.get(k, _MISSING)
        if cv is _MISSING:
            continue
        ct, declared = t.child(k)
        msub = managed.get(pe)
        if declared:
            drop = msub is None
        else:
            drop = _mem(lsub) and (msub is None or not _mem(msub))
        if drop:
            if out is None:
                out = dict(v)
            del out[k]
            continue
        lkids = _kids(lsub)
        if not lkids:
            continue
        mkids = _kids(msub) if msub else {}
        shape = _shape(cv, ct)
        if shape is _MAP:
            nv = _prune_map(cv, lkids, mkids, ct)
        elif shape is _SEQ:
            nv = _prune_list(cv, lkids, mkids, ct)
        else:
            continue
        if nv is cv:
            continue
        if out is None:
            out = dict(v)
        if nv:
            out[k] = nv
        else:
            del out[k]  # emptied containers become null, i.e. unset
    return v if out is None else out


def _prune_list(items: list[Any], last: _Node, managed: _Node, t: _Type) -> list[Any]:
    pes = _list_pes(items, t)
    if pes is None:
        return items
    et = t.elem
    out: list[Any] = []
    changed = False
    for pe, item in zip(pes, items, strict=True):
        lsub = last.get(pe)
        if lsub is None:
            out.append(item)
            continue
        msub = managed.get(pe)
        if _mem(lsub) and (msub is None or not _mem(msub)):
            changed = True
            continue
        lkids = _kids(lsub)
        if lkids and _shape(item, et) is _MAP:
            nv = _prune_map(item, lkids, _kids(msub) if msub else {}, et)
            if nv is not item:
                changed = True
                item = nv
        out.append(item)
    return out if changed else items


# ---------------------------------------------------------------------------
# Public helpers.
# ---------------------------------------------------------------------------


def _strip(root: _Node) -> _Node:
    """Drop the fields nobody owns (apiVersion, kind, name, system metadata)."""
    if "f:apiVersion" in root or "f:kind" in root or "f:metadata" in root:
        root = dict(root)
        for k in _STRIP_TOP:
            root.pop(k, None)
        meta = root.get("f:metadata")
        if meta is not None:
            kids = _recursive_difference(_kids(meta), _STRIP_METADATA)
            if kids:
                root["f:metadata"] = kids
            else:
                del root["f:metadata"]
    return root


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = dict(meta)
        del meta["managedFields"]
        obj = dict(obj)
        obj["metadata"] = meta
    return obj


def fields_of(obj: dict[str, Any], definition: str) -> FieldSet:
    """The fields an applier of ``obj`` owns (SMD ``ToFieldSet``, less never-owned fields)."""
    t = _root_type(definition)
    return FieldSet(_strip(_set_of_map(_without_managed_fields(obj), t)))


_STATUS_SCOPE = frozenset(("apiVersion", "kind", "metadata", "status"))


def _scope(t: _Type, subresource: str, status_subresource: bool | None) -> Callable[[str], bool]:
    """Which top-level fields a request on ``subresource`` may change and own.

    With a status subresource, the main resource's managers never own ``status`` and
    ``/status`` managers own nothing but ``status`` (and metadata), like the reset fields
    of kube-apiserver's strategies.
    """
    if status_subresource is None:
        status_subresource = "status" in t._props
    if not status_subresource or subresource not in ("", "status"):
        return _everything
    if subresource == "":
        return _not_status
    return _STATUS_SCOPE.__contains__


def _everything(key: str) -> bool:
    return True


def _not_status(key: str) -> bool:
    return key != "status"


def _in_scope(node: _Node, scope: Callable[[str], bool]) -> _Node:
    if scope is _everything or all(scope(k[2:]) for k in node):
        return node
    return {k: v for k, v in node.items() if scope(k[2:])}


# ---------------------------------------------------------------------------
# managedFields entries.
# ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: _Node
    raw: dict[str, Any] | None = None  # reused verbatim while the entry is unchanged

    @property
    def ident(self) -> tuple[str, str, str, str]:
        # Apply entries are one per manager whatever the version; Update ones per version.
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def label(self) -> str:
        """The manager as conflict messages name it (``printManager``)."""
        out = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            out += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            out += f" using {self.api_version}"
        return out

    def set_fields(self, fields: _Node) -> None:
        if fields is not self.fields:
            self.fields = fields
            self.raw = None

    def encode(self) -> dict[str, Any]:
        if self.raw is not None:
            return _copy(self.raw)
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        out["fieldsV1"] = _sorted_copy(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _decode(managed_fields: Any, canonical: bool) -> list[_Entry] | None:
    """Parse ``metadata.managedFields``; None when it is malformed."""
    if not managed_fields:
        return []
    if not isinstance(managed_fields, list):
        return None
    out: dict[tuple[str, str, str, str], _Entry] = {}
    try:
        for raw in managed_fields:
            if not isinstance(raw, dict):
                return None
            fields = raw.get("fieldsV1") or {}
            if raw.get("fieldsType", FIELDS_V1) != FIELDS_V1 or not isinstance(fields, dict):
                return None
            if canonical:
                fields = _canonical(fields)
            op = raw.get("operation")
            if op not in (APPLY, UPDATE):
                return None
            e = _Entry(
                manager=str(raw.get("manager") or ""),
                operation=op,
                api_version=str(raw.get("apiVersion") or ""),
                subresource=str(raw.get("subresource") or ""),
                time=raw.get("time"),
                fields=fields,
                raw=None if canonical else raw,
            )
            prev = out.get(e.ident)
            if prev is not None:
                prev.set_fields(_union(prev.fields, e.fields))
            else:
                out[e.ident] = e
    except (ValueError, TypeError):
        return None
    return list(out.values())


def _entry_order(e: _Entry) -> tuple[str, str, str, str, str]:
    return (e.operation, str(e.time or ""), e.manager, e.api_version, e.subresource)


def _cap_update_managers(entries: list[_Entry]) -> list[_Entry]:
    """Fold the oldest Update entries into per-version ``ancient-changes`` buckets."""
    updaters = [e for e in entries if e.operation == UPDATE]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return entries
    updaters.sort(key=lambda e: (str(e.time or ""), e.ident))
    by_ident = {e.ident: e for e in entries}
    first_of_version: dict[str, _Entry] = {}
    length = len(updaters)
    for e in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        first = first_of_version.get(e.api_version)
        if first is None:
            first_of_version[e.api_version] = e
            continue
        bucket_ident = (ANCIENT_CHANGES, UPDATE, e.api_version, "")
        if e.ident == bucket_ident:
            continue
        bucket = by_ident.get(bucket_ident)
        if bucket is None:
            # The first entry seen at this version becomes the bucket.
            del by_ident[first.ident]
            bucket = _Entry(ANCIENT_CHANGES, UPDATE, e.api_version, "", first.time, first.fields)
            by_ident[bucket_ident] = bucket
        bucket.set_fields(_union(e.fields, bucket.fields))
        bucket.time = e.time
        bucket.raw = None
        del by_ident[e.ident]
        length -= 1
    return list(by_ident.values())


def _encode(entries: list[_Entry]) -> list[dict[str, Any]]:
    entries = _cap_update_managers([e for e in entries if e.fields])
    return [e.encode() for e in sorted(entries, key=_entry_order)]


def _set_managed_fields(obj: dict[str, Any], entries: list[_Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = _encode(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def _api_version_of(definition: str) -> str | None:
    defn = _schema.definitions().get(definition) or {}
    gvks = defn.get("x-kubernetes-group-version-kind") or []
    if len(gvks) != 1:
        return None
    g, v = gvks[0].get("group", ""), gvks[0].get("version", "")
    return f"{g}/{v}" if g else v


# ---------------------------------------------------------------------------
# Apply and Update.
# ---------------------------------------------------------------------------


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _copy(i) for k, i in v.items()}
    if isinstance(v, list):
        return [_copy(i) for i in v]
    return v


def _conflict_error(conflicts: list[tuple[_Entry, _Node]]) -> ApiError:
    found: list[tuple[str, str]] = []
    for e, node in sorted(conflicts, key=lambda c: c[0].ident):
        label = e.label()
        found.extend((label, format_path(p)) for p in _iter_paths(node, ()))
    causes = [
        Cause(field=path, message=f"conflict with {label}", reason="FieldManagerConflict")
        for label, path in found
    ]
    if len(found) == 1:
        label, path = found[0]
        message = f"Apply failed with 1 conflict: conflict with {label}: {path}"
    else:
        lines: list[str] = []
        last_label = None
        for label, path in found:
            if label != last_label:
                lines.append(f"conflicts with {label}:")
                last_label = label
            lines.append(f"- {path}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return ApiError(409, Reason.CONFLICT, message, causes=causes)


def _last_applied(applied: dict[str, Any]) -> str:
    """The ``last-applied-configuration`` annotation value for an applied config."""
    obj = _copy(applied)
    annotations = obj.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
        if not annotations:
            del obj["metadata"]["annotations"]
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    # Go's encoding/json escapes these; kubectl diffs the annotation byte for byte.
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text + "\n"


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    definition: str,
    now: str,
    subresource: str = "",
    status_subresource: bool | None = None,
) -> dict[str, Any]:
    """Apply ``applied`` to ``live`` (``None`` to create) as field manager ``manager``.

    Returns the new object with ``metadata.managedFields`` updated; inputs are not
    modified.  Raises a 409 ``ApiError`` listing every conflicting field unless
    ``force`` is set, and a 400 for a malformed configuration.  ``status_subresource``
    says whether ``status`` is only writable through ``/status`` (default: whether
    the schema has a ``status`` field).
    """
    if not isinstance(applied, dict) or not isinstance(applied.get("metadata"), dict):
        raise bad_request("the applied configuration must be an object with metadata")
    if applied["metadata"].get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    expected = _api_version_of(definition)
    patch_version = applied.get("apiVersion")
    if expected and patch_version and patch_version != expected:
        raise bad_request(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {patch_version}, expected: {expected}"
        )
    api_version = expected or str(patch_version or (live or {}).get("apiVersion") or "")
    t = _root_type(definition)
    scope = _scope(t, subresource, status_subresource)

    # The configuration, minus what this request cannot set.
    config = {k: v for k, v in applied.items() if scope(k)}
    config["metadata"] = {k: v for k, v in applied["metadata"].items() if k not in _SYSTEM_METADATA}
    config = _copy(config)

    if live is None:
        base: dict[str, Any] = {}
        entries: list[_Entry] = []
    else:
        base = _copy(_without_managed_fields(live))
        entries = _decode((live.get("metadata") or {}).get("managedFields"), False) or []

    ident = (manager, APPLY, "", subresource)
    mine = next((e for e in entries if e.ident == ident), None)
    others = [e for e in entries if e is not mine]

    merged = _merge_map(base, config, t)
    applied_set = _set_of_map(config, t)  # unstripped: name & co. keep metadata alive in prune
    if mine is not None and mine.fields:
        managed: _Node = applied_set
        for e in others:
            managed = _union(managed, e.fields)
        merged = _prune_map(merged, mine.fields, managed, t)

    diff = _Diff()
    _compare_map(base, merged, t, diff)
    changed = _in_scope(_union(diff.added, diff.modified), scope)
    removed = _in_scope(diff.removed, scope)

    conflicts = []
    if changed:
        for e in others:
            hit = _intersection(e.fields, changed)
            if hit:
                conflicts.append((e, hit))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for e, hit in conflicts:
        e.set_fields(_difference(e.fields, hit))
    if removed:
        for e in others:
            e.set_fields(_difference(e.fields, removed))
    others = [e for e in others if e.fields]

    new_fields = _strip(applied_set)
    if new_fields:
        if mine is None:
            mine = _Entry(manager, APPLY, api_version, subresource, now, new_fields)
        else:
            mine.set_fields(new_fields)
            if mine.api_version != api_version:
                mine.api_version = api_version
                mine.raw = None
            if changed or removed or not mine.time:
                mine.time = now
                mine.raw = None
        others.append(mine)

    if manager == "kubectl":
        annotations = (merged.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations:
            annotations[LAST_APPLIED_ANNOTATION] = _last_applied(applied)

    _set_managed_fields(merged, others)
    return merged


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    definition: str,
    now: str,
    subresource: str = "",
    status_subresource: bool | None = None,
) -> None:
    """Record an ordinary create/update/patch by ``manager`` in ``new``'s managedFields.

    Fields that differ between ``old`` and ``new`` (everything on create) move to
    ``manager``'s ``Update`` entry; fields that disappeared leave every entry.  A
    request may replace managedFields itself (``[]`` or ``[{}]`` clears them);
    subresource requests always start from ``old``'s.  ``status_subresource`` is as
    for :func:`server_side_apply`.
    """
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    old_meta = (old or {}).get("metadata")
    old_mf = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    req_mf = meta.get("managedFields")

    entries: list[_Entry] | None = None
    if not subresource and req_mf is not None and req_mf is not old_mf:
        if req_mf == [] or req_mf == [{}]:
            entries = []
        elif req_mf != old_mf:
            entries = _decode(req_mf, True)
            if not entries:
                entries = None
    if entries is None:
        entries = _decode(old_mf, False) or []

    t = _root_type(definition)
    scope = _scope(t, subresource, status_subresource)
    lhs: dict[str, Any]
    if old is None:
        # Go decodes value structs (metadata, spec, status) as present-but-empty.
        lhs = {k: {} for k in ("metadata", "spec", "status") if k in t._props}
    else:
        lhs = _without_managed_fields(old)
    diff = _Diff()
    _compare_map(lhs, _without_managed_fields(new), t, diff)
    changed = _in_scope(_union(diff.added, diff.modified), scope)
    removed = _in_scope(diff.removed, scope)

    api_version = str(new.get("apiVersion") or _api_version_of(definition) or "")
    ident = (manager, UPDATE, api_version, subresource)
    if changed or removed:
        for e in entries:
            fields = e.fields
            if changed:
                fields = _difference(fields, changed)
            if removed:
                fields = _difference(fields, removed)
            e.set_fields(fields)
    owned = _strip(changed)
    if owned:
        mine = next((e for e in entries if e.ident == ident), None)
        if mine is None:
            entries.append(_Entry(manager, UPDATE, api_version, subresource, now, owned))
        else:
            mine.set_fields(_union(mine.fields, owned))
            mine.time = now
            mine.raw = None
    _set_managed_fields(new, entries)
