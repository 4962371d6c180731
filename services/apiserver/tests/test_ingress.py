"""Ingress and IngressClass validation, printers and protobuf bodies, with Kubernetes'
messages and field paths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.resources import REGISTRY
from skiff.apiserver.printers import table_for
from skiff.apiserver.registry import strategy_for

INGRESSES = REGISTRY.by_path("networking.k8s.io", "v1", "ingresses")
CLASSES = REGISTRY.by_path("networking.k8s.io", "v1", "ingressclasses")
assert INGRESSES is not None and CLASSES is not None
BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def ingress_causes(spec: dict[str, Any], **meta: Any) -> list[tuple[str, str]]:
    obj = {"metadata": {"name": "i", "namespace": "ns", **meta}, "spec": spec}
    return [(c.field, c.message) for c in strategy_for(INGRESSES).validate(obj)]


def rule(path: str = "/", path_type: str | None = "Prefix", **backend: Any) -> dict[str, Any]:
    p: dict[str, Any] = {"path": path, "backend": backend or BACKEND}
    if path_type is not None:
        p["pathType"] = path_type
    return {"host": "example.com", "http": {"paths": [p]}}


def test_a_valid_ingress_passes() -> None:
    spec = {"ingressClassName": "nginx", "rules": [rule(), {"host": "*.example.com", "http": {
        "paths": [{"path": "/x", "pathType": "Exact", "backend": {"service": {
            "name": "api", "port": {"name": "http"}}}}]}}],
        "tls": [{"hosts": ["*.example.com"], "secretName": "cert"}]}  # fmt: skip
    assert ingress_causes(spec) == []
    assert ingress_causes({"defaultBackend": BACKEND}) == []


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, ("spec", "either `defaultBackend` or `rules` must be specified")),
        ({"rules": [{**rule(), "host": "10.0.0.1"}]},
         ("spec.rules[0].host", '"10.0.0.1": must be a DNS name, not an IP address')),
        ({"rules": [{**rule(), "host": "Bad_Host"}]},
         ("spec.rules[0].host", "a lowercase RFC 1123 subdomain must consist of")),
        ({"rules": [rule(path_type=None)]},
         ("spec.rules[0].http.paths[0].pathType", "Required value: pathType must be specified")),
        ({"rules": [rule(path_type="Regex")]},
         ("spec.rules[0].http.paths[0].pathType",
          'Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", '
          '"Prefix"')),
        ({"rules": [rule(path="api")]},
         ("spec.rules[0].http.paths[0].path", 'Invalid value: "api": must be an absolute path')),
        ({"rules": [rule(path="/a//b")]},
         ("spec.rules[0].http.paths[0].path", "must not contain '//'")),
        ({"rules": [rule(service={"name": "web", "port": {}})]},
         ("spec.rules[0].http.paths[0].backend.service.port",
          "Required value: port name or number is required")),
        ({"rules": [rule(service={"name": "web", "port": {"name": "h", "number": 80}})]},
         ("spec.rules[0].http.paths[0].backend.service.port",
          "cannot set both port name & port number")),
        ({"defaultBackend": {**BACKEND, "resource": {"kind": "Bucket", "name": "b"}}},
         ("spec.defaultBackend", "cannot set both resource and service backends")),
        ({"defaultBackend": {"service": {"name": "web", "port": {"number": 70000}}}},
         ("spec.defaultBackend.service.port.number",
          "Invalid value: 70000: must be between 1 and 65535, inclusive")),
        ({"defaultBackend": {"resource": {"name": "b"}}},
         ("spec.defaultBackend.resource.kind", "Required value")),
        ({"defaultBackend": BACKEND, "tls": [{"secretName": "Bad"}]},
         ("spec.tls[0].secretName", 'Invalid value: "Bad"')),
    ],
)  # fmt: skip
def test_bad_ingresses_get_kubernetes_messages(spec: dict[str, Any], want: tuple[str, str]) -> None:
    found = ingress_causes(spec)
    assert any(f == want[0] and want[1] in m for f, m in found), found


def test_the_class_annotation_and_field_conflict_on_create() -> None:
    found = ingress_causes(
        {"defaultBackend": BACKEND, "ingressClassName": "a"},
        annotations={"kubernetes.io/ingress.class": "b"},
    )
    message = 'Invalid value: "b": can not be set when the class field is also set'
    assert found == [("annotations.kubernetes.io/ingress.class", message)]


def class_causes(spec: dict[str, Any], old: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    obj = {"metadata": {"name": "c"}, "spec": spec}
    strategy = strategy_for(CLASSES)
    found = strategy.validate_update(obj, {"metadata": {"name": "c"}, "spec": old}) if old else (
        strategy.validate(obj))  # fmt: skip
    return [(c.field, c.message) for c in found]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ({}, ("spec.controller", "Required value")),
        ({"controller": "nginx"},
         ("spec.controller", 'must be a domain-prefixed path (such as "acme.io/foo")')),
        ({"controller": "k8s.io/ingress-nginx", "parameters": {"kind": "P", "name": "p",
                                                               "scope": "Namespace"}},
         ("spec.parameters.namespace", "Required value: `parameters.scope` is set to 'Namespace'")),
        ({"controller": "k8s.io/ingress-nginx", "parameters": {"kind": "P", "name": "p",
                                                               "scope": "Cluster",
                                                               "namespace": "x"}},
         ("spec.parameters.namespace", "Forbidden: `parameters.scope` is set to 'Cluster'")),
    ],
)  # fmt: skip
def test_bad_ingress_classes(spec: dict[str, Any], want: tuple[str, str]) -> None:
    found = class_causes(spec)
    assert any(f == want[0] and want[1] in m for f, m in found), found


def test_the_controller_is_immutable() -> None:
    found = class_causes({"controller": "b.io/x"}, old={"controller": "a.io/x"})
    assert found == [("spec.controller", 'Invalid value: "b.io/x": field is immutable')]


def test_printers() -> None:
    now = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
    created = "2026-01-01T00:00:00Z"
    ing = {"metadata": {"name": "web", "creationTimestamp": created},
           "spec": {"rules": [{"host": f"h{i}.io"} for i in range(5)], "tls": [{}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.168.10.20"},
                                                   {"hostname": "lb.example.com"}]}}}  # fmt: skip
    [row] = table_for(INGRESSES, [ing], now=now)["rows"]
    assert row["cells"] == ["web", "<none>", "h0.io,h1.io,h2.io + 2 more...",
                            "192.168.10.20...", "80, 443", "10m"]  # fmt: skip
    bare = {"metadata": {"name": "b", "creationTimestamp": created},
            "spec": {"ingressClassName": "nginx", "rules": [{}]}}  # fmt: skip
    assert table_for(INGRESSES, [bare], now=now)["rows"][0]["cells"][1:5] == [
        "nginx", "*", "", "80"]  # fmt: skip
    params = {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "p"}
    cls = {"metadata": {"name": "nginx", "creationTimestamp": created},
           "spec": {"controller": "k8s.io/ingress-nginx", "parameters": params}}  # fmt: skip
    table = table_for(CLASSES, [cls], now=now)
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Controller", "Parameters", "Age"]  # fmt: skip
    assert table["rows"][0]["cells"] == [
        "nginx", "k8s.io/ingress-nginx", "IngressParameters.k8s.example.com/p", "10m"]  # fmt: skip
