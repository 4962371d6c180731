"""Strategic merge patch, as ``k8s.io/apimachinery/pkg/util/strategicpatch`` (patch format
v2, as kubectl sends it), with list strategies and merge keys from the OpenAPI definitions
in :mod:`skiff.apiserver.schema`. None of the functions mutate their arguments.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from skiff.api import errors
from skiff.api.errors import ApiError, Reason
from skiff.api.patch import copy_json, json_type, unprocessable
from skiff.apiserver import schema

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"

_REJECTED = "the server rejected our request due to an error in our request"


@dataclass(frozen=True, slots=True)
class PatchMeta:
    """Patch metadata of one field, from the OpenAPI ``x-kubernetes-patch-*`` extensions."""

    strategies: tuple[str, ...] = ()
    merge_key: str = ""
    schema: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The field's resolved schema, ``None`` when unknown (free-form or not in the schema)."""

    @property
    def strategy(self) -> str:
        """``merge``, ``replace`` or ``""``: the strategy other than ``retainKeys``."""
        for s in self.strategies:
            if s != "retainKeys":
                return s
        return ""

    @property
    def retain_keys(self) -> bool:
        return "retainKeys" in self.strategies

    def items(self) -> dict[str, Any] | None:
        """Resolved schema of the list's elements, if this field is a list."""
        if self.schema is None:
            return None
        items = self.schema.get("items")
        return schema.resolve(items) if isinstance(items, dict) else None


_NO_META = PatchMeta()
# (id(resolved schema), key) -> PatchMeta; schemas live as long as schema.definitions().
_field_cache: dict[tuple[int, str], PatchMeta] = {}


def _field_meta(node: dict[str, Any] | None, key: str) -> PatchMeta:
    """Metadata of ``key`` inside the object described by the resolved schema ``node``."""
    if node is None:
        return _NO_META
    cache_key = (id(node), key)
    meta = _field_cache.get(cache_key)
    if meta is not None:
        return meta
    prop = None
    props = node.get("properties")
    if isinstance(props, dict):
        prop = props.get(key)
    if prop is None:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            prop = extra
    if not isinstance(prop, dict):
        meta = _NO_META
    else:
        resolved = schema.resolve(prop)
        # The extensions sit next to the $ref on the property (``strategy``), or on the target.
        strategy = prop.get("x-kubernetes-patch-strategy") or resolved.get(
            "x-kubernetes-patch-strategy", ""
        )
        merge_key = prop.get("x-kubernetes-patch-merge-key") or resolved.get(
            "x-kubernetes-patch-merge-key", ""
        )
        meta = PatchMeta(
            strategies=tuple(s.strip() for s in strategy.split(",") if s.strip()),
            merge_key=merge_key,
            schema=resolved,
        )
    _field_cache[cache_key] = meta
    return meta


def _definition(definition: str) -> dict[str, Any]:
    node = schema.definitions().get(definition)
    if node is None:
        # What kube-apiserver answers for strategic merge patches on custom resources.
        raise ApiError(
            415,
            Reason.UNSUPPORTED_MEDIA_TYPE,
            "the body of the request was in an unknown format - accepted media types include:"
            " application/json-patch+json, application/merge-patch+json,"
            " application/apply-patch+yaml",
        )
    return schema.resolve(node)


@functools.lru_cache(maxsize=4096)
def patch_meta(definition: str, path: tuple[str, ...] | str) -> PatchMeta:
    """Patch metadata of the field at ``path`` (``("spec", "template", "spec", "containers")``).

    ``path`` may also be a dotted string. List fields are stepped through to their element
    schema, so ``spec.template.spec.containers.env`` names the containers' ``env``.
    """
    parts = tuple(path.split(".")) if isinstance(path, str) else tuple(path)
    node: dict[str, Any] | None = _definition(definition)
    meta = PatchMeta(schema=node)
    for part in parts:
        if node is not None and "items" in node and "properties" not in node:
            node = meta.items()
        meta = _field_meta(node, part)
        node = meta.schema
    return meta


# --- strategic merge patch: merging ---


class _PatchError(Exception):
    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def _bad_arg(expected: str, actual: Any) -> _PatchError:
    return _PatchError(f"expected a {expected}, but received a {json_type(actual)}")


def _no_merge_key(item: Any, key: str) -> _PatchError:
    return _PatchError(f"map: {item} does not contain declared merge key: {key}")


def strategic_merge_patch(
    original: dict[str, Any], patch: dict[str, Any], definition: str
) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to an object of schema ``definition``.

    ``definition`` is an OpenAPI definition name such as ``io.k8s.api.apps.v1.Deployment``;
    an unknown one answers 415 as kube-apiserver does for custom resources. Malformed
    directives answer 400 (422 for lists of lists and ``$retainKeys`` mismatches).
    """
    root = _definition(definition)
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"invalid strategic merge patch: expected a JSON object, got {json_type(patch)}"
        )
    base = copy_json(original) if isinstance(original, dict) else {}
    try:
        return _merge_map(base, patch, root)
    except _PatchError as exc:
        if exc.code == 422:
            raise unprocessable(str(exc)) from None
        raise errors.bad_request(str(exc)) from None


def _merge_map(original: dict[str, Any], patch: dict[str, Any], node: dict | None) -> dict:
    """Merge ``patch`` (read only) into ``original`` (owned, changed in place)."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            return _merge_map({}, rest, node)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise _PatchError(f"unknown patch type: {directive} in map: {patch}")
        # Kubernetes rejects "$patch: merge"; it is accepted here as the explicit default.

    if _RETAIN_KEYS in patch:
        _apply_retain_keys(original, patch)

    handled: set[str] = set()
    for key, order in patch.items():
        if key.startswith(_SET_ORDER):
            handled.add(_merge_with_order(original, patch, key, order, node))

    for key, value in patch.items():
        if key in handled or key == _DIRECTIVE or key == _RETAIN_KEYS:
            continue
        if key.startswith("$"):
            if key.startswith(_SET_ORDER):
                continue
            if key.startswith(_DELETE_PRIMITIVE):
                _delete_from_primitive_list(original, key, value)
                continue
        if value is None:
            original.pop(key, None)
            continue
        current = original.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            meta = _field_meta(node, key)
            if meta.strategy == "replace":
                original[key] = _merge_map({}, value, meta.schema)
            else:
                original[key] = _merge_map(current, value, meta.schema)
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = _merge_list_field(current, value, _field_meta(node, key))
        else:
            fresh = _fresh(value, _field_meta(node, key))
            if fresh is _DROP:
                original.pop(key, None)
            else:
                original[key] = fresh
    return original


_DROP = object()


def _fresh(value: Any, meta: PatchMeta) -> Any:
    """A patch value for a field absent from (or of another type in) the original.

    Equivalent to merging into an empty value: nulls vanish and directives are applied. A map
    carrying ``$patch: delete`` yields ``_DROP`` (the field is left out).
    """
    if isinstance(value, dict):
        if value.get(_DIRECTIVE) == "delete":
            return _DROP
        return _merge_map({}, value, meta.schema)
    if isinstance(value, list):
        return _merge_list_field([], value, meta)
    return value


def _merge_list_field(current: list, value: list, meta: PatchMeta) -> list:
    if meta.strategy == "merge":
        return _merge_list(current, value, meta.items(), meta.merge_key)
    return _replace_list(value, meta.items())


def _replace_list(value: list, items: dict | None) -> list:
    out = []
    item_meta = PatchMeta(schema=items)
    for item in value:
        if isinstance(item, dict) and _DIRECTIVE in item:
            # A directive element ("$patch: replace") is meaningless in a replaced list.
            continue
        fresh = _fresh(item, item_meta)
        if fresh is not _DROP:
            out.append(fresh)
    return out


def _kind(*lists: list) -> str:
    """``"map"`` or ``"scalar"``: the common element kind (``sliceElementType``)."""
    kind = ""
    seen: type | None = None
    for values in lists:
        for v in values:
            if isinstance(v, list):
                raise _PatchError("lists of lists are not supported", 422)
            t: type = dict if isinstance(v, dict) else (float if type(v) is int else type(v))
            if seen is None:
                seen = t
                kind = "map" if t is dict else "scalar"
            elif t is not seen:
                raise _PatchError("list element types are not identical")
    return kind


def _hashable(value: Any) -> Any:
    """A dict key for a merge-key value or primitive (``1`` and ``1.0`` alike, ``True`` not)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value), value)
    if isinstance(value, (int, float)):
        return (float, float(value))
    return (object, repr(value))


def _merge_list(original: list, patch: list, items: dict | None, merge_key: str) -> list:
    """``mergeSlice``: merge a list with strategy ``merge`` (by ``merge_key`` for maps)."""
    if not original and not patch:
        return original
    kind = _kind(original, patch)
    if kind != "map":
        merged = _dedupe(original + [copy_json(v) for v in patch])
        patch_items, server_only = _partition_primitives(merged, patch)
        return _normalize_order(patch_items, server_only, patch, original, "")
    if not merge_key:
        raise _PatchError("cannot merge lists without merge key")

    # Special elements first: "$patch: delete" removes, "$patch: replace" drops the original.
    plain = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            gone = _hashable(item[merge_key])
            original = [
                o for o in original if merge_key not in o or _hashable(o[merge_key]) != gone
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            # Explicit default; Kubernetes rejects it, we merge the element normally.
            rest = {k: v for k, v in item.items() if k != _DIRECTIVE}
            if rest:
                plain.append(rest)
        else:
            raise _PatchError(f"unknown patch type: {directive} in map: {item}")
    if replace:
        original = []

    merged = list(original)
    index: dict[Any, int] = {}
    for i, item in enumerate(merged):
        if merge_key in item:
            index.setdefault(_hashable(item[merge_key]), i)
    for item in plain:
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        k = _hashable(item[merge_key])
        pos = index.get(k)
        if pos is None:
            index[k] = len(merged)
            merged.append(_merge_map({}, item, items))
        else:
            merged[pos] = _merge_map(merged[pos], item, items)

    patch_items, server_only = _partition_maps(merged, plain, merge_key)
    return _normalize_order(patch_items, server_only, plain, original, merge_key)


def _dedupe(values: list) -> list:
    seen: set[Any] = set()
    out = []
    for v in values:
        h = _hashable(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


def _partition_primitives(values: list, by: list) -> tuple[list, list]:
    present = {_hashable(v) for v in by}
    inside, outside = [], []
    for v in values:
        (inside if _hashable(v) in present else outside).append(v)
    return inside, outside


def _partition_maps(values: list, by: list, merge_key: str) -> tuple[list, list]:
    present = set()
    for v in by:
        if not isinstance(v, dict):
            raise _bad_arg("object", v)
        if merge_key in v:
            present.add(_hashable(v[merge_key]))
    inside, outside = [], []
    for v in values:
        if not isinstance(v, dict):
            raise _bad_arg("object", v)
        if merge_key not in v:
            raise _no_merge_key(v, merge_key)
        (inside if _hashable(v[merge_key]) in present else outside).append(v)
    return inside, outside


def _positions(order: list, merge_key: str) -> dict[Any, int]:
    pos: dict[Any, int] = {}
    for i, item in enumerate(order):
        if merge_key:
            if not isinstance(item, dict):
                raise _bad_arg("object", item)
            if merge_key not in item:
                raise _no_merge_key(item, merge_key)
            pos.setdefault(_hashable(item[merge_key]), i)
        else:
            pos.setdefault(_hashable(item), i)
    return pos


def _normalize_order(
    patch_items: list, server_only: list, patch_order: list, server_order: list, merge_key: str
) -> list:
    """``normalizeElementOrder``: sort each part by its own order, then interleave them.

    Patch items keep the order of ``patch_order``; server-only items the order of the live
    list, and are slotted in before patch items that come later in the live list.
    """

    def ident(item: Any) -> Any:
        return _hashable(item[merge_key] if merge_key else item)

    def by(order: dict[Any, int]) -> Any:
        return lambda item: order.get(ident(item), len(order))

    patch_pos = _positions(patch_order, merge_key)
    server_pos = _positions(server_order, merge_key)
    left = sorted(server_only, key=by(server_pos))
    right = sorted(patch_items, key=by(patch_pos))
    out = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li = server_pos.get(ident(left[i]), -1)
            ri = server_pos.get(ident(right[j]), -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out


def _apply_retain_keys(original: dict, patch: dict) -> None:
    keep = patch[_RETAIN_KEYS]
    if not isinstance(keep, list):
        raise _PatchError("invalid patch format of retainKeys")
    allowed = set(k for k in keep if isinstance(k, str))
    for key, value in patch.items():
        if value is None or key.startswith("$"):
            continue
        if key not in allowed:
            raise _PatchError("patch content doesn't match retainKeys list", 422)
    for key in [k for k in original if k not in allowed]:
        del original[key]


def _delete_from_primitive_list(original: dict, key: str, value: Any) -> None:
    name = key[len(_DELETE_PRIMITIVE) :]
    if not name or not isinstance(value, list):
        raise _PatchError("invalid patch format of primitive list")
    current = original.get(name)
    if current is None:
        return
    if not isinstance(current, list) or _kind(current, value) == "map":
        raise _PatchError("invalid patch format of primitive list")
    gone = {_hashable(v) for v in value}
    original[name] = [v for v in current if _hashable(v) not in gone]


def _merge_with_order(original: dict, patch: dict, key: str, order: Any, node: dict | None) -> str:
    """Merge the list named by a ``$setElementOrder/<list>`` key and apply that order."""
    name = key[len(_SET_ORDER) :]
    if not name or not isinstance(order, list):
        raise _PatchError("invalid patch format of setElementOrder list")
    current = original.get(name)
    value = patch.get(name)
    if current is not None and not isinstance(current, list):
        raise _bad_arg("array", current)
    if value is not None and not isinstance(value, list):
        raise _bad_arg("array", value)
    meta = _field_meta(node, name)
    merge_key = meta.merge_key
    _check_order(value or [], order, merge_key)

    if current is not None and value is not None:
        merged = _merge_list_field(current, value, meta)
    elif value is not None:
        merged = _merge_list_field([], value, meta)
    elif current is not None:
        merged = current
    else:
        return name
    if not merged:
        original[name] = merged
        return name
    if _kind(merged) != "map":
        merge_key = ""
    elif not merge_key:
        raise _PatchError("cannot merge lists without merge key")
    if merge_key:
        in_order, server_only = _partition_maps(merged, order, merge_key)
    else:
        in_order, server_only = _partition_primitives(merged, order)
    original[name] = _normalize_order(in_order, server_only, order, current or [], merge_key)
    return name


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """``validatePatchWithSetOrderList``: patch items must appear in the order list, in order."""
    if not patch_list or not order:
        return
    items = patch_list
    if merge_key:
        items = [
            i for i in patch_list if not (isinstance(i, dict) and i.get(_DIRECTIVE) == "delete")
        ]

    def ident(item: Any) -> Any:
        if not merge_key:
            return _hashable(item)
        if not isinstance(item, dict):
            raise _bad_arg("object", item)
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
        return _hashable(item[merge_key])

    p = o = 0
    while p < len(items) and o < len(order):
        if isinstance(items[p], dict) and _DIRECTIVE in items[p]:
            p += 1
            continue
        if ident(items[p]) == ident(order[o]):
            p += 1
        o += 1
    if p < len(items):
        raise _PatchError(
            f"The order in patch list:\n{patch_list}\n doesn't match {_SET_ORDER.rstrip('/')}"
            f" list:\n{order}\n"
        )


__all__ = [
    "PatchMeta",
    "patch_meta",
    "strategic_merge_patch",
]
