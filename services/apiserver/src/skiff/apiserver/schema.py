"""Kubernetes OpenAPI schemas, as shipped by the ``kubernetes-validate`` package.

The definitions keep the extensions the server relies on
(``x-kubernetes-patch-merge-key``, ``x-kubernetes-list-map-keys``,
``x-kubernetes-group-version-kind``...), so nothing here is modelled by hand.
"""

from __future__ import annotations

import functools
import json
from importlib import resources as _pkg_resources
from typing import Any

KUBERNETES_SCHEMA_VERSION = "v1.32.0"
REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All schema definitions by name (``io.k8s.api.core.v1.Pod`` → schema)."""
    root = _pkg_resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = root / f"{KUBERNETES_SCHEMA_VERSION}-local" / "_definitions.json"
    with path.open("rb") as fh:
        return json.load(fh)["$defs"]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` (possibly several) to the schema it names."""
    while "$ref" in schema:
        schema = definitions()[schema["$ref"][len(REF_PREFIX) :]]
    return schema


def ref_name(schema: dict[str, Any]) -> str | None:
    """The definition name a schema refers to, or ``None`` for inline schemas."""
    ref = schema.get("$ref")
    return ref[len(REF_PREFIX) :] if ref else None
