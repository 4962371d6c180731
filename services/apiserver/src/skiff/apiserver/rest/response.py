"""Responses of the REST API: JSON bodies, Kubernetes ``Status`` errors (with
Retry-After), ``Warning`` headers, and content negotiation of the output: an object as
itself, or as a ``meta.k8s.io/v1`` Table (``Accept: ...;as=Table``) for ``kubectl get``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from skiff.api.errors import ApiError
from skiff.api.resources import ResourceInfo
from skiff.apiserver import printers

from ..store import WriteOptions

JSON = "application/json"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = JSON
) -> Response:
    """``obj`` as JSON with a trailing newline, as kube-apiserver's encoder writes it."""
    return Response(dumps(obj) + b"\n", status_code=status, media_type=media_type,
                    headers=headers)  # fmt: skip


def error_response(e: ApiError) -> Response:
    headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
    return json_response(e.status(), e.code, headers)


def wants_table(request: Request) -> bool:
    return "as=Table" in request.headers.get("accept", "")


def with_warnings(resp: Response, opts: WriteOptions) -> Response:
    for w in opts.warnings:
        resp.headers.append("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


def object_response(
    request: Request,
    info: ResourceInfo,
    obj: dict[str, Any],
    status: int = 200,
    opts: WriteOptions | None = None,
) -> Response:
    """``obj`` as JSON, or as a one-row Table when the client asks for one."""
    if wants_table(request):
        body = printers.table_for(
            info, [obj], include_object=request.query_params.get("includeObject", "Metadata")
        )
        resp = json_response(body, status, media_type=TABLE_CT)
    else:
        resp = json_response(obj, status)
    return with_warnings(resp, opts) if opts else resp
