"""A custom resource against its CRD version's structural ``openAPIV3Schema``, as
kube-apiserver (Kubernetes 1.32) treats it:

- validation: kube-openapi's ``SchemaValidator`` with its errors turned into field
  errors by apiextensions-apiserver's ``kubeOpenAPIResultToFieldErrors``, then
  embedded resources (``schema/objectmeta``) and ``x-kubernetes-list-type``
  uniqueness (``schema/listtype``); updates ratchet unchanged invalid values;
- ``x-kubernetes-validations`` (:mod:`.cel`), after the rest and only when none of it found
  the object unsound;
- defaulting (``schema/defaulting``) and pruning of unknown fields
  (``schema/pruning``, plus the removal of non-nullable nulls and the ObjectMeta
  round trip of embedded resources that kube's decoder does next to it).

The schema is compiled once into a tree of :class:`_Node`; walking an object never
looks at the schema dict again. Paths in kube-openapi's messages are its own dotted
strings (``spec.map.key``); the embedded-resource and list-type checks use
``field.Path`` (``spec.map[key]``), as kube does.
"""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.apiserver.apiextensions import cel
from skiff.apiserver.apiextensions.cel import NodeRules
from skiff.apiserver.apiextensions.celtypes import SchemaTypes
from skiff.apiserver.apiextensions.crvalues import (
    FORMATS,
    canon,
    clone,
    coerce_meta,
    dupes,
    duplicate,
    embedded_errors,
    go_float,
    go_json,
    go_quote,
    go_regex,
    in_enum,
    invalid,
    json_int,
    list_map_errors,
    render,
    same,
    too_many,
)
from skiff.apiserver.validation import INVALID, NOT_SUPPORTED, TOO_LONG, TYPE_INVALID, required

__all__ = ["CompiledSchema"]

_MISSING: Any = cel.MISSING
"""No default, or no correlated old value."""
_META = frozenset(("apiVersion", "kind", "metadata"))
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array"}
_JSON_TYPES[dict] = "object"


class _Node:
    """One compiled schema node: its value validations and what lies below it."""

    __slots__ = (
        "additional", "all_of", "any_of", "cel", "cel_below", "closed", "composite", "default",
        "defaults", "drop_null", "embedded", "enum", "enum_text", "excl_max", "excl_min", "fmt",
        "fmt_check", "has_additional", "has_defaults", "items", "list_type", "lists", "map_keys",
        "max_items", "max_length", "max_props", "maximum", "meta", "min_items", "min_length",
        "min_props", "minimum", "multiple_of", "not_", "nullable", "numbers", "one_of", "pattern",
        "preserve", "props", "regex", "regex_err", "required", "resource", "strings", "type_name",
        "types", "unique",
    )  # fmt: skip

    def __init__(self, sch: dict[str, Any]) -> None:
        self.cel: NodeRules | None = None  # x-kubernetes-validations (see _attach_rules)
        self.cel_below = False
        if sch.get("x-kubernetes-int-or-string"):
            self.types: tuple[str, ...] = ("integer", "string")
        else:
            self.types = (sch["type"],) if sch.get("type") else ()
        self.type_name = ",".join(self.types)
        self.nullable = bool(sch.get("nullable"))
        fmt = sch.get("format") or ""
        # Formats kube does not support are dropped (StripUnsupportedFormatsPostProcess).
        self.fmt_check = FORMATS.get(fmt.replace("-", ""))
        self.fmt = fmt if self.fmt_check else ""
        enum = sch.get("enum")
        self.enum = tuple(enum) if enum else None
        texts = [e if isinstance(e, str) else go_json(e) for e in enum or ()]
        self.enum_text = ", ".join(map(go_quote, texts))
        self.maximum = _num(sch.get("maximum"))
        self.minimum = _num(sch.get("minimum"))
        self.multiple_of = _num(sch.get("multipleOf"))
        self.excl_max = bool(sch.get("exclusiveMaximum"))
        self.excl_min = bool(sch.get("exclusiveMinimum"))
        self.numbers = any(b is not None for b in (self.maximum, self.minimum, self.multiple_of))
        self.max_length, self.min_length = sch.get("maxLength"), sch.get("minLength")
        self.pattern: str = sch.get("pattern") or ""
        self.regex, self.regex_err = go_regex(self.pattern) if self.pattern else (None, "")
        self.strings = bool(self.pattern or self.fmt_check) or not (
            self.max_length is None and self.min_length is None
        )
        self.max_items, self.min_items = sch.get("maxItems"), sch.get("minItems")
        self.unique = bool(sch.get("uniqueItems"))
        self.max_props, self.min_props = sch.get("maxProperties"), sch.get("minProperties")
        self.required = tuple(sch.get("required") or ())
        props = sch.get("properties")
        self.props = {k: _Node(v) for k, v in props.items()} if props else None
        extra = sch.get("additionalProperties")
        self.has_additional = extra is True or isinstance(extra, dict)
        self.additional = _Node(extra) if isinstance(extra, dict) else None
        self.closed = extra is False
        items = sch.get("items")
        self.items = _Node(items) if isinstance(items, dict) else None
        self.all_of = tuple(_Node(s) for s in sch.get("allOf") or ())
        self.any_of = tuple(_Node(s) for s in sch.get("anyOf") or ())
        self.one_of = tuple(_Node(s) for s in sch.get("oneOf") or ())
        self.not_ = _Node(sch["not"]) if isinstance(sch.get("not"), dict) else None
        self.composite = bool(self.all_of or self.any_of or self.one_of or self.not_)
        self.preserve = bool(sch.get("x-kubernetes-preserve-unknown-fields"))
        self.embedded = self.resource = bool(sch.get("x-kubernetes-embedded-resource"))
        self.list_type = sch.get("x-kubernetes-list-type")
        self.map_keys = tuple(sch.get("x-kubernetes-list-map-keys") or ())
        # A "default: null" converts to no default at all.
        self.default = _MISSING if sch.get("default") is None else sch["default"]
        self.drop_null = not self.nullable and self.default is _MISSING
        below = [*(self.props or {}).values(), self.additional, self.items]
        below = [c for c in below if c is not None]
        self.defaults = tuple(
            (k, c) for k, c in (self.props or {}).items() if c.default is not _MISSING
        )
        self.has_defaults = any(c.default is not _MISSING or c.has_defaults for c in below)
        self.meta = self.embedded or any(c.meta for c in below)
        self.lists = self.list_type in ("set", "map") or any(c.lists for c in below)
        if type(self.default) in (dict, list):  # PruneDefaults
            self.default = clone(self.default)
            _prune(self, self.default, "", "", [], [])


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


# --- field errors ---


def _field(name: str) -> str:
    """The field of a kube-openapi error named ``name`` (a nil field.Path is ``<nil>``)."""
    if not name or name == ".":
        return "<nil>"
    return name[1:] if name[0] == "." else name


def _fchild(fp: str, key: str) -> str:
    return f"{fp}.{key}" if fp else key


def _type_err(path: str, expected: str, got: str) -> Cause:
    detail = f"{path} in body must be of type {expected}: {go_quote(got)}"
    return invalid(_field(path), got, detail, TYPE_INVALID)


def _composite(msg: str) -> Cause:
    return Cause("<nil>", f'Invalid value: "": {msg}', INVALID)


# --- validation (kube-openapi's SchemaValidator) ---


def _ratchet(n: _Node, v: Any, path: str, errs: list[Cause], old: Any) -> None:
    """Validate a value correlated with ``old``: its errors stand only if it changed."""
    mine: list[Cause] = []
    _validate(n, v, path, mine, old)
    if mine and not _equal(n, v, old):
        errs.extend(mine)


def _validate(n: _Node, v: Any, path: str, errs: list[Cause], old: Any = _MISSING) -> None:
    """Run the validators of ``n`` that apply to ``v``, in kube-openapi's order."""
    if v is None:
        if n.types and not n.nullable:
            errs.append(_type_err(path, n.type_name, "null"))
        if n.enum is not None:  # null never matches an enum
            errs.append(_enum_err(n, path, None))
        return
    t = type(v)
    if n.types or n.fmt:
        _check_type(n, v, t, path, errs)
    if n.composite:
        _check_composite(n, v, path, errs, old)
    if t is str:
        if n.strings:
            _check_string(n, v, path, errs)
    elif t is int or t is float:
        if n.numbers:
            (_check_int if t is int else _check_float)(n, v, path, errs)
    elif t is list:
        _check_array(n, v, path, errs, old)
    if n.enum is not None and not in_enum(n.enum, v):
        errs.append(_enum_err(n, path, v))
    if t is dict:
        _check_object(n, v, path, errs, old)


def _check_type(n: _Node, v: Any, t: type, path: str, errs: list[Cause]) -> None:
    got = _JSON_TYPES.get(t, "")
    types = n.types
    float_int = t is float and "integer" in types and json_int(v)
    int_float = t is int and "number" in types
    if n.fmt and t is not str and t is not list:
        data_fmt = "int64" if t is int else "float64" if t is float else ""
        if not (got in types or data_fmt == n.fmt or float_int or int_float):
            errs.append(_type_err(path, n.fmt, data_fmt))
            return
    elif n.fmt and "integer" not in types and "number" not in types:
        return  # a string format accepts any string, and (sic) any array
    if not (got in types or float_int or int_float):
        errs.append(_type_err(path, n.type_name, got))


def _check_string(n: _Node, v: str, path: str, errs: list[Cause]) -> None:
    if n.max_length is not None and len(v) > n.max_length:
        errs.append(
            Cause(_field(path), f"Too long: may not be more than {n.max_length} bytes", TOO_LONG)
        )
    elif n.min_length is not None and len(v) < n.min_length:
        detail = f"{path} in body should be at least {n.min_length} chars long"
        errs.append(invalid(_field(path), v, detail))
    elif n.regex is None and n.pattern:
        detail = f"{path} in body should match '{n.pattern}, but pattern is invalid: {n.regex_err}'"
        errs.append(invalid(_field(path), v, detail))
    elif n.regex is not None and n.regex.search(v) is None:
        errs.append(invalid(_field(path), v, f"{path} in body should match '{n.pattern}'"))
    if n.fmt_check is not None and not n.fmt_check(v):
        detail = f"{path} in body must be of type {n.fmt}: {go_quote(v)}"
        errs.append(invalid(_field(path), v, detail, TYPE_INVALID))


def _bound_errs(n: _Node, v: Any, path: str, lo: Any, hi: Any, shown: Any) -> list[Cause]:
    out = []
    if lo is not None and (v < lo or (n.excl_min and v == lo)):
        rel = "greater than" if n.excl_min else "greater than or equal to"
        out.append(invalid(_field(path), v, f"{path} in body should be {rel} {shown(lo)}"))
    if hi is not None and (v > hi or (n.excl_max and v == hi)):
        rel = "less than" if n.excl_max else "less than or equal to"
        out.append(invalid(_field(path), v, f"{path} in body should be {rel} {shown(hi)}"))
    return out


def _check_int(n: _Node, v: int, path: str, errs: list[Cause]) -> None:
    # An integer is checked against the bounds converted to int64 (truncated).
    if n.multiple_of is not None:
        f = int(n.multiple_of)
        if f <= 0:
            detail = f"factor MultipleOf declared for {path} must be positive: {f}"
            errs.append(invalid(_field(path), f, detail))
        elif v % f:
            errs.append(invalid(_field(path), v, f"{path} in body should be a multiple of {f}"))
    lo = None if n.minimum is None else int(n.minimum)
    hi = None if n.maximum is None else int(n.maximum)
    errs.extend(_bound_errs(n, v, path, lo, hi, str))


def _check_float(n: _Node, v: float, path: str, errs: list[Cause]) -> None:
    f = n.multiple_of
    if f is not None:
        if f <= 0:
            detail = f"factor MultipleOf declared for {path} must be positive: {go_float(f)}"
            errs.append(invalid(_field(path), f, detail))
        elif not json_int(1 / f * v if f < 1 else v / f):
            detail = f"{path} in body should be a multiple of {go_float(f)}"
            errs.append(invalid(_field(path), v, detail))
    errs.extend(_bound_errs(n, v, path, n.minimum, n.maximum, go_float))


def _check_array(n: _Node, v: list[Any], path: str, errs: list[Cause], old: Any) -> None:
    items = n.items
    if items is not None:
        olds = _old_items(n, v, old)
        for i, x in enumerate(v):
            o = olds[i] if olds else _MISSING
            (_validate if o is _MISSING else _ratchet)(items, x, f"{path}[{i}]", errs, o)
    size = len(v)
    if n.min_items is not None and size < n.min_items:
        detail = f"{path} in body should have at least {n.min_items} items"
        errs.append(invalid(_field(path), size, detail))
    if n.max_items is not None and size > n.max_items:
        errs.append(too_many(_field(path), size, n.max_items))
    if n.unique and size > 1 and dupes(v):
        errs.append(invalid(_field(path), "", f"{path} in body shouldn't contain duplicates"))


def _check_object(n: _Node, v: dict[str, Any], path: str, errs: list[Cause], old: Any) -> None:
    size = len(v)
    if n.min_props is not None and size < n.min_props:
        detail = f"{path} in body should have at least {n.min_props} properties"
        errs.append(invalid(_field(path), size, detail))
    if n.max_props is not None and size > n.max_props:
        errs.append(too_many(_field(path), size, n.max_props))
    props = n.props or {}
    if n.closed:
        for k in v:
            if k not in props:
                detail = f"{path}.{k} in body is a forbidden property"
                errs.append(invalid(_field(path), k, detail))
    elif n.additional is not None:
        for k, x in v.items():
            if k not in props:
                o = _old_key(old, k, path)
                (_validate if o is _MISSING else _ratchet)(n.additional, x, f"{path}.{k}", errs, o)
    for k, c in props.items():
        if k in v:
            o = _old_key(old, k, path)
            child = f"{path}.{k}" if path else k
            (_validate if o is _MISSING else _ratchet)(c, v[k], child, errs, o)
    for k in n.required:
        if k not in v:
            errs.append(required(_field(f"{path}.{k}")))


def _enum_err(n: _Node, path: str, v: Any) -> Cause:
    msg = f"Unsupported value: {render(v)}: supported values: {n.enum_text}"
    return Cause(_field(path), msg, NOT_SUPPORTED)


def _check_composite(n: _Node, v: Any, path: str, errs: list[Cause], old: Any) -> None:
    """allOf/anyOf/oneOf/not (schemaPropsValidator), reporting the best failed branch."""
    qpath = go_quote(path)
    if n.any_of:
        best, best_count = None, -1
        for b in n.any_of:
            e = _branch(b, v, path, old)
            if not e:
                break
            count = _count(b, v)
            if count > best_count:
                best, best_count = e, count
        else:
            errs.append(_composite(f"{qpath} must validate at least one schema (anyOf)"))
            errs.extend(best or ())
    if n.one_of:
        best, best_count, valid = None, -1, 0
        for b in n.one_of:
            e = _branch(b, v, path, old)
            if not e:
                valid, best = valid + 1, None
            elif valid == 0 and (count := _count(b, v)) > best_count:
                best, best_count = e, count
        if valid != 1:
            found = "Found none valid" if not valid else f"Found {valid} valid alternatives"
            msg = f"{qpath} must validate one and only one schema (oneOf). {found}"
            errs.append(_composite(msg))
            errs.extend(best or ())
    if n.all_of:
        valid = 0
        for b in n.all_of:
            e = _branch(b, v, path, old)
            valid += not e
            errs.extend(e)
        if valid != len(n.all_of):
            none = ". None validated" if not valid else ""
            errs.append(_composite(f"{qpath} must validate all the schemas (allOf){none}"))
    if n.not_ is not None and not _branch(n.not_, v, path, old):
        errs.append(_composite(f"{qpath} must not validate the schema (not)"))


def _branch(b: _Node, v: Any, path: str, old: Any) -> list[Cause]:
    e: list[Cause] = []
    _validate(b, v, path, e, old)
    return e


def _count(n: _Node, v: Any) -> int:
    """kube-openapi's ``Result.MatchCount``: how it ranks the failed branches of anyOf/oneOf."""
    if v is None:
        return 1 if not n.types or n.nullable else 0
    t = type(v)
    count = 4  # schemaProps (2), common (1), and the validator itself (1)
    if n.types or n.fmt:
        e: list[Cause] = []
        _check_type(n, v, t, "", e)
        count += 1 if e else 2
    if n.composite:
        counts = [(_count(b, v), not _branch(b, v, "", _MISSING)) for b in n.any_of]
        if counts:
            count += next((c for c, ok in counts if ok), max(c for c, _ in counts))
        counts = [(_count(b, v), not _branch(b, v, "", _MISSING)) for b in n.one_of]
        if counts and sum(ok for _, ok in counts) < 2:
            count += next((c for c, ok in counts if ok), max(c for c, _ in counts))
        count += sum(_count(b, v) for b in n.all_of)
    if t is str:
        count += 1 + (n.fmt_check is not None)
    elif t is int or t is float:
        count += 2
    elif t is list:
        count += 2 + (sum(_count(n.items, x) for x in v) if n.items is not None else 0)
    elif t is dict:
        props = n.props or {}
        count += 1 + sum(_count(c, v[k]) for k, c in props.items() if k in v)
        if n.additional is not None:
            count += sum(_count(n.additional, x) for k, x in v.items() if k not in props)
    return count


# --- ratcheting (apiserver's CorrelatedObject) ---


def _old_key(old: Any, key: str, path: str) -> Any:
    if old is _MISSING or type(old) is not dict:
        return _MISSING
    if not path and key in ("kind", "apiVersion"):
        return _MISSING  # never ratcheted: old and new were converted to the same version
    return old.get(key, _MISSING)


def _map_key(keys: tuple[str, ...], x: Any) -> Any:
    return tuple(canon(x.get(k, _MISSING)) for k in keys) if type(x) is dict else None


def _old_items(n: _Node, v: list[Any], old: Any) -> list[Any] | None:
    """The old element each new element of a list-type map correlates with, by key."""
    if old is _MISSING or type(old) is not list or n.list_type != "map":
        return None
    by_key: dict[Any, Any] = {}
    for x in old:
        k = _map_key(n.map_keys, x)
        if k is not None:
            by_key.setdefault(k, x)
    return [by_key.get(_map_key(n.map_keys, x), _MISSING) for x in v]


def _equal(n: _Node | None, v: Any, old: Any) -> bool:
    """``CorrelatedObject.CachedDeepEqual``: maps compare through their schema."""
    if v is None or old is None:
        return v is old
    t = type(v)
    if t is dict:
        if type(old) is not dict or len(v) != len(old):
            return False
        props = n.props or {} if n is not None else {}
        for k, x in v.items():
            c = props.get(k) or (n.additional if n is not None else None)
            if c is None or k not in old or not _equal(c, x, old[k]):
                return False
        return True
    if t is list and n is not None and n.list_type == "map" and type(old) is list:
        if len(v) != len(old):
            return False
        if not v or n.items is None:
            return not v
        olds = _old_items(n, v, old) or []
        return all(
            o is not _MISSING and _equal(n.items, x, o) for x, o in zip(v, olds, strict=True)
        )
    return same(v, old)


# --- embedded resources and list types ---


def _meta_walk(n: _Node, v: Any, fp: str, errs: list[Cause]) -> None:
    """``objectmeta.Validate``: apiVersion, kind and metadata of embedded resources."""
    t = type(v)
    if t is dict:
        if n.embedded:
            errs.extend(embedded_errors(v, fp))
        props = n.props or {}
        for k, x in v.items():
            c = props.get(k)
            if c is not None:
                if c.meta:
                    _meta_walk(c, x, _fchild(fp, k), errs)
            elif n.additional is not None and n.additional.meta:
                _meta_walk(n.additional, x, f"{fp}[{k}]", errs)
    elif t is list and n.items is not None and n.items.meta:
        for i, x in enumerate(v):
            _meta_walk(n.items, x, f"{fp}[{i}]", errs)


def _list_walk(n: _Node, v: Any, fp: str, errs: list[Cause]) -> None:
    """``listtype.ValidateListSetsAndMaps``: unique items of sets, unique keys of maps."""
    t = type(v)
    if t is dict:
        if n.additional is not None and n.additional.lists:
            for k, x in v.items():
                _list_walk(n.additional, x, f"{fp}[{k}]", errs)
        for k, c in (n.props or {}).items():
            if c.lists and k in v:
                _list_walk(c, v[k], _fchild(fp, k), errs)
    elif t is list:
        if n.list_type == "set":
            errs.extend(duplicate(f"{fp}[{i}]", v[i]) for i in dupes(v))
        elif n.list_type == "map":
            errs.extend(list_map_errors(n.map_keys, v, fp))
        if n.items is not None and n.items.lists:
            for i, x in enumerate(v):
                _list_walk(n.items, x, f"{fp}[{i}]", errs)


# --- defaulting and pruning ---


def _default(n: _Node, x: Any) -> None:
    """``defaulting.Default``: fill absent (and non-nullable null) fields, depth first."""
    t = type(x)
    if t is dict:
        skip = "metadata" if n.resource else None
        for k, c in n.defaults:
            if (k not in x or (x[k] is None and not c.nullable)) and k != skip:
                x[k] = clone(c.default)
        props, extra = n.props or {}, n.additional
        for k, val in x.items():
            c = props.get(k)
            if k == skip or (c is None and extra is None):
                continue
            if c is None:
                if val is None and not extra.nullable and extra.default is not _MISSING:
                    x[k] = val = clone(extra.default)
                c = extra
            if c.has_defaults and val is not None:
                _default(c, val)
    elif t is list and n.items is not None:
        it = n.items
        for i, e in enumerate(x):
            if e is None and not it.nullable and it.default is not _MISSING:
                x[i] = e = clone(it.default)
            if it.has_defaults and e is not None:
                _default(it, e)


def _prune(n: _Node | None, x: Any, path: str, fp: str, out: list[str], meta: list[str]) -> None:
    """``pruning.Prune``: drop fields the schema does not know; ``out`` gets their paths."""
    if n is not None and n.preserve:
        _prune_object(n, x, path, fp, out, meta, True)
    elif type(x) is dict:
        if n is None:
            out.extend(f"{path}.{k}" if path else k for k in x)
            x.clear()
        else:
            _prune_object(n, x, path, fp, out, meta, False)
    elif type(x) is list:
        items = n.items if n is not None else None
        for i, e in enumerate(x):
            if type(e) in (dict, list):
                _prune(items, e, f"{path}[{i}]", f"{fp}[{i}]", out, meta)


def _prune_object(
    n: _Node, x: Any, path: str, fp: str, out: list[str], meta: list[str], keep: bool
) -> None:
    """Prune below ``n``; with ``keep`` (preserve-unknown-fields) unknown fields stay."""
    if type(x) is list:  # only under preserve-unknown-fields (skipPrune)
        if n.items is not None:
            for i, e in enumerate(x):
                if type(e) in (dict, list):
                    _prune_object(n.items, e, f"{path}[{i}]", f"{fp}[{i}]", out, meta, True)
        return
    if type(x) is not dict:
        return
    props = n.props or {}
    for k in list(x):
        if n.resource and k in _META:
            if k == "metadata" and n.embedded and type(x[k]) is dict:
                coerce_meta(x[k], _fchild(fp, k), meta)
            continue
        child = f"{path}.{k}" if path else k
        c = props.get(k, _MISSING)
        if c is not _MISSING:
            cfp = _fchild(fp, k)
        elif n.has_additional:
            c, cfp = n.additional, f"{fp}[{k}]"
        else:
            if not keep:
                out.append(child)
                del x[k]
            continue
        val = x[k]
        if val is None:
            if c is not None and c.drop_null:
                del x[k]  # PruneNonNullableNullsWithoutDefaults
        elif type(val) in (dict, list):
            _prune(c, val, child, cfp, out, meta)


# --- x-kubernetes-validations ---


def _attach_rules(n: _Node, sch: dict[str, Any], types: SchemaTypes, resource: bool) -> bool:
    """Compile the CEL rules of ``n`` and below; whether there are any."""
    n.cel = cel.node_rules(types, sch, resource)
    below = n.cel is not None
    props = sch.get("properties") or {}
    for k, c in (n.props or {}).items():
        below = _attach_rules(c, props[k], types, c.embedded) or below
    if n.additional is not None:
        below = (
            _attach_rules(n.additional, sch["additionalProperties"], types, n.additional.embedded)
            or below
        )
    if n.items is not None:
        below = _attach_rules(n.items, sch["items"], types, n.items.embedded) or below
    n.cel_below = below
    return below


class CompiledSchema:
    """A CRD version's ``openAPIV3Schema``, compiled once and reused for every object."""

    __slots__ = ("_root",)

    def __init__(self, openapi_v3_schema: dict[str, Any]) -> None:
        self._root = _Node(openapi_v3_schema or {})
        self._root.resource = True  # apiVersion, kind and metadata at the root are not pruned
        if cel.has_rules(openapi_v3_schema):
            _attach_rules(self._root, openapi_v3_schema, SchemaTypes(openapi_v3_schema), True)

    def validate(self, obj: dict[str, Any]) -> list[Cause]:
        """Field errors for a whole object (kube's create validation, in its words)."""
        return self._validate(obj, _MISSING)

    def validate_update(self, obj: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
        """:meth:`validate` with 1.32's ratcheting: errors of values unchanged from ``old``
        (correlated by field, and by key in list-type maps) are dropped."""
        return self._validate(obj, old)

    def _validate(self, obj: dict[str, Any], old: Any) -> list[Cause]:
        root = self._root
        errs: list[Cause] = []
        (_validate if old is _MISSING else _ratchet)(root, obj, "", errs, old)
        if len(errs) > 1:  # kube-openapi's Result drops repeated messages
            errs = list({(c.field, c.message): c for c in errs}.values())
        if root.meta:
            _meta_walk(root, obj, "", errs)
        if root.lists:
            old_errs: list[Cause] = []
            if old is not _MISSING:
                _list_walk(root, old, "", old_errs)
            if not old_errs:  # an old object with duplicates ratchets all of them
                _list_walk(root, obj, "", errs)
        if root.cel_below:  # x-kubernetes-validations run only on an otherwise sound object
            blocked = cel.blocking_error(errs)
            if blocked is not None:
                errs.append(blocked)
            else:
                errs.extend(cel.validate(root, obj, old, _equal, _old_items))
        return errs

    def default(self, obj: dict[str, Any]) -> None:
        """Apply the schema's defaults to ``obj`` in place (not inside metadata)."""
        if self._root.has_defaults:
            _default(self._root, obj)

    def prune_and_default(self, obj: dict[str, Any]) -> None:
        """What kube's decoder does to an object read in this version: unknown fields
        dropped, defaults applied."""
        self.prune(obj)
        self.default(obj)

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Drop unknown fields from ``obj`` in place and return their sorted paths
        (``spec.foo``, ``spec.items[0].bar``), for ``fieldValidation`` Strict and Warn.
        Non-nullable nulls without a default go too, as kube's decoder drops them."""
        out: list[str] = []
        meta: list[str] = []
        _prune(self._root, obj, "", "", out, meta)
        return sorted(out) + sorted(meta)
