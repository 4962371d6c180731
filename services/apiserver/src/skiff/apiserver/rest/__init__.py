"""The Kubernetes REST API over HTTP (what kubectl and client libraries speak).

Routing is done here rather than with a route table: Kubernetes paths are
regular (``/api/v1[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]`` and
the same under ``/apis/{group}/{version}``) and one parser serves them all.

:class:`RestApi` is the ASGI application: tracing and request metrics around every
request, WebSocket upgrades (pods/exec, attach, portforward) and the routing itself.
The rest is cut as kube-apiserver's ``endpoints`` package is:

- :mod:`.routes`: the paths that are not resources (health, version, metrics, OpenAPI,
  discovery), kube's ``server/routes``;
- :mod:`.request`: the resource path, request bodies, the options of writes, lists and
  deletes;
- :mod:`.response`: JSON and Table responses (content negotiation), Status errors,
  warnings;
- :mod:`.handlers`: the verbs on resources and subresources, kube's
  ``handlers/{get,create,update,patch,delete}.go``;
- :mod:`.watch`: watch streams, kube's ``handlers/watch.go``.
"""

from __future__ import annotations

import contextlib
import time

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.websockets import WebSocket

from skiff import tracing
from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.queryparams import flag
from skiff.log import get_logger
from skiff.tlsserving import peer_certificate

from ..aggregator import Aggregator
from ..audit import AuditEvent, AuditLog
from ..authentication.authenticator import Authenticator
from ..authentication.user import UNSECURED_USER, UserInfo
from ..authorization import Authorizer, RequestAttributes, forbidden
from ..authorization.attributes import path_attributes, single_name, verb_for
from ..flowcontrol.classifier import Classifier
from ..flowcontrol.dispatch import (
    MAX_MUTATING_REQUESTS_INFLIGHT,
    MAX_REQUESTS_INFLIGHT,
    Dispatcher,
    Rejected,
)
from ..podproxy import KubeletClientConfig, PodProxy
from ..store import Store
from . import routes
from .handlers import ResourceHandlers
from .request import Target, parse_path
from .response import error_response

__all__ = ["RestApi"]

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.rest")

REQUESTS = Counter("apiserver_request_total", "API requests", ["verb", "resource", "code"])
LATENCY = Histogram(
    "apiserver_request_duration_seconds",
    "API request latency",
    ["verb", "resource"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RestApi(ResourceHandlers):
    """Request handlers for resource paths, discovery and health."""

    def __init__(  # type: ignore[no-untyped-def]
        self,
        store: Store,
        *,
        is_ready,
        authenticator: Authenticator | None = None,
        authorizer: Authorizer | None = None,
        kubelet: KubeletClientConfig | None = None,
        audit: AuditLog | None = None,
        aggregator: Aggregator | None = None,
        max_inflight: int = MAX_REQUESTS_INFLIGHT + MAX_MUTATING_REQUESTS_INFLIGHT,
    ) -> None:
        """``authenticator`` None: no authentication (plain HTTP), every request is
        ``system:unsecured``; ``authorizer`` None: every request is allowed;
        ``aggregator`` None: no APIService is proxied; ``max_inflight``: the requests
        API Priority and Fairness shares among its priority levels."""
        self.store = store
        self.is_ready = is_ready
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.audit = audit
        self.aggregator = aggregator
        self.pod_proxy = PodProxy(store, kubelet)
        self.classifier = Classifier(store.cache)
        self.dispatcher = Dispatcher(store.cache, max_inflight)

    async def authenticate(
        self,
        scope: dict,
        headers,
        subprotocols: list[str] | None = None,  # type: ignore[no-untyped-def, type-arg]
    ) -> UserInfo:
        """The requester (:mod:`..authentication`), or the 401 ApiError."""
        if self.authenticator is None:
            return UNSECURED_USER
        return await self.authenticator.authenticate(headers, peer_certificate(scope), subprotocols)

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
            event = None
            classified = None
            try:
                user = await self.authenticate(request.scope, request.headers)
                request.state.user = user
                remote = self.aggregator.remote_for(path) if self.aggregator else None
                request.state.remote = remote
                attrs = request_attributes(user, request, path, method, remote is not None)
                if self.audit is not None:
                    event = self.audit.begin(
                        attrs,
                        str(request.url.path)
                        + (f"?{request.url.query}" if request.url.query else ""),
                        request.client.host if request.client else "",
                        request.headers.get("user-agent", ""),
                    )
                if not _long_running(attrs):
                    classified = self.classifier.classify(attrs)
                if classified is None:
                    resp = await self._authorized(request, attrs, event)
                else:
                    # API Priority and Fairness: a seat of the request's level, or a 429.
                    async with self.dispatcher.seat(classified):
                        resp = await self._authorized(request, attrs, event)
            except Rejected:
                resp = PlainTextResponse(TOO_MANY_REQUESTS, 429, _TOO_MANY_HEADERS)
            except ApiError as e:
                resp = error_response(e)
            except Exception as e:  # never a traceback to the client
                log.exception("request failed", path=path, method=method)
                resp = error_response(errors.internal(f"an internal error occurred: {e}"))
            if classified is not None:
                resp.headers.update(classified.headers())
            code = resp.status_code
            span.set_attribute("http.status_code", code)
            if event is not None:
                event.annotations.update(getattr(request.state, "audit_annotations", None) or {})
                body = resp.body if hasattr(resp, "body") else None
                event.complete(code, getattr(request.state, "body", None), body)
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

    async def _authorized(
        self, request: Request, attrs: RequestAttributes, event: AuditEvent | None
    ) -> Response:
        """The request's answer, once the authorizer allows it (403 otherwise)."""
        if self.authorizer is not None:
            allowed, reason = self.authorizer.authorize(attrs)
            if event is not None:
                event.annotations["authorization.k8s.io/decision"] = (
                    "allow" if allowed else "forbid"
                )
                event.annotations["authorization.k8s.io/reason"] = reason
            if not allowed:
                raise forbidden(attrs, reason)
        return await self._route(request, request.url.path, request.method)

    async def _websocket(self, ws: WebSocket) -> None:
        """WebSocket requests: exec, attach and port-forward, relayed to the pod's kubelet;
        any upgrade request of a remote APIService's group version, relayed to its server."""
        remote = self.aggregator.remote_for(ws.url.path) if self.aggregator else None
        t = None if remote is not None else parse_path(ws.url.path)
        if remote is None and (
            t is None or t.info.plural != "pods" or not t.name or t.namespace is None
        ):
            await ws.close(
                1008, "WebSocket is only served for pods/exec, pods/attach and pods/portforward"
            )
            return
        try:
            user = ws.state.user = await self.authenticate(
                ws.scope, ws.headers, ws.scope.get("subprotocols")
            )
            if self.authorizer is not None:
                if t is not None:
                    # Connecting to a pod is creating an exec, attach or port-forward.
                    attrs = _connect_attributes(user, t)
                else:
                    q = ws.query_params
                    attrs = path_attributes(
                        user, "GET", ws.url.path, flag(q, "watch"), q.get("fieldSelector", "")
                    )
                self.authorizer.check(attrs)
        except ApiError as e:
            await ws.close(1008, e.message[:120])  # a close reason holds 123 bytes
            return
        with _tracer.start_as_current_span(
            f"WEBSOCKET {ws.url.path}",
            context=tracing.extract(ws.headers),
            kind=trace.SpanKind.SERVER,
            attributes={"http.target": ws.url.path},
        ):
            try:
                if remote is not None:
                    assert self.aggregator is not None
                    await self.aggregator.proxy_websocket(ws, remote, user)
                else:
                    assert t is not None
                    await self._pod_stream(ws, t)
            except Exception:
                log.exception("websocket request failed", path=ws.url.path)
                with contextlib.suppress(Exception):
                    await ws.close(1011)

    async def _pod_stream(self, ws: WebSocket, t: Target) -> None:
        assert t.namespace is not None and t.name
        if t.subresource in ("exec", "attach"):
            await self.pod_proxy.exec(ws, t.namespace, t.name, t.subresource)
        elif t.subresource == "portforward":
            await self.pod_proxy.port_forward(ws, t.namespace, t.name)
        else:
            await ws.close(1008, f"pods/{t.subresource} is not served over WebSocket")

    async def _route(self, request: Request, path: str, method: str) -> Response:
        remote = request.state.remote
        if remote is not None and self.aggregator is not None:
            return await self.aggregator.proxy(request, remote, request.state.user)
        response = routes.nonresource(request, path, self.is_ready, self.aggregator)
        if response is not None:
            return response
        target = getattr(request.state, "target", None) or parse_path(path)
        request.state.target = target  # for the request metrics, without parsing again
        if target is None:
            raise ApiError(
                404,
                errors.Reason.NOT_FOUND,
                f"the server could not find the requested resource ({path})",
            )
        return await self._resource(request, method, target)


def request_attributes(
    user: UserInfo, request: Request, path: str, method: str, remote: bool = False
) -> RequestAttributes:
    """What the authorizer decides on (kube's RequestInfo): a resource request when the
    path names a served resource (or any resource of a ``remote`` APIService's group
    version), else a non-resource path with the method as verb."""
    if remote:
        q = request.query_params
        return path_attributes(user, method, path, flag(q, "watch"), q.get("fieldSelector", ""))
    try:
        t = parse_path(path)
    except ApiError:
        t = None  # an unknown resource: authorized as a path, then answered 404
    if t is None:
        return RequestAttributes(user, method.lower(), False, path=path)
    request.state.target = t
    verb = _verb(method, t, request)
    name = t.name or ""
    if not name and verb in ("list", "watch"):
        # A list or watch of one object by name counts as that name (resourceNames rules).
        name = single_name(request.query_params.get("fieldSelector", ""))
    return RequestAttributes(
        user,
        verb,
        True,
        path=path,
        api_group=t.info.group,
        api_version=t.info.version,
        resource=t.info.plural,
        subresource=t.subresource,
        namespace=t.namespace or "",
        name=name,
    )


TOO_MANY_REQUESTS = "Too many requests, please try again later.\n"
_TOO_MANY_HEADERS = {"Retry-After": "1", "X-Content-Type-Options": "nosniff"}


def _long_running(attrs: RequestAttributes) -> bool:
    """Requests APF leaves alone (kube's long-running check, watches aside): proxies, logs,
    exec, attach and port-forward."""
    return attrs.verb == "proxy" or attrs.subresource in _LONG_RUNNING


_LONG_RUNNING = frozenset({"attach", "exec", "proxy", "log", "portforward"})


def _connect_attributes(user: UserInfo, t: Target) -> RequestAttributes:
    return RequestAttributes(
        user,
        "create",
        True,
        resource=t.info.plural,
        subresource=t.subresource,
        namespace=t.namespace or "",
        name=t.name or "",
    )


def _verb(method: str, t: Target, request: Request) -> str:
    watch = flag(request.query_params, "watch")
    return verb_for(method, t.name is not None, watch)
