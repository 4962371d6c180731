"""A small asyncio client for the gRPC object API.

Objects are plain dicts (the Kubernetes JSON form); failures raise
:class:`skiff.api.errors.ApiError` rebuilt from the server's ``Status`` trailer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import orjson

from skiff.api.errors import ApiError, Cause, Reason
from skiff.rpc.v1 import objects_pb2 as pb
from skiff.rpc.v1 import objects_pb2_grpc as pb_grpc

STATUS_TRAILER = "k8s-status-bin"
PATCH_TYPES = {
    "json": pb.PATCH_TYPE_JSON,
    "merge": pb.PATCH_TYPE_MERGE,
    "strategic": pb.PATCH_TYPE_STRATEGIC_MERGE,
    "apply": pb.PATCH_TYPE_APPLY,
}


def _error(e: grpc.aio.AioRpcError) -> ApiError:
    for key, value in e.trailing_metadata() or ():
        if key == STATUS_TRAILER:
            st = orjson.loads(value)
            details = st.get("details") or {}
            return ApiError(
                st.get("code", 500),
                Reason(st.get("reason") or "InternalError"),
                st.get("message", ""),
                kind=details.get("kind", ""),
                name=details.get("name", ""),
                group=details.get("group", ""),
                causes=[
                    Cause(c.get("field", ""), c.get("message", ""), c.get("reason", ""))
                    for c in details.get("causes") or ()
                ],
            )
    return ApiError(503, Reason.SERVICE_UNAVAILABLE, f"{e.code().name}: {e.details()}")


def ref(
    resource: str,
    *,
    group: str = "",
    version: str = "v1",
    namespace: str = "",
    name: str = "",
    subresource: str = "",
) -> pb.ResourceRef:
    """A :class:`ResourceRef` for ``resource`` (plural) in ``group``/``version``."""
    return pb.ResourceRef(
        group=group,
        version=version,
        resource=resource,
        namespace=namespace,
        name=name,
        subresource=subresource,
    )


class ObjectClient:
    """``async with ObjectClient("127.0.0.1:6444") as c: await c.get(ref("pods", ...))``."""

    def __init__(
        self,
        target: str,
        *,
        ca: bytes | None = None,
        client_cert: tuple[bytes, bytes] | None = None,
        token: str = "",
    ) -> None:
        """Plain text, or TLS when ``ca`` (PEM) is given, with a client certificate
        (``(cert, key)`` PEM) or a bearer ``token``, as REST clients authenticate."""
        self.target = target
        self.ca = ca
        self.client_cert = client_cert
        self.token = token
        self._channel: grpc.aio.Channel | None = None
        self._stub: pb_grpc.ObjectServiceStub | None = None

    async def __aenter__(self) -> ObjectClient:
        if self.ca is None:
            self._channel = grpc.aio.insecure_channel(self.target)
        else:
            cert, key = self.client_cert or (None, None)
            creds = grpc.ssl_channel_credentials(self.ca, key, cert)
            if self.token:
                token = grpc.access_token_call_credentials(self.token)
                creds = grpc.composite_channel_credentials(creds, token)
            self._channel = grpc.aio.secure_channel(self.target, creds)
        self._stub = pb_grpc.ObjectServiceStub(self._channel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._channel is not None:
            await self._channel.close()

    @property
    def stub(self) -> pb_grpc.ObjectServiceStub:
        if self._stub is None:
            raise RuntimeError("use ObjectClient as an async context manager")
        return self._stub

    async def _call(self, method, request):  # type: ignore[no-untyped-def]
        try:
            return await method(request)
        except grpc.aio.AioRpcError as e:
            raise _error(e) from None

    async def get(self, r: pb.ResourceRef) -> dict[str, Any]:
        reply = await self._call(self.stub.Get, pb.GetRequest(ref=r))
        return orjson.loads(reply.object)

    async def list(
        self,
        r: pb.ResourceRef,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_: str = "",
        resource_version: str = "",
    ) -> tuple[list[dict[str, Any]], str, str]:
        """(items, resourceVersion, continue token)."""
        req = pb.ListRequest(
            ref=r,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit,
            resource_version=resource_version,
            **{"continue": continue_},
        )
        reply = await self._call(self.stub.List, req)
        return (
            [orjson.loads(i) for i in reply.items],
            reply.resource_version,
            getattr(reply, "continue"),
        )

    async def create(
        self,
        r: pb.ResourceRef,
        obj: dict[str, Any],
        *,
        field_manager: str = "",
        field_validation: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        opts = pb.WriteOptions(
            field_manager=field_manager, field_validation=field_validation, dry_run=dry_run
        )
        reply = await self._call(
            self.stub.Create, pb.CreateRequest(ref=r, object=orjson.dumps(obj), options=opts)
        )
        return orjson.loads(reply.object)

    async def update(
        self, r: pb.ResourceRef, obj: dict[str, Any], *, field_manager: str = ""
    ) -> dict[str, Any]:
        opts = pb.WriteOptions(field_manager=field_manager)
        reply = await self._call(
            self.stub.Update, pb.UpdateRequest(ref=r, object=orjson.dumps(obj), options=opts)
        )
        return orjson.loads(reply.object)

    async def patch(
        self,
        r: pb.ResourceRef,
        patch: Any,
        *,
        type: str = "merge",
        field_manager: str = "",
        force: bool = False,
    ) -> dict[str, Any]:
        opts = pb.WriteOptions(field_manager=field_manager, force=force)
        req = pb.PatchRequest(
            ref=r, type=PATCH_TYPES[type], patch=orjson.dumps(patch), options=opts
        )
        reply = await self._call(self.stub.Patch, req)
        return orjson.loads(reply.object)

    async def delete(
        self,
        r: pb.ResourceRef,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
    ) -> tuple[dict[str, Any], bool]:
        req = pb.DeleteRequest(ref=r, propagation_policy=propagation_policy)
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        reply = await self._call(self.stub.Delete, req)
        return orjson.loads(reply.object), reply.deleted

    async def watch(
        self,
        r: pb.ResourceRef,
        *,
        resource_version: str = "",
        label_selector: str = "",
        timeout_seconds: int = 0,
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Yield (type, object) until the server ends the watch."""
        req = pb.WatchRequest(
            ref=r,
            resource_version=resource_version,
            label_selector=label_selector,
            timeout_seconds=timeout_seconds,
            allow_bookmarks=allow_bookmarks,
        )
        call = self.stub.Watch(req)
        try:
            async for event in call:
                yield event.type, orjson.loads(event.object)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise _error(e) from None
        finally:
            call.cancel()
