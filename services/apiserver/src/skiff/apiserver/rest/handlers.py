"""The verbs on resources and their subresources, as kube-apiserver's
``endpoints/handlers/{get,create,update,patch,delete}.go``: which verb a method on a
resource path is, then get, list, create, update (PUT), patch (by the patch's media
type), delete and deletecollection on the store, and the registry's subresources
(status, scale, binding, eviction, finalize); pods/log goes to the kubelet.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.queryparams import flag
from skiff.apiserver import printers

from .. import componentstatus
from ..authentication import reviews
from ..authentication.authenticator import Authenticator
from ..authorization import Authorizer
from ..authorization import reviews as authz_reviews
from ..podproxy import PodProxy
from ..registry import Subresource
from ..registry.options import require_object
from ..store import Store, WriteOptions
from .request import Target, delete_options, list_options, read_body, write_options
from .response import TABLE_CT, json_response, object_response, wants_table, with_warnings
from .watch import serve_watch


class ResourceHandlers:
    """The resource verbs of :class:`~skiff.apiserver.rest.RestApi`."""

    # Set up by RestApi.__init__.
    store: Store
    pod_proxy: PodProxy
    authenticator: Authenticator | None
    authorizer: Authorizer | None

    async def _resource(self, request: Request, method: str, t: Target) -> Response:
        info = t.info
        if info.verbs == ("create",):
            return await self._review(request, method, t)
        if info.verbs == ("get", "list"):
            return await self._component_statuses(request, method, t)
        if t.name is None:
            if method == "GET":
                if flag(request.query_params, "watch"):
                    return await serve_watch(self.store, request, t)
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
        if t.subresource in ("log", "proxy", "token"):
            raise ApiError(
                503,
                errors.Reason.SERVICE_UNAVAILABLE,
                f"{info.plural}/{t.subresource} is not served yet",
            )
        if method == "GET":
            obj = await self.store.get(info, t.namespace, t.name)
            return object_response(request, info, obj)
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

    async def _review(self, request: Request, method: str, t: Target) -> Response:
        """A review (TokenReview, SelfSubjectReview): answered, never stored."""
        info = t.info
        if info.namespaced and t.namespace is None and t.name is None and method == "POST":
            raise errors.method_not_allowed(
                f"create {info.plural} needs a namespace in the path "
                f"(/namespaces/<ns>/{info.plural})"
            )
        if method != "POST" or t.name is not None:
            raise errors.method_not_allowed(f"{t.info.plural} only supports POST (create)")
        body = require_object((await read_body(request))[0])
        user, authz = request.state.user, self.authorizer
        plural = t.info.plural
        if plural == "tokenreviews":
            answer = await reviews.token_review(self.authenticator, body)
        elif plural == "selfsubjectreviews":
            answer = reviews.self_subject_review(user)
        elif plural == "subjectaccessreviews":
            answer = authz_reviews.subject_access_review(authz, body)
        elif plural == "localsubjectaccessreviews":
            assert t.namespace is not None
            answer = authz_reviews.local_subject_access_review(authz, body, t.namespace)
        elif plural == "selfsubjectaccessreviews":
            answer = authz_reviews.self_subject_access_review(authz, body, user)
        else:
            answer = authz_reviews.self_subject_rules_review(authz, body, user)
        return json_response(answer, 201)

    async def _component_statuses(self, request: Request, method: str, t: Target) -> Response:
        """ComponentStatuses: probed now, never stored; with kube's deprecation warning."""
        if method != "GET" or t.subresource or flag(request.query_params, "watch"):
            raise errors.method_not_allowed(f"{t.info.plural} only supports get and list")
        warned = WriteOptions(warnings=[componentstatus.DEPRECATION])
        if t.name is not None:
            obj = await componentstatus.component_status(self.store.etcd, t.name)
            return object_response(request, t.info, obj, 200, warned)
        items = await componentstatus.component_statuses(self.store.etcd)
        return with_warnings(list_response(request, t, items, {}), warned)

    async def _list(self, request: Request, t: Target) -> Response:
        opts = list_options(request)
        result = await self.store.list(t.info, t.namespace, opts)
        meta: dict[str, Any] = {"resourceVersion": str(result.resource_version)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        return list_response(request, t, result.items, meta)

    async def _create(self, request: Request, t: Target) -> Response:
        body, _ = await read_body(request)
        obj = require_object(body)
        opts = write_options(request)
        if t.subresource:
            raise errors.method_not_allowed(f"POST is not supported on {t.subresource}")
        created = await self.store.create(t.info, t.namespace, obj, opts)
        return object_response(request, t.info, created, 201, opts)

    async def _update(self, request: Request, t: Target) -> Response:
        body, _ = await read_body(request)
        obj = require_object(body)
        opts = write_options(request)
        assert t.name is not None
        updated = await self.store.update(
            t.info, t.namespace, t.name, obj, opts, subresource=t.subresource
        )
        return self._reply(request, t, updated, opts)

    async def _patch(self, request: Request, t: Target) -> Response:
        body, media = await read_body(request)
        opts = write_options(request)
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
        opts = await delete_options(request)
        assert t.name is not None
        obj, gone_now = await self.store.delete(t.info, t.namespace, t.name, opts)
        return object_response(request, t.info, obj, 200 if gone_now else 202)

    async def _delete_collection(self, request: Request, t: Target) -> Response:
        opts = await delete_options(request)
        deleted = await self.store.delete_collection(
            t.info, t.namespace, list_options(request), opts
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
            opts = write_options(request)
            created = await self.store.create_subresource(
                t.info, t.namespace, t.name, t.subresource, obj, opts
            )
            # A Status answer (an eviction's) carries its own code, as kube's handler reads it.
            code = created.get("code", 201) if created.get("kind") == "Status" else 201
            return with_warnings(json_response(created, code), opts)
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
            return with_warnings(resp, opts) if opts else resp
        return object_response(request, t.info, obj, 200, opts)


def list_response(
    request: Request, t: Target, items: list[dict[str, Any]], meta: dict[str, Any]
) -> Response:
    """A list of ``t``'s resource, or the Table kubectl asks for (``meta`` is its
    ListMeta: resourceVersion, continue)."""
    if wants_table(request):
        body = printers.table_for(
            t.info,
            items,
            include_object=request.query_params.get("includeObject", "Metadata"),
            list_meta=meta,
        )
        return json_response(body, media_type=TABLE_CT)
    listed = {"kind": t.info.list_kind, "apiVersion": t.info.api_version, "metadata": meta,
              "items": items}  # fmt: skip
    return json_response(listed)


_SUBRESOURCE_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
