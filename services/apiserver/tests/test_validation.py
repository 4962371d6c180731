"""Tests for schema, name and metadata validation."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.errors import Cause
from skiff.api.resources import RESOURCES
from skiff.apiserver import validation as v

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"


def _deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web"},
            "annotations": {"example.com/owner": "team-a"},
            "creationTimestamp": "2024-05-01T10:00:00Z",
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "prod"}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": 0.1, "memory": 64000000},
                            },
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ],
                    "volumes": [{"name": "scratch", "emptyDir": {}}],
                },
            },
        },
        "status": {"replicas": 3, "conditions": []},
    }


def _pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        },
    }


# --- validate_object ---


def test_valid_deployment_and_pod_pass() -> None:
    assert v.validate_object(_deployment(), DEPLOYMENT) == ([], [])
    assert v.validate_object(_pod(), POD) == ([], [])


def test_null_values_are_accepted() -> None:
    dep = _deployment()
    dep["spec"]["replicas"] = None
    dep["metadata"]["labels"] = None
    assert v.validate_object(dep, DEPLOYMENT) == ([], [])


def test_wrong_scalar_type_message() -> None:
    dep = _deployment()
    dep["spec"]["replicas"] = "three"
    errs, unknown = v.validate_object(dep, DEPLOYMENT)
    assert unknown == []
    assert errs == [
        Cause(
            "spec.replicas",
            'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
            "FieldValueTypeInvalid",
        )
    ]


@pytest.mark.parametrize(
    ("path", "value", "expected", "got"),
    [
        (("spec", "paused"), 1, "boolean", "integer"),
        (("spec", "replicas"), True, "integer", "boolean"),
        (("spec", "replicas"), 1.5, "integer", "number"),
        (("spec", "selector"), "app=web", "object", "string"),
        (("spec", "template", "spec", "containers"), {"name": "x"}, "array", "object"),
        (("metadata", "name"), 7, "string", "integer"),
    ],
)
def test_wrong_types(path: tuple[str, ...], value: Any, expected: str, got: str) -> None:
    dep = _deployment()
    target = dep
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errs, _ = v.validate_object(dep, DEPLOYMENT)
    field = ".".join(path)
    assert [e.field for e in errs] == [field]
    assert errs[0].message == (
        f'Invalid value: "{got}": {field} in body must be of type {expected}: "{got}"'
    )


def test_integral_float_is_an_integer() -> None:
    dep = _deployment()
    dep["spec"]["replicas"] = 2.0
    assert v.validate_object(dep, DEPLOYMENT) == ([], [])


def test_int32_range() -> None:
    dep = _deployment()
    dep["spec"]["replicas"] = 2**31
    errs, _ = v.validate_object(dep, DEPLOYMENT)
    assert [e.field for e in errs] == ["spec.replicas"]
    assert "less than or equal to 2147483647" in errs[0].message
    dep["metadata"]["generation"] = 2**40  # int64 is fine
    dep["spec"]["replicas"] = 1
    assert v.validate_object(dep, DEPLOYMENT) == ([], [])


def test_int_or_string_and_quantity() -> None:
    dep = _deployment()
    container = dep["spec"]["template"]["spec"]["containers"][0]
    dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = True
    container["resources"]["limits"]["memory"] = "1Gb"
    container["resources"]["limits"]["cpu"] = ["1"]
    errs, _ = v.validate_object(dep, DEPLOYMENT)
    by_field = {e.field: e for e in errs}
    assert by_field["spec.strategy.rollingUpdate.maxSurge"].message.endswith(
        'must be of type integer,string: "boolean"'
    )
    memory = by_field["spec.template.spec.containers[0].resources.limits.memory"]
    assert memory.message.startswith('Invalid value: "1Gb": quantities must match')
    assert memory.reason == "FieldValueInvalid"
    assert "spec.template.spec.containers[0].resources.limits.cpu" in by_field


@pytest.mark.parametrize("value", ["1", "0", "1.5", "100m", "2Gi", "1e3", "5E", "-1", ".5", "1E-3"])
def test_quantity_accepts(value: str) -> None:
    assert v.quantity_error(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", v.QUANTITY_FORMAT_ERROR),
        ("1Gb", v.QUANTITY_FORMAT_ERROR),
        ("1 Gi", v.QUANTITY_FORMAT_ERROR),
        ("1.2.3", v.QUANTITY_FORMAT_ERROR),
        ("1mi", v.QUANTITY_SUFFIX_ERROR),
        ("1e", v.QUANTITY_SUFFIX_ERROR),
    ],
)
def test_quantity_rejects(value: str, why: str) -> None:
    assert v.quantity_error(value) == why


def test_string_formats() -> None:
    dep = _deployment()
    dep["metadata"]["creationTimestamp"] = "yesterday"
    errs, _ = v.validate_object(dep, DEPLOYMENT)
    assert [(e.field, e.message) for e in errs] == [
        (
            "metadata.creationTimestamp",
            'Invalid value: "yesterday": metadata.creationTimestamp in body must be of type '
            'date-time: "yesterday"',
        )
    ]
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
    secret["data"] = {"ok": "aGVsbG8=", "bad": "not base64!"}
    errs, _ = v.validate_object(secret, "io.k8s.api.core.v1.Secret")
    assert [e.field for e in errs] == ["data.bad"]


def test_unknown_fields_are_reported_with_paths() -> None:
    dep = _deployment()
    dep["spec"]["foo"] = 1
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    dep["spec"]["template"]["spec"]["containers"].append({"name": "b", "image": "b", "bar": {}})
    dep["extra"] = True
    errs, unknown = v.validate_object(dep, DEPLOYMENT)
    assert errs == []
    assert sorted(unknown) == [
        "extra",
        "spec.foo",
        "spec.template.spec.containers[0].imagePullPolicyy",
        "spec.template.spec.containers[1].bar",
    ]
    assert v.unknown_field_messages(["spec.foo"]) == ['unknown field "spec.foo"']


def test_field_names_are_case_sensitive() -> None:
    dep = _deployment()
    dep["spec"]["Replicas"] = 3
    assert v.validate_object(dep, DEPLOYMENT)[1] == ["spec.Replicas"]


def test_maps_and_open_objects_do_not_report_unknown_fields() -> None:
    dep = _deployment()
    dep["metadata"]["labels"]["anything.example.com/x"] = "y"
    dep["metadata"]["managedFields"] = [
        {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    ]  # fmt: skip
    assert v.validate_object(dep, DEPLOYMENT) == ([], [])
    dep["metadata"]["labels"]["n"] = 5
    errs, _ = v.validate_object(dep, DEPLOYMENT)
    assert [e.field for e in errs] == ["metadata.labels.n"]


def test_unknown_definition_raises() -> None:
    with pytest.raises(KeyError):
        v.validate_object({}, "io.k8s.api.nope.v1.Nope")


def test_required_causes() -> None:
    dep = _deployment()
    assert v.required_causes(dep, DEPLOYMENT) == []
    del dep["spec"]["selector"]
    del dep["spec"]["template"]["spec"]["containers"][0]["name"]
    dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = None
    causes = v.required_causes(dep, DEPLOYMENT)
    assert [c.field for c in causes] == [
        "spec.selector",
        "spec.template.spec.containers[0].name",
        "spec.template.spec.containers[0].ports[0].containerPort",
    ]
    assert all(c.reason == "FieldValueRequired" and c.message == "Required value" for c in causes)
    # validate_object itself never enforces required.
    assert v.validate_object(dep, DEPLOYMENT) == ([], [])


def test_every_served_definition_compiles() -> None:
    for r in RESOURCES:
        assert v.validate_object({"apiVersion": r.api_version, "kind": r.kind}, r.definition) == (
            [],
            [],
        )


# --- names ---

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def test_object_meta_valid() -> None:
    meta = _deployment()["metadata"]
    assert v.validate_object_meta(meta, namespaced=True) == []
    assert v.validate_object_meta({"generateName": "web-", "namespace": "ns"}, True) == []


def test_object_meta_name_required() -> None:
    causes = v.validate_object_meta({"namespace": "default"}, namespaced=True)
    assert [c.to_dict() for c in causes] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value: name or generateName is required",
            "field": "metadata.name",
        }
    ]


def test_object_meta_bad_name() -> None:
    causes = v.validate_object_meta({"name": "Bad_Name", "namespace": "default"}, True)
    assert [(c.field, c.message) for c in causes] == [
        ("metadata.name", f'Invalid value: "Bad_Name": {SUBDOMAIN_MSG}')
    ]
    causes = v.validate_object_meta({"name": "a.b"}, False, name_rule="label")
    assert [(c.field, c.message) for c in causes] == [
        ("metadata.name", 'Invalid value: "a.b": must not contain dots')
    ]
    causes = v.validate_object_meta({"generateName": "Web-", "namespace": "x"}, True)
    assert [c.field for c in causes] == ["metadata.generateName"]


def test_object_meta_namespace() -> None:
    missing = v.validate_object_meta({"name": "a"}, namespaced=True)
    assert [(c.field, c.message, c.reason) for c in missing] == [
        ("metadata.namespace", "Required value", "FieldValueRequired")
    ]
    forbidden = v.validate_object_meta({"name": "a", "namespace": "x"}, namespaced=False)
    assert [(c.field, c.message, c.reason) for c in forbidden] == [
        ("metadata.namespace", "Forbidden: not allowed on this type", "FieldValueForbidden")
    ]
    bad = v.validate_object_meta({"name": "a", "namespace": "my.ns"}, namespaced=True)
    assert [c.message for c in bad] == ['Invalid value: "my.ns": must not contain dots']


def test_object_meta_labels() -> None:
    meta = {"name": "a", "labels": {"ok": "fine", "bad key!": "v", "k": "-v-"}}
    causes = v.validate_object_meta(meta, False)
    assert [c.field for c in causes] == ["metadata.labels", "metadata.labels"]
    assert causes[0].message.startswith('Invalid value: "bad key!": name part must consist of')
    assert causes[1].message.startswith('Invalid value: "-v-": a valid label must be')


def test_object_meta_annotations() -> None:
    # Annotation keys are case-insensitive qualified names; values are free-form.
    meta = {"name": "a", "annotations": {"Example.COM/Thing": "any value at all ✓"}}
    assert v.validate_object_meta(meta, False) == []
    meta["annotations"]["bad/key/x"] = ""
    causes = v.validate_object_meta(meta, False)
    assert [c.field for c in causes] == ["metadata.annotations"]
    big = {"name": "a", "annotations": {"a": "x" * (256 * 1024)}}
    causes = v.validate_object_meta(big, False)
    assert [(c.field, c.message, c.reason) for c in causes] == [
        (
            "metadata.annotations",
            "Too long: may not be more than 262144 bytes",
            "FieldValueTooLong",
        )
    ]
    assert v.validate_object_meta({"name": "a", "annotations": {"a": "x" * 262143}}, False) == []


def test_object_meta_owner_references_and_finalizers() -> None:
    meta = {
        "name": "a",
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "1",
             "controller": True},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "s", "uid": "2",
             "controller": True},
            {"apiVersion": "", "kind": "", "name": "", "uid": ""},
        ],
        "finalizers": ["example.com/cleanup", "bad finalizer"],
        "generation": -1,
    }  # fmt: skip
    fields = [c.field for c in v.validate_object_meta(meta, False)]
    assert fields == [
        "metadata.generation",
        "metadata.ownerReferences.apiVersion",
        "metadata.ownerReferences.kind",
        "metadata.ownerReferences.name",
        "metadata.ownerReferences.uid",
        "metadata.ownerReferences",
        "metadata.finalizers",
    ]


def test_object_meta_ignores_wrong_types() -> None:
    # validate_object reports those; validate_object_meta must not crash on them.
    meta = {"name": 5, "namespace": ["x"], "labels": "a=b", "annotations": 3, "finalizers": {}}
    assert v.validate_object_meta(meta, True) == []


def test_meta_causes_render_in_invalid_error() -> None:
    from skiff.api.errors import invalid

    err = invalid("Deployment", "Bad_Name", "apps", v.validate_object_meta(
        {"name": "Bad_Name", "namespace": "default"}, True))  # fmt: skip
    assert err.message == (
        f'Deployment.apps "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        f"{SUBDOMAIN_MSG}"
    )


def test_inputs_are_not_mutated() -> None:
    dep = _deployment()
    before = copy.deepcopy(dep)
    v.validate_object(dep, DEPLOYMENT)
    v.required_causes(dep, DEPLOYMENT)
    v.validate_object_meta(dep["metadata"], True)
    assert dep == before
