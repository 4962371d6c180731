"""The object API over gRPC (``proto/skiff/rpc/v1/objects.proto``), plus health and reflection.

Requests go through the same :class:`~.store.Store` as REST, so admission,
validation and storage rules are identical. Errors are gRPC statuses carrying
the Kubernetes ``Status`` JSON in the ``k8s-status-bin`` trailer.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from skiff import tracing
from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.log import get_logger
from skiff.rpc.v1 import objects_pb2 as pb
from skiff.rpc.v1 import objects_pb2_grpc as pb_grpc
from skiff.tlsserving import ServingCertificates

from . import store as st
from .authentication.authenticator import Authenticator
from .authentication.user import UNSECURED_USER, UserInfo
from .authorization import Authorizer, RequestAttributes
from .store import DeleteOptions, ListOptions, Store, WriteOptions, resolve

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.grpc")

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ABORTED,
    410: grpc.StatusCode.OUT_OF_RANGE,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
STATUS_TRAILER = "k8s-status-bin"
_PATCH_TYPES = {
    pb.PATCH_TYPE_JSON: st.PATCH_JSON,
    pb.PATCH_TYPE_MERGE: st.PATCH_MERGE,
    pb.PATCH_TYPE_STRATEGIC_MERGE: st.PATCH_STRATEGIC,
    pb.PATCH_TYPE_APPLY: st.PATCH_APPLY,
}


def _info(ref: pb.ResourceRef) -> ResourceInfo:
    info = REGISTRY.by_path(ref.group, ref.version or "v1", ref.resource)
    if info is None:
        gv = f"{ref.group}/{ref.version}" if ref.group else ref.version
        raise ApiError(
            404,
            errors.Reason.NOT_FOUND,
            f"the server could not find the requested resource ({ref.resource} in {gv or 'v1'})",
        )
    return info


def _ns(info: ResourceInfo, ref: pb.ResourceRef) -> str | None:
    return (ref.namespace or None) if info.namespaced else None


def _named(info: ResourceInfo, ref: pb.ResourceRef) -> str:
    if not ref.name:
        raise errors.bad_request("ref.name is required")
    if info.namespaced and not ref.namespace:
        raise errors.bad_request(f"ref.namespace is required for {info.plural}")
    return ref.name


def _subresource(store: Store, info: ResourceInfo, ref: pb.ResourceRef) -> str:
    """``ref.subresource``, if the registry serves it (status, scale, binding, eviction,
    finalize); the streaming ones (log, exec, attach, portforward, proxy) are REST's."""
    sub = ref.subresource
    if not sub:
        return ""
    if sub not in info.subresources:
        raise ApiError(
            404,
            errors.Reason.NOT_FOUND,
            f"the server could not find the requested resource ({info.plural}/{sub})",
        )
    if store.subresource(info, sub) is None:
        raise errors.bad_request(f"subresource {sub!r} is not served over gRPC; use REST")
    return sub


def _obj(raw: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise errors.bad_request(f"object is not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise errors.bad_request("object must be a JSON object")
    return obj


def _write_opts(o: pb.WriteOptions, context: grpc.aio.ServicerContext) -> WriteOptions:
    fv = o.field_validation or "Strict"
    if fv not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(
            f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not "{fv}"'
        )
    manager = (
        o.field_manager
        or dict(context.invocation_metadata() or ())
        .get("user-agent", "grpc")
        .split("/")[0]
        .split(" ")[0]
    )
    return WriteOptions(
        dry_run=o.dry_run,
        field_manager=manager,
        field_validation=fv,
        force=o.force,
        user=_user.get(),
    )


async def _abort(context: grpc.aio.ServicerContext, e: ApiError) -> None:
    context.set_trailing_metadata(((STATUS_TRAILER, orjson.dumps(e.status())),))
    await context.abort(_CODES.get(e.code, grpc.StatusCode.INTERNAL), e.message)


@dataclass(frozen=True, slots=True)
class GrpcSecurity:
    """The REST API's authenticator and authorizer, applied to every call."""

    authenticator: Authenticator
    authorizer: Authorizer | None


_user: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar("grpc_user", default=None)
_VERBS = {
    "Get": "get",
    "List": "list",
    "Watch": "watch",
    "Create": "create",
    "Update": "update",
    "Patch": "patch",
    "Delete": "delete",
}


async def _admit_call(
    security: GrpcSecurity | None, method: str, request: Any, context: grpc.aio.ServicerContext
) -> None:
    """Authenticate the caller (bearer token, else anonymous) and authorize the call as the
    REST request it stands for; ApiError 401/403 otherwise."""
    if security is None:
        _user.set(UNSECURED_USER)
        return
    # Python's gRPC can require a client certificate or not ask for one, not ask and verify
    # one if given as REST does: it does not ask, and callers authenticate with a token.
    metadata = {
        k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)
    }
    user = await security.authenticator.authenticate(metadata, None)
    _user.set(user)
    if security.authorizer is None:
        return
    ref = request.ref
    verb = _VERBS[method]
    if verb == "list" and not ref.name and getattr(request, "watch", False):
        verb = "watch"
    security.authorizer.check(
        RequestAttributes(
            user,
            verb,
            True,
            api_group=ref.group,
            api_version=ref.version or "v1",
            resource=ref.resource,
            subresource=ref.subresource,
            namespace=ref.namespace,
            name=ref.name,
        )
    )


def _guard(fn):  # type: ignore[no-untyped-def]
    """Turn ApiError (and any surprise) into a gRPC status with the Status trailer."""

    async def wrapper(self, request, context):  # type: ignore[no-untyped-def]
        ctx = tracing.extract(dict(context.invocation_metadata() or ()))
        with _tracer.start_as_current_span(f"grpc {fn.__name__}", context=ctx):
            try:
                await _admit_call(self.security, fn.__name__, request, context)
                return await fn(self, request, context)
            except ApiError as e:
                await _abort(context, e)
            except (asyncio.CancelledError, grpc.aio.AbortError):
                raise
            except Exception as e:
                log.exception("grpc call failed", method=fn.__name__)
                await _abort(context, errors.internal(f"an internal error occurred: {e}"))

    wrapper.__name__ = fn.__name__
    return wrapper


class ObjectService(pb_grpc.ObjectServiceServicer):
    """Get, List, Create, Update, Patch, Delete and Watch on any served resource, and
    Get/Create/Update/Patch on the subresources the registry serves (``ref.subresource``:
    status, scale, binding, eviction, finalize)."""

    def __init__(self, store: Store, security: GrpcSecurity | None = None) -> None:
        self.store = store
        self.security = security

    @_guard
    async def Get(self, request: pb.GetRequest, context) -> pb.ObjectReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        obj = await self.store.get(
            info,
            _ns(info, request.ref),
            _named(info, request.ref),
            subresource=_subresource(self.store, info, request.ref),
        )
        return pb.ObjectReply(object=orjson.dumps(obj))

    @_guard
    async def List(self, request: pb.ListRequest, context) -> pb.ListReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        result = await self.store.list(info, _ns(info, request.ref), _list_opts(request))
        return pb.ListReply(
            items=[orjson.dumps(o) for o in result.items],
            resource_version=str(result.resource_version),
            **{"continue": result.continue_token},
        )

    @_guard
    async def Create(self, request: pb.CreateRequest, context) -> pb.ObjectReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        if info.namespaced and not request.ref.namespace:
            raise errors.bad_request(f"ref.namespace is required for {info.plural}")
        opts = _write_opts(request.options, context)
        sub = _subresource(self.store, info, request.ref)
        if sub:
            # POST to a subresource of the named object (pods/binding, pods/eviction).
            obj = await self.store.create_subresource(
                info,
                _ns(info, request.ref),
                _named(info, request.ref),
                sub,
                _obj(request.object),
                opts,
            )
        else:
            obj = await self.store.create(info, _ns(info, request.ref), _obj(request.object), opts)
        return pb.ObjectReply(object=orjson.dumps(obj), warnings=opts.warnings)

    @_guard
    async def Update(self, request: pb.UpdateRequest, context) -> pb.ObjectReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        opts = _write_opts(request.options, context)
        obj = await self.store.update(
            info,
            _ns(info, request.ref),
            _named(info, request.ref),
            _obj(request.object),
            opts,
            subresource=_subresource(self.store, info, request.ref),
        )
        return pb.ObjectReply(object=orjson.dumps(obj), warnings=opts.warnings)

    @_guard
    async def Patch(self, request: pb.PatchRequest, context) -> pb.ObjectReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        opts = _write_opts(request.options, context)
        patch_type = _PATCH_TYPES.get(request.type)
        if patch_type is None:
            raise errors.bad_request("patch type is required")
        if request.type == pb.PATCH_TYPE_APPLY and not request.options.field_manager:
            opts.field_manager = ""
        try:
            body = orjson.loads(request.patch)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"patch is not valid JSON: {e}") from e
        obj = await self.store.patch(
            info,
            _ns(info, request.ref),
            _named(info, request.ref),
            patch_type,
            body,
            opts,
            subresource=_subresource(self.store, info, request.ref),
        )
        return pb.ObjectReply(object=orjson.dumps(obj), warnings=opts.warnings)

    @_guard
    async def Delete(self, request: pb.DeleteRequest, context) -> pb.DeleteReply:  # type: ignore[no-untyped-def]
        info = _info(request.ref)
        if sub := _subresource(self.store, info, request.ref):
            raise errors.method_not_allowed(f"DELETE is not supported on {info.plural}/{sub}")
        opts = DeleteOptions(
            grace_period_seconds=request.grace_period_seconds
            if request.HasField("grace_period_seconds")
            else None,
            propagation_policy=request.propagation_policy or None,
            precondition_uid=request.precondition_uid or None,
            precondition_rv=request.precondition_resource_version or None,
            user=_user.get(),
            dry_run=request.dry_run,
        )
        obj, deleted = await self.store.delete(
            info, _ns(info, request.ref), _named(info, request.ref), opts
        )
        return pb.DeleteReply(object=orjson.dumps(obj), deleted=deleted)

    async def Watch(self, request: pb.WatchRequest, context):  # type: ignore[no-untyped-def]
        try:
            await _admit_call(self.security, "Watch", request, context)
            info = _info(request.ref)
            opts = _list_opts(request)
            watch, initial, _ = await self.store.watch(
                info,
                _ns(info, request.ref),
                opts,
                render=lambda e: pb.WatchEvent(type=e.type, object=orjson.dumps(e.obj)),
                render_key=("grpc",),
                send_initial=request.send_initial_events,
            )
        except ApiError as e:
            await _abort(context, e)
            return
        timeout = request.timeout_seconds or 1800
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            for obj in initial:
                yield pb.WatchEvent(type="ADDED", object=orjson.dumps(obj))
            while (left := deadline - loop.time()) > 0:
                items = await watch.next(min(left, 5.0))
                if items is None:
                    return
                try:
                    items = await resolve(items)
                except ApiError as e:
                    yield pb.WatchEvent(type="ERROR", object=orjson.dumps(e.status()))
                    return
                for item in items:
                    yield item
                if not items and request.allow_bookmarks and watch.caught_up():
                    rv = str(self.store.revision)
                    yield pb.WatchEvent(
                        type="BOOKMARK",
                        object=orjson.dumps(
                            {
                                "kind": info.kind,
                                "apiVersion": info.api_version,
                                "metadata": {"resourceVersion": rv},
                            }
                        ),
                    )
        finally:
            self.store.unwatch(info, watch)


def _list_opts(request) -> ListOptions:  # type: ignore[no-untyped-def]
    return ListOptions.parse(
        request.label_selector,
        request.field_selector,
        limit=getattr(request, "limit", 0),
        continue_token=getattr(request, "continue", ""),
        resource_version=request.resource_version,
        resource_version_match=getattr(request, "resource_version_match", ""),
    )


async def start_grpc(
    store: Store,
    address: str,
    *,
    serving: ServingCertificates | None = None,
    security: GrpcSecurity | None = None,
) -> tuple[grpc.aio.Server, health.HealthServicer]:
    """Start the gRPC server with the object service, health and reflection: over TLS with
    the REST API's certificate (and its token authentication and its authorization) when
    ``serving`` is given, else in plain text."""
    server = grpc.aio.server()
    pb_grpc.add_ObjectServiceServicer_to_server(ObjectService(store, security), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        pb.DESCRIPTOR.services_by_name["ObjectService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    if serving is not None:
        read = lambda path: Path(path).read_bytes()  # noqa: E731
        credentials = grpc.ssl_server_credentials(
            [(read(serving.key_file), read(serving.cert_file))]
        )
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    await server.start()
    return server, health_servicer


def set_serving(health_servicer: health.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    health_servicer.set("", status)
    health_servicer.set("skiff.rpc.v1.ObjectService", status)
