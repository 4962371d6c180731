"""Structural schemas as Kubernetes 1.32 defines them
(``k8s.io/apiextensions-apiserver/pkg/apiserver/schema``), on an ``openAPIV3Schema``'s v1 JSON.

- :func:`new_structural_error`: what ``schema.NewStructural`` refuses to convert;
- :func:`structural_errors`: ``schema.ValidateStructural`` (invariants and completeness),
  sorted as kube sorts them;
- :func:`regexp_error`: Go's verdict on a ``pattern``.

Also the field-path and value rendering the CRD rules share (:func:`child`, :func:`key`,
:func:`go_strings`).
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

from skiff.api.errors import Cause
from skiff.apiserver.validation import forbidden, invalid, required

Schema = dict[str, Any]

# JSONSchemaProps' fields in the internal struct's order, as their v1 JSON names.
SCHEMA_FIELDS = (
    "id", "$schema", "$ref", "description", "type", "nullable", "format", "title", "default",
    "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength",
    "pattern", "maxItems", "minItems", "uniqueItems", "multipleOf", "enum", "maxProperties",
    "minProperties", "required", "items", "allOf", "oneOf", "anyOf", "not", "properties",
    "additionalProperties", "patternProperties", "dependencies", "additionalItems",
    "definitions", "externalDocs", "example", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string",
    "x-kubernetes-list-map-keys", "x-kubernetes-list-type", "x-kubernetes-map-type",
    "x-kubernetes-validations",
)  # fmt: skip
_NOT_IN_STRUCTURAL = {"id", "$schema", "$ref", "patternProperties", "dependencies"}
_NOT_IN_STRUCTURAL |= {"additionalItems", "definitions", "externalDocs", "example"}
_NIL_WHEN_EMPTY = {"enum", "allOf", "anyOf", "oneOf"}  # rebuilt by appending: [] becomes nil


# --- field paths and values as field.Path and field.Error render them ---


def child(path: str, *names: str) -> str:
    """``field.Path.Child``."""
    for name in names:
        path = f"{path}.{name}" if path else name
    return path


def key(path: str, k: object) -> str:
    """``field.Path.Key`` and ``Index``: ``path[k]``."""
    return f"{path}[{k}]"


def go_strings(values: list[str] | None) -> str:
    """A ``[]string`` as ``%#v`` prints it (field.Error's fallback for slices)."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(json.dumps(v, ensure_ascii=False) for v in values) + "}"


def invalid_shown(path: str, shown: str, detail: str) -> Cause:
    """``field.Invalid`` with a value already rendered (Go-syntax slices)."""
    return Cause(path, f"Invalid value: {shown}: {detail}", "FieldValueInvalid")


def as_dict(value: Any) -> Schema | None:
    return value if isinstance(value, dict) else None


def str_of(schema: Schema, name: str) -> str:
    value = schema.get(name)
    return value if isinstance(value, str) else ""


def list_of(schema: Schema, name: str) -> list[Any]:
    value = schema.get(name)
    return value if isinstance(value, list) else []


def strs_of(schema: Schema, name: str) -> list[str]:
    """A ``[]string`` field; stray non-strings (a decode error in kube) become their JSON."""
    return [x if isinstance(x, str) else json.dumps(x) for x in list_of(schema, name)]


def schemas_of(schema: Schema, name: str) -> list[Schema]:
    return [x if isinstance(x, dict) else {} for x in list_of(schema, name)]


def props(schema: Schema) -> dict[str, Schema]:
    value = schema.get("properties")
    if not isinstance(value, dict):
        return {}
    return {k: v if isinstance(v, dict) else {} for k, v in value.items()}


def _sized(value: Any) -> bool:
    return not hasattr(value, "__len__") or len(value) > 0


_BOOL_FIELDS = {"nullable", "exclusiveMaximum", "exclusiveMinimum", "uniqueItems"}
_BOOL_FIELDS |= {"x-kubernetes-embedded-resource", "x-kubernetes-int-or-string"}
_STRING_FIELDS = {"id", "$schema", "description", "type", "format", "title", "pattern"}


def is_set(name: str, value: Any) -> bool:
    """Whether a JSONSchemaProps field holds a non-zero Go value: bools when true, strings
    when non-empty, pointers, slices and maps whenever present."""
    if value is None:
        return False
    if name in _BOOL_FIELDS:
        return value is not False
    return name not in _STRING_FIELDS or value != ""


def _set_fields(schema: Schema, nested: bool) -> set[str]:
    """Fields that are non-zero once the schema is a ``Structural`` (or, ``nested``, a
    ``NestedValueValidation``)."""
    out = set()
    for name in SCHEMA_FIELDS:
        value = schema.get(name)
        if name in _NOT_IN_STRUCTURAL or not is_set(name, value):
            continue
        if value == [] and name in _NIL_WHEN_EMPTY:
            continue
        if name == "properties" and not nested and not value:
            continue
        if name == "additionalProperties" and nested and value is False:
            continue
        out.add(name)
    return out


# --- NewStructural ---

_UNSUPPORTED = (
    ("id", "id"), ("$schema", "schema"), ("$ref", "$ref"),
    ("patternProperties", "patternProperties"), ("dependencies", "dependencies"),
    ("additionalItems", "additionalItems"), ("definitions", "definitions"),
)  # fmt: skip


def new_structural_error(schema: Schema) -> str | None:
    """The error ``schema.NewStructural`` returns for ``schema``, if any."""
    for name, shown in _UNSUPPORTED:
        value = schema.get(name)
        if value is not None and (name == "additionalItems" or _sized(value)):
            return f"OpenAPIV3Schema '{shown}' is not supported"
    for sub in [as_dict(schema.get("not"))] + [
        x for junctor in ("allOf", "anyOf", "oneOf") for x in schemas_of(schema, junctor)
    ]:
        if sub is not None and (err := new_structural_error(sub)):
            return err
    if schema.get("x-kubernetes-preserve-unknown-fields") is False:
        return "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
    items = schema.get("items")
    if isinstance(items, list) and items:
        return "OpenAPIV3Schema 'items' must be a schema, but is an array"
    subs = [as_dict(items), *props(schema).values(), as_dict(schema.get("additionalProperties"))]
    for sub in subs:
        if sub is not None and (err := new_structural_error(sub)):
            return err
    return None


# --- ValidateStructural ---

_ROOT, _ITEMS, _FIELD = range(3)
_EMPTY_TYPE = {
    _ROOT: "must not be empty at the root",
    _ITEMS: "must not be empty for specified array items",
    _FIELD: "must not be empty for specified object fields",
}


def structural_errors(schema: Schema, path: str) -> list[Cause]:
    """Whether ``schema`` is structural: ``NewStructural`` then ``ValidateStructural``,
    sorted by their rendering as kube sorts them. ``path`` is the schema's own path
    (``spec.validation.openAPIV3Schema``)."""
    if err := new_structural_error(schema):
        return [invalid(path, "", err)]
    out: list[Cause] = []
    _invariants(schema, _ROOT, path, out)
    _completeness(schema, schema, path, path, out)
    return sorted(out, key=lambda c: f"{c.field}: {c.message}")


def _int_or_string_any_of(any_of: list[Any]) -> bool:
    return len(any_of) == 2 and all(
        isinstance(x, dict) and _set_fields(x, nested=True) == {"type"} and x["type"] == t
        for x, t in zip(any_of, ("integer", "string"), strict=True)
    )


def _invariants(s: Schema, lvl: int, path: str, out: list[Cause]) -> None:
    typ = str_of(s, "type")
    items = as_dict(s.get("items"))
    if typ == "array" and items is None:
        out.append(required(child(path, "items"), "must be specified"))
    if items is not None:
        _invariants(items, _ITEMS, child(path, "items"), out)
    fields = props(s)
    for name, sub in fields.items():
        _invariants(sub, _FIELD, key(child(path, "properties"), name), out)
    additional = s.get("additionalProperties")
    if additional is not None:
        if lvl == _ROOT:
            out.append(
                forbidden(child(path, "additionalProperties"), "must not be used at the root")
            )
        if isinstance(additional, dict):
            _invariants(additional, _FIELD, child(path, "additionalProperties"), out)

    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if int_or_string and preserve:
        out.append(
            invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        out.append(
            invalid(
                child(path, "x-kubernetes-embedded-resource"),
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    all_of = list_of(s, "allOf")
    skip_first = bool(all_of) and _int_or_string_any_of(list_of(as_dict(all_of[0]) or {}, "anyOf"))
    _value_validation(s, _int_or_string_any_of(list_of(s, "anyOf")), skip_first, path, out)

    type_path = child(path, "type")
    if embedded and typ != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        out.append(invalid(type_path, typ, detail) if typ else required(type_path, detail))
    elif not typ and not int_or_string and not preserve:
        out.append(required(type_path, _EMPTY_TYPE[lvl]))
    if embedded and additional is not None:
        out.append(
            forbidden(
                child(path, "additionalProperties"),
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if lvl == _ROOT and typ and typ != "object":
        out.append(invalid(type_path, typ, "must be object at the root"))
    check_metadata = lvl == _ROOT or embedded
    for name in ("kind", "apiVersion"):
        if name in fields and check_metadata and str_of(fields[name], "type") != "string":
            field_type = str_of(fields[name], "type")
            out.append(
                invalid(child(path, f"properties[{name}]", "type"), field_type, "must be string")
            )
    if "metadata" in fields:
        _metadata(
            fields["metadata"], check_metadata, lvl, key(child(path, "properties"), "metadata"), out
        )
    if embedded and not preserve and not fields:
        out.append(
            required(
                child(path, "properties"),
                "must not be empty if x-kubernetes-embedded-resource "
                "is true without x-kubernetes-preserve-unknown-fields",
            )
        )


def _metadata(s: Schema, check: bool, lvl: int, path: str, out: list[Cause]) -> None:
    if check and str_of(s, "type") != "object":
        out.append(invalid(child(path, "type"), str_of(s, "type"), "must be object"))
    if lvl != _ROOT:
        return
    # Only name and generateName may be restricted (their schemas are not looked at);
    # type and default are checked elsewhere.
    fields = _set_fields(s, nested=False) - {"type", "default"}
    if "properties" in fields and set(props(s)) <= {"name", "generateName"}:
        fields.discard("properties")
    if fields:
        out.append(
            forbidden(
                path,
                "must not specify anything other than name and generateName, "
                "but metadata is implicitly specified",
            )
        )


def _value_validation(
    v: Schema, skip_any_of: bool, skip_first_all_of: bool, path: str, out: list[Cause]
) -> None:
    if not skip_any_of:
        for i, sub in enumerate(schemas_of(v, "anyOf")):
            _nested(sub, False, key(child(path, "anyOf"), i), out)
    for i, sub in enumerate(schemas_of(v, "allOf")):
        _nested(sub, skip_first_all_of and i == 0, key(child(path, "allOf"), i), out)
    for i, sub in enumerate(schemas_of(v, "oneOf")):
        _nested(sub, False, key(child(path, "oneOf"), i), out)
    if (not_ := as_dict(v.get("not"))) is not None:
        _nested(not_, False, child(path, "not"), out)
    pattern = str_of(v, "pattern")
    if pattern and (err := regexp_error(pattern)):
        out.append(
            invalid(
                child(path, "pattern"),
                pattern,
                f"must be a valid regular expression, but isn't: {err}",
            )
        )


_NESTED_FORBIDDEN = (
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)


def _nested(v: Schema, skip_any_of: bool, path: str, out: list[Cause]) -> None:
    """``validateNestedValueValidation``: a schema under allOf/anyOf/oneOf/not."""
    _value_validation(v, skip_any_of, False, path, out)
    if (items := as_dict(v.get("items"))) is not None:
        _nested(items, False, child(path, "items"), out)
    fields = props(v)
    for name, sub in fields.items():
        _nested(sub, False, key(child(path, "properties"), name), out)
    present = _set_fields(v, nested=True)
    if v.get("x-kubernetes-list-map-keys") == []:
        present.discard("x-kubernetes-list-map-keys")
    if v.get("x-kubernetes-validations") == []:
        present.discard("x-kubernetes-validations")
    for name, detail in _NESTED_FORBIDDEN:
        if name in present:
            out.append(forbidden(child(path, name), detail))
    if "metadata" in fields:
        out.append(
            forbidden(
                key(child(path, "properties"), "metadata"),
                "must not be specified in a nested context",
            )
        )


def _completeness(v: Schema, s: Schema | None, s_path: str, v_path: str, out: list[Cause]) -> None:
    """``validateValueValidationCompleteness``: what v's junctors specify must exist in s."""
    if s is None:
        out.append(required(s_path, f"because it is defined in {v_path}"))
        return
    if (not_ := as_dict(v.get("not"))) is not None:
        _nested_completeness(not_, s, s_path, child(v_path, "not"), out)
    for junctor in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(schemas_of(v, junctor)):
            _nested_completeness(sub, s, s_path, key(child(v_path, junctor), i), out)


def _nested_completeness(
    v: Schema | None, s: Schema | None, s_path: str, v_path: str, out: list[Cause]
) -> None:
    if v is None:
        return
    if s is None:
        out.append(required(s_path, f"because it is defined in {v_path}"))
        return
    _completeness(v, s, s_path, v_path, out)
    _nested_completeness(
        as_dict(v.get("items")),
        as_dict(s.get("items")),
        child(s_path, "items"),
        child(v_path, "items"),
        out,
    )
    s_fields = props(s)
    for name, sub in props(v).items():
        sp, vp = key(child(s_path, "properties"), name), key(child(v_path, "properties"), name)
        if name not in s_fields:
            out.append(required(sp, f"because it is defined in {vp}"))
        else:
            _nested_completeness(sub, s_fields[name], sp, vp, out)


# --- Go (RE2) regular expressions ---

_PY_TO_RE2 = (
    ("missing ), unterminated subpattern", "missing closing ): `{p}`"),
    ("unbalanced parenthesis", "unexpected ): `{p}`"),
    ("unterminated character set", "missing closing ]: `{tail}`"),
    ("nothing to repeat", "missing argument to repetition operator: `{at}`"),
    ("multiple repeat", "invalid nested repetition operator: `{pair}`"),
    ("bad escape (end of pattern)", "trailing backslash at end of expression: ``"),
    ("bad escape", "invalid escape sequence: `{esc}`"),
)
_RE2_ONLY_ESCAPES = set("pPzQEC")


def regexp_error(pattern: str) -> str | None:
    """Go's ``regexp.Compile`` error for ``pattern`` (RE2 syntax), as far as Python's ``re``
    can tell: the common mistakes get Go's wording, RE2 extensions are accepted."""
    if m := re.search(r"\(\?[=!]|\(\?<[=!]", pattern):
        return f"error parsing regexp: invalid or unsupported Perl syntax: `{m.group()[:3]}`"
    if m := re.search(r"\\[1-9]", pattern):
        return f"error parsing regexp: invalid escape sequence: `{m.group()}`"
    if m := re.search(r"\{(\d+)(,(\d*))?\}", pattern):
        if max(int(n) for n in (m.group(1), m.group(3) or "0")) > 1000:
            return f"error parsing regexp: invalid repeat count: `{m.group()}`"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            re.compile(pattern)
        except re.error as e:
            pos = e.pos or 0
            for prefix, fmt in _PY_TO_RE2:
                if not e.msg.startswith(prefix):
                    continue
                if prefix == "bad escape" and pattern[pos + 1 : pos + 2] in _RE2_ONLY_ESCAPES:
                    return None
                found = fmt.format(
                    p=pattern,
                    tail=pattern[pos:],
                    at=pattern[pos : pos + 1],
                    pair=pattern[max(pos - 1, 0) : pos + 1],
                    esc=pattern[pos : pos + 2],
                )
                return f"error parsing regexp: {found}"
            if e.msg.startswith("bad character range"):
                return f"error parsing regexp: invalid character class range: `{e.msg.split()[-1]}`"
            return None  # constructs Python lacks but RE2 has (flags mid-pattern, \pL, ...)
    return None
