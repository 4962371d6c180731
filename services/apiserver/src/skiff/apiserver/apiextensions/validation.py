"""CustomResourceDefinition validation as Kubernetes 1.32 does it
(``k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation``), kube's messages and
field paths included.

The object is the v1 JSON a client sends, after defaulting. Kube validates the *internal*
type, and the v1 conversion into it moves per-version fields that are identical in every
version (``schema``, ``subresources``, ``additionalPrinterColumns``, ``selectableFields``) to
the top level (``spec.validation``, ``spec.subresources``, ...), sets ``spec.version`` to the
first version's name, and flattens ``conversion.webhook`` into
``conversion.webhookClientConfig`` and ``conversion.conversionReviewVersions``. Error paths
follow that internal shape, as kube's do: a single-version CRD's schema errors read
``spec.validation.openAPIV3Schema...``, its printer columns ``spec.additionalPrinterColumns[0]``.

Struct-valued bad values (``spec.versions``, a whole schema) are shown as JSON where Go prints
``%#v``. ``x-kubernetes-validations`` rules are compiled (:mod:`.cel`). Not covered: CEL cost
estimates, default values checked against their schema (``ValidateDefaults``), the conversion
webhook's CA bundle, and ``ObjectMeta`` beyond the CRD name rule (the caller's generic checks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from skiff.api.errors import Cause
from skiff.api.names import is_dns1035_label, is_dns1123_subdomain
from skiff.apiserver.validation import _fmt_value, forbidden, invalid, not_supported, required

from ..registry.admissionregistration.clientconfig import service_errors, url_errors
from .schemarules import (
    OPENAPI_TYPES,
    SchemaOptions,
    map_list_key_errors,
    schema_in,
    selectable_errors,
    validation_errors,
)
from .structural import (
    Schema,
    as_dict,
    child,
    go_strings,
    invalid_shown,
    key,
    list_of,
    schemas_of,
    str_of,
    strs_of,
    structural_errors,
)

__all__ = ["structural_errors", "validate_crd", "validate_crd_status", "validate_crd_update"]

_COLUMN_TYPES = "boolean,date,integer,number,string"
_COLUMN_FORMATS = "byte,date,date-time,double,float,int32,int64,password"
_REVIEW_VERSIONS = ("v1", "v1beta1")
_APPROVAL = "api-approved.kubernetes.io"
_APPROVAL_PR = "see https://github.com/kubernetes/enhancements/pull/1111"
_HOISTED = (
    ("schema", "validation"),
    ("subresources", "subresources"),
    ("additionalPrinterColumns", "additionalPrinterColumns"),
    ("selectableFields", "selectableFields"),
)


@dataclass
class _Opts:
    """kube's ``validationOptions``: all strict on create, loosened on update where the old
    object already breaks a rule (ratcheting)."""

    require_recognized_review_version: bool = True
    require_immutable_names: bool = False
    require_openapi_schema: bool = True
    require_structural: bool = True
    schema: SchemaOptions = field(default_factory=SchemaOptions)


@dataclass
class _Spec:
    """The internal CustomResourceDefinitionSpec a v1 spec converts into."""

    raw: dict[str, Any]
    versions: list[dict[str, Any]]
    top: dict[str, Any]
    conversion: dict[str, Any] | None
    preserve_unknown_fields: bool


def _semantic(value: Any) -> Any:
    # apimachinery's semantic equality treats nil and empty slices alike.
    if isinstance(value, dict):
        return {k: _semantic(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_semantic(v) for v in value] or None
    return value


def _internal(spec: Any) -> _Spec:
    spec = as_dict(spec) or {}
    versions = [dict(v) if isinstance(v, dict) else {} for v in list_of(spec, "versions")]
    top: dict[str, Any] = {}
    for per_version, name in _HOISTED:
        values = [_semantic(v.get(per_version)) for v in versions]
        if versions and all(v == values[0] for v in values):
            hoisted = versions[0].get(per_version)
            top[name] = None if hoisted == [] else hoisted
            for v in versions:
                v.pop(per_version, None)
    conversion = None
    if (conv := as_dict(spec.get("conversion"))) is not None:
        webhook = as_dict(conv.get("webhook")) or {}
        review = webhook.get("conversionReviewVersions")
        conversion = {
            "strategy": str_of(conv, "strategy"),
            "webhookClientConfig": as_dict(webhook.get("clientConfig")),
            "conversionReviewVersions": (
                strs_of(webhook, "conversionReviewVersions") if isinstance(review, list) else None
            ),
        }
    return _Spec(spec, versions, top, conversion, spec.get("preserveUnknownFields") is True)


def _schemas(spec: _Spec) -> list[Schema]:
    found = [schema_in(spec.top.get("validation"))]
    found += [schema_in(v.get("schema")) for v in spec.versions]
    return [s for s in found if s is not None]


def _schema_has(s: Schema, pred: Callable[[Schema], object]) -> bool:
    """kube's ``SchemaHas``: ``pred`` holds for ``s`` or any schema inside it."""
    if pred(s):
        return True
    subs: list[Any] = [s.get("items"), s.get("not"), s.get("additionalProperties")]
    subs += [s.get("additionalItems"), *list_of(s, "items")]
    subs += [x for junctor in ("allOf", "anyOf", "oneOf") for x in list_of(s, junctor)]
    for group in ("properties", "patternProperties", "definitions", "dependencies"):
        subs += list((as_dict(s.get(group)) or {}).values())
    return any(isinstance(x, dict) and _schema_has(x, pred) for x in subs)


def _spec_has(spec: _Spec, pred: Callable[[Schema], object]) -> bool:
    return any(_schema_has(s, pred) for s in _schemas(spec))


def _has_extensions(s: Schema) -> bool:
    names = ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type")
    return (
        s.get("x-kubernetes-embedded-resource") is True
        or s.get("x-kubernetes-int-or-string") is True
        or any(s.get(n) is not None for n in names)
        or bool(list_of(s, "x-kubernetes-list-map-keys") or list_of(s, "x-kubernetes-validations"))
    )


def _non_atomic_set(s: Schema) -> bool:
    items = as_dict(s.get("items"))
    if s.get("x-kubernetes-list-type") != "set" or items is None:
        return False
    if items.get("type") == "array":
        return items.get("x-kubernetes-list-type") not in (None, "atomic")
    return items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic"


# --- names ---


def _dns1035(value: str) -> str:
    return ",".join(is_dns1035_label(value))


def _names_errors(names: dict[str, Any], path: str) -> list[Cause]:
    """``ValidateCustomResourceDefinitionNames``."""
    errs = []
    for name in ("plural", "singular"):
        if (value := str_of(names, name)) and (msg := _dns1035(value)):
            errs.append(invalid(child(path, name), value, msg))
    for name in ("kind", "listKind"):
        if (value := str_of(names, name)) and (msg := _dns1035(value.lower())):
            detail = "may have mixed case, but should otherwise match: " + msg
            errs.append(invalid(child(path, name), value, detail))
    for i, short in enumerate(strs_of(names, "shortNames")):
        if msg := _dns1035(short):
            errs.append(invalid(key(child(path, "shortNames"), i), short, msg))
    kind = str_of(names, "kind")
    if kind and kind == str_of(names, "listKind"):
        errs.append(invalid(child(path, "listKind"), kind, "kind and listKind may not be the same"))
    for i, category in enumerate(strs_of(names, "categories")):
        if msg := _dns1035(category):
            errs.append(invalid(key(child(path, "categories"), i), category, msg))
    return errs


# --- subresources and printer columns ---


def _simple_json_path(value: str, path: str) -> list[Cause]:
    if not value.startswith("."):
        return [invalid(path, value, "must be a simple json path starting with .")]
    return []


def _subresources_errors(subresources: Any, path: str) -> list[Cause]:
    scale = as_dict((as_dict(subresources) or {}).get("scale"))
    if scale is None:
        return []
    errs = []
    checks = (
        ("specReplicasPath", (".spec.",), "should be a json path under .spec"),
        ("statusReplicasPath", (".status.",), "should be a json path under .status"),
        ("labelSelectorPath", (".spec.", ".status."), "should be a json path under either "
         ".spec or .status"),
    )  # fmt: skip
    for name, prefixes, detail in checks:
        value, field_path = str_of(scale, name), child(path, "scale", name)
        if not value:
            if name != "labelSelectorPath":
                errs.append(required(field_path, ""))
        elif bad := _simple_json_path(value, field_path):
            errs += bad
        elif not value.startswith(prefixes):
            errs.append(invalid(field_path, value, detail))
    return errs


def _column_errors(column: dict[str, Any], path: str) -> list[Cause]:
    """``ValidateCustomResourceColumnDefinition`` (kube's path says ``JSONPath``)."""
    errs = []
    if not str_of(column, "name"):
        errs.append(required(child(path, "name"), ""))
    typ = str_of(column, "type")
    if not typ:
        errs.append(required(child(path, "type"), f"must be one of {_COLUMN_TYPES}"))
    elif typ not in _COLUMN_TYPES.split(","):
        errs.append(invalid(child(path, "type"), typ, f"must be one of {_COLUMN_TYPES}"))
    fmt = str_of(column, "format")
    if fmt and fmt not in _COLUMN_FORMATS.split(","):
        errs.append(invalid(child(path, "format"), fmt, f"must be one of {_COLUMN_FORMATS}"))
    json_path = str_of(column, "jsonPath")
    if not json_path:
        errs.append(required(child(path, "JSONPath"), ""))
    else:
        errs += _simple_json_path(json_path, child(path, "JSONPath"))
    return errs


# --- versions ---


def _deprecation_errors(version: dict[str, Any]) -> list[str]:
    warning = version.get("deprecationWarning")
    if warning is None:
        return []
    warning = str(warning)
    if version.get("deprecated") is not True:
        return ["can only be set for deprecated versions"]
    errs = []
    if len(warning.encode()) > 256:
        errs.append("must be <= 256 characters long")
    if not warning:
        errs.append("must not be an empty string")
    for i, ch in enumerate(warning):
        if not ch.isprintable():
            at = len(warning[:i].encode())  # Go reports the byte offset
            errs.append(
                "must only contain printable UTF-8 characters; "
                f"non-printable character found at index {at}"
            )
            break
    return errs


def _version_errors(version: dict[str, Any], path: str, status: bool, opts: _Opts) -> list[Cause]:
    """``validateCustomResourceDefinitionVersion``: the fields left per version."""
    warning_path = child(path, "deprecationWarning")
    warning = version.get("deprecationWarning")
    errs = [invalid(warning_path, warning, msg) for msg in _deprecation_errors(version)]
    errs += validation_errors(
        version.get("schema"), status, opts.require_structural, opts.schema, child(path, "schema")
    )
    errs += _subresources_errors(version.get("subresources"), child(path, "subresources"))
    for i, column in enumerate(schemas_of(version, "additionalPrinterColumns")):
        errs += _column_errors(column, key(child(path, "additionalPrinterColumns"), i))
    if fields := list_of(version, "selectableFields"):
        schema = schema_in(version.get("schema"))
        if schema is None:
            detail = "selectableFields may only be set when version.schema.openAPIV3Schema is not "
            errs.append(invalid(child(path, "selectableFields"), "", detail + "included"))
        else:
            errs += selectable_errors(fields, schema, path)
    return errs


def _has_status(subresources: Any) -> bool:
    return (as_dict(subresources) or {}).get("status") is not None


def _versions_errors(spec: _Spec, opts: _Opts) -> list[Cause]:
    errs: list[Cause] = []
    storage, seen, unique = 0, set(), True
    per_version = any(v.get("subresources") is not None for v in spec.versions)
    for i, version in enumerate(spec.versions):
        path, name = key("spec.versions", i), str_of(version, "name")
        storage += version.get("storage") is True
        if name in seen:
            unique = False
        seen.add(name)
        if msg := _dns1035(name):
            errs.append(invalid(child(path, "name"), name, msg))
        subresources = spec.top.get("subresources")
        if per_version:  # kube looks them up by the version's name: the first one wins
            subresources = next(
                v.get("subresources") for v in spec.versions if str_of(v, "name") == name
            )
        errs += _version_errors(version, path, _has_status(subresources), opts)
    versions = spec.raw.get("versions")
    if not unique:
        errs.append(invalid("spec.versions", versions, "must contain unique version names"))
    if storage != 1:
        detail = "must have exactly one version marked as storage version"
        errs.append(invalid("spec.versions", versions, detail))
    first = str_of(spec.versions[0], "name") if spec.versions else ""
    if first and (msg := _dns1035(first)):
        errs.append(invalid("spec.version", first, msg))  # spec.version is versions[0].name
    return errs


# --- conversion ---


def _review_versions_errors(versions: list[str] | None, recognized: bool) -> list[Cause]:
    path = "spec.conversion.conversionReviewVersions"
    if not versions:
        return [required(path, "")]
    errs, seen = [], set()
    for i, version in enumerate(versions):
        if version in seen:
            errs.append(invalid(key(path, i), version, "duplicate version"))
            continue
        seen.add(version)
        errs += [invalid(key(path, i), version, msg) for msg in is_dns1035_label(version)]
    if recognized and not seen & set(_REVIEW_VERSIONS):
        detail = "must include at least one of " + ", ".join(_REVIEW_VERSIONS)
        errs.append(invalid_shown(path, go_strings(versions), detail))
    return errs


def _conversion_errors(conversion: dict[str, Any] | None, opts: _Opts) -> list[Cause]:
    """``validateCustomResourceConversion`` on the internal (flattened) conversion."""
    if conversion is None:
        return []
    path, strategy = "spec.conversion", conversion["strategy"]
    config, versions = conversion["webhookClientConfig"], conversion["conversionReviewVersions"]
    config_path = child(path, "webhookClientConfig")
    if not strategy:
        errs = [required(child(path, "strategy"), "")]
    elif strategy not in ("None", "Webhook"):
        errs = [not_supported(child(path, "strategy"), strategy, ["None", "Webhook"])]
    else:
        errs = []
    if strategy != "Webhook":
        detail = "should not be set when strategy is not set to Webhook"
        if config is not None:
            errs.append(forbidden(config_path, detail))
        if versions:
            errs.append(forbidden(child(path, "conversionReviewVersions"), detail))
        return errs
    url, service = config.get("url") if config else None, as_dict((config or {}).get("service"))
    if config is None:
        errs.append(required(config_path, "required when strategy is set to Webhook"))
    elif (url is None) == (service is None):
        errs.append(required(config_path, "exactly one of url or service is required"))
    elif service is None:
        errs += url_errors(str(url), child(config_path, "url"))
    else:
        errs += service_errors(service, child(config_path, "service"))
    return errs + _review_versions_errors(versions, opts.require_recognized_review_version)


# --- spec, status, object ---


def _group_errors(group: str) -> list[Cause]:
    if not group:
        return [required("spec.group", "")]
    if msgs := is_dns1123_subdomain(group):
        return [invalid("spec.group", group, ",".join(msgs))]
    if "." not in group:
        return [invalid("spec.group", group, "should be a domain with at least one dot")]
    return []


def _schema_presence_errors(spec: _Spec, opts: _Opts) -> list[Cause]:
    if schema_in(spec.top.get("validation")) is not None:
        return []
    errs = []
    for i, version in enumerate(spec.versions):
        path = child(key("spec.versions", i), "schema", "openAPIV3Schema")
        if schema_in(version.get("schema")) is not None:
            continue
        if opts.require_openapi_schema:
            errs.append(required(path, "schemas are required"))
        elif not spec.preserve_unknown_fields and version.get("served") is True:
            errs.append(required(path, "because otherwise all fields are pruned"))
    return errs


def _spec_errors(spec: _Spec, opts: _Opts) -> list[Cause]:
    """``validateCustomResourceDefinitionSpec``."""
    raw, top = spec.raw, spec.top
    errs = _group_errors(str_of(raw, "group"))
    scope = str_of(raw, "scope")
    if not scope:
        errs.append(required("spec.scope", ""))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    if not spec.preserve_unknown_fields:
        opts = replace(opts, require_structural=True)  # pruning needs structural schemas
    errs += _schema_presence_errors(spec, opts)
    if _spec_has(spec, lambda s: s.get("default") is not None):
        opts = replace(opts, require_structural=True)
        if spec.preserve_unknown_fields:
            detail = "must be false in order to use defaults in the schema"
            errs.append(invalid("spec.preserveUnknownFields", True, detail))
    if _spec_has(spec, _has_extensions):
        opts = replace(opts, require_structural=True)
    errs += _versions_errors(spec, opts)
    names = as_dict(raw.get("names")) or {}
    for name in ("plural", "singular", "kind", "listKind"):
        if not str_of(names, name):
            errs.append(required(child("spec.names", name), ""))
    errs += _names_errors(names, "spec.names")
    any_status = _has_status(top.get("subresources")) or any(
        _has_status(v.get("subresources")) for v in spec.versions
    )
    errs += validation_errors(
        top.get("validation"), any_status, opts.require_structural, opts.schema, "spec.validation"
    )
    errs += _subresources_errors(top.get("subresources"), "spec.subresources")
    for i, column in enumerate(schemas_of(top, "additionalPrinterColumns")):
        errs += _column_errors(column, key("spec.additionalPrinterColumns", i))
    if fields := list_of(top, "selectableFields"):
        if top.get("validation") is None:
            detail = "selectableFields may only be set when validations.schema is included"
            errs.append(invalid("spec.selectableFields", "", detail))
        else:
            errs += selectable_errors(fields, schema_in(top["validation"]), "spec")
    conversion = spec.conversion
    if conversion and conversion["strategy"] != "None" and spec.preserve_unknown_fields:
        detail = "must be None if spec.preserveUnknownFields is true"
        errs.append(invalid("spec.conversion.strategy", conversion["strategy"], detail))
    return errs + _conversion_errors(conversion, opts)


def _stored_versions_errors(crd: dict[str, Any], spec: _Spec) -> list[Cause]:
    """``ValidateCustomResourceDefinitionStoredVersions``."""
    path = "status.storedVersions"
    status = as_dict(crd.get("status")) or {}
    listed = isinstance(status.get("storedVersions"), list)
    stored = strs_of(status, "storedVersions") if listed else None
    if not stored:
        return [invalid_shown(path, go_strings(stored), "must have at least one stored version")]
    left = {v: i for i, v in enumerate(stored)}
    errs = []
    for version in spec.versions:
        name = str_of(version, "name")
        if version.get("storage") is True and name not in left:
            detail = f"must have the storage version {name}"
            errs.append(invalid_shown(path, go_strings(stored), detail))
        left.pop(name, None)
    for v, i in sorted(left.items(), key=lambda item: item[1]):
        errs.append(invalid(key(path, i), v, "must appear in spec.versions"))
    return errs


def _approval_state(annotations: dict[str, Any]) -> tuple[str, str]:
    value = str(annotations.get(_APPROVAL) or "")
    if not value:
        return (
            "missing",
            f'protected groups must have approval annotation "{_APPROVAL}", {_APPROVAL_PR}',
        )
    if value.startswith("unapproved"):
        return "bypassed", f"not approved: {_fmt_value(value)}"
    parts = urlsplit(value)
    if parts.scheme and parts.netloc:
        return "approved", f"approved in {value}"
    return "invalid", (
        f'protected groups must have approval annotation "{_APPROVAL}" with either a URL or a '
        f'reason starting with "unapproved", {_APPROVAL_PR}'
    )


def _annotations(crd: dict[str, Any]) -> dict[str, Any]:
    return as_dict((as_dict(crd.get("metadata")) or {}).get("annotations")) or {}


def _approval_errors(crd: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """``validateAPIApproval``: groups under k8s.io and kubernetes.io need the annotation."""
    group = str_of(as_dict(crd.get("spec")) or {}, "group")
    if not any(group == d or group.endswith("." + d) for d in ("k8s.io", "kubernetes.io")):
        return []
    state, reason = _approval_state(_annotations(crd))
    if old is not None and _approval_state(_annotations(old))[0] == state:
        return []
    path = key("metadata.annotations", _APPROVAL)
    if state == "missing":
        return [required(path, reason)]
    if state == "invalid":
        return [invalid(path, _annotations(crd).get(_APPROVAL), reason)]
    return []


def _preserve_errors(spec: _Spec, old: _Spec | None) -> list[Cause]:
    if (old is not None and old.preserve_unknown_fields) or not spec.preserve_unknown_fields:
        return []
    detail = (
        "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in "
        "spec.versions[*].schema instead"
    )
    return [invalid("spec.preserveUnknownFields", True, detail)]


def _name_errors(crd: dict[str, Any]) -> list[Cause]:
    """The CRD's own name rule (the generic ObjectMeta checks are the caller's)."""
    meta = as_dict(crd.get("metadata")) or {}
    raw = as_dict(crd.get("spec")) or {}
    want = str_of(as_dict(raw.get("names")) or {}, "plural") + "." + str_of(raw, "group")
    detail = 'must be spec.names.plural+"."+spec.group'
    return [
        invalid(child("metadata", name), meta[name], detail)
        for name in ("generateName", "name")
        if str_of(meta, name) and meta[name] != want
    ]


def validate_crd_status(crd: dict[str, Any]) -> list[Cause]:
    """``ValidateCustomResourceDefinitionStatus``: the accepted names (kube checks nothing
    else in status; conditions are free-form)."""
    status = as_dict(crd.get("status")) or {}
    return _names_errors(as_dict(status.get("acceptedNames")) or {}, "status.acceptedNames")


def _validate(crd: dict[str, Any], old: dict[str, Any] | None, opts: _Opts) -> list[Cause]:
    spec = _internal(crd.get("spec"))
    old_spec = _internal(old.get("spec")) if old is not None else None
    errs = _spec_errors(spec, opts)
    if old_spec is not None:
        errs += _immutable_errors(spec, old_spec, opts)
    errs += validate_crd_status(crd)
    errs += _stored_versions_errors(crd, spec)
    errs += _approval_errors(crd, old)
    return errs + _preserve_errors(spec, old_spec)


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """``ValidateCustomResourceDefinition``: a CRD being created, status included (the
    server has set ``storedVersions`` by then)."""
    return _name_errors(crd) + _validate(crd, None, _Opts())


def _established(crd: dict[str, Any]) -> bool:
    conditions = schemas_of(as_dict(crd.get("status")) or {}, "conditions")
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def _update_opts(old: dict[str, Any]) -> _Opts:
    """What ``ValidateCustomResourceDefinitionUpdate`` relaxes for rules the stored object
    already breaks."""
    spec = _internal(old.get("spec"))
    review = (spec.conversion or {}).get("conversionReviewVersions") or []
    open_api = schema_in(spec.top.get("validation")) is not None or all(
        schema_in(v.get("schema")) is not None for v in spec.versions
    )
    return _Opts(
        require_recognized_review_version=not review or bool(set(review) & set(_REVIEW_VERSIONS)),
        require_immutable_names=_established(old),
        require_openapi_schema=open_api,
        require_structural=not any(structural_errors(s, "") for s in _schemas(spec)),
        schema=SchemaOptions(
            require_valid_property_type=not _spec_has(
                spec, lambda s: str_of(s, "type") not in ("", *OPENAPI_TYPES)
            ),
            require_atomic_set_type=not _spec_has(spec, _non_atomic_set),
            require_map_list_keys=not _spec_has(spec, lambda s: map_list_key_errors(s, "")),
        ),
    )


def _immutable_errors(spec: _Spec, old: _Spec, opts: _Opts) -> list[Cause]:
    new_names, old_names = (as_dict(s.raw.get("names")) or {} for s in (spec, old))
    fields = [
        ("spec.group", "group", spec.raw, old.raw),
        ("spec.names.plural", "plural", new_names, old_names),
    ]
    if opts.require_immutable_names:  # these shape the storage once the CRD is served
        fields[:0] = [
            ("spec.scope", "scope", spec.raw, old.raw),
            ("spec.names.kind", "kind", new_names, old_names),
        ]
    return [
        invalid(path, str_of(new, name), "field is immutable")
        for path, name, new, was in fields
        if str_of(new, name) != str_of(was, name)
    ]


def validate_crd_update(crd: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """``ValidateCustomResourceDefinitionUpdate``: the create rules, relaxed where ``old``
    already breaks them, plus immutability: group and plural always, scope and kind once the
    old CRD is Established."""
    return _validate(crd, old, _update_opts(old))
