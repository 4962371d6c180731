"""The ``paths`` of a group/version's ``/openapi/v3`` document: for each resource, its
collection, its objects, their status and scale subresources and the all-namespaces list,
with kube-apiserver's operation ids, tags, ``x-kubernetes-action`` and
``x-kubernetes-group-version-kind`` (kubectl looks for the PATCH operation's), request
bodies (every patch type) and responses.
"""

from __future__ import annotations

from typing import Any

from skiff.api.resources import ResourceInfo

from .parameters import (
    DELETE_PARAMS,
    DRY_RUN,
    FIELD_MANAGER,
    FIELD_VALIDATION,
    FORCE,
    LIST_PARAMS,
    NAMESPACE,
    PATCH_FIELD_MANAGER,
    PRETTY,
    param,
)
from .schemas import DELETE_OPTIONS, PATCH, SCALE, STATUS, schema_ref

_SCALE_GVK = {"group": "autoscaling", "kind": "Scale", "version": "v1"}

_RESPONSE_TYPES = ("application/json", "application/yaml")
_LIST_RESPONSE_TYPES = (*_RESPONSE_TYPES, "application/json;stream=watch")
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_UNAUTHORIZED = {"description": "Unauthorized"}


def _content(name: str, types: tuple[str, ...] = _RESPONSE_TYPES) -> dict[str, Any]:
    return {t: {"schema": schema_ref(name)} for t in types}


def responses_for(name: str, *codes: str, types: tuple[str, ...] = _RESPONSE_TYPES) -> dict:
    words = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {
        c: {"content": _content(name, types), "description": words[c]} for c in codes
    }
    out["401"] = _UNAUTHORIZED
    return out


def operation(
    op_id: str,
    description: str,
    action: str,
    gvk: dict[str, str] | None,
    tag: str,
    responses: dict[str, Any],
    parameters: tuple[dict[str, Any], ...] = (),
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "operationId": op_id}
    if parameters:
        out["parameters"] = list(parameters)
    if body is not None:
        out["requestBody"] = body
    out["responses"] = responses
    out["tags"] = [tag]
    if action:
        out["x-kubernetes-action"] = action
    if gvk is not None:
        out["x-kubernetes-group-version-kind"] = gvk
    return out


def group_word(group: str) -> str:
    """``rbac.authorization.k8s.io`` → ``RbacAuthorization``, as in operation ids."""
    if not group:
        return "Core"
    base = group.removesuffix(".k8s.io")
    return "".join(part[:1].upper() + part[1:] for part in base.replace("-", ".").split("."))


def operation_tag(group: str, version: str) -> str:
    word = group_word(group)
    return f"{word[:1].lower()}{word[1:]}_{version}"


def url_prefix(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def resource_paths(r: ResourceInfo, paths: dict[str, Any]) -> None:
    gv = f"{group_word(r.group)}{r.version[:1].upper()}{r.version[1:]}"
    tag = operation_tag(r.group, r.version)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    ns = "Namespaced" if r.namespaced else ""
    list_def = f"{r.definition}List"
    verbs = set(r.verbs)
    prefix = url_prefix(r.group, r.version)
    base = (
        f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
    )
    name_param = param("name", "string", f"name of the {r.kind}", "path")
    scope = (NAMESPACE, PRETTY) if r.namespaced else (PRETTY,)
    write = (DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION)
    patch_params = (DRY_RUN, PATCH_FIELD_MANAGER, FIELD_VALIDATION, FORCE)
    obj_body = {"content": {"*/*": {"schema": schema_ref(r.definition)}}, "required": True}
    # Custom resources take no strategic merge patch (kube's CRD builder lists three).
    patch_types = _PATCH_TYPES[:3] if r.custom else _PATCH_TYPES
    patch_body = {
        "content": {t: {"schema": schema_ref(PATCH)} for t in patch_types},
        "required": True,
    }
    delete_body = {"content": {"*/*": {"schema": schema_ref(DELETE_OPTIONS)}}}

    collection: dict[str, Any] = {}
    if "deletecollection" in verbs:
        collection["delete"] = operation(
            f"delete{gv}Collection{ns}{r.kind}",
            f"delete collection of {r.kind}",
            "deletecollection",
            gvk,
            tag,
            responses_for(STATUS, "200"),
            (*DELETE_PARAMS, *LIST_PARAMS),
            delete_body,
        )
    if "list" in verbs:
        collection["get"] = operation(
            f"list{gv}{ns}{r.kind}",
            f"list or watch objects of kind {r.kind}",
            "list",
            gvk,
            tag,
            responses_for(list_def, "200", types=_LIST_RESPONSE_TYPES),
            LIST_PARAMS,
        )
    collection["parameters"] = list(scope)
    if "create" in verbs:
        collection["post"] = operation(
            f"create{gv}{ns}{r.kind}",
            f"create a {r.kind}",
            "post",
            gvk,
            tag,
            responses_for(r.definition, "200", "201", "202"),
            write,
            obj_body,
        )
    paths[base] = collection

    item: dict[str, Any] = {}
    if "delete" in verbs:
        item["delete"] = operation(
            f"delete{gv}{ns}{r.kind}",
            f"delete a {r.kind}",
            "delete",
            gvk,
            tag,
            responses_for(STATUS, "200", "202"),
            DELETE_PARAMS,
            delete_body,
        )
    if "get" in verbs:
        item["get"] = operation(
            f"read{gv}{ns}{r.kind}",
            f"read the specified {r.kind}",
            "get",
            gvk,
            tag,
            responses_for(r.definition, "200"),
        )
    item["parameters"] = [name_param, *scope]
    if "patch" in verbs:
        item["patch"] = operation(
            f"patch{gv}{ns}{r.kind}",
            f"partially update the specified {r.kind}",
            "patch",
            gvk,
            tag,
            responses_for(r.definition, "200", "201"),
            patch_params,
            patch_body,
        )
    if "update" in verbs:
        item["put"] = operation(
            f"replace{gv}{ns}{r.kind}",
            f"replace the specified {r.kind}",
            "put",
            gvk,
            tag,
            responses_for(r.definition, "200", "201"),
            write,
            obj_body,
        )
    paths[f"{base}/{{name}}"] = item

    for sub in ("scale", "status"):
        if sub not in r.subresources:
            continue
        word = sub.capitalize()
        sub_def, sub_gvk = (SCALE, _SCALE_GVK) if sub == "scale" else (r.definition, gvk)
        sub_body = {"content": {"*/*": {"schema": schema_ref(sub_def)}}, "required": True}
        paths[f"{base}/{{name}}/{sub}"] = {
            "get": operation(
                f"read{gv}{ns}{r.kind}{word}",
                f"read {sub} of the specified {r.kind}",
                "get",
                sub_gvk,
                tag,
                responses_for(sub_def, "200"),
            ),
            "parameters": [param("name", "string", f"name of the {word}", "path"), *scope],
            "patch": operation(
                f"patch{gv}{ns}{r.kind}{word}",
                f"partially update {sub} of the specified {r.kind}",
                "patch",
                sub_gvk,
                tag,
                responses_for(sub_def, "200", "201"),
                patch_params,
                patch_body,
            ),
            "put": operation(
                f"replace{gv}{ns}{r.kind}{word}",
                f"replace {sub} of the specified {r.kind}",
                "put",
                sub_gvk,
                tag,
                responses_for(sub_def, "200", "201"),
                write,
                sub_body,
            ),
        }

    if r.namespaced and "list" in verbs:
        paths[f"{prefix}/{r.plural}"] = {
            "get": operation(
                f"list{gv}{r.kind}ForAllNamespaces",
                f"list or watch objects of kind {r.kind}",
                "list",
                gvk,
                tag,
                responses_for(list_def, "200", types=_LIST_RESPONSE_TYPES),
            ),
            "parameters": [*LIST_PARAMS, PRETTY],
        }
