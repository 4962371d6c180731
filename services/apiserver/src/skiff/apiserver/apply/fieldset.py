"""Field sets: SMD's ``fieldpath.Set`` in the ``FieldsV1`` JSON form.

A :class:`FieldSet` holds field paths as ``{"f:spec": {"f:replicas": {}}}``: ``f:``
struct fields and map keys, ``k:`` list-map items, ``v:`` set items, ``i:`` indices,
``.`` for "the element itself" when it also has children. The node functions here
(union, difference, intersection, canonical form, path rendering) are what the merge
and the managedFields bookkeeping compute with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

_ENC = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, sort_keys=True)
dumps = _ENC.encode

# ---------------------------------------------------------------------------
# Field sets.
#
# A node maps path-element strings to child nodes.  A child ``{}`` is a member
# with no children; a child holding ``"."`` is a member with children; any other
# child is a non-member with children.  Nodes are never mutated once built, so
# operations share unchanged subtrees freely.
# ---------------------------------------------------------------------------

Node = dict[str, Any]


def is_member(sub: Node) -> bool:
    return not sub or "." in sub


def kids_of(sub: Node) -> Node:
    if "." not in sub:
        return sub
    out = dict(sub)
    del out["."]
    return out


def build_node(member: bool, kids: Node) -> Node | None:
    if not kids:
        return {} if member else None
    if member:
        out: Node = {".": {}}
        out.update(kids)
        return out
    return kids


def node_union(a: Node, b: Node) -> Node:
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
            out[k] = build_node(
                is_member(av) or is_member(bv), node_union(kids_of(av), kids_of(bv))
            )
    return out


def node_difference(a: Node, b: Node) -> Node:
    """SMD ``Difference``: drop b's members from a; children of a b-member stay."""
    if not a or not b:
        return a
    out: Node | None = None
    for k, bv in b.items():
        av = a.get(k)
        if av is None:
            continue
        a_mem = is_member(av)
        member = a_mem and not is_member(bv)
        a_kids = kids_of(av)
        kids = node_difference(a_kids, kids_of(bv))
        if member == a_mem and kids is a_kids:
            continue
        if out is None:
            out = dict(a)
        nv = build_node(member, kids)
        if nv is None:
            del out[k]
        else:
            out[k] = nv
    return a if out is None else out


def node_recursive_difference(a: Node, b: Node) -> Node:
    """SMD ``RecursiveDifference``: a b-member takes its whole subtree out of a."""
    if not a or not b:
        return a
    out: Node | None = None
    for k, bv in b.items():
        av = a.get(k)
        if av is None:
            continue
        if is_member(bv):
            nv = None
        else:
            a_kids = kids_of(av)
            kids = node_recursive_difference(a_kids, bv)
            if kids is a_kids:
                continue
            nv = build_node(is_member(av), kids)
        if out is None:
            out = dict(a)
        if nv is None:
            del out[k]
        else:
            out[k] = nv
    return a if out is None else out


def node_intersection(a: Node, b: Node) -> Node:
    if not a or not b:
        return {}
    if len(b) < len(a):
        a, b = b, a
    out: Node = {}
    for k, av in a.items():
        bv = b.get(k)
        if bv is None:
            continue
        nv = build_node(
            is_member(av) and is_member(bv), node_intersection(kids_of(av), kids_of(bv))
        )
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


def sorted_copy(node: Node) -> Node:
    if not node:
        return {}
    if len(node) == 1:
        ((k, v),) = node.items()
        return {k: sorted_copy(v)}
    return {k: sorted_copy(node[k]) for k in sorted(node, key=_pe_order)}


def _canonical_pe(pe: str) -> str:
    if pe.startswith("f:"):
        return pe
    if pe.startswith("k:"):
        keys = json.loads(pe[2:])
        if not isinstance(keys, dict):
            raise ValueError(f"invalid key path element {pe!r}")
        return "k:" + dumps(keys)
    if pe.startswith("v:"):
        return "v:" + dumps(json.loads(pe[2:]))
    if pe.startswith("i:"):
        return "i:" + str(int(pe[2:]))
    raise ValueError(f"invalid path element {pe!r}")


def canonical_node(node: Any) -> Node:
    """Validate a FieldsV1 tree and normalize its keys (``k:``/``v:`` JSON, ``.``)."""
    if not isinstance(node, dict):
        raise ValueError("FieldsV1 nodes must be JSON objects")
    out: Node = {}
    for pe, sub in node.items():
        if pe == ".":
            continue
        kids = canonical_node(sub)
        member = not sub or "." in sub
        nv = build_node(member, kids)
        if nv is not None:
            key = _canonical_pe(pe)
            out[key] = node_union(out[key], nv) if key in out else nv
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

    def __init__(self, root: Node | None = None) -> None:
        # ``root`` must already be canonical; use :meth:`from_fields_v1` for input.
        self._root: Node = root or {}

    @classmethod
    def from_fields_v1(cls, data: dict[str, Any] | None) -> FieldSet:
        """Parse (and normalize) a ``fieldsV1`` object; ``ValueError`` if malformed."""
        return cls(canonical_node(data or {}))

    @classmethod
    def from_paths(cls, *paths: tuple[str, ...] | list[str]) -> FieldSet:
        """A set holding the given member paths (tuples of path-element strings)."""
        root: Node = {}
        for path in paths:
            node: Node = {}
            for pe in reversed(path):
                node = {_canonical_pe(pe): node}
            root = node_union(root, node)
        return cls(root)

    def to_fields_v1(self) -> dict[str, Any]:
        """The ``fieldsV1`` JSON object (a fresh copy, keys sorted like Kubernetes)."""
        return sorted_copy(self._root)

    def union(self, other: FieldSet) -> FieldSet:
        return FieldSet(node_union(self._root, other._root))

    def difference(self, other: FieldSet) -> FieldSet:
        """Members of self not members of other (children of removed members stay)."""
        return FieldSet(node_difference(self._root, other._root))

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like :meth:`difference`, but a member of other removes its whole subtree."""
        return FieldSet(node_recursive_difference(self._root, other._root))

    def intersection(self, other: FieldSet) -> FieldSet:
        return FieldSet(node_intersection(self._root, other._root))

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
        return hash(dumps(self._root))

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
        return sub is not None and is_member(sub)

    def paths(self) -> Iterator[tuple[str, ...]]:
        """Member paths, each level's members before its children (as SMD iterates)."""
        yield from iter_paths(self._root, ())

    __iter__ = paths

    def __len__(self) -> int:
        return sum(1 for _ in self.paths())

    def __repr__(self) -> str:
        return f"FieldSet({dumps(self._root)})"


def iter_paths(node: Node, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    keys = sorted((k for k in node if k != "."), key=_pe_order)
    for k in keys:
        if is_member(node[k]):
            yield (*prefix, k)
    for k in keys:
        sub = node[k]
        if sub and (len(sub) > 1 or "." not in sub):
            yield from iter_paths(sub, (*prefix, k))


def from_fields_v1(data: dict[str, Any] | None) -> FieldSet:
    """Parse a ``fieldsV1`` object into a :class:`FieldSet`."""
    return FieldSet.from_fields_v1(data)


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    """Serialize a :class:`FieldSet` as a ``fieldsV1`` object."""
    return fields.to_fields_v1()
