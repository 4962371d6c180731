"""The per-node rules Kubernetes 1.32 applies to a CRD's ``openAPIV3Schema``
(``ValidateCustomResourceDefinitionOpenAPISchema`` in apiextensions' validation.go), on the
schema's v1 JSON: unsupported keywords, defaults inside metadata, the list/map extensions and
the checks of ``x-kubernetes-validations`` (their CEL compiled by :mod:`.cel`). Also the
schema as a whole (:func:`validation_errors`: root rules with a status subresource,
structurality), ``cel.ValidFieldPath`` (:func:`resolve_field_path`) and selectable fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from skiff.api.errors import Cause
from skiff.apiserver.validation import _fmt_value, forbidden, invalid, not_supported, required

from .cel import has_rules, rule_errors
from .celtypes import SchemaTypes
from .fieldpath import resolve_field_path
from .structural import (
    SCHEMA_FIELDS,
    Schema,
    as_dict,
    child,
    go_strings,
    invalid_shown,
    is_set,
    key,
    list_of,
    new_structural_error,
    props,
    schemas_of,
    str_of,
    strs_of,
    structural_errors,
)

OPENAPI_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_META_FIELDS = {"metadata", "kind", "apiVersion"}
_VALIDATION_REASONS = [
    "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired",
]  # fmt: skip
_NEWLINE = re.compile(r"[\n\r]+")
_ROOT_FIELDS_WITH_STATUS = {
    "description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
    "uniqueItems", "multipleOf", "required", "items", "properties", "externalDocs", "example",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations",
}  # fmt: skip
_ROOT_FIELDS_MESSAGE = (
    "only [Description Type Format Title Maximum ExclusiveMaximum Minimum ExclusiveMinimum "
    "MaxLength MinLength Pattern MaxItems MinItems UniqueItems MultipleOf Required Items "
    "Properties ExternalDocs Example XPreserveUnknownFields XValidations] fields are allowed at "
    "the root of the schema if the status subresource is enabled"
)
_SELECTABLE_TYPE_MESSAGE = (
    "must point to a field of type string, boolean or integer. "
    "Enum string fields and strings with formats are allowed."
)


@dataclass(frozen=True)
class SchemaOptions:
    """The ratcheting switches of kube's ``validationOptions`` that reach the schema walk."""

    require_valid_property_type: bool = True
    require_atomic_set_type: bool = True
    require_map_list_keys: bool = True


@dataclass(frozen=True)
class _Walk:
    allow_defaults: bool = True
    no_defaults_reason: str = ""
    inside_meta: bool = False
    # CEL: the schema's types (None: rules are not compiled here), where their errors go, and
    # the list above whose items' old values cannot be correlated ("" if none)
    cel: SchemaTypes | None = None
    cel_errs: list[Cause] = field(default_factory=list)
    uncorrelatable: str = ""

    def no_defaults(self, reason: str) -> _Walk:
        return replace(self, allow_defaults=False, no_defaults_reason=reason)


def openapi_errors(
    schema: Schema, path: str, opts: SchemaOptions, types: SchemaTypes | None = None
) -> list[Cause]:
    """The per-node OpenAPI rules for a CRD schema (unsupported keywords, defaults in
    metadata, list/map extensions, static x-kubernetes-validations checks); with ``types``
    the rules are compiled too, and their errors come after all the others."""
    out: list[Cause] = []
    walk = _Walk(cel=types)
    _openapi(schema, path, walk, True, opts, out)
    return out + walk.cel_errs


def _openapi(
    s: Schema | None, path: str, walk: _Walk, is_root: bool, opts: SchemaOptions, out: list[Cause]
) -> None:
    if s is None:
        return
    start = len(out)
    _keyword_errors(s, path, walk, opts, out)
    if s.get("uniqueItems") is True:
        out.append(
            forbidden(
                child(path, "uniqueItems"),
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    fields = props(s)
    additional = s.get("additionalProperties")
    if additional is not None:
        if fields and (additional is False or isinstance(additional, dict)):
            out.append(
                forbidden(
                    child(path, "additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        sub = walk
        if walk.inside_meta:
            sub = walk.no_defaults("inside additionalProperties applying to object metadata")
        _openapi(as_dict(additional), child(path, "additionalProperties"), sub, False, opts, out)
    embedded = s.get("x-kubernetes-embedded-resource") is True
    for name, field_schema in fields.items():
        sub = walk
        if s.get("x-kubernetes-map-type") not in (None, "granular", "atomic"):
            sub = replace(sub, uncorrelatable=sub.uncorrelatable or path)
        if (is_root or embedded) and name in _META_FIELDS:
            sub = replace(sub, inside_meta=True)
            if is_root:
                sub = sub.no_defaults(f"in top-level {name}")
        _openapi(field_schema, key(child(path, "properties"), name), sub, False, opts, out)
    plain = replace(walk, cel=None)  # kube compiles no rules in junctors and the like
    _openapi(as_dict(s.get("not")), child(path, "not"), plain, False, opts, out)
    for junctor in ("allOf", "oneOf", "anyOf"):
        for i, sub_schema in enumerate(schemas_of(s, junctor)):
            _openapi(sub_schema, key(child(path, junctor), i), plain, False, opts, out)
    for name, sub_schema in (as_dict(s.get("definitions")) or {}).items():
        _openapi(
            as_dict(sub_schema), key(child(path, "definitions"), name), plain, False, opts, out
        )
    items = s.get("items")
    sub = walk
    if s.get("x-kubernetes-list-type") != "map":  # only map lists correlate old items
        sub = replace(walk, uncorrelatable=walk.uncorrelatable or path)
    if isinstance(items, dict):
        _openapi(items, child(path, "items"), sub, False, opts, out)
    elif isinstance(items, list):
        for i, sub_schema in enumerate(items):
            _openapi(as_dict(sub_schema) or {}, key(child(path, "items"), i), sub, False, opts, out)
    for name, sub_schema in (as_dict(s.get("dependencies")) or {}).items():
        _openapi(
            as_dict(sub_schema), key(child(path, "dependencies"), name), plain, False, opts, out
        )
    _extension_errors(s, path, opts, out)
    _x_validations_errors(s, path, out)
    # rules compile only where this node and those below it broke no other rule
    if walk.cel is not None and len(out) == start:
        resource = is_root or embedded
        walk.cel_errs.extend(rule_errors(walk.cel, s, resource, path, walk.uncorrelatable))


def _keyword_errors(
    s: Schema, path: str, walk: _Walk, opts: SchemaOptions, out: list[Cause]
) -> None:
    """``specStandardValidatorV3.validate``."""
    typ = str_of(s, "type")
    if opts.require_valid_property_type and typ and typ not in OPENAPI_TYPES:
        out.append(not_supported(child(path, "type"), typ, OPENAPI_TYPES))
    if s.get("default") is not None and not walk.allow_defaults:
        reason = f" {walk.no_defaults_reason}" if walk.no_defaults_reason else ""
        out.append(forbidden(child(path, "default"), "must not be set" + reason))
    if s.get("id"):
        out.append(forbidden(child(path, "id"), "id is not supported"))
    if s.get("additionalItems") is not None:
        out.append(forbidden(child(path, "additionalItems"), "additionalItems is not supported"))
    for name in ("patternProperties", "definitions"):
        if s.get(name):
            out.append(forbidden(child(path, name), f"{name} is not supported"))
    if s.get("dependencies") is not None:
        out.append(forbidden(child(path, "dependencies"), "dependencies is not supported"))
    if s.get("$ref") is not None:
        out.append(forbidden(child(path, "$ref"), "$ref is not supported"))
    if typ == "null":
        out.append(
            forbidden(
                child(path, "type"), "type cannot be set to null, use nullable as an alternative"
            )
        )
    if isinstance(s.get("items"), list) and s["items"]:
        out.append(
            forbidden(child(path, "items"), "items must be a schema object and not an array")
        )
    if walk.inside_meta and s.get("x-kubernetes-embedded-resource") is True:
        out.append(
            forbidden(
                child(path, "x-kubernetes-embedded-resource"),
                "must not be used inside of resource meta",
            )
        )


def _extension_errors(s: Schema, path: str, opts: SchemaOptions, out: list[Cause]) -> None:
    typ = str_of(s, "type")
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        out.append(
            invalid(
                child(path, "x-kubernetes-preserve-unknown-fields"),
                False,
                "must be true or undefined",
            )
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and typ != "object":
        detail = "must be object if x-kubernetes-map-type is specified"
        type_path = child(path, "type")
        out.append(invalid(type_path, typ, detail) if typ else required(type_path, detail))
    if map_type is not None and map_type not in ("atomic", "granular"):
        out.append(
            not_supported(child(path, "x-kubernetes-map-type"), map_type, ["atomic", "granular"])
        )
    list_type = s.get("x-kubernetes-list-type")
    items = as_dict(s.get("items"))
    if list_type is not None and typ != "array":
        detail = "must be array if x-kubernetes-list-type is specified"
        type_path = child(path, "type")
        out.append(invalid(type_path, typ, detail) if typ else required(type_path, detail))
    elif opts.require_atomic_set_type and list_type == "set" and items is not None:
        _set_items_errors(items, path, out)
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        out.append(
            not_supported(
                child(path, "x-kubernetes-list-type"), list_type, ["atomic", "set", "map"]
            )
        )
    if list_of(s, "x-kubernetes-list-map-keys"):
        detail = "must be map if x-kubernetes-list-map-keys is non-empty"
        lt_path = child(path, "x-kubernetes-list-type")
        if list_type is None:
            out.append(required(lt_path, detail))
        elif list_type != "map":
            out.append(invalid(lt_path, list_type, detail))
    if list_type == "map":
        _map_list_errors(s, path, out)
    if opts.require_map_list_keys:
        out.extend(map_list_key_errors(s, path))


def _set_items_errors(items: Schema, path: str, out: list[Cause]) -> None:
    detail = "must be atomic as item of a list with x-kubernetes-list-type=set"
    item_list_type = items.get("x-kubernetes-list-type")
    shown = "null" if item_list_type is None else item_list_type  # how Go prints a nil *string
    if items.get("type") == "array" and item_list_type not in (None, "atomic"):
        out.append(invalid(child(path, "items", "x-kubernetes-list-type"), shown, detail))
    elif items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
        # kube reports the item's list type here, not its map type.
        out.append(invalid(child(path, "items", "x-kubernetes-map-type"), shown, detail))


def _map_list_errors(s: Schema, path: str, out: list[Cause]) -> None:
    keys = strs_of(s, "x-kubernetes-list-map-keys")
    keys_path = child(path, "x-kubernetes-list-map-keys")
    if not keys:
        out.append(required(keys_path, "must not be empty if x-kubernetes-list-type is map"))
    items = s.get("items")
    if items is None:
        out.append(
            required(child(path, "items"), "must have a schema if x-kubernetes-list-type is map")
        )
        return
    if not isinstance(items, dict):
        out.append(
            invalid(
                child(path, "items"),
                items,
                "must only have a single schema if x-kubernetes-list-type is map",
            )
        )
        return
    item_type = str_of(items, "type")
    if item_type != "object":
        out.append(
            invalid(
                child(path, "items", "type"),
                item_type,
                "must be object if parent array's x-kubernetes-list-type is map",
            )
        )
        return
    item_fields, seen = props(items), set()
    for k in keys:
        if k in item_fields:
            if item_fields[k].get("type") in ("array", "object"):
                out.append(
                    invalid(
                        key(child(path, "items", "properties"), k) + ".type",
                        item_type,
                        "must be a scalar type if parent array's x-kubernetes-list-type is map",
                    )
                )
        else:
            out.append(
                invalid_shown(
                    keys_path, go_strings(keys), "entries must all be names of item properties"
                )
            )
        if k in seen:
            out.append(
                invalid_shown(keys_path, go_strings(keys), "must not contain duplicate entries")
            )
        seen.add(k)


def map_list_key_errors(s: Schema, path: str) -> list[Cause]:
    """``validateMapListKeysMapSet``: set/map items not nullable; map keys required or
    defaulted, and not nullable."""
    items, list_type = as_dict(s.get("items")), s.get("x-kubernetes-list-type")
    if items is None or list_type not in ("set", "map"):
        return []
    out = []
    if items.get("nullable") is True:
        out.append(
            forbidden(
                child(path, "items", "nullable"),
                f"cannot be nullable when x-kubernetes-list-type is {list_type}",
            )
        )
    if list_type != "map":
        return out
    required_keys, item_fields = set(strs_of(items, "required")), props(items)
    for k in strs_of(s, "x-kubernetes-list-map-keys"):
        if k not in item_fields:
            continue
        field_path = key(child(path, "items", "properties"), k)
        if k not in required_keys and item_fields[k].get("default") is None:
            out.append(
                required(
                    child(field_path, "default"),
                    "this property is in x-kubernetes-list-map-keys, "
                    "so it must have a default or be a required property",
                )
            )
        if item_fields[k].get("nullable") is True:
            out.append(
                forbidden(
                    child(field_path, "nullable"),
                    "this property is in x-kubernetes-list-map-keys, so it cannot be nullable",
                )
            )
    return out


def _x_validations_errors(s: Schema, path: str, out: list[Cause]) -> None:
    """The static checks of each ``x-kubernetes-validations`` rule (see :func:`.cel.rule_errors`
    for the compiled ones)."""
    for i, rule in enumerate(schemas_of(s, "x-kubernetes-validations")):
        rule_path = key(child(path, "x-kubernetes-validations"), i)
        text, message = str_of(rule, "rule").strip(), str_of(rule, "message")
        if not text:
            out.append(required(child(rule_path, "rule"), "rule is not specified"))
        elif message and not message.strip():
            out.append(
                invalid(
                    child(rule_path, "message"), message, "message must be non-empty if specified"
                )
            )
        elif _NEWLINE.search(message.strip()):
            out.append(
                invalid(
                    child(rule_path, "message"), message, "message must not contain line breaks"
                )
            )
        elif _NEWLINE.search(text) and not message.strip():
            out.append(
                required(
                    child(rule_path, "message"),
                    "message must be specified if rule contains line breaks",
                )
            )
        expression = str_of(rule, "messageExpression")
        if expression and not expression.strip():
            out.append(
                required(
                    child(rule_path, "messageExpression"),
                    "messageExpression must be non-empty if specified",
                )
            )
        reason = rule.get("reason")
        if reason is not None and reason not in _VALIDATION_REASONS:
            out.append(not_supported(child(rule_path, "reason"), reason, _VALIDATION_REASONS))
        field_path = str_of(rule, "fieldPath")
        fp = child(rule_path, "fieldPath")
        if field_path and not field_path.strip():
            out.append(invalid(fp, field_path, "fieldPath must be non-empty if specified"))
        if _NEWLINE.search(field_path):
            out.append(invalid(fp, field_path, "fieldPath must not contain line breaks"))
        if field_path and new_structural_error(s) is None:
            if resolve_field_path(field_path, s)[2] is not None:
                out.append(invalid(fp, field_path, "fieldPath must be a valid path"))


# --- validateCustomResourceDefinitionValidation, selectable fields ---


def schema_in(validation: Any) -> Schema | None:
    """The ``openAPIV3Schema`` of a ``CustomResourceValidation``, if any."""
    return as_dict((as_dict(validation) or {}).get("openAPIV3Schema"))


def _status_root_errors(schema: Schema, path: str) -> list[Cause]:
    """With a status subresource the root may only hold what survives as
    ``properties[status]``; kube reports the first offending field, in struct order."""
    for name in SCHEMA_FIELDS:
        value = schema.get(name)
        if not is_set(name, value):
            continue
        if name == "type" and value != "object":
            detail = 'only "object" is allowed as the type at the root of the schema if the '
            detail += "status subresource is enabled"
            return [invalid(child(path, "type"), value, detail)]
        if name not in _ROOT_FIELDS_WITH_STATUS:
            return [invalid(path, schema, _ROOT_FIELDS_MESSAGE)]
    return []


def validation_errors(
    validation: Any, status: bool, structural: bool, opts: SchemaOptions, path: str
) -> list[Cause]:
    """``validateCustomResourceDefinitionValidation`` (CEL cost and ``ValidateDefaults`` excepted):
    ``status`` when the status subresource is on, ``structural`` when schemas must be."""
    schema = schema_in(validation)
    if schema is None:
        return []
    path = child(path, "openAPIV3Schema")
    errs = _status_root_errors(schema, path) if status else []
    if schema.get("nullable") is True:
        errs.append(forbidden(child(path, "nullable"), "nullable cannot be true at the root"))
    # NewStructural's errors repeat the OpenAPI checks', so they only show on their own.
    init_errs = []
    types = None  # CEL rules compile only in a sound structural schema
    if structural:
        if err := new_structural_error(schema):
            init_errs.append(invalid(path, "", err))
        elif structural_errs := structural_errors(schema, path):
            errs += structural_errs
        elif has_rules(schema):
            types = SchemaTypes(schema)
    errs += openapi_errors(schema, path, opts, types)
    return errs or init_errs


def selectable_errors(fields: list[Any], schema: Schema | None, path: str) -> list[Cause]:
    """``ValidateCustomResourceSelectableFields``; ``path`` is the spec's or version's."""
    # Without a (structural) schema kube goes on to dereference nil; stop here instead.
    if schema is None:
        return []
    if err := new_structural_error(schema):
        return [invalid(child(path, "schema.openAPIV3Schema"), "", err)]
    errs, seen, base = [], set(), child(path, "selectableFields")
    for i, entry in enumerate(fields):
        json_path = str_of(as_dict(entry) or {}, "jsonPath")
        field_path = child(key(base, i), "jsonPath")
        if not json_path:
            errs.append(required(field_path, ""))
            continue
        resolved, node, err = resolve_field_path(json_path, schema, allow_array=False)
        if err:
            errs.append(invalid(field_path, json_path, f"is an invalid path: {err}"))
            continue
        if re.split(r"[.\[]", resolved, maxsplit=1)[0] == "metadata":
            errs.append(invalid(field_path, json_path, "must not point to fields in metadata"))
        if node is None or node.get("type") not in ("string", "boolean", "integer"):
            errs.append(invalid(field_path, json_path, _SELECTABLE_TYPE_MESSAGE))
        if resolved in seen:
            errs.append(
                Cause(
                    field_path, f"Duplicate value: {_fmt_value(json_path)}", "FieldValueDuplicate"
                )
            )
        seen.add(resolved)
    if len(seen) > 8:
        errs.append(
            Cause(base, f"Too many: {len(seen)}: must have at most 8 items", "FieldValueTooMany")
        )
    return errs
