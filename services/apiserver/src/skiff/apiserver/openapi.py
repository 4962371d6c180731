"""The ``/openapi/v3`` documents, built from the served resources and their schemas.

Laid out like kube-apiserver's own (``api/openapi-spec/v3`` in kubernetes/kubernetes):
one OpenAPI 3.0 document per group/version with the REST paths of its resources,
and ``components.schemas`` holding every definition those paths reach, converted
from the JSON-Schema form shipped by ``kubernetes-validate``.

kubectl needs two things from it: the PATCH operation of each kind must carry
``x-kubernetes-group-version-kind`` and declare the ``fieldValidation`` query
parameter (otherwise ``kubectl apply`` falls back to client-side validation), and
it must accept ``application/strategic-merge-patch+json`` so client-side apply
can build strategic merge patches from the schemas' patch extensions.

Documents are built on first use and cached; the index carries each document's
hash so clients can cache them forever.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any

import orjson

from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver import schema

__all__ = ["document", "document_for_path", "hash_for_path", "hash_of", "index"]

_COMPONENT_PREFIX = "#/components/schemas/"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_STATUS = f"{_META}.Status"
_DELETE_OPTIONS = f"{_META}.DeleteOptions"
_PATCH = f"{_META}.Patch"
_SCALE = "io.k8s.api.autoscaling.v1.Scale"
_SCALE_GVK = {"group": "autoscaling", "kind": "Scale", "version": "v1"}
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

_RESPONSE_TYPES = ("application/json", "application/yaml")
_LIST_RESPONSE_TYPES = (*_RESPONSE_TYPES, "application/json;stream=watch")
_PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)

# --- schema conversion (JSON Schema 2020 in kubernetes-validate → OpenAPI 3.0) ---


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


@functools.cache
def _component(name: str) -> dict[str, Any]:
    """One definition in OpenAPI 3.0 form."""
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


def _closure(roots: set[str]) -> list[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in schema.definitions()]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_direct_refs(name) - seen)
    return sorted(seen)


# --- paths ---


def _param(name: str, kind: str, description: str, where: str = "query") -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "in": where,
        "name": name,
        "schema": {"type": kind, "uniqueItems": True},
    }
    if where == "path":
        out["required"] = True
    return out


_PRETTY = _param(
    "pretty",
    "string",
    "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent "
    "indicates a browser or command-line HTTP tool (curl and wget).",
)
_NAMESPACE = _param(
    "namespace", "string", "object name and auth scope, such as for teams and projects", "path"
)
_DRY_RUN = _param(
    "dryRun",
    "string",
    "When present, indicates that modifications should not be persisted. An invalid or "
    "unrecognized dryRun directive will result in an error response and no further processing "
    "of the request. Valid values are: - All: all dry run stages will be processed",
)
_FIELD_MANAGER = _param(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. "
    "The value must be less than or 128 characters long, and only contain printable "
    "characters, as defined by https://golang.org/pkg/unicode/#IsPrint.",
)
_PATCH_FIELD_MANAGER = _param(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes. "
    "The value must be less than or 128 characters long, and only contain printable "
    "characters, as defined by https://golang.org/pkg/unicode/#IsPrint. This field is required "
    "for apply requests (application/apply-patch) but optional for non-apply patch types "
    "(JsonPatch, MergePatch, StrategicMergePatch).",
)
_FIELD_VALIDATION = _param(
    "fieldValidation",
    "string",
    "fieldValidation instructs the server on how to handle objects in the request "
    "(POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This "
    "will ignore any unknown fields that are silently dropped from the object, and will ignore "
    "all but the last duplicate field that the decoder encounters. This is the default behavior "
    "prior to v1.23. - Warn: This will send a warning via the standard warning response header "
    "for each unknown field that is dropped from the object, and for each duplicate field that "
    "is encountered. The request will still succeed if there are no other errors, and will "
    "only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: "
    "This will fail the request with a BadRequest error if any unknown fields would be dropped "
    "from the object, or if any duplicate fields are present. The error returned from the "
    "server will contain all unknown and duplicate fields encountered.",
)
_FORCE = _param(
    "force",
    "boolean",
    'Force is going to "force" Apply requests. It means user will re-acquire conflicting '
    "fields owned by other people. Force flag must be unset for non-apply patch requests.",
)
_LIST_PARAMS = (
    _param(
        "allowWatchBookmarks",
        "boolean",
        'allowWatchBookmarks requests watch events with type "BOOKMARK". Servers that do not '
        "implement bookmarks may ignore this flag and bookmarks are sent at the server's "
        "discretion. Clients should not assume bookmarks are returned at any specific interval, "
        "nor may they assume the server will send any BOOKMARK event during a session. If this "
        "is not a watch, this field is ignored.",
    ),
    _param(
        "continue",
        "string",
        "The continue option should be set when retrieving more results from the server. "
        "Since this value is server defined, clients may only use the continue value from a "
        "previous query result with identical query parameters (except for the value of "
        "continue) and the server may reject a continue value it does not recognize.",
    ),
    _param(
        "fieldSelector",
        "string",
        "A selector to restrict the list of returned objects by their fields. Defaults to "
        "everything.",
    ),
    _param(
        "labelSelector",
        "string",
        "A selector to restrict the list of returned objects by their labels. Defaults to "
        "everything.",
    ),
    _param(
        "limit",
        "integer",
        "limit is a maximum number of responses to return for a list call. If more items "
        "exist, the server will set the `continue` field on the list metadata to a value that "
        "can be used with the same initial query to retrieve the next set of results.",
    ),
    _param(
        "resourceVersion",
        "string",
        "resourceVersion sets a constraint on what resource versions a request may be served "
        "from. See https://kubernetes.io/docs/reference/using-api/api-concepts/"
        "#resource-versions for details.\n\nDefaults to unset",
    ),
    _param(
        "resourceVersionMatch",
        "string",
        "resourceVersionMatch determines how resourceVersion is applied to list calls. It is "
        "highly recommended that resourceVersionMatch be set for list calls where "
        "resourceVersion is set See https://kubernetes.io/docs/reference/using-api/"
        "api-concepts/#resource-versions for details.\n\nDefaults to unset",
    ),
    _param(
        "sendInitialEvents",
        "boolean",
        "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the "
        "watch stream will begin with synthetic events to produce the current state of objects "
        "in the collection.",
    ),
    _param(
        "timeoutSeconds",
        "integer",
        "Timeout for the list/watch call. This limits the duration of the call, regardless of "
        "any activity or inactivity.",
    ),
    _param(
        "watch",
        "boolean",
        "Watch for changes to the described resources and return them as a stream of add, "
        "update, and remove notifications. Specify resourceVersion.",
    ),
)
_DELETE_PARAMS = (
    _DRY_RUN,
    _param(
        "gracePeriodSeconds",
        "integer",
        "The duration in seconds before the object should be deleted. Value must be "
        "non-negative integer. The value zero indicates delete immediately. If this value is "
        "nil, the default grace period for the specified type will be used. Defaults to a per "
        "object value if not specified. zero means delete immediately.",
    ),
    _param(
        "orphanDependents",
        "boolean",
        "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. "
        'Should the dependent objects be orphaned. If true/false, the "orphan" finalizer will '
        "be added to/removed from the object's finalizers list. Either this field or "
        "PropagationPolicy may be set, but not both.",
    ),
    _param(
        "propagationPolicy",
        "string",
        "Whether and how garbage collection will be performed. Either this field or "
        "OrphanDependents may be set, but not both. The default policy is decided by the "
        "existing finalizer set in the metadata.finalizers and the resource-specific default "
        "policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow "
        "the garbage collector to delete the dependents in the background; 'Foreground' - a "
        "cascading policy that deletes all dependents in the foreground.",
    ),
)
_UNAUTHORIZED = {"description": "Unauthorized"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _COMPONENT_PREFIX + name}


def _content(name: str, types: tuple[str, ...] = _RESPONSE_TYPES) -> dict[str, Any]:
    return {t: {"schema": _ref(name)} for t in types}


def _responses(name: str, *codes: str, types: tuple[str, ...] = _RESPONSE_TYPES) -> dict:
    words = {"200": "OK", "201": "Created", "202": "Accepted"}
    out: dict[str, Any] = {
        c: {"content": _content(name, types), "description": words[c]} for c in codes
    }
    out["401"] = _UNAUTHORIZED
    return out


def _op(
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


def _group_word(group: str) -> str:
    """``rbac.authorization.k8s.io`` → ``RbacAuthorization``, as in operation ids."""
    if not group:
        return "Core"
    base = group.removesuffix(".k8s.io")
    return "".join(part[:1].upper() + part[1:] for part in base.replace("-", ".").split("."))


def _tag(group: str, version: str) -> str:
    word = _group_word(group)
    return f"{word[:1].lower()}{word[1:]}_{version}"


def _prefix(group: str, version: str) -> str:
    return f"/api/{version}" if not group else f"/apis/{group}/{version}"


def _resource_paths(r: ResourceInfo, paths: dict[str, Any]) -> None:
    gv = f"{_group_word(r.group)}{r.version[:1].upper()}{r.version[1:]}"
    tag = _tag(r.group, r.version)
    gvk = {"group": r.group, "kind": r.kind, "version": r.version}
    ns = "Namespaced" if r.namespaced else ""
    list_def = f"{r.definition}List"
    verbs = set(r.verbs)
    prefix = _prefix(r.group, r.version)
    base = (
        f"{prefix}/namespaces/{{namespace}}/{r.plural}" if r.namespaced else f"{prefix}/{r.plural}"
    )
    name_param = _param("name", "string", f"name of the {r.kind}", "path")
    scope = (_NAMESPACE, _PRETTY) if r.namespaced else (_PRETTY,)
    write = (_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION)
    patch_params = (_DRY_RUN, _PATCH_FIELD_MANAGER, _FIELD_VALIDATION, _FORCE)
    obj_body = {"content": {"*/*": {"schema": _ref(r.definition)}}, "required": True}
    patch_body = {"content": {t: {"schema": _ref(_PATCH)} for t in _PATCH_TYPES}, "required": True}
    delete_body = {"content": {"*/*": {"schema": _ref(_DELETE_OPTIONS)}}}

    collection: dict[str, Any] = {}
    if "deletecollection" in verbs:
        collection["delete"] = _op(
            f"delete{gv}Collection{ns}{r.kind}",
            f"delete collection of {r.kind}",
            "deletecollection",
            gvk,
            tag,
            _responses(_STATUS, "200"),
            (*_DELETE_PARAMS, *_LIST_PARAMS),
            delete_body,
        )
    if "list" in verbs:
        collection["get"] = _op(
            f"list{gv}{ns}{r.kind}",
            f"list or watch objects of kind {r.kind}",
            "list",
            gvk,
            tag,
            _responses(list_def, "200", types=_LIST_RESPONSE_TYPES),
            _LIST_PARAMS,
        )
    collection["parameters"] = list(scope)
    if "create" in verbs:
        collection["post"] = _op(
            f"create{gv}{ns}{r.kind}",
            f"create a {r.kind}",
            "post",
            gvk,
            tag,
            _responses(r.definition, "200", "201", "202"),
            write,
            obj_body,
        )
    paths[base] = collection

    item: dict[str, Any] = {}
    if "delete" in verbs:
        item["delete"] = _op(
            f"delete{gv}{ns}{r.kind}",
            f"delete a {r.kind}",
            "delete",
            gvk,
            tag,
            _responses(_STATUS, "200", "202"),
            _DELETE_PARAMS,
            delete_body,
        )
    if "get" in verbs:
        item["get"] = _op(
            f"read{gv}{ns}{r.kind}",
            f"read the specified {r.kind}",
            "get",
            gvk,
            tag,
            _responses(r.definition, "200"),
        )
    item["parameters"] = [name_param, *scope]
    if "patch" in verbs:
        item["patch"] = _op(
            f"patch{gv}{ns}{r.kind}",
            f"partially update the specified {r.kind}",
            "patch",
            gvk,
            tag,
            _responses(r.definition, "200", "201"),
            patch_params,
            patch_body,
        )
    if "update" in verbs:
        item["put"] = _op(
            f"replace{gv}{ns}{r.kind}",
            f"replace the specified {r.kind}",
            "put",
            gvk,
            tag,
            _responses(r.definition, "200", "201"),
            write,
            obj_body,
        )
    paths[f"{base}/{{name}}"] = item

    for sub in ("scale", "status"):
        if sub not in r.subresources:
            continue
        word = sub.capitalize()
        sub_def, sub_gvk = (_SCALE, _SCALE_GVK) if sub == "scale" else (r.definition, gvk)
        sub_body = {"content": {"*/*": {"schema": _ref(sub_def)}}, "required": True}
        paths[f"{base}/{{name}}/{sub}"] = {
            "get": _op(
                f"read{gv}{ns}{r.kind}{word}",
                f"read {sub} of the specified {r.kind}",
                "get",
                sub_gvk,
                tag,
                _responses(sub_def, "200"),
            ),
            "parameters": [_param("name", "string", f"name of the {word}", "path"), *scope],
            "patch": _op(
                f"patch{gv}{ns}{r.kind}{word}",
                f"partially update {sub} of the specified {r.kind}",
                "patch",
                sub_gvk,
                tag,
                _responses(sub_def, "200", "201"),
                patch_params,
                patch_body,
            ),
            "put": _op(
                f"replace{gv}{ns}{r.kind}{word}",
                f"replace {sub} of the specified {r.kind}",
                "put",
                sub_gvk,
                tag,
                _responses(sub_def, "200", "201"),
                write,
                sub_body,
            ),
        }

    if r.namespaced and "list" in verbs:
        paths[f"{prefix}/{r.plural}"] = {
            "get": _op(
                f"list{gv}{r.kind}ForAllNamespaces",
                f"list or watch objects of kind {r.kind}",
                "list",
                gvk,
                tag,
                _responses(list_def, "200", types=_LIST_RESPONSE_TYPES),
            ),
            "parameters": [*_LIST_PARAMS, _PRETTY],
        }


def _info() -> dict[str, str]:
    # kube-apiserver says "unversioned" here; the schemas are those of KUBERNETES_SCHEMA_VERSION.
    return {"title": "Kubernetes", "version": "unversioned"}


def _assemble(paths: dict[str, Any], roots: set[str]) -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": {name: _component(name) for name in _closure(roots)}},
    }


def _build_group_version(group: str, version: str) -> dict[str, Any] | None:
    resources = REGISTRY.in_group_version(group, version)
    if not resources:
        return None
    prefix = _prefix(group, version)
    gv = f"{_group_word(group)}{version[:1].upper()}{version[1:]}"
    resource_list = f"{_META}.APIResourceList"
    paths: dict[str, Any] = {
        f"{prefix}/": {
            "get": _op(
                f"get{gv}APIResources",
                "get available resources",
                "",
                None,
                _tag(group, version),
                _responses(resource_list, "200"),
            )
        }
    }
    roots = {resource_list, _STATUS, _DELETE_OPTIONS, _PATCH}
    for r in resources:
        _resource_paths(r, paths)
        roots.update((r.definition, f"{r.definition}List"))
        if "scale" in r.subresources:
            roots.add(_SCALE)
    return _assemble(paths, roots)


def _build_discovery(path: str) -> dict[str, Any] | None:
    """The small documents for ``/api/``, ``/apis/``, ``/apis/<group>/`` and ``/version/``."""
    if path == "api":
        op = _op(
            "getCoreAPIVersions",
            "get available API versions",
            "",
            None,
            "core",
            _responses(f"{_META}.APIVersions", "200"),
        )
        return _assemble({"/api/": {"get": op}}, {f"{_META}.APIVersions"})
    if path == "apis":
        op = _op(
            "getAPIVersions",
            "get available API versions",
            "",
            None,
            "apis",
            _responses(f"{_META}.APIGroupList", "200"),
        )
        return _assemble({"/apis/": {"get": op}}, {f"{_META}.APIGroupList"})
    if path == "version":
        op = _op(
            "getCodeVersion",
            "get the version information for this server",
            "",
            None,
            "version",
            _responses("io.k8s.apimachinery.pkg.version.Info", "200"),
        )
        return _assemble({"/version/": {"get": op}}, {"io.k8s.apimachinery.pkg.version.Info"})
    group = path.removeprefix("apis/")
    if path.startswith("apis/") and "/" not in group and group in _api_groups():
        word = _group_word(group)
        op = _op(
            f"get{word}APIGroup",
            "get information of a group",
            "",
            None,
            word[:1].lower() + word[1:],
            _responses(f"{_META}.APIGroup", "200"),
        )
        return _assemble({f"/apis/{group}/": {"get": op}}, {f"{_META}.APIGroup"})
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
