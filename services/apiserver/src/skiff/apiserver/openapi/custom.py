"""The ``/openapi/v3`` schemas of custom resources (kube's apiextensions OpenAPI builder):
each served version's ``openAPIV3Schema`` published under the kind's definition name
(``com.example.stable.v1.CronTab``) with the standard ``apiVersion``, ``kind`` and
``metadata`` (a reference to ObjectMeta) and its ``x-kubernetes-group-version-kind``, and
the list kind beside it. What apiextensions serves is published here as it changes; the
built documents are then built again (:func:`skiff.apiserver.openapi.documents.forget`).
"""

from __future__ import annotations

import copy
from typing import Any

from skiff.api.resources import ResourceInfo

Obj = dict[str, Any]

_REF = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{_META}.ObjectMeta"
LIST_META = f"{_META}.ListMeta"
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
_API_VERSION = (
    "APIVersion defines the versioned schema of this representation of an object. Servers "
    "should convert recognized schemas to the latest internal value, and may reject "
    f"unrecognized values. More info: {_CONVENTIONS}#resources"
)
_KIND = (
    "Kind is a string value representing the REST resource this object represents. Servers "
    "may infer this from the endpoint the client submits requests to. Cannot be updated. In "
    f"CamelCase. More info: {_CONVENTIONS}#types-kinds"
)
_METADATA = f"Standard object's metadata. More info: {_CONVENTIONS}#metadata"
_LIST_METADATA = f"Standard list metadata. More info: {_CONVENTIONS}#types-kinds"

SCHEMAS: dict[str, tuple[Obj, frozenset[str]]] = {}
"""Definition name → (its OpenAPI schema, the definitions it refers to), for the custom
resource versions served now."""


def _object(info: ResourceInfo, raw: Obj | None) -> Obj:
    out = copy.deepcopy(raw) if raw else {"type": "object"}
    if not raw:
        out["x-kubernetes-preserve-unknown-fields"] = True
    props = out.setdefault("properties", {})
    props["apiVersion"] = {"description": _API_VERSION, "type": "string"}
    props["kind"] = {"description": _KIND, "type": "string"}
    props["metadata"] = {"allOf": [{"$ref": _REF + OBJECT_META}], "description": _METADATA}
    out["type"] = "object"
    out["x-kubernetes-group-version-kind"] = [_gvk(info)]
    return out


def _list(info: ResourceInfo) -> Obj:
    return {
        "description": f"{info.kind}List is a list of {info.kind}",
        "properties": {
            "apiVersion": {"description": _API_VERSION, "type": "string"},
            "items": {
                "description": f"List of {info.plural}. More info: {_CONVENTIONS}",
                "items": {"$ref": _REF + info.definition},
                "type": "array",
            },
            "kind": {"description": _KIND, "type": "string"},
            "metadata": {"allOf": [{"$ref": _REF + LIST_META}], "description": _LIST_METADATA},
        },
        "required": ["items"],
        "type": "object",
        "x-kubernetes-group-version-kind": [{**_gvk(info), "kind": info.list_kind}],
    }


def _gvk(info: ResourceInfo) -> dict[str, str]:
    return {"group": info.group, "kind": info.kind, "version": info.version}


def publish(info: ResourceInfo, raw: Obj | None) -> None:
    """Publish one served version of a custom resource (``raw``: its openAPIV3Schema)."""
    SCHEMAS[info.definition] = (_object(info, raw), frozenset({OBJECT_META}))
    SCHEMAS[f"{info.definition}List"] = (_list(info), frozenset({LIST_META, info.definition}))


def withdraw(info: ResourceInfo) -> None:
    """Stop publishing a version that is no longer served."""
    SCHEMAS.pop(info.definition, None)
    SCHEMAS.pop(f"{info.definition}List", None)
