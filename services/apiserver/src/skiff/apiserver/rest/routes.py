"""The paths of the REST API that are not resources (kube-apiserver's ``server/routes``):
``/healthz``, ``/livez``, ``/readyz`` (with their checks, ``?verbose``, ``?exclude``, a
trailing slash as kube accepts it), ``/version`` (and ``/version/``), ``/metrics``, ``/openapi/v3``
(``/openapi/v2`` answers 404), and discovery: ``/api``, ``/apis`` (aggregated discovery
when the client asks for it), ``/api/v1``, ``/apis/<group>``, ``/apis/<group>/<version>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from skiff import healthz
from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.apiserver import openapi

from .. import discovery
from ..aggregator import Aggregator, Remote
from .response import JSON, error_response, json_response

HEALTH_CHECKS = ("ping", "log")
"""The checks of ``/healthz`` and ``/livez``; ``/readyz`` adds ``watch-cache``."""


def health(request: Request, path: str, is_ready: Callable[[], bool]) -> Response | None:
    """kube-apiserver's ``/healthz``, ``/livez``, ``/readyz`` (:mod:`skiff.healthz`);
    ``/readyz`` adds ``watch-cache``."""
    endpoint, _, single = path.strip("/").partition("/")
    if endpoint not in ("healthz", "livez", "readyz"):
        return None
    checks = {name: True for name in HEALTH_CHECKS}
    if endpoint == "readyz":
        checks["watch-cache"] = is_ready()
    return healthz.respond(request, endpoint, checks, single)


def nonresource(
    request: Request, path: str, is_ready: Callable[[], bool], aggregator: Aggregator | None = None
) -> Response | None:
    """The response for ``path`` when it is not a resource path, else None (discovery
    lists ``aggregator``'s remote APIServices too)."""
    answer = health(request, path, is_ready)
    if answer is not None:
        return answer
    if path in ("/version", "/version/"):
        return json_response(discovery.KUBE_VERSION)
    if path == "/metrics":
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
    if path.startswith("/openapi/v3"):
        return _openapi(path, aggregator)
    if path == "/openapi/v2":
        return error_response(
            ApiError(
                404, errors.Reason.NOT_FOUND, "the server serves OpenAPI v3 only (/openapi/v3)"
            )
        )
    remotes = aggregator.remotes() if aggregator is not None else []
    documents = aggregator.apiservices.documents if aggregator is not None else {}
    if path in ("/api", "/api/"):
        return _discovery(request, True, remotes, documents)
    if path in ("/apis", "/apis/"):
        return _discovery(request, False, remotes, documents)
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) == 2:
        doc = discovery.resource_list("", parts[1])
        return _or_404(doc)
    if parts[:1] == ["apis"] and len(parts) == 2:
        return _or_404(discovery.api_group(parts[1], remotes))
    if parts[:1] == ["apis"] and len(parts) == 3:
        return _or_404(discovery.resource_list(parts[1], parts[2]))
    return None


def _or_404(doc: dict[str, Any] | None) -> Response:
    if doc is None:
        raise ApiError(
            404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
        )
    return json_response(doc)


def _openapi(path: str, aggregator: Aggregator | None) -> Response:
    rest = path[len("/openapi/v3") :].strip("/")
    if not rest:
        index = openapi.index()
        if aggregator is not None and (remote := aggregator.openapi_index()):
            index = {**index, "paths": {**index["paths"], **remote}}
        return json_response(index)
    doc = openapi.document_for_path(rest)
    if doc is None:
        raise ApiError(404, errors.Reason.NOT_FOUND, f"no OpenAPI document for {rest}")
    return Response(doc, media_type=JSON, headers={"Cache-Control": "public, immutable"})


def _discovery(
    request: Request, core: bool, remotes: list[Remote], documents: dict[str, Any]
) -> Response:
    accept = request.headers.get("accept", "")
    for v in ("v2", "v2beta1"):
        if f"g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList" in accept.replace(" ", ""):
            ct = f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
            doc = discovery.aggregated(core, v, remotes, documents)
            return json_response(doc, media_type=ct)
    if core:
        return json_response(discovery.api_versions())
    return json_response(discovery.api_group_list(remotes))
