"""What a REST request asks for: the resource path parsed into a :class:`Target` (resource,
namespace, name, subresource), the body decoded by its media type (JSON, YAML, Kubernetes
protobuf; size-limited), and the options of writes, lists and deletes (DeleteOptions
from the query and the body).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from starlette.requests import Request

from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.queryparams import flag
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver import protobuf

from ..store import DeleteOptions, ListOptions, WriteOptions
from .response import JSON

MAX_BODY = 3 * 1024 * 1024


@dataclass(slots=True)
class Target:
    """A parsed resource path."""

    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str


def parse_path(path: str) -> Target | None:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        # /namespaces/{ns}/{plural}... unless the third part is a namespace subresource
        if REGISTRY.by_path(group, version, rest[2]) is not None:
            namespace, rest = rest[1], rest[2:]
    info = REGISTRY.by_path(group, version, rest[0])
    if info is None:
        # /namespaces/{ns}/{plural}: the plural is what is missing, not "namespaces".
        missing = (
            rest[2] if namespace is None and rest[0] == "namespaces" and len(rest) >= 3 else rest[0]
        )
        raise ApiError(
            404,
            errors.Reason.NOT_FOUND,
            f"the server could not find the requested resource ({missing})",
        )
    if namespace is not None and not info.namespaced:
        raise errors.ApiError(
            404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
        )
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3 or (sub and sub not in info.subresources):
        raise ApiError(
            404,
            errors.Reason.NOT_FOUND,
            f"the server could not find the requested resource ({info.plural}/{sub})",
        )
    return Target(info, namespace, name, sub)


def _media(request: Request) -> str:
    return (request.headers.get("content-type") or JSON).split(";")[0].strip().lower()


async def read_body(request: Request) -> tuple[Any, str]:
    """The decoded request body and its media type (kept on ``request.state.body`` for
    the audit log)."""
    body, media = await _read_body(request)
    request.state.body = body
    return body, media


async def _read_body(request: Request) -> tuple[Any, str]:
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise errors.too_large(f"Request entity too large: limit is {MAX_BODY}")
    media = _media(request)
    if not raw.strip():
        raise errors.bad_request("the request body is empty; send a JSON or YAML object")
    if media in (
        "application/json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
    ):
        try:
            return orjson.loads(raw), media
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"the request body is not valid JSON: {e}") from e
    if media == protobuf.CONTENT_TYPE:
        return protobuf.decode(raw), media
    if media in (
        "application/yaml",
        "application/apply-patch+yaml",
        "text/yaml",
        "application/x-yaml",
    ):
        try:
            docs = list(yaml.safe_load_all(raw))
        except yaml.YAMLError as e:
            raise errors.bad_request(f"the request body is not valid YAML: {e}") from e
        if len(docs) != 1:
            raise errors.bad_request("the request body must hold exactly one YAML document")
        return docs[0], media
    raise errors.unsupported_media_type(media)


def write_options(request: Request) -> WriteOptions:
    q = request.query_params
    fv = q.get("fieldValidation") or "Strict"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not "{fv}"'
        )
    manager = q.get("fieldManager") or _default_manager(request)
    if len(manager) > 128:
        raise errors.bad_request("fieldManager must be at most 128 characters long")
    request.state.audit_annotations = annotations = {}
    return WriteOptions(
        dry_run=q.get("dryRun") == "All",
        field_manager=manager,
        field_validation=fv,
        force=flag(q, "force"),
        user=getattr(request.state, "user", None),
        audit_annotations=annotations,
    )


def _default_manager(request: Request) -> str:
    ua = request.headers.get("user-agent", "")
    return ua.split("/")[0] if ua else "unknown"


INT64 = range(-(2**63), 2**63)


def int_param(q, name: str) -> int | None:  # type: ignore[no-untyped-def]
    """An int64 query parameter, else 400 in the words of kube's ``strconv.ParseInt``."""
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError as e:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{v}": invalid syntax') from e
    if n not in INT64:
        raise errors.bad_request(f'strconv.ParseInt: parsing "{v}": value out of range')
    return n


def _int64_field(body: dict, name: str) -> int:  # type: ignore[type-arg]
    """An int64 field of a JSON body, refused as Go's decoder refuses it (400)."""
    v = body[name]
    if isinstance(v, int) and not isinstance(v, bool) and v in INT64:
        return v
    if isinstance(v, bool):
        kind = "bool"
    elif isinstance(v, int | float):
        kind = f"number {v}"  # a fraction, or beyond int64
    elif isinstance(v, str):
        kind = "string"
    else:
        kind = "object" if isinstance(v, dict) else "array" if isinstance(v, list) else "value"
    raise errors.bad_request(
        f"json: cannot unmarshal {kind} into Go struct field DeleteOptions.{name} of type int64"
    )


def list_options(request: Request) -> ListOptions:
    q = request.query_params
    return ListOptions.parse(
        q.get("labelSelector") or "",
        q.get("fieldSelector") or "",
        limit=int_param(q, "limit") or 0,
        continue_token=q.get("continue") or "",
        resource_version=q.get("resourceVersion") or "",
        resource_version_match=q.get("resourceVersionMatch") or "",
    )


async def delete_options(request: Request) -> DeleteOptions:
    """DeleteOptions from the query and from the body, if any (JSON, YAML or protobuf)."""
    q = request.query_params
    opts = DeleteOptions(
        grace_period_seconds=int_param(q, "gracePeriodSeconds"),
        propagation_policy=q.get("propagationPolicy"),
        dry_run=q.get("dryRun") == "All",
        user=getattr(request.state, "user", None),
    )
    raw = await request.body()
    if raw.strip():
        try:
            if _media(request) == protobuf.CONTENT_TYPE:
                body = protobuf.decode(raw)
            elif raw.lstrip()[:1] in (b"{", b"["):
                body = orjson.loads(raw)
            else:
                body = yaml.safe_load(raw)
        except ApiError:
            raise
        except Exception as e:
            raise errors.bad_request(f"the DeleteOptions body is not valid: {e}") from e
        if isinstance(body, dict):
            if body.get("gracePeriodSeconds") is not None:
                opts.grace_period_seconds = _int64_field(body, "gracePeriodSeconds")
            if body.get("propagationPolicy"):
                opts.propagation_policy = body["propagationPolicy"]
            orphan = body.get("orphanDependents")
            if orphan is not None and not opts.propagation_policy:
                opts.propagation_policy = "Orphan" if orphan else "Background"
            pre = body.get("preconditions") or {}
            opts.precondition_uid = pre.get("uid")
            opts.precondition_rv = pre.get("resourceVersion")
            if body.get("dryRun") == ["All"]:
                opts.dry_run = True
    if opts.propagation_policy not in (None, "Orphan", "Background", "Foreground"):
        raise errors.bad_request(
            f'propagationPolicy must be one of "Orphan", "Background" or "Foreground", '
            f'not "{opts.propagation_policy}"'
        )
    return opts
