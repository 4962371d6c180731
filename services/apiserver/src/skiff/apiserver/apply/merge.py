"""The structured merge: SMD's ToFieldSet, Compare, Merge and prune over typed values.

Lists merge by their type (``map`` by key, ``set`` by value, ``atomic`` replaced),
maps key by key; :func:`prune_map` removes what an applier stopped applying and no
one else owns. Values are walked together with their :class:`~.typed.SchemaType`.
"""

from __future__ import annotations

from typing import Any

from skiff.apiserver.apply.fieldset import Node, build_node, is_member, kids_of
from skiff.apiserver.apply.typed import LEAF, MAP, MISSING, SEQ, SchemaType, list_pes, shape_of


def set_of_map(v: dict[str, Any], t: SchemaType) -> Node:
    """SMD ``ToFieldSet`` of a map's contents."""
    out: Node = {}
    for k, cv in v.items():
        ct, declared = t.child(k)
        shape = shape_of(cv, ct)
        if shape is LEAF or not cv:
            if shape is SEQ and declared:
                continue  # an empty granular list owns nothing
            out["f:" + k] = {}
            continue
        kids = set_of_map(cv, ct) if shape is MAP else _set_of_list(cv, ct)
        if kids is None:  # a list we cannot key: atomic
            out["f:" + k] = {}
            continue
        nv = build_node(not declared, kids)
        if nv is not None:
            out["f:" + k] = nv
    return out


def _set_of_list(items: list[Any], t: SchemaType) -> Node | None:
    pes = list_pes(items, t)
    if pes is None:
        return None
    et = t.elem
    out: Node = {}
    for pe, item in zip(pes, items, strict=True):
        if pe in out:
            continue
        if item and shape_of(item, et) is MAP:
            out[pe] = build_node(True, set_of_map(item, et))
        else:
            out[pe] = {}
    return out


def _all_entry(v: Any, t: SchemaType) -> Node:
    """Everything under an added or removed entry, itself included (Compare semantics)."""
    shape = shape_of(v, t)
    if shape is LEAF or not v:
        return {}
    if shape is MAP:
        kids = {"f:" + k: _all_entry(cv, t.child(k)[0]) for k, cv in v.items()}
        return build_node(True, kids) or {}
    pes = list_pes(v, t)
    if pes is None:
        return {}
    et = t.elem
    kids = {}
    for pe, item in zip(pes, v, strict=True):
        if pe not in kids:
            kids[pe] = _all_entry(item, et)
    return build_node(True, kids) or {}


class Diff:
    """SMD ``Comparison``: Added/Modified/Removed field sets, as nodes."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: Node = {}
        self.modified: Node = {}
        self.removed: Node = {}

    def nest(self, pe: str, sub: Diff) -> None:
        if sub.added:
            self.added[pe] = sub.added
        if sub.modified:
            self.modified[pe] = sub.modified
        if sub.removed:
            self.removed[pe] = sub.removed


def compare_map(lhs: dict[str, Any], rhs: dict[str, Any], t: SchemaType, out: Diff) -> None:
    for k, rv in rhs.items():
        lv = lhs.get(k, MISSING)
        if lv is rv:
            continue
        if lv is MISSING:
            out.added["f:" + k] = _all_entry(rv, t.child(k)[0])
        elif lv != rv:
            _compare_entry("f:" + k, lv, rv, t.child(k)[0], out)
    for k, lv in lhs.items():
        if k not in rhs:
            out.removed["f:" + k] = _all_entry(lv, t.child(k)[0])


def _compare_entry(pe: str, lv: Any, rv: Any, t: SchemaType, out: Diff) -> None:
    """Compare an entry present, with different values, on both sides."""
    ls, rs = shape_of(lv, t), shape_of(rv, t)
    # A null container compares like an empty one (SMD reads both as "no items").
    if lv is None and rs is not LEAF:
        ls, lv = rs, type(rv)()
    elif rv is None and ls is not LEAF:
        rs, rv = ls, type(lv)()
    if ls is not rs or ls is LEAF or (not lv and not rv):
        out.modified[pe] = {}
        return
    sub = Diff()
    if ls is MAP:
        compare_map(lv, rv, t, sub)
    elif not _compare_list(lv, rv, t, sub):
        out.modified[pe] = {}
        return
    out.nest(pe, sub)


def _compare_list(lhs: list[Any], rhs: list[Any], t: SchemaType, out: Diff) -> bool:
    lpes, rpes = list_pes(lhs, t), list_pes(rhs, t)
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
        lv = lmap.get(pe, MISSING)
        if lv is MISSING:
            out.added[pe] = _all_entry(rv, et)
        elif lv is not rv and lv != rv:
            _compare_entry(pe, lv, rv, et, out)
    for pe, lv in lmap.items():
        if pe not in rmap:
            out.removed[pe] = _all_entry(lv, et)
    return True


def _merge_value(lv: Any, rv: Any, t: SchemaType) -> Any:
    if lv is MISSING:
        return rv
    shape = shape_of(rv, t)
    if shape is LEAF or shape_of(lv, t) is not shape:
        return rv
    if shape is MAP:
        return merge_map(lv, rv, t)
    return _merge_list(lv, rv, t)


def merge_map(lhs: dict[str, Any], rhs: dict[str, Any], t: SchemaType) -> dict[str, Any]:
    out = dict(lhs)
    for k, rv in rhs.items():
        ct = t.child(k)[0]
        if rv is None:
            lv = out.get(k)
            # Merging "no items" into a non-empty container keeps it (SMD); a null leaf
            # clears the field, as decoding into a typed object would.
            if lv and shape_of(lv, ct) is not LEAF:
                continue
            out.pop(k, None)
            continue
        out[k] = _merge_value(out.get(k, MISSING), rv, ct)
    return out


def _merge_list(lhs: list[Any], rhs: list[Any], t: SchemaType) -> list[Any]:
    """Merge list items by key, ordering the result like SMD's merging walker."""
    lpes, rpes = list_pes(lhs, t), list_pes(rhs, t)
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


def prune_map(v: dict[str, Any], last: Node, managed: Node, t: SchemaType) -> dict[str, Any]:
    """Remove what ``last`` has and ``managed`` lacks (SMD prune + add-back, in one walk).

    Named struct fields count as owned when anything under them is owned
    (SMD's ``EnsureNamedFieldsAreMembers``); map keys and list items only as members.
    """
    out: dict[str, Any] | None = None
    for pe, lsub in last.items():
        if not pe.startswith("f:"):
            continue
        k = pe[2:]
        cv = v.get(k, MISSING)
        if cv is MISSING:
            continue
        ct, declared = t.child(k)
        msub = managed.get(pe)
        if declared:
            drop = msub is None
        else:
            drop = is_member(lsub) and (msub is None or not is_member(msub))
        if drop:
            if out is None:
                out = dict(v)
            del out[k]
            continue
        lkids = kids_of(lsub)
        if not lkids:
            continue
        mkids = kids_of(msub) if msub else {}
        shape = shape_of(cv, ct)
        if shape is MAP:
            nv = prune_map(cv, lkids, mkids, ct)
        elif shape is SEQ:
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


def _prune_list(items: list[Any], last: Node, managed: Node, t: SchemaType) -> list[Any]:
    pes = list_pes(items, t)
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
        if is_member(lsub) and (msub is None or not is_member(msub)):
            changed = True
            continue
        lkids = kids_of(lsub)
        if lkids and shape_of(item, et) is MAP:
            nv = prune_map(item, lkids, kids_of(msub) if msub else {}, et)
            if nv is not item:
                changed = True
                item = nv
        out.append(item)
    return out if changed else items
