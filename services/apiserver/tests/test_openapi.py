"""Tests for the /openapi/v3 documents."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from skiff.api.resources import REGISTRY, RESOURCES
from skiff.apiserver import openapi

GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


INDEX_PATHS = sorted(
    [_gv_path(g, v) for g, v in GROUP_VERSIONS]
    + ["api", "apis", "version"]
    + [f"apis/{g}" for g in {g for g, _ in GROUP_VERSIONS if g}]
)


def _doc(group: str, version: str) -> dict[str, Any]:
    body = openapi.document(group, version)
    assert body is not None
    return json.loads(body)


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for item in node:
            _walk(item, visit)


def test_index_lists_every_group_version() -> None:
    paths = openapi.index()["paths"]
    for group, version in GROUP_VERSIONS:
        key = _gv_path(group, version)
        assert key in paths
        url = paths[key]["serverRelativeURL"]
        assert url == f"/openapi/v3/{key}?hash={openapi.hash_of(group, version)}"
    assert sorted(paths) == INDEX_PATHS
    for key in paths:
        assert openapi.document_for_path(key) is not None


def test_hash_is_uppercase_sha512_of_the_document() -> None:
    body = openapi.document("apps", "v1")
    assert body is not None
    digest = openapi.hash_of("apps", "v1")
    assert digest == hashlib.sha512(body).hexdigest().upper()
    assert len(digest) == 128
    assert openapi.hash_of("apps", "v1") == digest


def test_unknown_group_version() -> None:
    assert openapi.document("apps", "v2") is None
    assert openapi.document("nope.example.com", "v1") is None
    assert openapi.document_for_path("apis/nope") is None
    assert openapi.hash_of("apps", "v2") == ""


def test_documents_are_cached() -> None:
    assert openapi.index() is openapi.index()
    for group, version in GROUP_VERSIONS:
        assert openapi.document(group, version) is openapi.document(group, version)


def test_document_header() -> None:
    doc = _doc("apps", "v1")
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"] == "Kubernetes"


def test_deployment_patch_declares_field_validation_and_gvk() -> None:
    doc = _doc("apps", "v1")
    path = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = path["patch"]
    assert patch["operationId"] == "patchAppsV1NamespacedDeployment"
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "apps",
        "kind": "Deployment",
        "version": "v1",
    }
    query = {p["name"] for p in patch["parameters"] if p["in"] == "query"}
    assert {"fieldValidation", "dryRun", "fieldManager", "force"} <= query
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert {"get", "put", "delete", "parameters"} <= set(path)
    path_params = {p["name"] for p in path["parameters"] if p["in"] == "path"}
    assert path_params == {"name", "namespace"}


def test_every_patch_has_field_validation() -> None:
    # kubectl's QueryParamVerifierV3 stops at the first PATCH it finds for a kind.
    for group, version in GROUP_VERSIONS:
        for path, item in _doc(group, version)["paths"].items():
            if "patch" in item:
                names = {p["name"] for p in item["patch"]["parameters"]}
                assert "fieldValidation" in names, path
                assert "x-kubernetes-group-version-kind" in item["patch"], path


def test_collection_and_subresource_paths() -> None:
    doc = _doc("apps", "v1")
    paths = doc["paths"]
    coll = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert coll["get"]["x-kubernetes-action"] == "list"
    assert coll["post"]["x-kubernetes-action"] == "post"
    assert coll["delete"]["x-kubernetes-action"] == "deletecollection"
    assert coll["post"]["requestBody"]["content"]["*/*"]["schema"] == {
        "$ref": "#/components/schemas/io.k8s.api.apps.v1.Deployment"
    }
    list_schema = coll["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert list_schema == {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentList"}
    all_ns = paths["/apis/apps/v1/deployments"]["get"]
    assert all_ns["operationId"] == "listAppsV1DeploymentForAllNamespaces"
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["operationId"] == "patchAppsV1NamespacedDeploymentStatus"
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling",
        "kind": "Scale",
        "version": "v1",
    }
    assert "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}/scale" not in paths
    assert "io.k8s.api.autoscaling.v1.Scale" in doc["components"]["schemas"]


def test_core_and_cluster_scoped_paths() -> None:
    paths = _doc("", "v1")["paths"]
    assert paths["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"] == (
        "listCoreV1NamespacedPod"
    )
    assert "/api/v1/pods" in paths
    assert paths["/api/v1/namespaces"]["post"]["operationId"] == "createCoreV1Namespace"
    node = paths["/api/v1/nodes/{name}"]
    assert node["patch"]["operationId"] == "patchCoreV1Node"
    assert {p["name"] for p in node["parameters"]} == {"name", "pretty"}
    assert "/api/v1/nodes/{name}/status" in paths
    assert "/api/v1/namespaces/{namespace}/replicationcontrollers/{name}/scale" in paths
    rbac = _doc("rbac.authorization.k8s.io", "v1")["paths"]
    assert rbac["/apis/rbac.authorization.k8s.io/v1/clusterroles/{name}"]["patch"][
        "operationId"
    ] == ("patchRbacAuthorizationV1ClusterRole")


def test_every_resource_has_its_operations() -> None:
    for r in RESOURCES:
        doc = _doc(r.group, r.version)
        gvk = {"group": r.group, "kind": r.kind, "version": r.version}
        actions = {
            op["x-kubernetes-action"]
            for item in doc["paths"].values()
            for method, op in item.items()
            if method != "parameters" and op.get("x-kubernetes-group-version-kind") == gvk
        }
        assert r.definition in doc["components"]["schemas"]
        if r.verbs == ("create",):  # reviews: answered, never stored
            assert actions == {"post"}
            continue
        if r.verbs == ("get", "list"):  # ComponentStatuses: probed, never stored
            assert actions == {"get", "list"}
            continue
        assert {"get", "list", "post", "put", "patch", "delete", "deletecollection"} <= actions
        assert f"{r.definition}List" in doc["components"]["schemas"]


@pytest.mark.parametrize("path", INDEX_PATHS)
def test_every_ref_resolves(path: str) -> None:
    body = openapi.document_for_path(path)
    assert body is not None
    doc = json.loads(body)
    schemas = doc["components"]["schemas"]
    missing: list[str] = []

    def visit(node: dict[str, Any]) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str):
            assert ref.startswith("#/components/schemas/"), ref
            if ref.removeprefix("#/components/schemas/") not in schemas:
                missing.append(ref)

    _walk(doc, visit)
    assert missing == []


def _subschemas(sch: dict[str, Any]) -> list[dict[str, Any]]:
    """``sch`` and every schema nested in it (not following ``$ref``)."""
    out = [sch]
    for sub in sch.get("properties", {}).values():
        out.extend(_subschemas(sub))
    for key in ("items", "additionalProperties"):
        if isinstance(sch.get(key), dict):
            out.extend(_subschemas(sch[key]))
    for key in ("oneOf", "anyOf", "allOf"):
        for sub in sch.get(key, ()):
            out.extend(_subschemas(sub))
    return out


@pytest.mark.parametrize("group_version", GROUP_VERSIONS)
def test_schemas_are_openapi_3_0(group_version: tuple[str, str]) -> None:
    problems: list[str] = []
    for name, top in _doc(*group_version)["components"]["schemas"].items():
        for sch in _subschemas(top):
            t = sch.get("type")
            if t is not None and (not isinstance(t, str) or t == "null"):
                problems.append(f"{name}: type {t!r}")
            if "$defs" in sch or str(sch.get("$ref", "")).startswith("#/$defs/"):
                problems.append(f"{name}: $defs")
            if "$ref" not in sch and "oneOf" not in sch and not t and sch is not top:
                problems.append(f"{name}: untyped {sorted(sch)}")
    assert problems == []


def test_schema_conversion_details() -> None:
    schemas = _doc("apps", "v1")["components"]["schemas"]
    ios = schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["format"] == "int-or-string"
    assert ios["x-kubernetes-int-or-string"] is True
    assert {s["type"] for s in ios["oneOf"]} == {"integer", "string"}
    quantity = schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"]
    assert {s["type"] for s in quantity["oneOf"]} == {"number", "string"}
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["type"] == "object"
    assert dep["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    assert dep["properties"]["apiVersion"] == {
        "description": dep["properties"]["apiVersion"]["description"],
        "type": "string",
    }
    containers = schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    labels = schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string"}


def test_components_only_hold_reachable_definitions() -> None:
    schemas = _doc("coordination.k8s.io", "v1")["components"]["schemas"]
    assert "io.k8s.api.coordination.v1.Lease" in schemas
    assert "io.k8s.api.core.v1.Pod" not in schemas
    assert "io.k8s.api.apps.v1.Deployment" not in schemas


def test_discovery_documents() -> None:
    for path, url in (("api", "/api/"), ("apis", "/apis/"), ("version", "/version/")):
        body = openapi.document_for_path(path)
        assert body is not None
        assert url in json.loads(body)["paths"]
    groups = [g for g in REGISTRY.groups() if g]
    for group in groups:
        body = openapi.document_for_path(f"apis/{group}")
        assert body is not None
        assert f"/apis/{group}/" in json.loads(body)["paths"]


def test_every_group_has_a_discovery_priority() -> None:
    from skiff.api.resources import AGGREGATOR_GROUP, API_PRIORITIES

    assert {g for g, _ in GROUP_VERSIONS} <= {*API_PRIORITIES, AGGREGATOR_GROUP}
