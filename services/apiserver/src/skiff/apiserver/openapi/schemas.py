"""The ``components.schemas`` of the ``/openapi/v3`` documents: Kubernetes' definitions
converted from the JSON-Schema (2020) form shipped by ``kubernetes-validate`` to OpenAPI
3.0 (IntOrString and Quantity as kube-apiserver publishes them), references to them, the
names of the definitions every document refers to, and the closure of the definitions a
document's paths reach.
"""

from __future__ import annotations

import functools
from typing import Any

from skiff.apiserver import schema

from . import custom

_COMPONENT_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1"
STATUS = f"{META}.Status"
DELETE_OPTIONS = f"{META}.DeleteOptions"
PATCH = f"{META}.Patch"
SCALE = "io.k8s.api.autoscaling.v1.Scale"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _convert(node: Any, prop: str | None = None) -> Any:
    if isinstance(node, list):
        return [_convert(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = _COMPONENT_PREFIX + value[len(schema.REF_PREFIX) :]
        elif key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if types:
                out[key] = types[0] if len(types) == 1 else types
        elif key == "enum" and prop in ("apiVersion", "kind"):
            # kubernetes-validate pins apiVersion/kind; Kubernetes' documents do not.
            continue
        elif key == "properties":
            out[key] = {name: _convert(sub, name) for name, sub in value.items()}
        elif key in ("description", "x-kubernetes-group-version-kind", "enum", "required"):
            out[key] = value
        else:
            out[key] = _convert(value)
    return out


def component(name: str) -> dict[str, Any]:
    """One definition in OpenAPI 3.0 form (a custom resource's as published)."""
    published = custom.SCHEMAS.get(name)
    return published[0] if published is not None else _builtin(name)


@functools.cache
def _builtin(name: str) -> dict[str, Any]:
    if name == _INT_OR_STRING:
        # As kube-apiserver publishes it, plus the CRD-style marker.
        return {
            "description": (
                "IntOrString is a type that can hold an int32 or a string.  When used in JSON "
                "or YAML marshalling and unmarshalling, it produces or consumes the inner type."
                "  This allows you to have, for example, a JSON field that can accept a name "
                "or number."
            ),
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
        }
    if name == _QUANTITY:
        return {
            "description": (
                "Quantity is a fixed-point representation of a number. It provides convenient "
                "marshaling/unmarshaling in JSON and YAML, in addition to String() and "
                "AsInt64() accessors."
            ),
            "oneOf": [{"type": "string"}, {"type": "number"}],
        }
    return _convert(schema.definitions()[name])


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(ref[len(schema.REF_PREFIX) :])
        for key, value in node.items():
            if key not in ("description", "x-kubernetes-group-version-kind", "enum"):
                _refs(value, found)
    elif isinstance(node, list):
        for item in node:
            _refs(item, found)


@functools.cache
def _direct_refs(name: str) -> frozenset[str]:
    found: set[str] = set()
    _refs(schema.definitions()[name], found)
    return frozenset(found)


def closure(roots: set[str]) -> list[str]:
    """The definitions ``roots`` reach (those not known left out)."""
    seen: set[str] = set()
    todo = [r for r in roots if r in schema.definitions() or r in custom.SCHEMAS]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        published = custom.SCHEMAS.get(name)
        todo.extend((published[1] if published is not None else _direct_refs(name)) - seen)
    return sorted(seen)


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": _COMPONENT_PREFIX + name}
