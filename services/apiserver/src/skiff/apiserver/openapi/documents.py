"""The ``/openapi/v3`` documents: one per group/version with the paths of its resources,
and the small ones for ``/api``, ``/apis``, ``/apis/<group>`` and ``/version``; each is
built on first use and kept as JSON, with its SHA-512 hash (kube-apiserver's ETag), and
the index lists them all with their hashes.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from skiff.api.resources import REGISTRY

from .paths import (
    group_word,
    operation,
    operation_tag,
    resource_paths,
    responses_for,
    url_prefix,
)
from .schemas import DELETE_OPTIONS, META, PATCH, SCALE, STATUS, closure, component


def _info() -> dict[str, str]:
    # kube-apiserver says "unversioned" here; the schemas are those of KUBERNETES_SCHEMA_VERSION.
    return {"title": "Kubernetes", "version": "unversioned"}


def _assemble(paths: dict[str, Any], roots: set[str]) -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {name: component(name) for name in closure(roots)}},
    }


def _build_group_version(group: str, version: str) -> dict[str, Any] | None:
    resources = REGISTRY.in_group_version(group, version)
    if not resources:
        return None
    prefix = url_prefix(group, version)
    gv = f"{group_word(group)}{version[:1].upper()}{version[1:]}"
    resource_list = f"{META}.APIResourceList"
    paths: dict[str, Any] = {
        f"{prefix}/": {
            "get": operation(
                f"get{gv}APIResources",
                "get available resources",
                "",
                None,
                operation_tag(group, version),
                responses_for(resource_list, "200"),
            )
        }
    }
    roots = {resource_list, STATUS, DELETE_OPTIONS, PATCH}
    for r in resources:
        resource_paths(r, paths)
        roots.update((r.definition, f"{r.definition}List"))
        if "scale" in r.subresources:
            roots.add(SCALE)
    return _assemble(paths, roots)


def _build_discovery(path: str) -> dict[str, Any] | None:
    """The small documents for ``/api/``, ``/apis/``, ``/apis/<group>/`` and ``/version/``."""
    if path == "api":
        op = operation(
            "getCoreAPIVersions",
            "get available API versions",
            "",
            None,
            "core",
            responses_for(f"{META}.APIVersions", "200"),
        )
        return _assemble({"/api/": {"get": op}}, {f"{META}.APIVersions"})
    if path == "apis":
        op = operation(
            "getAPIVersions",
            "get available API versions",
            "",
            None,
            "apis",
            responses_for(f"{META}.APIGroupList", "200"),
        )
        return _assemble({"/apis/": {"get": op}}, {f"{META}.APIGroupList"})
    if path == "version":
        op = operation(
            "getCodeVersion",
            "get the version information for this server",
            "",
            None,
            "version",
            responses_for("io.k8s.apimachinery.pkg.version.Info", "200"),
        )
        return _assemble({"/version/": {"get": op}}, {"io.k8s.apimachinery.pkg.version.Info"})
    group = path.removeprefix("apis/")
    if path.startswith("apis/") and "/" not in group and group in _api_groups():
        word = group_word(group)
        op = operation(
            f"get{word}APIGroup",
            "get information of a group",
            "",
            None,
            word[:1].lower() + word[1:],
            responses_for(f"{META}.APIGroup", "200"),
        )
        return _assemble({f"/apis/{group}/": {"get": op}}, {f"{META}.APIGroup"})
    return None


def _api_groups() -> list[str]:
    return [g for g, versions in REGISTRY.groups().items() if g and versions]


def _gv_path(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _all_paths() -> list[str]:
    out = ["api", "apis", "version"]
    for group, versions in REGISTRY.groups().items():
        if group and versions:
            out.append(f"apis/{group}")
        out.extend(_gv_path(group, v) for v in versions)
    return sorted(out)


def _split_gv_path(path: str) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


@functools.cache
def document_for_path(path: str) -> bytes | None:
    """The JSON document the index lists under ``path`` (``"apis/apps/v1"``, ``"api"``...).

    ``None`` when there is no such document. Serve it as ``application/json`` at
    ``/openapi/v3/<path>``.
    """
    path = path.strip("/")
    gv = _split_gv_path(path)
    doc = _build_group_version(*gv) if gv else _build_discovery(path)
    return None if doc is None else orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def document(group: str, version: str) -> bytes | None:
    """The OpenAPI 3.0 document of one group/version (``""`` is the core group), as JSON."""
    return document_for_path(_gv_path(group, version))


@functools.cache
def hash_for_path(path: str) -> str | None:
    """Uppercase hex SHA-512 of :func:`document_for_path`, as kube-apiserver's ETag/hash."""
    body = document_for_path(path)
    return None if body is None else hashlib.sha512(body).hexdigest().upper()


def hash_of(group: str, version: str) -> str:
    """The hash of :func:`document` for ``group``/``version`` ("" if there is none)."""
    return hash_for_path(_gv_path(group, version)) or ""


def forget() -> None:
    """Build the documents again when next asked (the custom resources served changed)."""
    document_for_path.cache_clear()
    hash_for_path.cache_clear()
    _index.cache_clear()


@functools.cache
def _index() -> dict[str, Any]:
    paths = {}
    for path in _all_paths():
        digest = hash_for_path(path)
        if digest is not None:
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def index() -> dict[str, Any]:
    """The ``/openapi/v3`` discovery document: path → ``{"serverRelativeURL": ...}``.

    Lists every served group/version (``api/v1``, ``apis/apps/v1``...) plus
    ``api``, ``apis``, ``apis/<group>`` and ``version``. Building it builds (and
    caches) every document, so the first call takes a moment. Do not mutate the result.
    """
    return _index()
