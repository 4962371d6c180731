"""Schema and metadata validation with Kubernetes' error messages.

:func:`validate_object` walks an object against its OpenAPI definition and
reports type errors (as :class:`~skiff.api.errors.Cause`) and unknown fields
(as dotted paths, for ``fieldValidation=Strict``/``Warn``). Each definition is
compiled once into a small tree of :class:`_Node` objects, so a walk never
resolves a ``$ref`` again.

The metadata checks mirror ``k8s.io/apimachinery/pkg/api/validation/objectmeta.go``
(Kubernetes 1.32), messages included; names and label values are
:mod:`skiff.api.names`.
"""

from __future__ import annotations

import binascii
import functools
import json
import re
import threading
from typing import Any

from skiff.api.errors import ApiError, Cause
from skiff.api.intstr import is_percent
from skiff.api.names import (
    NAME_RULES,
    byte_length,
    is_qualified_name,
    is_valid_label_value,
)
from skiff.api.selectors import selector_from_dict
from skiff.apiserver import schema

__all__ = [
    "quantity_error",
    "required_causes",
    "unknown_field_messages",
    "validate_object",
    "validate_object_meta",
]

# --- field error rendering (k8s.io/apimachinery/pkg/util/validation/field) ---

INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
REQUIRED = "FieldValueRequired"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
NOT_SUPPORTED = "FieldValueNotSupported"


def _fmt_value(value: Any) -> str:
    """A bad value the way ``field.Error.ErrorBody`` prints it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(path, f"Invalid value: {_fmt_value(value)}: {detail}", INVALID)


def _required(path: str, detail: str = "") -> Cause:
    return Cause(path, f"Required value: {detail}" if detail else "Required value", REQUIRED)


def _forbidden(path: str, detail: str) -> Cause:
    return Cause(path, f"Forbidden: {detail}", FORBIDDEN)


def duplicate(path: str, value: Any) -> Cause:
    """``field.Duplicate``."""
    return Cause(path, f"Duplicate value: {_fmt_value(value)}", "FieldValueDuplicate")


def not_found(path: str, value: Any) -> Cause:
    """``field.NotFound``."""
    return Cause(path, f"Not found: {_fmt_value(value)}", "FieldValueNotFound")


def not_supported(path: str, value: Any, supported: list[str]) -> Cause:
    """``field.NotSupported``: the value and the values that are."""
    listed = ", ".join(_fmt_value(v) for v in supported)
    return Cause(
        path, f"Unsupported value: {_fmt_value(value)}: supported values: {listed}", NOT_SUPPORTED
    )


# The field.Error constructors, for the registry's own rules.
invalid, required, forbidden = _invalid, _required, _forbidden


def too_long(path: str, limit: int) -> Cause:
    """``field.TooLong`` (the value is never printed)."""
    return Cause(path, f"Too long: may not be more than {limit} bytes", TOO_LONG)


def semantic(v: Any) -> Any:
    """A value as Go's ``Semantic.DeepEqual`` compares it: empty lists and maps, and
    missing fields, alike."""
    if isinstance(v, dict):
        return {k: semantic(x) for k, x in v.items() if x not in (None, [], {})}
    if isinstance(v, list):
        return [semantic(x) for x in v]
    return v


def field_diff(type_name: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short diff of two structs' fields, for kube's "… is immutable" messages (kube
    prints go-cmp's, which is not stable)."""
    lines = [f"  {type_name}{{"]
    for key in sorted(set(old) | set(new)):
        if semantic(old.get(key)) != semantic(new.get(key)):
            if key in old:
                lines.append(f"-   {key}: {json.dumps(old[key], sort_keys=True)},")
            if key in new:
                lines.append(f"+   {key}: {json.dumps(new[key], sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines)


def immutable(path: str, new: Any, old: Any) -> list[Cause]:
    """``ValidateImmutableField``: ``new`` must equal ``old``."""
    return [] if new == old else [_invalid(path, new, "field is immutable")]


_PERCENT_MESSAGE = (
    "a valid percent string must be a numeric string followed by an ending '%' "
    "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
)


def _go_int_or_string(value: int | str) -> str:
    """An ``intstr.IntOrString`` as Go's ``%#v`` prints it in field errors."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def int_or_percent(value: Any, path: str, *, at_most_100: bool = True) -> list[Cause]:
    """``ValidatePositiveIntOrPercent`` (a count of 0 or more, or ``"N%"``) and, unless
    told otherwise, ``IsNotMoreThan100Percent``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [Cause(path, f"Invalid value: {_fmt_value(value)}: must be an integer or "
                            "percentage (e.g '5%')", INVALID)]  # fmt: skip
    if isinstance(value, int):
        if value < 0:
            return [_invalid(path, value, "must be greater than or equal to 0")]
        return []
    if not is_percent(value):
        return [Cause(path, f"Invalid value: {_go_int_or_string(value)}: {_PERCENT_MESSAGE}")]
    if at_most_100 and int(value[:-1]) > 100:
        return [Cause(path, f"Invalid value: {_go_int_or_string(value)}: must not be greater "
                            "than 100%")]  # fmt: skip
    return []


def label_selector(raw: Any, path: str) -> list[Cause]:
    """``ValidateLabelSelector``: the selector's own message for what does not parse (no
    selector is valid)."""
    if raw is None:
        return []
    try:
        selector_from_dict(raw)
    except ApiError as e:
        return [Cause(path, e.message)]
    return []


# --- schema compilation ---

_ANY, _OBJECT, _ARRAY, _STRING, _INTEGER, _NUMBER, _BOOLEAN, _INT_OR_STRING, _QUANTITY = range(9)

_TYPE_CODES = {
    "object": _OBJECT,
    "array": _ARRAY,
    "string": _STRING,
    "integer": _INTEGER,
    "number": _NUMBER,
    "boolean": _BOOLEAN,
}
_TYPE_NAMES = {
    _OBJECT: "object",
    _ARRAY: "array",
    _STRING: "string",
    _INTEGER: "integer",
    _NUMBER: "number",
    _BOOLEAN: "boolean",
    _INT_OR_STRING: "integer,string",
    _QUANTITY: "number,string",
}
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class _Node:
    """One compiled schema: what type a value must have and what is inside it."""

    __slots__ = ("additional", "fmt", "items", "kind", "open", "props", "required")

    def __init__(self) -> None:
        self.kind = _ANY
        self.props: dict[str, _Node] | None = None
        self.additional: _Node | None = None
        self.items: _Node | None = None
        self.open = True
        """Whether keys outside ``props`` are accepted (no unknown-field report)."""
        self.required: tuple[str, ...] = ()
        self.fmt = ""


_NAMED: dict[str, _Node] = {}


def _named(name: str) -> _Node:
    # The node is registered before it is filled so that recursive definitions
    # (JSONSchemaProps) end up pointing at themselves instead of looping.
    node = _NAMED.get(name)
    if node is None:
        node = _NAMED[name] = _Node()
        _fill(node, schema.definitions()[name])
    return node


def _compile(sch: dict[str, Any]) -> _Node:
    name = schema.ref_name(sch)
    if name is not None:
        return _named(name)
    node = _Node()
    _fill(node, sch)
    return node


def _type_of(sch: dict[str, Any]) -> str | None:
    t = sch.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), None)
    return t


def _fill(node: _Node, sch: dict[str, Any]) -> None:
    if sch.get("x-kubernetes-int-or-string"):
        node.kind = _INT_OR_STRING
        return
    if "oneOf" in sch or "anyOf" in sch:
        alts = {_type_of(s) for s in sch.get("oneOf", sch.get("anyOf", ()))}
        if alts == {"string", "integer"}:
            node.kind = _INT_OR_STRING
        elif alts == {"string", "number"}:
            node.kind = _QUANTITY
        # Any other union is left unchecked (none occurs in the built-in types).
        return
    t = _type_of(sch)
    node.fmt = sch.get("format", "")
    if t is None and ("properties" in sch or "additionalProperties" in sch):
        t = "object"
    node.kind = _TYPE_CODES.get(t, _ANY) if t else _ANY
    if node.kind == _OBJECT:
        props = sch.get("properties")
        additional = sch.get("additionalProperties")
        if props is not None:
            node.props = {k: _compile(v) for k, v in props.items()}
        if isinstance(additional, dict):
            node.additional = _compile(additional)
        # Objects without declared fields (RawExtension, FieldsV1...) hold anything.
        node.open = bool(
            sch.get("x-kubernetes-preserve-unknown-fields")
            or additional is True
            or (props is None and additional is None)
        )
        node.required = tuple(sch.get("required", ()))
    elif node.kind == _ARRAY:
        items = sch.get("items")
        if isinstance(items, dict):
            node.items = _compile(items)


_COMPILE_LOCK = threading.Lock()


@functools.cache
def _root(definition: str) -> _Node:
    if definition not in schema.definitions():
        raise KeyError(f"unknown schema definition {definition!r}")
    # Nodes are registered before they are filled, so compile under a lock.
    with _COMPILE_LOCK:
        return _named(definition)


# --- value checks ---


def _json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a value."""
    t = type(value)
    if t is str:
        return "string"
    if t is bool:
        return "boolean"
    if t is int:
        return "integer"
    if t is float:
        return "integer" if value.is_integer() else "number"
    if t is dict:
        return "object"
    if t is list:
        return "array"
    if value is None:
        return "null"
    return t.__name__


_QUANTITY_RE = re.compile(r"[+-]?[0-9]*(?:\.[0-9]*)?([eEinumkKMGTP]*[-+]?[0-9]*)")
_QUANTITY_SUFFIXES = frozenset(
    ("", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
)
_QUANTITY_EXP_RE = re.compile(r"[eE][+-]?[0-9]+")
QUANTITY_FORMAT_ERROR = (
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
)
QUANTITY_SUFFIX_ERROR = "unable to parse quantity's suffix"


def quantity_error(value: str) -> str | None:
    """Why ``resource.ParseQuantity`` would reject ``value``, or ``None``."""
    m = _QUANTITY_RE.fullmatch(value) if value else None
    if m is None:
        return QUANTITY_FORMAT_ERROR
    suffix = m.group(1)
    if suffix in _QUANTITY_SUFFIXES or _QUANTITY_EXP_RE.fullmatch(suffix):
        return None
    return QUANTITY_SUFFIX_ERROR


_DATE_TIME_RE = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)


def _format_ok(fmt: str, value: str) -> bool:
    if fmt == "date-time":
        return _DATE_TIME_RE.fullmatch(value) is not None
    if fmt == "byte":
        # Go's base64.StdEncoding skips newlines and wants padding.
        try:
            binascii.a2b_base64(value.replace("\n", "").replace("\r", ""), strict_mode=True)
        except (binascii.Error, ValueError):
            return False
        return True
    return True


def _type_cause(path: str, expected: int, value: Any) -> Cause:
    got = _json_type(value)
    name = path or "body"
    return Cause(
        path,
        f'Invalid value: "{got}": {name} in body must be of type {_TYPE_NAMES[expected]}: "{got}"',
        TYPE_INVALID,
    )


def _check_int(node: _Node, value: Any, path: str, errs: list[Cause]) -> None:
    bounds = _INT_RANGES.get(node.fmt)
    if bounds is None:
        return
    lo, hi = bounds
    if value > hi:
        errs.append(_invalid(path, value, f"{path} in body should be less than or equal to {hi}"))
    elif value < lo:
        errs.append(
            _invalid(path, value, f"{path} in body should be greater than or equal to {lo}")
        )


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


Errs = list[Cause]


def _walk(node: _Node, value: Any, path: str, errs: Errs, unknown: list[str]) -> None:
    """Check ``value`` against ``node``: type errors into ``errs``, unknown field paths
    into ``unknown``; one small checker per schema kind."""
    _WALKERS[node.kind](node, value, path, errs, unknown)


def _walk_object(node: _Node, value: Any, path: str, errs: Errs, unknown: list[str]) -> None:
    if type(value) is not dict:
        errs.append(_type_cause(path, node.kind, value))
        return
    props = node.props
    additional = node.additional
    for key, sub in value.items():
        if sub is None:
            continue
        child = props.get(key) if props is not None else None
        if child is None:
            child = additional
            if child is None:
                if not node.open:
                    unknown.append(_child(path, key))
                continue
        if child.kind != _ANY:
            _walk(child, sub, _child(path, key), errs, unknown)


def _walk_array(node: _Node, value: Any, path: str, errs: Errs, unknown: list[str]) -> None:
    if type(value) is not list:
        errs.append(_type_cause(path, node.kind, value))
        return
    items = node.items
    if items is not None and items.kind != _ANY:
        for i, sub in enumerate(value):
            if sub is not None:
                _walk(items, sub, f"{path}[{i}]", errs, unknown)


def _walk_string(node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]) -> None:
    if type(value) is not str:
        errs.append(_type_cause(path, node.kind, value))
    elif node.fmt and not _format_ok(node.fmt, value):
        message = f"{path} in body must be of type {node.fmt}: {_fmt_value(value)}"
        errs.append(_invalid(path, value, message))


def _walk_integer(node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]) -> None:
    t = type(value)
    if t is int:
        _check_int(node, value, path, errs)
    elif t is float and value.is_integer():
        _check_int(node, int(value), path, errs)
    else:
        errs.append(_type_cause(path, node.kind, value))


def _walk_boolean(node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]) -> None:
    if type(value) is not bool:
        errs.append(_type_cause(path, node.kind, value))


def _walk_number(node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]) -> None:
    if type(value) is not int and type(value) is not float:
        errs.append(_type_cause(path, node.kind, value))


def _walk_int_or_string(
    node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]
) -> None:
    t = type(value)
    if not (t is str or t is int or (t is float and value.is_integer())):
        errs.append(_type_cause(path, node.kind, value))


def _walk_quantity(node: _Node, value: Any, path: str, errs: Errs, _unknown: list[str]) -> None:
    t = type(value)
    if t is str:
        why = quantity_error(value)
        if why is not None:
            errs.append(_invalid(path, value, why))
    elif t is not int and t is not float:
        errs.append(_type_cause(path, node.kind, value))


_WALKERS = {
    _OBJECT: _walk_object,
    _ARRAY: _walk_array,
    _STRING: _walk_string,
    _INTEGER: _walk_integer,
    _BOOLEAN: _walk_boolean,
    _NUMBER: _walk_number,
    _INT_OR_STRING: _walk_int_or_string,
    _QUANTITY: _walk_quantity,
}


def validate_object(obj: dict[str, Any], definition: str) -> tuple[list[Cause], list[str]]:
    """Check ``obj`` against the schema ``definition`` (``io.k8s.api.apps.v1.Deployment``).

    Returns ``(type_errors, unknown_fields)``: causes for values of the wrong
    type or format, and the dotted paths of fields the schema does not know
    (``spec.template.spec.containers[0].foo``). ``null`` is accepted anywhere and
    ``required`` is not enforced here (see :func:`required_causes`).
    """
    errs: list[Cause] = []
    unknown: list[str] = []
    _walk(_root(definition), obj, "", errs, unknown)
    return errs, unknown


def unknown_field_messages(paths: list[str]) -> list[str]:
    """Strict-decoding wording for unknown fields: ``unknown field "spec.foo"``."""
    return [f'unknown field "{p}"' for p in paths]


def _walk_required(node: _Node, value: Any, path: str, out: list[Cause]) -> None:
    if node.kind == _OBJECT and type(value) is dict:
        for key in node.required:
            if value.get(key) is None:
                out.append(_required(_child(path, key)))
        props = node.props
        additional = node.additional
        for key, sub in value.items():
            if sub is None:
                continue
            child = props.get(key) if props is not None else None
            if child is None:
                child = additional
            if child is not None and child.kind in (_OBJECT, _ARRAY):
                _walk_required(child, sub, _child(path, key), out)
    elif node.kind == _ARRAY and type(value) is list and node.items is not None:
        if node.items.kind in (_OBJECT, _ARRAY):
            for i, sub in enumerate(value):
                _walk_required(node.items, sub, f"{path}[{i}]", out)


def required_causes(obj: dict[str, Any], definition: str) -> list[Cause]:
    """``Required value`` causes for every field the schema lists as ``required``
    but ``obj`` lacks (or sets to ``null``), at any depth."""
    out: list[Cause] = []
    _walk_required(_root(definition), obj, "", out)
    return out


# --- ObjectMeta (k8s.io/apimachinery/pkg/api/validation/objectmeta.go) ---

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_BANNED_OWNERS = {("", "v1", "Event"), ("events.k8s.io", "v1", "Event")}


def _validate_labels(labels: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(labels, dict):
        return out
    for key, value in labels.items():
        if isinstance(key, str):
            out.extend(_invalid(path, key, m) for m in is_qualified_name(key))
        if isinstance(value, str):
            out.extend(_invalid(path, value, m) for m in is_valid_label_value(value))
    return out


validate_labels = _validate_labels
"""``ValidateLabels``: keys as qualified names, values as label values."""


def _validate_annotations(annotations: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(annotations, dict):
        return out
    total = 0
    for key, value in annotations.items():
        if not isinstance(key, str):
            continue
        # Annotation keys are qualified names, except that case does not matter.
        out.extend(_invalid(path, key, m) for m in is_qualified_name(key.lower()))
        total += byte_length(key) + (byte_length(value) if isinstance(value, str) else 0)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        out.append(
            Cause(
                path,
                f"Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes",
                TOO_LONG,
            )
        )
    return out


validate_annotations = _validate_annotations
"""``ValidateAnnotations``: keys as qualified names, 256 KiB in all."""


def _validate_owner_references(refs: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(refs, list):
        return out
    controllers = []
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        api_version = ref.get("apiVersion") or ""
        kind = ref.get("kind") or ""
        group, _, version = str(api_version).rpartition("/")
        if not version:
            out.append(_invalid(f"{path}.apiVersion", api_version, "version must not be empty"))
        if not kind:
            out.append(_invalid(f"{path}.kind", kind, "must not be empty"))
        if not ref.get("name"):
            out.append(_invalid(f"{path}.name", ref.get("name") or "", "must not be empty"))
        if not ref.get("uid"):
            out.append(_invalid(f"{path}.uid", ref.get("uid") or "", "must not be empty"))
        if (group, version, kind) in _BANNED_OWNERS:
            gvk = f"{group}/{version}, Kind={kind}"
            out.append(_invalid(path, ref, f"{gvk} is disallowed from being an owner"))
        if ref.get("controller") is True:
            controllers.append(f"{kind}/{ref.get('name', '')}")
    if len(controllers) > 1:
        out.append(
            _invalid(
                path,
                refs,
                'Only one reference can have Controller set to true. Found "true" in '
                f"references for {' and '.join(controllers)}",
            )
        )
    return out


def _validate_finalizers(finalizers: Any, path: str) -> list[Cause]:
    out: list[Cause] = []
    if not isinstance(finalizers, list):
        return out
    for finalizer in finalizers:
        if isinstance(finalizer, str):
            out.extend(_invalid(path, finalizer, m) for m in is_qualified_name(finalizer))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        out.append(
            _invalid(path, finalizers, "finalizer orphan and foregroundDeletion cannot be both set")
        )
    return out


def validate_object_meta(
    meta: dict[str, Any], namespaced: bool, name_rule: str = "subdomain"
) -> list[Cause]:
    """``ValidateObjectMeta``: name/generateName, namespace, labels, annotations,
    ownerReferences, finalizers and generation, with fields under ``metadata.``.

    A missing name is only an error when ``generateName`` is missing too, so
    call this before the name is generated or after, either works. Values of the
    wrong JSON type are skipped here (:func:`validate_object` reports them).
    """
    rule = NAME_RULES[name_rule]
    out: list[Cause] = []
    name = meta.get("name")
    generate_name = meta.get("generateName")
    if isinstance(generate_name, str) and generate_name:
        out.extend(
            _invalid("metadata.generateName", generate_name, m) for m in rule(generate_name, True)
        )
    if not name:
        if not generate_name:
            out.append(_required("metadata.name", "name or generateName is required"))
    elif isinstance(name, str):
        out.extend(_invalid("metadata.name", name, m) for m in rule(name, False))

    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            out.append(_required("metadata.namespace"))
        elif isinstance(namespace, str):
            out.extend(
                _invalid("metadata.namespace", namespace, m)
                for m in NAME_RULES["label"](namespace, False)
            )
    elif namespace:
        out.append(_forbidden("metadata.namespace", "not allowed on this type"))

    generation = meta.get("generation")
    if type(generation) is int and generation < 0:
        out.append(
            _invalid("metadata.generation", generation, "must be greater than or equal to 0")
        )
    out.extend(_validate_labels(meta.get("labels"), "metadata.labels"))
    out.extend(_validate_annotations(meta.get("annotations"), "metadata.annotations"))
    out.extend(_validate_owner_references(meta.get("ownerReferences"), "metadata.ownerReferences"))
    out.extend(_validate_finalizers(meta.get("finalizers"), "metadata.finalizers"))
    return out
