"""Tests for custom resource validation, defaulting and pruning against a CRD schema."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from skiff.apiserver.apiextensions import crvalues
from skiff.apiserver.apiextensions.crschema import CompiledSchema

_CONDITION = {
    "type": "object",
    "required": ["type", "status"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
        "lastTransitionTime": {"type": "string", "format": "date-time"},
        "reason": {"type": "string"},
        "observedGeneration": {"type": "integer", "format": "int64", "minimum": 0},
    },
}
_PORT = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
        "protocol": {"type": "string", "enum": ["TCP", "UDP"], "default": "TCP"},
    },
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}},
        "spec": {
            "type": "object",
            "required": ["cronSpec", "image"],
            "properties": {
                "cronSpec": {
                    "type": "string",
                    "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
                },
                "image": {"type": "string", "minLength": 1, "maxLength": 64},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
                "concurrencyPolicy": {
                    "type": "string",
                    "enum": ["Allow", "Forbid", "Replace"],
                    "default": "Allow",
                },
                "suspend": {"type": "boolean"},
                "weight": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "multipleOf": 0.5,
                },
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "mode": {"type": "string", "nullable": True, "default": "auto"},
                "schedule": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "timeZone": {"type": "string", "default": "UTC"},
                        "deadlineSeconds": {"type": "integer", "format": "int64", "minimum": 0},
                    },
                },
                "owner": {"type": "string", "format": "email"},
                "startTime": {"type": "string", "format": "date-time"},
                "id": {"type": "string", "format": "uuid"},
                "history": {"type": "array", "minItems": 1, "items": {"type": "integer"}},
                "thresholds": {"type": "array", "items": {"type": "integer", "default": 5}},
                "tags": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "set",
                },
                "ports": {
                    "type": "array",
                    "items": _PORT,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                },
                "env": {
                    "type": "object",
                    "maxProperties": 3,
                    "additionalProperties": {"type": "string", "maxLength": 10},
                },
                "resources": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {
                            "limit": {"type": "integer", "default": 100},
                            "request": {"type": "integer"},
                        },
                    },
                },
                "config": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {"level": {"type": "integer", "maximum": 5}},
                },
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                },
                "sidecar": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {
                        "spec": {"type": "object", "properties": {"image": {"type": "string"}}}
                    },
                },
                "strategy": {
                    "type": "object",
                    "oneOf": [{"required": ["rolling"]}, {"required": ["recreate"]}],
                    "properties": {
                        "rolling": {
                            "type": "object",
                            "properties": {"maxSurge": {"type": "integer"}},
                        },
                        "recreate": {"type": "object"},
                    },
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {"type": "string", "enum": ["Pending", "Running", "Done"]},
                "conditions": {
                    "type": "array",
                    "items": _CONDITION,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                },
            },
        },
    },
}

CRONTAB = CompiledSchema(SCHEMA)


def _crontab() -> dict[str, Any]:
    return {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "nightly", "namespace": "default", "labels": {"app": "cron"}},
        "spec": {
            "cronSpec": "*/5 * * * *",
            "image": "registry.example.com/cron:1.2",
            "replicas": 3,
            "concurrencyPolicy": "Forbid",
            "suspend": False,
            "weight": 1.5,
            "port": "http",
            "note": None,
            "schedule": {"timeZone": "Europe/Paris", "deadlineSeconds": 30},
            "owner": "Ops Team <ops@example.com>",
            "startTime": "2024-05-01T10:00:00Z",
            "id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "history": [1, 2],
            "tags": ["nightly", "batch"],
            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
            "env": {"LOG_LEVEL": "debug"},
            "resources": {"cpu": {"limit": 2, "request": 1}},
            "config": {"level": 3, "anything": {"goes": ["here"]}},
            "template": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "worker", "labels": {"role": "worker"}},
                "spec": {"containers": [{"name": "main", "image": "busybox"}]},
            },
            "sidecar": {"apiVersion": "v1", "kind": "Pod", "spec": {"image": "envoy"}},
            "strategy": {"rolling": {"maxSurge": 1}},
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"},
                {"type": "Scheduled", "status": "False", "observedGeneration": 2},
            ],
        },
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted ``path`` (``spec.ports.0.name``) to ``value``."""

    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = obj
        for key in parents:
            target = target[key]
        del target[last]

    return mutate


_DNS1035 = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
_CRON_PATTERN = r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"

INVALID_CASES: list[tuple[str, Callable[[dict[str, Any]], None], list[tuple[str, str]]]] = [
    (
        "wrong type",
        _set("spec.replicas", "three"),
        [
            (
                "spec.replicas",
                'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            )
        ],
    ),
    (
        "maximum",
        _set("spec.replicas", 20),
        [
            (
                "spec.replicas",
                "Invalid value: 20: spec.replicas in body should be less than or equal to 10",
            )
        ],
    ),
    (
        "minimum",
        _set("spec.replicas", 0),
        [
            (
                "spec.replicas",
                "Invalid value: 0: spec.replicas in body should be greater than or equal to 1",
            )
        ],
    ),
    (
        "fraction for an integer",
        _set("spec.replicas", 2.5),
        [
            (
                "spec.replicas",
                'Invalid value: "number": spec.replicas in body must be of type integer: "number"',
            )
        ],
    ),
    (
        "integral float checked as a float",
        _set("spec.replicas", 20.0),
        [
            (
                "spec.replicas",
                "Invalid value: 20: spec.replicas in body should be less than or equal to 10",
            )
        ],
    ),
    ("required", _delete("spec.cronSpec"), [("spec.cronSpec", "Required value")]),
    (
        "two required",
        _set("spec", {}),
        [("spec.cronSpec", "Required value"), ("spec.image", "Required value")],
    ),
    (
        "pattern",
        _set("spec.cronSpec", "every minute"),
        [
            (
                "spec.cronSpec",
                'Invalid value: "every minute": spec.cronSpec in body should match '
                f"'{_CRON_PATTERN}'",
            )
        ],
    ),
    (
        "minLength",
        _set("spec.image", ""),
        [("spec.image", 'Invalid value: "": spec.image in body should be at least 1 chars long')],
    ),
    (
        "maxLength",
        _set("spec.image", "x" * 65),
        [("spec.image", "Too long: may not be more than 64 bytes")],
    ),
    (
        "enum",
        _set("spec.concurrencyPolicy", "Sometimes"),
        [
            (
                "spec.concurrencyPolicy",
                'Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"',
            )
        ],
    ),
    (
        "enum and type",
        _set("spec.concurrencyPolicy", 5),
        [
            (
                "spec.concurrencyPolicy",
                'Invalid value: "integer": spec.concurrencyPolicy in body must be of type string: '
                '"integer"',
            ),
            (
                "spec.concurrencyPolicy",
                'Unsupported value: 5: supported values: "Allow", "Forbid", "Replace"',
            ),
        ],
    ),
    (
        "boolean",
        _set("spec.suspend", "yes"),
        [
            (
                "spec.suspend",
                'Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
            )
        ],
    ),
    (
        "exclusiveMinimum",
        _set("spec.weight", 0.0),
        [("spec.weight", "Invalid value: 0: spec.weight in body should be greater than 0")],
    ),
    (
        # kube-openapi checks an int64 against int64(multipleOf), which truncates 0.5 to 0.
        "integer against a fractional multipleOf",
        _set("spec.weight", 2),
        [
            (
                "spec.weight",
                "Invalid value: 0: factor MultipleOf declared for spec.weight must be positive: 0",
            )
        ],
    ),
    (
        "multipleOf",
        _set("spec.weight", 0.75),
        [("spec.weight", "Invalid value: 0.75: spec.weight in body should be a multiple of 0.5")],
    ),
    (
        "int-or-string",
        _set("spec.port", True),
        [
            (
                "spec.port",
                'Invalid value: "boolean": spec.port in body must be of type integer,string: '
                '"boolean"',
            )
        ],
    ),
    (
        "int-or-string with a fraction",
        _set("spec.port", 1.5),
        [
            (
                "spec.port",
                'Invalid value: "number": spec.port in body must be of type integer,string: '
                '"number"',
            )
        ],
    ),
    (
        "non-nullable null",
        _set("status.phase", None),
        [
            (
                "status.phase",
                'Invalid value: "null": status.phase in body must be of type string: "null"',
            ),
            (
                "status.phase",
                'Unsupported value: null: supported values: "Pending", "Running", "Done"',
            ),
        ],
    ),
    (
        "nested minimum",
        _set("spec.schedule.deadlineSeconds", -1),
        [
            (
                "spec.schedule.deadlineSeconds",
                "Invalid value: -1: spec.schedule.deadlineSeconds in body should be greater than "
                "or equal to 0",
            )
        ],
    ),
    (
        "email format",
        _set("spec.owner", "not-an-email"),
        [
            (
                "spec.owner",
                'Invalid value: "not-an-email": spec.owner in body must be of type email: '
                '"not-an-email"',
            )
        ],
    ),
    (
        "date-time format",
        _set("spec.startTime", "yesterday"),
        [
            (
                "spec.startTime",
                'Invalid value: "yesterday": spec.startTime in body must be of type date-time: '
                '"yesterday"',
            )
        ],
    ),
    (
        "number for a formatted string",
        _set("spec.startTime", 5),
        [
            (
                "spec.startTime",
                'Invalid value: "int64": spec.startTime in body must be of type date-time: "int64"',
            )
        ],
    ),
    (
        "uuid format",
        _set("spec.id", "1234"),
        [("spec.id", 'Invalid value: "1234": spec.id in body must be of type uuid: "1234"')],
    ),
    (
        "minItems",
        _set("spec.history", []),
        [("spec.history", "Invalid value: 0: spec.history in body should have at least 1 items")],
    ),
    (
        "array item type",
        _set("spec.history", [1, "two"]),
        [
            (
                "spec.history[1]",
                'Invalid value: "string": spec.history[1] in body must be of type integer: '
                '"string"',
            )
        ],
    ),
    (
        "maxItems",
        _set("spec.tags", ["a", "b", "c", "d"]),
        [("spec.tags", "Too many: 4: must have at most 3 items")],
    ),
    (
        "list-type set",
        _set("spec.tags", ["a", "b", "a"]),
        [("spec.tags[2]", 'Duplicate value: "a"')],
    ),
    (
        "list-type map",
        _set("spec.ports", [{"name": "http"}, {"name": "http", "containerPort": 81}]),
        [("spec.ports[1]", 'Duplicate value: map[string]interface {}{"name":"http"}')],
    ),
    (
        "list-type map of scalars",
        _set("spec.ports", [{"name": "http"}, "https"]),
        [
            (
                "spec.ports[1]",
                'Invalid value: "string": spec.ports[1] in body must be of type object: "string"',
            ),
            (
                "spec.ports[1]",
                'Invalid value: "https": must be an object for an array of list-type map',
            ),
        ],
    ),
    (
        "in a list item",
        _set("spec.ports.0.containerPort", 70000),
        [
            (
                "spec.ports[0].containerPort",
                "Invalid value: 70000: spec.ports[0].containerPort in body should be less than or "
                "equal to 65535",
            )
        ],
    ),
    (
        "required in a list item",
        _set("spec.ports", [{"containerPort": 80}]),
        [("spec.ports[0].name", "Required value")],
    ),
    (
        "additionalProperties value",
        _set("spec.env.LOG_LEVEL", "much-too-verbose"),
        [("spec.env.LOG_LEVEL", "Too long: may not be more than 10 bytes")],
    ),
    (
        "maxProperties",
        _set("spec.env", {"A": "1", "B": "2", "C": "3", "D": "4"}),
        [("spec.env", "Too many: 4: must have at most 3 items")],
    ),
    (
        "inside an additionalProperties object",
        _set("spec.resources.cpu.limit", "2"),
        [
            (
                "spec.resources.cpu.limit",
                'Invalid value: "string": spec.resources.cpu.limit in body must be of type '
                'integer: "string"',
            )
        ],
    ),
    (
        "declared field of a preserve-unknown-fields object",
        _set("spec.config.level", 9),
        [
            (
                "spec.config.level",
                "Invalid value: 9: spec.config.level in body should be less than or equal to 5",
            )
        ],
    ),
    (
        "embedded resource without kind",
        _delete("spec.template.kind"),
        [("spec.template.kind", "Required value: must not be empty")],
    ),
    (
        "embedded resource kind",
        _set("spec.template.kind", "Pod_"),
        [
            (
                "spec.template.kind",
                'Invalid value: "Pod_": may have mixed case, but should otherwise match: '
                + _DNS1035,
            )
        ],
    ),
    (
        "embedded resource apiVersion",
        _set("spec.sidecar.apiVersion", "a/b/c"),
        [
            (
                "spec.sidecar.apiVersion",
                'Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c',
            )
        ],
    ),
    (
        "embedded resource name",
        _set("spec.template.metadata.name", "a/b"),
        [("spec.template.metadata.name", "Invalid value: \"a/b\": may not contain '/'")],
    ),
    (
        "embedded resource metadata type",
        _set("spec.template.metadata", {"name": 5}),
        [
            (
                "spec.template.metadata",
                'Invalid value: map[string]interface {}{"name":5}: json: cannot unmarshal number '
                "into Go struct field ObjectMeta.name of type string",
            )
        ],
    ),
    (
        "oneOf with two matches",
        _set("spec.strategy", {"rolling": {}, "recreate": {}}),
        [
            (
                "<nil>",
                'Invalid value: "": "spec.strategy" must validate one and only one schema (oneOf). '
                "Found 2 valid alternatives",
            )
        ],
    ),
    (
        "oneOf with no match",
        _set("spec.strategy", {}),
        [
            (
                "<nil>",
                'Invalid value: "": "spec.strategy" must validate one and only one schema (oneOf). '
                "Found none valid",
            ),
            ("spec.strategy.rolling", "Required value"),
        ],
    ),
    (
        "status condition enum",
        _set("status.conditions.0.status", "Maybe"),
        [
            (
                "status.conditions[0].status",
                'Unsupported value: "Maybe": supported values: "True", "False", "Unknown"',
            )
        ],
    ),
    (
        "status condition date",
        _set("status.conditions.1.lastTransitionTime", "2024-13-01T00:00:00Z"),
        [
            (
                "status.conditions[1].lastTransitionTime",
                'Invalid value: "2024-13-01T00:00:00Z": status.conditions[1].lastTransitionTime in '
                'body must be of type date-time: "2024-13-01T00:00:00Z"',
            )
        ],
    ),
    (
        "status condition keys",
        _set("status.conditions.1.type", "Ready"),
        [
            (
                "status.conditions[1]",
                'Duplicate value: map[string]interface {}{"type":"Ready"}',
            )
        ],
    ),
    (
        "metadata.name restricted by the schema",
        _set("metadata.name", "a-very-long-name-for-a-crontab"),
        [("metadata.name", "Too long: may not be more than 20 bytes")],
    ),
    (
        "object of the wrong type",
        _set("spec", "nightly"),
        [("spec", 'Invalid value: "string": spec in body must be of type object: "string"')],
    ),
]


def test_valid_object_has_no_causes() -> None:
    assert CRONTAB.validate(_crontab()) == []


@pytest.mark.parametrize(
    ("mutate", "expected"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_objects(
    mutate: Callable[[dict[str, Any]], None], expected: list[tuple[str, str]]
) -> None:
    obj = _crontab()
    mutate(obj)
    causes = CRONTAB.validate(obj)
    assert sorted((c.field, c.message) for c in causes) == sorted(expected)


def test_reasons() -> None:
    obj = _crontab()
    obj["spec"]["replicas"] = "x"
    obj["spec"]["image"] = "x" * 65
    obj["spec"]["tags"] = ["a", "a", "b", "c"]
    obj["spec"]["concurrencyPolicy"] = "Never"
    del obj["spec"]["cronSpec"]
    reasons = {c.field: c.reason for c in CRONTAB.validate(obj)}
    assert reasons == {
        "spec.replicas": "FieldValueTypeInvalid",
        "spec.image": "FieldValueTooLong",
        "spec.tags": "FieldValueTooMany",
        "spec.tags[1]": "FieldValueDuplicate",
        "spec.concurrencyPolicy": "FieldValueNotSupported",
        "spec.cronSpec": "FieldValueRequired",
    }


# Cases from apiextensions-apiserver's validation_test.go (Kubernetes 1.32).
KUBE_CASES = [
    (
        {
            "type": "object",
            "properties": {
                "field": {
                    "nullable": True,
                    "x-kubernetes-int-or-string": True,
                    "allOf": [{"anyOf": [{"type": "integer"}, {"type": "string"}]}],
                }
            },
        },
        {"field": []},
        [
            '<nil>: Invalid value: "": "field" must validate all the schemas (allOf). '
            "None validated",
            '<nil>: Invalid value: "": "field" must validate at least one schema (anyOf)',
            'field: Invalid value: "array": field in body must be of type integer,string: "array"',
            'field: Invalid value: "array": field in body must be of type integer: "array"',
        ],
    ),
    (
        {"type": "object", "properties": {"field": {"type": "string", "pattern": "+"}}},
        {"field": "foo"},
        [
            'field: Invalid value: "foo": field in body should match \'+, but pattern is invalid: '
            "error parsing regexp: missing argument to repetition operator: `+`'"
        ],
    ),
    (
        {
            "type": "object",
            "properties": {
                "field": {
                    "type": "object",
                    "required": ["nestedint", "nestedstring"],
                    "properties": {
                        "nestedint": {"type": "integer", "enum": [1, 2]},
                        "nestedstring": {"type": "string", "enum": ["a", "b"]},
                    },
                }
            },
        },
        {"field": {"nestedint": "x", "nestedstring": True}},
        [
            'field.nestedint: Invalid value: "string": field.nestedint in body must be of type '
            'integer: "string"',
            'field.nestedint: Unsupported value: "x": supported values: "1", "2"',
            'field.nestedstring: Invalid value: "boolean": field.nestedstring in body must be of '
            'type string: "boolean"',
            'field.nestedstring: Unsupported value: true: supported values: "a", "b"',
        ],
    ),
    (
        {"type": "object", "properties": {"field": {"type": "object"}}},
        {"field": None},
        ['field: Invalid value: "null": field in body must be of type object: "null"'],
    ),
    (
        {"type": "object", "required": ["field"], "properties": {"field": {"type": "object"}}},
        {"test": "a"},
        ["field: Required value"],
    ),
]


@pytest.mark.parametrize(("schema", "obj", "expected"), KUBE_CASES)
def test_kube_cases(schema: dict[str, Any], obj: dict[str, Any], expected: list[str]) -> None:
    causes = CompiledSchema(schema).validate(obj)
    assert sorted(f"{c.field}: {c.message}" for c in causes) == sorted(expected)


def test_anyof_reports_the_branch_with_most_matches() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "x": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "anyOf": [{"required": ["c"]}, {"properties": {"a": {"maximum": 1}}}],
                }
            },
        }
    )
    causes = schema.validate({"x": {"a": 5}})
    assert [(c.field, c.message) for c in causes] == [
        ("<nil>", 'Invalid value: "": "x" must validate at least one schema (anyOf)'),
        ("x.a", "Invalid value: 5: x.a in body should be less than or equal to 1"),
    ]


# --- ratcheting ---


def test_update_ratchets_unchanged_invalid_values() -> None:
    old = _crontab()
    old["spec"]["replicas"] = 20
    old["status"]["conditions"][1]["status"] = "Maybe"
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["tier"] = "batch"
    new["spec"]["image"] = "other"
    new["status"]["conditions"].reverse()  # list-map items correlate by key, not index
    assert CRONTAB.validate_update(new, old) == []
    assert len(CRONTAB.validate(new)) == 2


def test_update_ratchets_errors_of_unchanged_objects() -> None:
    old = _crontab()
    del old["spec"]["cronSpec"]
    new = copy.deepcopy(old)
    new["status"]["phase"] = "Done"
    # kube compares objects field by field through the schema: a spec holding fields the
    # schema does not declare (the embedded template's) never counts as unchanged.
    assert [c.field for c in CRONTAB.validate_update(new, old)] == ["spec.cronSpec"]
    for key in ("template", "sidecar", "config"):
        del old["spec"][key], new["spec"][key]
    assert CRONTAB.validate_update(new, old) == []


def test_update_reports_changed_invalid_values() -> None:
    old = _crontab()
    old["spec"]["replicas"] = 20
    del old["spec"]["cronSpec"]
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 30
    fields = sorted(c.field for c in CRONTAB.validate_update(new, old))
    # spec changed, so its missing cronSpec is reported again.
    assert fields == ["spec.cronSpec", "spec.replicas"]
    new = copy.deepcopy(old)
    new["spec"]["image"] = "other"
    assert sorted(c.field for c in CRONTAB.validate_update(new, old)) == ["spec.cronSpec"]


def test_update_ratchets_list_type_duplicates() -> None:
    old = _crontab()
    old["spec"]["tags"] = ["a", "a"]
    new = copy.deepcopy(old)
    new["spec"]["tags"] = ["b", "b"]
    assert CRONTAB.validate_update(new, old) == []
    assert [c.field for c in CRONTAB.validate_update(new, _crontab())] == ["spec.tags[1]"]


# --- defaulting ---


def test_defaults_absent_fields() -> None:
    obj = _crontab()
    for key in ("replicas", "concurrencyPolicy", "schedule"):
        del obj["spec"][key]
    CRONTAB.default(obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["concurrencyPolicy"] == "Allow"
    # The parent's default ({}) is defaulted in turn.
    assert spec["schedule"] == {"timeZone": "UTC"}
    assert spec["mode"] == "auto"
    assert CRONTAB.validate(obj) == []


def test_defaults_keep_present_values_and_replace_non_nullable_nulls() -> None:
    obj = _crontab()
    obj["spec"]["replicas"] = None
    obj["spec"]["mode"] = None  # nullable: null stays
    obj["spec"]["schedule"] = {"deadlineSeconds": 5}
    CRONTAB.default(obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["mode"] is None
    assert obj["spec"]["concurrencyPolicy"] == "Forbid"
    assert obj["spec"]["schedule"] == {"deadlineSeconds": 5, "timeZone": "UTC"}


def test_defaults_inside_arrays_and_maps() -> None:
    obj = _crontab()
    obj["spec"]["ports"] = [{"name": "http"}, {"name": "dns", "protocol": "UDP"}]
    obj["spec"]["thresholds"] = [None, 3]
    obj["spec"]["resources"] = {"cpu": {}, "memory": {"limit": 7}, "gpu": None}
    CRONTAB.default(obj)
    assert obj["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP"},
        {"name": "dns", "protocol": "UDP"},
    ]
    assert obj["spec"]["thresholds"] == [5, 3]
    assert obj["spec"]["resources"] == {"cpu": {"limit": 100}, "memory": {"limit": 7}, "gpu": None}


def test_defaults_are_copies() -> None:
    a, b = _crontab(), _crontab()
    del a["spec"]["schedule"], b["spec"]["schedule"]
    CRONTAB.default(a)
    CRONTAB.default(b)
    a["spec"]["schedule"]["timeZone"] = "Asia/Tokyo"
    assert b["spec"]["schedule"] == {"timeZone": "UTC"}


def test_defaults_skip_metadata_and_are_pruned() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"namespace": {"type": "string", "default": "x"}},
                },
                "spec": {
                    "type": "object",
                    "default": {"a": 1, "unknown": 2},
                    "properties": {"a": {"type": "integer"}},
                },
            },
        }
    )
    obj: dict[str, Any] = {"metadata": {"name": "n"}}
    schema.default(obj)
    assert obj == {"metadata": {"name": "n"}, "spec": {"a": 1}}


# --- pruning ---


def test_prune_unknown_fields() -> None:
    obj = _crontab()
    obj["extra"] = True
    obj["spec"]["foo"] = {"bar": 1}
    obj["spec"]["ports"][0]["bar"] = "x"
    obj["spec"]["schedule"]["zone"] = "x"
    obj["spec"]["resources"]["cpu"]["burst"] = 3
    obj["spec"]["suspend"] = {"a": 1}  # wrong type: its fields are unknown
    obj["status"]["conditions"][1]["extra"] = [1]
    obj["metadata"]["unknownMeta"] = "kept"
    assert CRONTAB.prune(obj) == [
        "extra",
        "spec.foo",
        "spec.ports[0].bar",
        "spec.resources.cpu.burst",
        "spec.schedule.zone",
        "spec.suspend.a",
        "status.conditions[1].extra",
    ]
    expected = _crontab()
    expected["spec"]["suspend"] = {}
    expected["metadata"]["unknownMeta"] = "kept"  # root metadata is handled elsewhere
    assert obj == expected


def test_prune_keeps_preserved_subtrees_and_embedded_resources() -> None:
    obj = _crontab()
    obj["spec"]["config"]["nested"] = {"deep": {"er": [1, {"x": None}]}}
    obj["spec"]["template"]["status"] = {"phase": "Pending"}
    obj["spec"]["template"]["metadata"]["bogus"] = 1
    obj["spec"]["template"]["metadata"]["annotations"] = {}
    obj["spec"]["sidecar"]["metadata"] = {"name": "envoy", "generation": 0}
    obj["spec"]["sidecar"]["extra"] = 1
    obj["spec"]["sidecar"]["spec"]["extra"] = 2
    assert CRONTAB.prune(obj) == [
        "spec.sidecar.extra",
        "spec.sidecar.spec.extra",
        "spec.template.metadata.bogus",
    ]
    spec = obj["spec"]
    assert spec["config"]["nested"] == {"deep": {"er": [1, {"x": None}]}}
    assert spec["template"]["status"] == {"phase": "Pending"}
    assert spec["template"]["metadata"] == {"name": "worker", "labels": {"role": "worker"}}
    assert spec["sidecar"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "envoy"},
        "spec": {"image": "envoy"},
    }


def test_prune_drops_non_nullable_nulls_without_default() -> None:
    obj = _crontab()
    obj["spec"]["image"] = None  # non-nullable, no default: dropped (then Required)
    obj["spec"]["note"] = None  # nullable: kept
    obj["spec"]["replicas"] = None  # has a default: kept for defaulting
    obj["spec"]["env"]["EMPTY"] = None  # additionalProperties schema: dropped
    assert CRONTAB.prune(obj) == []
    assert "image" not in obj["spec"] and "EMPTY" not in obj["spec"]["env"]
    assert obj["spec"]["note"] is None and obj["spec"]["replicas"] is None
    CRONTAB.default(obj)
    assert obj["spec"]["replicas"] == 1
    causes = CRONTAB.validate(obj)
    assert [(c.field, c.message) for c in causes] == [("spec.image", "Required value")]


def test_prune_under_additional_properties_true() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "additionalProperties": True},
                "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    )
    obj = {"spec": {"a": 1, "b": {"c": 2}}, "list": [{"x": 1}]}
    assert schema.prune(obj) == ["spec.b.c"]
    assert obj == {"spec": {"a": 1, "b": {}}, "list": [{"x": 1}]}


# --- values ---


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (20.0, "20"),
        (0.5, "0.5"),
        (123456.0, "123456"),
        (1e6, "1e+06"),
        (1.5e-5, "1.5e-05"),
        (-0.001, "-0.001"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert crvalues.go_float(value) == text


def test_go_rendering() -> None:
    assert crvalues.go_json(1.0) == "1"
    assert crvalues.go_json(1e21) == "1e+21"
    assert crvalues.go_json(1e-7) == "1e-7"
    assert crvalues.go_json({"b": 1, "a": [True]}) == '{"a":[true],"b":1}'
    assert crvalues.render({"a": 1, "b": None}) == (
        'map[string]interface {}{"a":1, "b":interface {}(nil)}'
    )
    assert crvalues.render([1.5, "x"]) == '[]interface {}{1.5, "x"}'
    assert crvalues.go_quote('a"\x01\n') == '"a\\"\\x01\\n"'


@pytest.mark.parametrize(
    ("fmt", "value", "ok"),
    [
        ("datetime", "2024-05-01T10:00:00.123+02:00", True),
        ("datetime", "2024-02-30T10:00:00Z", False),
        ("date", "2024-02-29", True),
        ("date", "2023-02-29", False),
        ("hostname", "example.com", True),
        ("hostname", "-bad-.com", False),
        ("ipv4", "10.0.0.1", True),
        ("ipv4", "10.0.0.256", False),
        ("ipv6", "fe80::1", True),
        ("ipv6", "10.0.0.1", False),
        ("cidr", "10.0.0.0/8", True),
        ("cidr", "10.0.0.0/33", False),
        ("mac", "00:00:5e:00:53:01", True),
        ("mac", "00:00:5e:00:53", False),
        ("uuid", "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", True),
        ("uuid4", "6ba7b810-9dad-11d1-80b4-00c04fd430c8", False),
        ("byte", "aGVsbG8=", True),
        ("byte", "aGVsbG8", False),
        ("uri", "https://example.com:8443/path?q=1", True),
        ("uri", "relative/path", False),
        ("email", "someone@example.com", True),
        ("email", "someone", False),
        ("duration", "1h30m", True),
        ("duration", "3 days", True),
        ("duration", "soon", False),
        ("bsonobjectid", "507f1f77bcf86cd799439011", True),
    ],
)
def test_formats(fmt: str, value: str, ok: bool) -> None:
    assert crvalues.FORMATS[fmt](value) is ok


def test_unknown_formats_are_ignored() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "a": {"type": "string", "format": "k8s-short-name"},
                "b": {"type": "integer", "format": "int32"},
            },
        }
    )
    assert schema.validate({"a": "Not Valid!", "b": 2**40}) == []


def test_regex_dollar_is_end_of_text() -> None:
    schema = CompiledSchema(
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^[a-z]+$"}}}
    )
    assert schema.validate({"a": "abc"}) == []
    assert [c.field for c in schema.validate({"a": "abc\n"})] == ["a"]


def test_enum_values_compare_after_go_conversion() -> None:
    schema = CompiledSchema(
        {"type": "object", "properties": {"n": {"type": "number", "enum": [1, 2.5]}}}
    )
    assert schema.validate({"n": 1.0}) == []
    assert schema.validate({"n": 2.5}) == []
    causes = schema.validate({"n": 3.5})
    assert [(c.field, c.message) for c in causes] == [
        ("n", 'Unsupported value: 3.5: supported values: "1", "2.5"')
    ]


def test_not_and_all_of() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "x": {
                    "type": "string",
                    "not": {"enum": ["forbidden"]},
                    "allOf": [{"minLength": 2}],
                }
            },
        }
    )
    assert [(c.field, c.message) for c in schema.validate({"x": "forbidden"})] == [
        ("<nil>", 'Invalid value: "": "x" must not validate the schema (not)')
    ]
    assert sorted((c.field, c.message) for c in schema.validate({"x": "a"})) == [
        ("<nil>", 'Invalid value: "": "x" must validate all the schemas (allOf). None validated'),
        ("x", 'Invalid value: "a": x in body should be at least 2 chars long'),
    ]


def test_embedded_resources_in_maps_use_field_paths() -> None:
    schema = CompiledSchema(
        {
            "type": "object",
            "properties": {
                "templates": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "x-kubernetes-embedded-resource": True,
                        "x-kubernetes-preserve-unknown-fields": True,
                    },
                }
            },
        }
    )
    obj = {"templates": {"web": {"apiVersion": "v1", "metadata": {"name": "x", "foo": 1}}}}
    assert schema.prune(obj) == ["templates[web].metadata.foo"]
    causes = schema.validate(obj)
    assert [(c.field, c.message) for c in causes] == [
        ("templates[web].kind", "Required value: must not be empty")
    ]
