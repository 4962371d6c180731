"""Watch streams of the REST API (kube's ``endpoints/handlers/watch.go``): one JSON event
a line (or Table rows), the initial ADDED events and the ``initial-events-end`` bookmark
of ``sendInitialEvents``, BOOKMARKs while idle, the ``timeoutSeconds`` deadline, and a
410 sent as one ERROR event in a 200 stream, as kube-apiserver does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from skiff import tracing
from skiff.api.errors import ApiError
from skiff.api.queryparams import flag
from skiff.apiserver import printers

from .. import eventstream as ev
from ..store import Store, resolve
from ..watchcache import Event
from .request import Target, int_param, list_options
from .response import JSON, TABLE_CT, dumps, wants_table

_tracer = tracing.tracer("skiff.apiserver.rest")

BOOKMARK_INTERVAL = 5.0


async def serve_watch(store: Store, request: Request, t: Target) -> Response:
    """A watch of ``t``'s collection, streamed until the client goes or the timeout."""
    opts = list_options(request)
    q = request.query_params
    timeout = int_param(q, "timeoutSeconds") or 1800
    bookmarks = flag(q, "allowWatchBookmarks")
    send_initial = flag(q, "sendInitialEvents")
    as_table = wants_table(request)
    include = q.get("includeObject", "Metadata")
    info = t.info

    def line(etype: str, obj: dict[str, Any]) -> bytes:
        if as_table:
            obj = printers.table_for(info, [obj], include_object=include)
        return dumps({"type": etype, "object": obj}) + b"\n"

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
        watch, initial, since = await store.watch(
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
        return Response(dumps({"type": "ERROR", "object": e.status()}) + b"\n", media_type=JSON)

    def bookmark(rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}
        return dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

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
                    try:
                        items = await resolve(items)
                    except ApiError as e:  # a conversion webhook failed: the watch ends
                        yield dumps({"type": "ERROR", "object": e.status()}) + b"\n"
                        return
                    yield b"".join(items)
                elif bookmarks and watch.caught_up():
                    yield bookmark(store.revision)
        finally:
            store.unwatch(info, watch)

    ct = TABLE_CT if as_table else JSON
    return StreamingResponse(
        stream(), media_type=ct, headers={"Cache-Control": "no-cache, private"}
    )
