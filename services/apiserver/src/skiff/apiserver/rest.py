"""The Kubernetes REST API over HTTP (what kubectl and client libraries speak).

Routing is done here rather than with a route table: Kubernetes paths are
regular (``/api/v1[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]`` and
the same under ``/apis/{group}/{version}``) and one parser serves them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket

from skiff import tracing
from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver import openapi, printers, protobuf
from skiff.log import get_logger

from . import discovery
from . import eventstream as ev
from .podproxy import PodProxy
from .registry import Subresource
from .registry.options import require_object
from .store import DeleteOptions, ListOptions, Store, WriteOptions
from .watchcache import Event

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.rest")

MAX_BODY = 3 * 1024 * 1024
BOOKMARK_INTERVAL = 5.0
JSON = "application/json"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"

REQUESTS = Counter("apiserver_request_total", "API requests", ["verb", "resource", "code"])
LATENCY = Histogram(
    "apiserver_request_duration_seconds",
    "API request latency",
    ["verb", "resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(
    obj: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = JSON
) -> Response:
    return Response(_dumps(obj), status_code=status, media_type=media_type, headers=headers)


def error_response(e: ApiError) -> Response:
    headers = {"Retry-After": str(e.retry_after)} if e.retry_after else None
    return json_response(e.status(), e.code, headers)


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
        raise ApiError(
            404,
            errors.Reason.NOT_FOUND,
            f"the server could not find the requested resource ({rest[0]})",
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
    """The decoded request body and its media type."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise errors.too_large(f"the request body is larger than the limit of {MAX_BODY} bytes")
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


def _write_options(request: Request) -> WriteOptions:
    q = request.query_params
    fv = q.get("fieldValidation") or "Strict"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not "{fv}"'
        )
    manager = q.get("fieldManager") or _default_manager(request)
    if len(manager) > 128:
        raise errors.bad_request("fieldManager must be at most 128 characters long")
    return WriteOptions(
        dry_run=q.get("dryRun") == "All",
        field_manager=manager,
        field_validation=fv,
        force=q.get("force") in ("true", "1"),
    )


def _default_manager(request: Request) -> str:
    ua = request.headers.get("user-agent", "")
    return ua.split("/")[0] if ua else "unknown"


def _int_param(q, name: str) -> int | None:  # type: ignore[no-untyped-def]
    v = q.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError as e:
        raise errors.bad_request(f"{name} must be an integer, not {v!r}") from e


def _list_options(request: Request) -> ListOptions:
    q = request.query_params
    return ListOptions.parse(
        q.get("labelSelector") or "",
        q.get("fieldSelector") or "",
        limit=_int_param(q, "limit") or 0,
        continue_token=q.get("continue") or "",
        resource_version=q.get("resourceVersion") or "",
        resource_version_match=q.get("resourceVersionMatch") or "",
    )


def _wants_table(request: Request) -> bool:
    return "as=Table" in request.headers.get("accept", "")


def _with_warnings(resp: Response, opts: WriteOptions) -> Response:
    for w in opts.warnings:
        resp.headers.append("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


class RestApi:
    """Request handlers for resource paths, discovery and health."""

    def __init__(self, store: Store, *, is_ready) -> None:  # type: ignore[no-untyped-def]
        self.store = store
        self.is_ready = is_ready
        self.pod_proxy = PodProxy(store)

    # -- entry point -------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "lifespan":
            return
        if scope["type"] == "websocket":
            await self._websocket(WebSocket(scope, receive, send))
            return
        request = Request(scope, receive)
        response = await self.dispatch(request)
        await response(scope, receive, send)

    async def dispatch(self, request: Request) -> Response:
        path = request.url.path
        method = request.method
        ctx = tracing.extract(request.headers)
        start = time.perf_counter()
        verb, resource, code = method.lower(), "", 500
        with _tracer.start_as_current_span(
            f"{method} {path}",
            context=ctx,
            kind=trace.SpanKind.SERVER,
            attributes={"http.method": method, "http.target": path},
        ) as span:
            try:
                resp = await self._route(request, path, method)
            except ApiError as e:
                resp = error_response(e)
            except Exception as e:  # never a traceback to the client
                log.exception("request failed", path=path, method=method)
                resp = error_response(errors.internal(f"an internal error occurred: {e}"))
            code = resp.status_code
            span.set_attribute("http.status_code", code)
        parts = path.split("/")
        resource = parts[-1] if len(parts) < 4 else ""
        t: Target | None = getattr(request.state, "target", None)
        if t is not None:
            resource = t.info.plural + (f"/{t.subresource}" if t.subresource else "")
            verb = _verb(method, t, request)
        if verb != "watch":
            LATENCY.labels(verb, resource).observe(time.perf_counter() - start)
        REQUESTS.labels(verb, resource, str(code)).inc()
        return resp

    async def _websocket(self, ws: WebSocket) -> None:
        """WebSocket requests: exec, attach and port-forward, relayed to the pod's kubelet."""
        t = parse_path(ws.url.path)
        if t is None or t.info.plural != "pods" or not t.name or t.namespace is None:
            await ws.close(
                1008, "WebSocket is only served for pods/exec, pods/attach and pods/portforward"
            )
            return
        with _tracer.start_as_current_span(
            f"WEBSOCKET {ws.url.path}",
            context=tracing.extract(ws.headers),
            kind=trace.SpanKind.SERVER,
            attributes={"http.target": ws.url.path},
        ):
            try:
                if t.subresource in ("exec", "attach"):
                    await self.pod_proxy.exec(ws, t.namespace, t.name, t.subresource)
                elif t.subresource == "portforward":
                    await self.pod_proxy.port_forward(ws, t.namespace, t.name)
                else:
                    await ws.close(1008, f"pods/{t.subresource} is not served over WebSocket")
            except Exception:
                log.exception("websocket request failed", path=ws.url.path)
                with contextlib.suppress(Exception):
                    await ws.close(1011)

    async def _route(self, request: Request, path: str, method: str) -> Response:
        if path in ("/healthz", "/livez"):
            return Response(b"ok", media_type="text/plain")
        if path == "/readyz":
            if self.is_ready():
                return Response(b"ok", media_type="text/plain")
            return Response(
                b"[-]watch-cache not ready\nreadyz check failed", 503, media_type="text/plain"
            )
        if path == "/version":
            return json_response(discovery.KUBE_VERSION)
        if path == "/metrics":
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
        if path.startswith("/openapi/v3"):
            return self._openapi(path)
        if path == "/openapi/v2":
            return error_response(
                ApiError(
                    404, errors.Reason.NOT_FOUND, "the server serves OpenAPI v3 only (/openapi/v3)"
                )
            )
        if path in ("/api", "/api/"):
            return self._discovery(request, core=True)
        if path in ("/apis", "/apis/"):
            return self._discovery(request, core=False)
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            doc = discovery.resource_list("", parts[1])
            return self._or_404(doc)
        if parts[:1] == ["apis"] and len(parts) == 2:
            return self._or_404(discovery.api_group(parts[1]))
        if parts[:1] == ["apis"] and len(parts) == 3:
            return self._or_404(discovery.resource_list(parts[1], parts[2]))
        target = parse_path(path)
        request.state.target = target  # for the request metrics, without parsing again
        if target is None:
            raise ApiError(
                404,
                errors.Reason.NOT_FOUND,
                f"the server could not find the requested resource ({path})",
            )
        return await self._resource(request, method, target)

    def _or_404(self, doc: dict[str, Any] | None) -> Response:
        if doc is None:
            raise ApiError(
                404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
            )
        return json_response(doc)

    def _openapi(self, path: str) -> Response:
        rest = path[len("/openapi/v3") :].strip("/")
        if not rest:
            return json_response(openapi.index())
        doc = openapi.document_for_path(rest)
        if doc is None:
            raise ApiError(404, errors.Reason.NOT_FOUND, f"no OpenAPI document for {rest}")
        return Response(doc, media_type=JSON, headers={"Cache-Control": "public, immutable"})

    def _discovery(self, request: Request, core: bool) -> Response:
        accept = request.headers.get("accept", "")
        for v in ("v2", "v2beta1"):
            if f"g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList" in accept.replace(" ", ""):
                ct = f"application/json;g=apidiscovery.k8s.io;v={v};as=APIGroupDiscoveryList"
                return json_response(discovery.aggregated(core, v), media_type=ct)
        return json_response(discovery.api_versions() if core else discovery.api_group_list())

    # -- resources ---------------------------------------------------------------------

    async def _resource(self, request: Request, method: str, t: Target) -> Response:
        info = t.info
        if t.name is None:
            if method == "GET":
                if request.query_params.get("watch") in ("true", "1"):
                    return await self._watch(request, t)
                return await self._list(request, t)
            if method == "POST":
                if info.namespaced and t.namespace is None:
                    raise errors.method_not_allowed(
                        f"create {info.plural} needs a namespace in the path "
                        f"(/namespaces/<ns>/{info.plural})"
                    )
                return await self._create(request, t)
            if method == "DELETE":
                return await self._delete_collection(request, t)
            raise errors.method_not_allowed(f"{method} is not supported on {info.plural}")
        if info.namespaced and t.namespace is None:
            raise ApiError(
                404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
            )
        if t.subresource and (handler := self.store.subresource(info, t.subresource)):
            return await self._subresource(request, method, t, handler)
        if info.plural == "pods" and t.subresource == "log" and t.name:
            if method != "GET":
                raise errors.method_not_allowed("pods/log only supports GET")
            return await self.pod_proxy.logs(request, t.namespace or "default", t.name)
        if t.subresource in ("exec", "attach", "portforward"):
            raise errors.bad_request(
                f"{info.plural}/{t.subresource} is served over WebSocket "
                "(SPDY upgrades are not supported); use kubectl 1.30 or later"
            )
        if t.subresource in ("log", "proxy", "ephemeralcontainers", "token"):
            raise ApiError(
                503,
                errors.Reason.SERVICE_UNAVAILABLE,
                f"{info.plural}/{t.subresource} is not served yet",
            )
        if method == "GET":
            obj = await self.store.get(info, t.namespace, t.name)
            return self._object_response(request, info, obj)
        if method == "PUT":
            return await self._update(request, t)
        if method == "PATCH":
            return await self._patch(request, t)
        if method == "DELETE":
            return await self._delete(request, t)
        if method == "POST" and t.subresource == "":
            raise errors.method_not_allowed(
                f"POST is not supported on a named {info.singular}; use PUT or PATCH"
            )
        raise errors.method_not_allowed(f"{method} is not supported here")

    def _object_response(
        self,
        request: Request,
        info: ResourceInfo,
        obj: dict[str, Any],
        status: int = 200,
        opts: WriteOptions | None = None,
    ) -> Response:
        if _wants_table(request):
            body = printers.table_for(
                info, [obj], include_object=request.query_params.get("includeObject", "Metadata")
            )
            resp = json_response(body, status, media_type=TABLE_CT)
        else:
            resp = json_response(obj, status)
        return _with_warnings(resp, opts) if opts else resp

    async def _list(self, request: Request, t: Target) -> Response:
        opts = _list_options(request)
        result = await self.store.list(t.info, t.namespace, opts)
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if _wants_table(request):
            body = printers.table_for(
                t.info,
                result.items,
                include_object=request.query_params.get("includeObject", "Metadata"),
                list_meta=meta,
            )
            return json_response(body, media_type=TABLE_CT)
        return json_response(
            {
                "kind": t.info.list_kind,
                "apiVersion": t.info.api_version,
                "metadata": meta,
                "items": result.items,
            }
        )

    async def _watch(self, request: Request, t: Target) -> Response:
        opts = _list_options(request)
        q = request.query_params
        timeout = _int_param(q, "timeoutSeconds") or 1800
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        as_table = _wants_table(request)
        include = q.get("includeObject", "Metadata")
        info = t.info

        def line(etype: str, obj: dict[str, Any]) -> bytes:
            if as_table:
                obj = printers.table_for(info, [obj], include_object=include)
            return _dumps({"type": etype, "object": obj}) + b"\n"

        def render(e: Event) -> bytes:
            """One watch event as a line; done once per group of alike watches."""
            if not e.trace:
                return line(e.type, e.obj) if as_table else e.json_line()
            with _tracer.start_as_current_span(
                "watch.deliver",
                context=tracing.extract(e.trace),
                kind=trace.SpanKind.PRODUCER,
                attributes={"skiff.revision": e.revision},
            ):
                return line(e.type, e.obj) if as_table else e.json_line()

        try:
            watch, initial, since = await self.store.watch(
                t.info,
                t.namespace,
                opts,
                render=render,
                render_key=("table", include) if as_table else ("json",),
                send_initial=send_initial,
            )
        except ApiError as e:
            if e.code != 410:
                raise
            # As kube-apiserver: a 200 stream holding one ERROR event with the 410 Status.
            return Response(
                _dumps({"type": "ERROR", "object": e.status()}) + b"\n", media_type=JSON
            )

        def bookmark(rv: int, initial_end: bool = False) -> bytes:
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if initial_end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            obj = {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}
            return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

        async def stream() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                if initial:
                    yield b"".join(line(ev.ADDED, obj) for obj in initial)
                if send_initial and bookmarks:
                    yield bookmark(since, initial_end=True)
                while (left := deadline - loop.time()) > 0:
                    items = await watch.next(min(left, BOOKMARK_INTERVAL))
                    if items is None:
                        return
                    if items:
                        yield b"".join(items)
                    elif bookmarks and watch.caught_up():
                        yield bookmark(self.store.revision)
            finally:
                self.store.unwatch(info, watch)

        ct = TABLE_CT if as_table else JSON
        return StreamingResponse(
            stream(), media_type=ct, headers={"Cache-Control": "no-cache, private"}
        )

    async def _create(self, request: Request, t: Target) -> Response:
        body, _ = await read_body(request)
        obj = require_object(body)
        opts = _write_options(request)
        if t.subresource:
            raise errors.method_not_allowed(f"POST is not supported on {t.subresource}")
        created = await self.store.create(t.info, t.namespace, obj, opts)
        return self._object_response(request, t.info, created, 201, opts)

    async def _update(self, request: Request, t: Target) -> Response:
        body, _ = await read_body(request)
        obj = require_object(body)
        opts = _write_options(request)
        assert t.name is not None
        updated = await self.store.update(
            t.info, t.namespace, t.name, obj, opts, subresource=t.subresource
        )
        return self._reply(request, t, updated, opts)

    async def _patch(self, request: Request, t: Target) -> Response:
        body, media = await read_body(request)
        opts = _write_options(request)
        info = t.info
        assert t.name is not None
        if media == "application/apply-patch+yaml":
            require_object(body)
            if not request.query_params.get("fieldManager"):
                opts.field_manager = ""  # apply needs an explicit manager; the store says so
        elif media == "application/json-patch+json":
            if not isinstance(body, list):
                raise errors.bad_request("a json patch must be a list of operations")
        elif media in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            require_object(body)
        else:
            raise errors.unsupported_media_type(media)
        updated = await self.store.patch(
            info, t.namespace, t.name, media, body, opts, subresource=t.subresource
        )
        return self._reply(request, t, updated, opts)

    async def _delete(self, request: Request, t: Target) -> Response:
        opts = await self._delete_options(request)
        assert t.name is not None
        obj, gone_now = await self.store.delete(t.info, t.namespace, t.name, opts)
        return self._object_response(request, t.info, obj, 200 if gone_now else 202)

    async def _delete_options(self, request: Request) -> DeleteOptions:
        q = request.query_params
        opts = DeleteOptions(
            grace_period_seconds=_int_param(q, "gracePeriodSeconds"),
            propagation_policy=q.get("propagationPolicy"),
            dry_run=q.get("dryRun") == "All",
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
                    opts.grace_period_seconds = int(body["gracePeriodSeconds"])
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

    async def _delete_collection(self, request: Request, t: Target) -> Response:
        opts = await self._delete_options(request)
        deleted = await self.store.delete_collection(
            t.info, t.namespace, _list_options(request), opts
        )
        return json_response(
            {
                "kind": t.info.list_kind,
                "apiVersion": t.info.api_version,
                "metadata": {},
                "items": deleted,
            }
        )

    async def _subresource(
        self, request: Request, method: str, t: Target, handler: Subresource
    ) -> Response:
        """A subresource the registry serves (status, scale, binding, eviction, finalize)."""
        verb = _SUBRESOURCE_VERBS.get(method, method.lower())
        if verb not in handler.verbs:
            raise handler.not_allowed(t.info, verb)
        assert t.name is not None
        if verb == "get":
            obj = await self.store.get(t.info, t.namespace, t.name, subresource=t.subresource)
            return self._reply(request, t, obj)
        if verb == "create":
            body, _ = await read_body(request)
            obj = require_object(body)
            opts = _write_options(request)
            created = await self.store.create_subresource(
                t.info, t.namespace, t.name, t.subresource, obj, opts
            )
            return _with_warnings(json_response(created, 201), opts)
        if verb == "update":
            return await self._update(request, t)
        return await self._patch(request, t)

    def _reply(
        self, request: Request, t: Target, obj: dict[str, Any], opts: WriteOptions | None = None
    ) -> Response:
        """The object (or a subresource's own kind, such as a Scale) as a 200 response."""
        handler = self.store.subresource(t.info, t.subresource) if t.subresource else None
        if handler is not None and not handler.returns_parent:
            resp = json_response(obj)
            return _with_warnings(resp, opts) if opts else resp
        return self._object_response(request, t.info, obj, 200, opts)


_SUBRESOURCE_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}


def _verb(method: str, t: Target, request: Request) -> str:
    if method == "GET":
        if t.name is None:
            return "watch" if request.query_params.get("watch") in ("true", "1") else "list"
        return "get"
    return {
        "POST": "create",
        "PUT": "update",
        "PATCH": "patch",
        "DELETE": "delete" if t.name else "deletecollection",
    }.get(method, method.lower())
