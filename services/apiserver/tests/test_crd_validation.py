"""CustomResourceDefinition validation against Kubernetes 1.32's messages and field paths
(``apiextensions-apiserver/pkg/apis/apiextensions/validation``, ``pkg/apiserver/schema``).

A single-version v1 CRD is validated the way kube validates it: after the v1 → internal
conversion has moved its schema, subresources and printer columns to the top level, so those
errors read ``spec.validation.openAPIV3Schema...``, ``spec.subresources...`` and
``spec.additionalPrinterColumns[i]...``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from skiff.apiserver.apiextensions import validation as v

Mutation = Callable[[dict[str, Any]], None]

ROOT = "spec.validation.openAPIV3Schema"
FIELDS = f"{ROOT}.properties[spec].properties"
V0 = "spec/versions/0"
SCHEMA = f"{V0}/schema/openAPIV3Schema"
SPEC = f"{SCHEMA}/properties/spec/properties"
DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
FORM = "; desired format: https://host[/path]"


def _crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {
                "plural": "crontabs",
                "singular": "crontab",
                "kind": "CronTab",
                "listKind": "CronTabList",
                "shortNames": ["ct"],
                "categories": ["all"],
            },
            "conversion": {"strategy": "None"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": _schema()},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.labelSelector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {
                            "name": "Replicas",
                            "type": "integer",
                            "format": "int32",
                            "jsonPath": ".spec.replicas",
                        },
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                    "selectableFields": [{"jsonPath": ".spec.image"}],
                }
            ],
        },
        "status": {"storedVersions": ["v1"], "acceptedNames": {"plural": "", "kind": ""}},
    }


def _schema() -> dict[str, Any]:
    item = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
    }
    spec_fields = {
        "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
        "image": {"type": "string", "default": "busybox"},
        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
        "port": {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
        },
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "x-kubernetes-map-type": "granular",
        },
        "ports": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            "items": item,
        },
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "template": {
            "type": "object",
            "x-kubernetes-embedded-resource": True,
            "x-kubernetes-preserve-unknown-fields": True,
        },
    }
    return {
        "type": "object",
        "description": "CronTab runs a command on a schedule.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "required": ["cronSpec"],
                "properties": spec_fields,
                "x-kubernetes-validations": [
                    {"rule": "self.replicas <= 10", "message": "at most 10 replicas"}
                ],
            },
            "status": {
                "type": "object",
                "properties": {
                    "replicas": {"type": "integer"},
                    "labelSelector": {"type": "string"},
                },
            },
        },
    }


def _walk(obj: Any, path: str) -> tuple[Any, str | int]:
    *parents, last = path.split("/")
    for part in parents:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj, int(last) if isinstance(obj, list) else last


def put(path: str, value: Any) -> Mutation:
    """Set the value at a ``/``-separated path (list indices as numbers)."""

    def mutate(crd: dict[str, Any]) -> None:
        parent, last = _walk(crd, path)
        parent[last] = copy.deepcopy(value)

    return mutate


def drop(path: str) -> Mutation:
    def mutate(crd: dict[str, Any]) -> None:
        parent, last = _walk(crd, path)
        del parent[last]

    return mutate


def both(*mutations: Mutation) -> Mutation:
    def mutate(crd: dict[str, Any]) -> None:
        for m in mutations:
            m(crd)

    return mutate


def _second_version(crd: dict[str, Any]) -> None:
    """A v2 identical to v1 except that it is the storage version too."""
    crd["spec"]["versions"].append({**copy.deepcopy(crd["spec"]["versions"][0]), "name": "v2"})


def _go_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _causes(causes: list[Any]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_valid_crd_has_no_causes() -> None:
    assert v.validate_crd(_crd()) == []
    assert v.validate_crd_update(_crd(), _crd()) == []
    assert v.validate_crd_status(_crd()) == []


def test_two_version_crd_with_webhook_conversion_is_valid() -> None:
    crd = _crd()
    _second_version(crd)
    crd["spec"]["versions"][1]["storage"] = False
    crd["spec"]["conversion"] = {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {"service": {"namespace": "cron", "name": "conv", "path": "/convert"}},
        },
    }
    assert v.validate_crd(crd) == []


CREATE_CASES = [
    # --- metadata.name and spec.group ---
    pytest.param(
        put("metadata/name", "crontab.stable.example.com"),
        [
            (
                "metadata.name",
                'Invalid value: "crontab.stable.example.com": '
                'must be spec.names.plural+"."+spec.group',
            )
        ],
        id="name-must-be-plural-dot-group",
    ),
    pytest.param(
        both(drop("spec/group"), put("metadata/name", "crontabs.")),
        [("spec.group", "Required value")],
        id="group-required",
    ),
    pytest.param(
        both(put("spec/group", "example"), put("metadata/name", "crontabs.example")),
        [("spec.group", 'Invalid value: "example": should be a domain with at least one dot')],
        id="group-needs-a-dot",
    ),
    pytest.param(
        put("spec/group", "Stable.example.com"),
        [
            (
                "metadata.name",
                'Invalid value: "crontabs.stable.example.com": '
                'must be spec.names.plural+"."+spec.group',
            ),
            ("spec.group", f'Invalid value: "Stable.example.com": {DNS1123_SUBDOMAIN}'),
        ],
        id="group-dns-subdomain",
    ),
    # --- scope ---
    pytest.param(
        put("spec/scope", "Global"),
        [("spec.scope", 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"')],
        id="scope-unsupported",
    ),
    pytest.param(drop("spec/scope"), [("spec.scope", "Required value")], id="scope-required"),
    # --- names ---
    pytest.param(
        both(
            put("spec/names/plural", "cron_tabs"),
            put("metadata/name", "cron_tabs.stable.example.com"),
        ),
        [("spec.names.plural", f'Invalid value: "cron_tabs": {DNS1035}')],
        id="plural-dns1035",
    ),
    pytest.param(
        put("spec/names/singular", ""),
        [("spec.names.singular", "Required value")],
        id="singular-required",
    ),
    pytest.param(
        put("spec/names/kind", "Cron.Tab"),
        [
            (
                "spec.names.kind",
                'Invalid value: "Cron.Tab": may have mixed case, but should otherwise match: '
                + DNS1035,
            )
        ],
        id="kind-dns1035-any-case",
    ),
    pytest.param(
        put("spec/names/listKind", "CronTab"),
        [
            (
                "spec.names.listKind",
                'Invalid value: "CronTab": kind and listKind may not be the same',
            )
        ],
        id="listkind-equals-kind",
    ),
    pytest.param(
        put("spec/names/shortNames", ["ct", "c t"]),
        [("spec.names.shortNames[1]", f'Invalid value: "c t": {DNS1035}')],
        id="shortname-dns1035",
    ),
    pytest.param(
        put("spec/names/categories", ["All"]),
        [("spec.names.categories[0]", f'Invalid value: "All": {DNS1035}')],
        id="category-dns1035",
    ),
    # --- versions ---
    pytest.param(
        both(put(f"{V0}/name", "V1"), put("status/storedVersions", ["V1"])),
        [
            ("spec.versions[0].name", f'Invalid value: "V1": {DNS1035}'),
            ("spec.version", f'Invalid value: "V1": {DNS1035}'),
        ],
        id="version-name-dns1035-also-spec-version",
    ),
    pytest.param(
        put(f"{V0}/name", "v1beta1"),
        [
            (
                "status.storedVersions",
                'Invalid value: []string{"v1"}: must have the storage version v1beta1',
            ),
            ("status.storedVersions[0]", 'Invalid value: "v1": must appear in spec.versions'),
        ],
        id="stored-versions-must-match",
    ),
    pytest.param(
        put("status/storedVersions", []),
        [
            (
                "status.storedVersions",
                "Invalid value: []string{}: must have at least one stored version",
            )
        ],
        id="stored-versions-required",
    ),
    pytest.param(
        put(f"{V0}/deprecationWarning", "use v2"),
        [
            (
                "spec.versions[0].deprecationWarning",
                'Invalid value: "use v2": can only be set for deprecated versions',
            )
        ],
        id="deprecation-warning-needs-deprecated",
    ),
    pytest.param(
        both(drop(f"{V0}/schema"), drop(f"{V0}/selectableFields")),
        [("spec.versions[0].schema.openAPIV3Schema", "Required value: schemas are required")],
        id="schema-required",
    ),
    pytest.param(
        put("spec/preserveUnknownFields", True),
        [
            (
                "spec.preserveUnknownFields",
                "Invalid value: true: must be false in order to use defaults in the schema",
            ),
            (
                "spec.preserveUnknownFields",
                "Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields "
                "to true in spec.versions[*].schema instead",
            ),
        ],
        id="preserve-unknown-fields-true",
    ),
    # --- structural schema ---
    pytest.param(
        drop(f"{SPEC}/cronSpec/type"),
        [
            (
                f"{FIELDS}[cronSpec].type",
                "Required value: must not be empty for specified object fields",
            )
        ],
        id="property-type-required",
    ),
    pytest.param(
        put(f"{SCHEMA}/type", "array"),
        [
            (
                f"{ROOT}.type",
                'Invalid value: "array": only "object" is allowed as the type at the root of the '
                "schema if the status subresource is enabled",
            ),
            (f"{ROOT}.items", "Required value: must be specified"),
            (f"{ROOT}.type", 'Invalid value: "array": must be object at the root'),
        ],
        id="root-type-object",
    ),
    pytest.param(
        drop(f"{SPEC}/tags/items"),
        [(f"{FIELDS}[tags].items", "Required value: must be specified")],
        id="array-items-required",
    ),
    pytest.param(
        put(f"{SCHEMA}/properties/metadata/properties", {"labels": {"type": "object"}}),
        [
            (
                f"{ROOT}.properties[metadata]",
                "Forbidden: must not specify anything other than name and generateName, but "
                "metadata is implicitly specified",
            )
        ],
        id="metadata-only-name-and-generatename",
    ),
    pytest.param(
        put(f"{SCHEMA}/properties/metadata/default", {}),
        [
            (
                f"{ROOT}.properties[metadata].default",
                "Forbidden: must not be set in top-level metadata",
            )
        ],
        id="no-default-in-top-level-metadata",
    ),
    pytest.param(
        put(f"{SCHEMA}/properties/kind/type", "integer"),
        [(f"{ROOT}.properties[kind].type", 'Invalid value: "integer": must be string')],
        id="kind-property-must-be-string",
    ),
    pytest.param(
        put(f"{SPEC}/port/x-kubernetes-preserve-unknown-fields", True),
        [
            (
                f"{FIELDS}[port].x-kubernetes-preserve-unknown-fields",
                "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
            )
        ],
        id="int-or-string-not-preserve-unknown",
    ),
    pytest.param(
        put(f"{SPEC}/port/anyOf", [{"type": "string"}, {"type": "integer"}]),
        [
            (f"{FIELDS}[port].anyOf[0].type", "Forbidden: must be empty to be structural"),
            (f"{FIELDS}[port].anyOf[1].type", "Forbidden: must be empty to be structural"),
        ],
        id="nested-type-only-in-int-or-string-pattern",
    ),
    pytest.param(
        drop(f"{SPEC}/template/type"),
        [
            (
                f"{FIELDS}[template].type",
                "Required value: must be object if x-kubernetes-embedded-resource is true",
            )
        ],
        id="embedded-resource-must-be-object",
    ),
    pytest.param(
        put(f"{SPEC}/cronSpec/pattern", "(abc"),
        [
            (
                f"{FIELDS}[cronSpec].pattern",
                'Invalid value: "(abc": must be a valid regular expression, but isn\'t: '
                "error parsing regexp: missing closing ): `(abc`",
            )
        ],
        id="pattern-must-compile",
    ),
    pytest.param(
        put(f"{SPEC}/tags/uniqueItems", True),
        [
            (
                f"{FIELDS}[tags].uniqueItems",
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
                "becomes quadratic",
            )
        ],
        id="unique-items-forbidden",
    ),
    pytest.param(
        both(put(f"{SPEC}/image/$ref", "#/definitions/image"), drop(f"{V0}/selectableFields")),
        [(f"{FIELDS}[image].$ref", "Forbidden: $ref is not supported")],
        id="ref-forbidden",
    ),
    pytest.param(
        both(
            put(f"{SPEC}/cronSpec/$schema", "http://json-schema.org/schema#"),
            drop(f"{V0}/selectableFields"),
        ),
        [(ROOT, "Invalid value: \"\": OpenAPIV3Schema 'schema' is not supported")],
        id="unsupported-keyword-only-via-new-structural",
    ),
    pytest.param(
        put(f"{SPEC}/cronSpec/type", "null"),
        [
            (
                f"{FIELDS}[cronSpec].type",
                'Unsupported value: "null": supported values: "array", "boolean", "integer", '
                '"number", "object", "string"',
            ),
            (
                f"{FIELDS}[cronSpec].type",
                "Forbidden: type cannot be set to null, use nullable as an alternative",
            ),
        ],
        id="type-null",
    ),
    pytest.param(
        both(
            drop(f"{V0}/subresources"),
            put(f"{SCHEMA}/nullable", True),
            drop(f"{V0}/selectableFields"),
        ),
        [(f"{ROOT}.nullable", "Forbidden: nullable cannot be true at the root")],
        id="root-not-nullable",
    ),
    # --- list and map extensions ---
    pytest.param(
        put(f"{SPEC}/tags/x-kubernetes-list-type", "bag"),
        [
            (
                f"{FIELDS}[tags].x-kubernetes-list-type",
                'Unsupported value: "bag": supported values: "atomic", "set", "map"',
            )
        ],
        id="list-type-unsupported",
    ),
    pytest.param(
        drop(f"{SPEC}/ports/x-kubernetes-list-map-keys"),
        [
            (
                f"{FIELDS}[ports].x-kubernetes-list-map-keys",
                "Required value: must not be empty if x-kubernetes-list-type is map",
            )
        ],
        id="map-list-keys-required",
    ),
    pytest.param(
        put(f"{SPEC}/ports/x-kubernetes-list-map-keys", ["id"]),
        [
            (
                f"{FIELDS}[ports].x-kubernetes-list-map-keys",
                'Invalid value: []string{"id"}: entries must all be names of item properties',
            )
        ],
        id="map-list-keys-must-be-item-properties",
    ),
    pytest.param(
        put(f"{SPEC}/ports/items/required", ["port"]),
        [
            (
                f"{FIELDS}[ports].items.properties[name].default",
                "Required value: this property is in x-kubernetes-list-map-keys, so it must have a "
                "default or be a required property",
            )
        ],
        id="map-list-key-required-or-defaulted",
    ),
    pytest.param(
        put(f"{SPEC}/tags/items", {"type": "object"}),
        [
            (
                f"{FIELDS}[tags].items.x-kubernetes-map-type",
                'Invalid value: "null": must be atomic as item of a list with '
                "x-kubernetes-list-type=set",
            )
        ],
        id="set-items-must-be-atomic",
    ),
    pytest.param(
        put(f"{SPEC}/labels/x-kubernetes-map-type", "merge"),
        [
            (
                f"{FIELDS}[labels].x-kubernetes-map-type",
                'Unsupported value: "merge": supported values: "atomic", "granular"',
            )
        ],
        id="map-type-unsupported",
    ),
    pytest.param(
        put(f"{SPEC}/image/x-kubernetes-map-type", "atomic"),
        [
            (
                f"{FIELDS}[image].type",
                'Invalid value: "string": must be object if x-kubernetes-map-type is specified',
            )
        ],
        id="map-type-needs-object",
    ),
    pytest.param(
        put(f"{SCHEMA}/properties/spec/x-kubernetes-validations", [{"rule": " "}]),
        [
            (
                f"{ROOT}.properties[spec].x-kubernetes-validations[0].rule",
                "Required value: rule is not specified",
            )
        ],
        id="validation-rule-required",
    ),
    # --- subresources ---
    pytest.param(
        put(f"{V0}/subresources/scale/specReplicasPath", "spec.replicas"),
        [
            (
                "spec.subresources.scale.specReplicasPath",
                'Invalid value: "spec.replicas": must be a simple json path starting with .',
            )
        ],
        id="scale-spec-path-simple-json-path",
    ),
    pytest.param(
        put(f"{V0}/subresources/scale/statusReplicasPath", ".spec.replicas"),
        [
            (
                "spec.subresources.scale.statusReplicasPath",
                'Invalid value: ".spec.replicas": should be a json path under .status',
            )
        ],
        id="scale-status-path-under-status",
    ),
    pytest.param(
        put(f"{V0}/subresources/scale/labelSelectorPath", ".metadata.labels"),
        [
            (
                "spec.subresources.scale.labelSelectorPath",
                'Invalid value: ".metadata.labels": should be a json path under either .spec or '
                ".status",
            )
        ],
        id="scale-label-selector-path",
    ),
    pytest.param(
        drop(f"{V0}/subresources/scale/specReplicasPath"),
        [("spec.subresources.scale.specReplicasPath", "Required value")],
        id="scale-spec-path-required",
    ),
    # --- printer columns ---
    pytest.param(
        put(f"{V0}/additionalPrinterColumns/0/type", "float"),
        [
            (
                "spec.additionalPrinterColumns[0].type",
                'Invalid value: "float": must be one of boolean,date,integer,number,string',
            )
        ],
        id="column-type",
    ),
    pytest.param(
        put(f"{V0}/additionalPrinterColumns/1/format", "uuid"),
        [
            (
                "spec.additionalPrinterColumns[1].format",
                'Invalid value: "uuid": must be one of '
                "byte,date,date-time,double,float,int32,int64,password",
            )
        ],
        id="column-format",
    ),
    pytest.param(
        both(
            drop(f"{V0}/additionalPrinterColumns/2/name"),
            drop(f"{V0}/additionalPrinterColumns/2/jsonPath"),
        ),
        [
            ("spec.additionalPrinterColumns[2].name", "Required value"),
            ("spec.additionalPrinterColumns[2].JSONPath", "Required value"),
        ],
        id="column-name-and-jsonpath-required",
    ),
    pytest.param(
        put(f"{V0}/additionalPrinterColumns/0/jsonPath", "spec.cronSpec"),
        [
            (
                "spec.additionalPrinterColumns[0].JSONPath",
                'Invalid value: "spec.cronSpec": must be a simple json path starting with .',
            )
        ],
        id="column-jsonpath-simple",
    ),
    # --- selectable fields ---
    pytest.param(
        put(f"{V0}/selectableFields", [{"jsonPath": ".spec.labels"}, {"jsonPath": ".spec.nope"}]),
        [
            (
                "spec.selectableFields[0].jsonPath",
                'Invalid value: ".spec.labels": must point to a field of type string, boolean or '
                "integer. Enum string fields and strings with formats are allowed.",
            ),
            (
                "spec.selectableFields[1].jsonPath",
                'Invalid value: ".spec.nope": is an invalid path: does not refer to a valid field',
            ),
        ],
        id="selectable-fields",
    ),
    pytest.param(
        put(f"{V0}/selectableFields", [{"jsonPath": ".spec.image"}, {"jsonPath": ".spec.image"}]),
        [("spec.selectableFields[1].jsonPath", 'Duplicate value: ".spec.image"')],
        id="selectable-fields-duplicate",
    ),
    # --- conversion ---
    pytest.param(
        put("spec/conversion/strategy", "Magic"),
        [
            (
                "spec.conversion.strategy",
                'Unsupported value: "Magic": supported values: "None", "Webhook"',
            )
        ],
        id="conversion-strategy",
    ),
    pytest.param(
        put("spec/conversion", {"strategy": "Webhook"}),
        [
            (
                "spec.conversion.webhookClientConfig",
                "Required value: required when strategy is set to Webhook",
            ),
            ("spec.conversion.conversionReviewVersions", "Required value"),
        ],
        id="webhook-needs-client-config-and-review-versions",
    ),
    pytest.param(
        put(
            "spec/conversion",
            {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": "http://conv.example.com/convert?v=1"},
                    "conversionReviewVersions": ["v2"],
                },
            },
        ),
        [
            (
                "spec.conversion.webhookClientConfig.url",
                f"Invalid value: \"http\": 'https' is the only allowed URL scheme{FORM}",
            ),
            (
                "spec.conversion.webhookClientConfig.url",
                'Invalid value: "v=1": query parameters are not permitted in the URL',
            ),
            (
                "spec.conversion.conversionReviewVersions",
                'Invalid value: []string{"v2"}: must include at least one of v1, v1beta1',
            ),
        ],
        id="webhook-url-and-review-versions",
    ),
    pytest.param(
        put(
            "spec/conversion",
            {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"service": {"name": "conv", "port": 0}},
                    "conversionReviewVersions": ["v1", "v1"],
                },
            },
        ),
        [
            # kube passes name and namespace swapped to ValidateWebhookService.
            (
                "spec.conversion.webhookClientConfig.service.name",
                "Required value: service name is required",
            ),
            (
                "spec.conversion.webhookClientConfig.service.port",
                "Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
            ),
            (
                "spec.conversion.conversionReviewVersions[1]",
                'Invalid value: "v1": duplicate version',
            ),
        ],
        id="webhook-service",
    ),
    pytest.param(
        put(
            "spec/conversion",
            {
                "strategy": "None",
                "webhook": {
                    "clientConfig": {"url": "https://conv.example.com"},
                    "conversionReviewVersions": ["v1"],
                },
            },
        ),
        [
            (
                "spec.conversion.webhookClientConfig",
                "Forbidden: should not be set when strategy is not set to Webhook",
            ),
            (
                "spec.conversion.conversionReviewVersions",
                "Forbidden: should not be set when strategy is not set to Webhook",
            ),
        ],
        id="none-strategy-without-webhook",
    ),
    # --- API approval for protected groups ---
    pytest.param(
        both(put("spec/group", "stable.k8s.io"), put("metadata/name", "crontabs.stable.k8s.io")),
        [
            (
                "metadata.annotations[api-approved.kubernetes.io]",
                'Required value: protected groups must have approval annotation "api-approved.'
                'kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111',
            )
        ],
        id="protected-group-needs-approval",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), CREATE_CASES)
def test_invalid_crd(mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    crd = _crd()
    mutate(crd)
    assert _causes(v.validate_crd(crd)) == expected


def test_versions_need_exactly_one_storage_version() -> None:
    crd = _crd()
    _second_version(crd)
    versions = _go_json(crd["spec"]["versions"])
    assert _causes(v.validate_crd(crd)) == [
        (
            "spec.versions",
            f"Invalid value: {versions}: must have exactly one version marked as storage version",
        ),
        (
            "status.storedVersions",
            'Invalid value: []string{"v1"}: must have the storage version v2',
        ),
    ]


def test_versions_must_be_unique() -> None:
    crd = _crd()
    _second_version(crd)
    crd["spec"]["versions"][1].update(name="v1", storage=False)
    versions = _go_json(crd["spec"]["versions"])
    assert _causes(v.validate_crd(crd)) == [
        ("spec.versions", f"Invalid value: {versions}: must contain unique version names")
    ]


def test_schemas_that_differ_are_reported_per_version() -> None:
    crd = _crd()
    _second_version(crd)
    second = crd["spec"]["versions"][1]
    second["storage"] = False
    del second["selectableFields"]
    del second["schema"]["openAPIV3Schema"]["properties"]["status"]["type"]
    assert _causes(v.validate_crd(crd)) == [
        (
            "spec.versions[1].schema.openAPIV3Schema.properties[status].type",
            "Required value: must not be empty for specified object fields",
        )
    ]


def test_status_validates_accepted_names() -> None:
    crd = _crd()
    crd["status"]["acceptedNames"] = {
        "plural": "crontabs",
        "kind": "Cron Tab",
        "listKind": "Cron Tab",
    }
    expected = [
        (
            "status.acceptedNames.kind",
            'Invalid value: "Cron Tab": may have mixed case, but should otherwise match: '
            + DNS1035,
        ),
        (
            "status.acceptedNames.listKind",
            'Invalid value: "Cron Tab": may have mixed case, but should otherwise match: '
            + DNS1035,
        ),
        (
            "status.acceptedNames.listKind",
            'Invalid value: "Cron Tab": kind and listKind may not be the same',
        ),
    ]
    assert _causes(v.validate_crd_status(crd)) == expected
    assert _causes(v.validate_crd(crd)) == expected


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        pytest.param(
            {"properties": {"a": {"properties": {"b": {}}}}},
            [
                (
                    "s.properties[a].properties[b].type",
                    "Required value: must not be empty for specified object fields",
                ),
                (
                    "s.properties[a].type",
                    "Required value: must not be empty for specified object fields",
                ),
                ("s.type", "Required value: must not be empty at the root"),
            ],
            id="missing-types-sorted",
        ),
        pytest.param(
            {"type": "object", "allOf": [{"properties": {"foo": {"minimum": 1}}}]},
            [
                (
                    "s.properties[foo]",
                    "Required value: because it is defined in s.allOf[0].properties[foo]",
                )
            ],
            id="value-validation-needs-structure",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "string"}},
            [("s.additionalProperties", "Forbidden: must not be used at the root")],
            id="no-additional-properties-at-root",
        ),
        pytest.param(
            {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "not": {"properties": {"a": {"description": "x", "nullable": True}}},
            },
            [
                ("s.not.properties[a].description", "Forbidden: must be empty to be structural"),
                ("s.not.properties[a].nullable", "Forbidden: must be false to be structural"),
            ],
            id="nested-generics-forbidden",
        ),
        pytest.param(
            {"type": "object", "x-kubernetes-preserve-unknown-fields": False},
            [
                (
                    "s",
                    "Invalid value: \"\": internal error: 'x-kubernetes-preserve-unknown-fields' "
                    "must be true or undefined",
                )
            ],
            id="new-structural-error",
        ),
    ],
)
def test_structural_errors(schema: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert _causes(v.structural_errors(schema, "s")) == expected


def _established(crd: dict[str, Any]) -> dict[str, Any]:
    crd["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    return crd


UPDATE_CASES = [
    pytest.param(
        _crd(),
        both(
            put("spec/group", "cron.example.com"), put("metadata/name", "crontabs.cron.example.com")
        ),
        [("spec.group", 'Invalid value: "cron.example.com": field is immutable')],
        id="group-immutable",
    ),
    pytest.param(
        _crd(),
        put("spec/names/plural", "crons"),
        [("spec.names.plural", 'Invalid value: "crons": field is immutable')],
        id="plural-immutable",
    ),
    pytest.param(_crd(), put("spec/scope", "Cluster"), [], id="scope-mutable-before-established"),
    pytest.param(
        _established(_crd()),
        both(put("spec/scope", "Cluster"), put("spec/names/kind", "Cron")),
        [
            ("spec.scope", 'Invalid value: "Cluster": field is immutable'),
            ("spec.names.kind", 'Invalid value: "Cron": field is immutable'),
        ],
        id="scope-and-kind-immutable-once-established",
    ),
    pytest.param(
        _crd(),
        put(f"{SPEC}/tags/items", {"type": "object"}),
        [
            (
                f"{FIELDS}[tags].items.x-kubernetes-map-type",
                'Invalid value: "null": must be atomic as item of a list with '
                "x-kubernetes-list-type=set",
            )
        ],
        id="non-atomic-set-items-rejected-if-new",
    ),
]


@pytest.mark.parametrize(("old", "mutate", "expected"), UPDATE_CASES)
def test_update(old: dict[str, Any], mutate: Mutation, expected: list[tuple[str, str]]) -> None:
    crd = copy.deepcopy(old)
    mutate(crd)
    assert _causes(v.validate_crd_update(crd, old)) == expected


def test_update_keeps_what_the_old_object_already_broke() -> None:
    """Ratcheting: rules the stored CRD breaks are not enforced on its updates."""
    old = _crd()
    put(f"{SPEC}/tags/items", {"type": "object"})(old)
    new = copy.deepcopy(old)
    new["spec"]["names"]["shortNames"] = ["cron"]
    assert v.validate_crd_update(new, old) == []

    legacy = _crd()
    legacy["spec"]["preserveUnknownFields"] = True
    del legacy["spec"]["versions"][0]["schema"]
    del legacy["spec"]["versions"][0]["selectableFields"]
    assert v.validate_crd_update(copy.deepcopy(legacy), legacy) == []
    pruning = copy.deepcopy(legacy)
    pruning["spec"]["preserveUnknownFields"] = False
    assert _causes(v.validate_crd_update(pruning, legacy)) == [
        (
            "spec.versions[0].schema.openAPIV3Schema",
            "Required value: because otherwise all fields are pruned",
        )
    ]
