"""An asyncio client for the Kubernetes REST API, shared by every Skiff component.

Objects are plain dicts (the Kubernetes JSON form). Every failure raises
:class:`skiff.api.errors.ApiError`: rebuilt from the server's ``Status`` on a non-2xx
answer, or ``503 ServiceUnavailable`` when the server cannot be reached.

    async with ApiClient("http://127.0.0.1:6443", user_agent="skiff-scheduler") as api:
        pod = await api.get("pods", "web-0", "default")
        async for type_, obj in api.watch("pods", "default", resource_version=rv):
            ...

One connection pool serves all requests of a client; watches each hold one
connection while they stream.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias
from urllib.parse import quote

import httpx
import orjson

from skiff import tracing
from skiff.api.errors import ApiError, Cause, Reason, unavailable
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.client.kubeconfig import KubeConfig, load_kubeconfig
from skiff.log import get_logger

log = get_logger(__name__)

Obj: TypeAlias = dict[str, Any]
Res: TypeAlias = ResourceInfo | str

JSON = "application/json"
PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    # JSON is YAML: an apply body is sent as JSON under the YAML media type.
    "apply": "application/apply-patch+yaml",
}
DEFAULT_PAGE_SIZE = 500

_REASON_BY_CODE = {
    400: Reason.BAD_REQUEST,
    401: Reason.UNAUTHORIZED,
    403: Reason.FORBIDDEN,
    404: Reason.NOT_FOUND,
    405: Reason.METHOD_NOT_ALLOWED,
    406: Reason.NOT_ACCEPTABLE,
    409: Reason.CONFLICT,
    410: Reason.GONE,
    413: Reason.REQUEST_ENTITY_TOO_LARGE,
    415: Reason.UNSUPPORTED_MEDIA_TYPE,
    422: Reason.INVALID,
    429: Reason.TOO_MANY_REQUESTS,
    500: Reason.INTERNAL_ERROR,
    503: Reason.SERVICE_UNAVAILABLE,
    504: Reason.TIMEOUT,
}

# -- resources -----------------------------------------------------------------------


def _build_names() -> dict[str, ResourceInfo]:
    names: dict[str, ResourceInfo] = {}
    # Qualified names first, so they win; then bare ones, first registered wins
    # (core ``events`` over ``events.events.k8s.io``).
    for r in REGISTRY.resources:
        names[r.qualified] = r
        if r.group:
            names[f"{r.singular}.{r.group}"] = r
    for r in REGISTRY.resources:
        for n in (r.plural, r.singular, *r.short_names):
            names.setdefault(n, r)
    return names


_NAMES = _build_names()


def resource(name: str) -> ResourceInfo:
    """The resource called ``name``: plural, ``plural.group``, kind (any case) or short name.

    Raises ``ValueError`` for a name the registry does not know.
    """
    info = _NAMES.get(name.lower())
    if info is None:
        raise ValueError(f"unknown resource {name!r}")
    return info


def _info(res: Res) -> ResourceInfo:
    return res if isinstance(res, ResourceInfo) else resource(res)


def resource_path(
    info: ResourceInfo, namespace: str | None = None, name: str = "", subresource: str = ""
) -> str:
    """The URL path of a collection, an object or one of its subresources."""
    path = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
    if info.namespaced and namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{info.plural}"
    if name:
        path += "/" + quote(name, safe=":@")
        if subresource:
            path += f"/{subresource}"
    return path


# -- errors --------------------------------------------------------------------------


def _reason(value: Any, code: int) -> Reason:
    try:
        return Reason(value)
    except ValueError:
        return _REASON_BY_CODE.get(
            code, Reason.INTERNAL_ERROR if code >= 500 else Reason.BAD_REQUEST
        )


def status_error(status: Obj, code: int | None = None) -> ApiError:
    """The :class:`ApiError` a ``Status`` object describes (``code`` when it has none)."""
    code = int(status.get("code") or code or 500)
    details = status.get("details") or {}
    retry = details.get("retryAfterSeconds")
    return ApiError(
        code,
        _reason(status.get("reason"), code),
        status.get("message") or "",
        kind=details.get("kind", ""),
        name=details.get("name", ""),
        group=details.get("group", ""),
        causes=[
            Cause(c.get("field", ""), c.get("message", ""), c.get("reason", ""))
            for c in details.get("causes") or ()
        ],
        retry_after=int(retry) if retry is not None else None,
    )


def _status_of(resp: httpx.Response) -> Obj | None:
    """An error response's ``Status`` (None: the body is not one, so it is not the
    apiserver's)."""
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and body.get("kind") == "Status" else None


def _response_error(resp: httpx.Response, status: Obj | None) -> ApiError:
    """The error of a response whose ``Status`` (:func:`_status_of`) is ``status``."""
    code = resp.status_code
    if status is not None:
        err = status_error(status, code)
        err.code = code
    else:
        text = resp.text.strip() or resp.reason_phrase
        err = ApiError(code, _reason(None, code), f"{code} {resp.request.method}: {text}")
    if err.retry_after is None and (ra := resp.headers.get("retry-after", "")).isdigit():
        err.retry_after = int(ra)
    return err


def _transport_error(e: httpx.TransportError, method: str, url: str) -> ApiError:
    return unavailable(f"{method} {url}: {type(e).__name__}: {str(e) or 'connection failed'}")


class ApiClient:
    """Asyncio client for the Kubernetes REST API; use as an async context manager.

    ``server`` is the base URL (``http://host:port`` or ``https://...``). ``token`` is
    sent as a bearer token; ``ssl_context`` sets CA and client certificates for https.
    ``transport`` replaces the network (tests pass ``httpx.MockTransport``).
    """

    def __init__(
        self,
        server: str,
        *,
        user_agent: str = "skiff",
        timeout: float = 30,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_keepalive: int = 32,
        max_in_flight: int = 16,
        ca_context: ssl.SSLContext | None = None,
        token_file: str | None = None,
    ) -> None:
        """``ca_context``: the server's CA alone, for the clients :meth:`with_token` makes
        (default: ``ssl_context``); ``token_file``: read the token again from there every
        minute (a projected service-account token is renewed under the pod)."""
        self.server = server.rstrip("/")
        self._options = {
            "user_agent": user_agent,
            "timeout": timeout,
            "ssl_context": ca_context or ssl_context,
            "transport": transport,
            "max_keepalive": max_keepalive,
            "max_in_flight": max_in_flight,
        }
        # Requests (not watches) in flight at once. httpx scans its whole pool on every
        # request: 500 concurrent creates cost more CPU in the pool than in the work.
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.timeout = timeout
        headers = self._headers = {"User-Agent": user_agent, "Accept": JSON}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        # Watches hold a connection each for their whole life: no cap on connections,
        # or a component with many informers would starve its own requests.
        self._new_http = lambda: httpx.AsyncClient(
            base_url=self.server,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=max_keepalive),
            verify=ssl_context if ssl_context is not None else True,
            transport=transport,
            trust_env=False,
        )
        self._ssl_context = ssl_context
        self._http = self._new_http()
        self._reset_at = 0.0
        self._token_file = token_file
        self._token_read = time.monotonic()

    @classmethod
    def from_kubeconfig(
        cls, path: str | None = None, context: str | None = None, **kwargs: Any
    ) -> ApiClient:
        """A client for ``context`` of a kubeconfig; see :func:`.kubeconfig.load_kubeconfig`.

        ``kwargs`` go to the constructor.
        """
        return cls.from_config(load_kubeconfig(path, context), **kwargs)

    @classmethod
    def from_config(cls, cfg: KubeConfig, **kwargs: Any) -> ApiClient:
        """A client for a loaded configuration (a kubeconfig's, or in-cluster)."""
        return cls(
            cfg.server,
            token=cfg.token,
            ssl_context=cfg.ssl_context,
            ca_context=cfg.ca_context,
            token_file=cfg.token_file,
            **kwargs,
        )

    def _refresh_token(self) -> None:
        """Read the token file again once a minute, as client-go does."""
        if self._token_file is None or time.monotonic() - self._token_read < 60:
            return
        self._token_read = time.monotonic()
        try:
            token = Path(self._token_file).read_text().strip()
        except OSError as e:
            log.warning("cannot read the token file", path=self._token_file, error=str(e))
            return
        if token:
            self.set_token(token)

    def with_token(self, token: str, *, user_agent: str | None = None) -> ApiClient:
        """A client for the same server that authenticates with ``token`` only (no client
        certificate): a controller's service-account client."""
        options = dict(self._options)
        if user_agent:
            options["user_agent"] = user_agent
        return ApiClient(self.server, token=token, **options)  # type: ignore[arg-type]

    def set_token(self, token: str) -> None:
        """Authenticate later requests with ``token`` (a refreshed one)."""
        self._headers["Authorization"] = f"Bearer {token}"
        self._http.headers["Authorization"] = f"Bearer {token}"

    def use_client_certificate(self, path: str, *, grace: float = 60.0) -> None:
        """Present the certificate and key in ``path`` (a renewed one) from now on: new
        connections carry it; those kept alive with the old one close after ``grace``
        seconds (watches on them reconnect), as client-go does after a rotation."""
        if self._ssl_context is None:
            raise ValueError("the client has no TLS context to load a certificate into")
        self._ssl_context.load_cert_chain(path)
        old, self._http = self._http, self._new_http()
        loop = asyncio.get_running_loop()
        self._retired = loop.call_later(grace, lambda: loop.create_task(old.aclose()))

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- plumbing --------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = "",
    ) -> Obj:
        self._refresh_token()
        headers: dict[str, str] = {"Accept": accept} if accept else {}
        tracing.inject(headers)
        content = None
        if body is not None:
            content = orjson.dumps(body)
            headers["Content-Type"] = content_type
        try:
            async with self._in_flight:
                resp = await self._http.request(
                    method, path, params=params, content=content, headers=headers
                )
        except httpx.TransportError as e:
            raise _transport_error(e, method, path) from e
        if not 200 <= resp.status_code < 300:
            status = _status_of(resp)
            if status is None:
                await self._drop_connections()
            raise _response_error(resp, status)
        if "warning" in resp.headers:
            for w in resp.headers.get_list("warning"):
                log.warning("server warning", method=method, path=path, warning=w)
        return orjson.loads(resp.content) if resp.content else {}

    async def _drop_connections(self) -> None:
        """Forget every kept-alive connection (at most once a second).

        An error that is not a Kubernetes ``Status`` came from something that is not an
        apiserver: a Service address dialled before kube-proxy's rules were in place
        reaches whatever listens behind the default route. Reused, that connection would
        keep answering every retry; new ones follow the rules now in place.
        """
        now = time.monotonic()
        if now - self._reset_at < 1.0:
            return
        self._reset_at = now
        old, self._http = self._http, self._new_http()
        log.warning("an answer that is not the apiserver's: reconnecting", server=self.server)
        await old.aclose()

    @staticmethod
    def _namespace(info: ResourceInfo, namespace: str | None, obj: Obj | None = None) -> str | None:
        if not info.namespaced:
            return None
        ns = namespace or ((obj or {}).get("metadata") or {}).get("namespace")
        if not ns:
            raise ValueError(f"{info.qualified} are namespaced: give a namespace")
        return ns

    # -- verbs -----------------------------------------------------------------------

    async def discovery(self, path: str) -> Obj:
        """The aggregated discovery document of ``/api`` or ``/apis``
        (``APIGroupDiscoveryList``)."""
        return await self._request(
            "GET",
            path,
            accept="application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )

    async def get(
        self, res: Res, name: str, namespace: str | None = None, *, subresource: str = ""
    ) -> Obj:
        """Read one object (or its ``subresource``, e.g. ``scale``)."""
        info = _info(res)
        path = resource_path(info, self._namespace(info, namespace), name, subresource)
        return await self._request("GET", path)

    async def list(
        self,
        res: Res,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_: str = "",
        resource_version: str = "",
    ) -> Obj:
        """One page of a list: the ``<Kind>List`` object (all namespaces when None)."""
        info = _info(res)
        params: dict[str, str] = {}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if limit:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        if resource_version:
            params["resourceVersion"] = resource_version
        return await self._request("GET", resource_path(info, namespace), params=params)

    async def list_all(
        self,
        res: Res,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = DEFAULT_PAGE_SIZE,
        resource_version: str = "",
    ) -> tuple[list[Obj], str]:
        """Every item, ``limit`` per page following continue tokens: (items, resourceVersion).

        When a continue token has expired (410) the list starts over unpaginated, as
        client-go's pager does.
        """
        items: list[Obj] = []
        token = ""
        while True:
            try:
                page = await self.list(
                    res,
                    namespace,
                    label_selector=label_selector,
                    field_selector=field_selector,
                    limit=limit,
                    continue_=token,
                    resource_version="" if token else resource_version,
                )
            except ApiError as e:
                if e.code != 410 or not token:
                    raise
                log.info("list continue token expired; listing in one page", error=str(e))
                page = await self.list(
                    res, namespace, label_selector=label_selector, field_selector=field_selector
                )
                items = []
                token = ""
            items.extend(page.get("items") or ())
            meta = page.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, meta.get("resourceVersion", "")

    async def create(
        self,
        res: Res,
        obj: Obj,
        namespace: str | None = None,
        *,
        field_manager: str = "",
        dry_run: bool = False,
    ) -> Obj:
        """Create ``obj`` (namespace from the argument, else from its metadata)."""
        info = _info(res)
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if dry_run:
            params["dryRun"] = "All"
        path = resource_path(info, self._namespace(info, namespace, obj))
        return await self._request("POST", path, params=params, body=obj)

    async def update(
        self,
        res: Res,
        obj: Obj,
        namespace: str | None = None,
        *,
        subresource: str = "",
        field_manager: str = "",
    ) -> Obj:
        """Replace ``obj`` (PUT; name from its metadata); 409 when its resourceVersion is stale."""
        info = _info(res)
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("update needs metadata.name in the object")
        params = {"fieldManager": field_manager} if field_manager else None
        path = resource_path(info, self._namespace(info, namespace, obj), name, subresource)
        return await self._request("PUT", path, params=params, body=obj)

    async def patch(
        self,
        res: Res,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        type: str = "merge",
        subresource: str = "",
        field_manager: str = "",
        force: bool = False,
    ) -> Obj:
        """Patch one object; ``type`` is merge, strategic, json or apply.

        ``apply`` is server-side apply and needs ``field_manager``; ``force`` takes
        conflicting fields over from other managers.
        """
        info = _info(res)
        content_type = PATCH_CONTENT_TYPES.get(type)
        if content_type is None:
            raise ValueError(
                f"patch type must be one of {sorted(PATCH_CONTENT_TYPES)}, not {type!r}"
            )
        if type == "apply" and not field_manager:
            raise ValueError("an apply patch needs a field_manager")
        params: dict[str, str] = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        path = resource_path(info, self._namespace(info, namespace), name, subresource)
        return await self._request(
            "PATCH", path, params=params, body=patch, content_type=content_type
        )

    async def delete(
        self,
        res: Res,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: Obj | None = None,
    ) -> Obj:
        """Delete one object; returns it (still there, with deletionTimestamp, on a 202).

        ``preconditions`` is ``{"uid": ..., "resourceVersion": ...}``.
        """
        info = _info(res)
        body: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        path = resource_path(info, self._namespace(info, namespace), name)
        return await self._request("DELETE", path, body=body if len(body) > 2 else None)

    async def create_subresource(
        self, res: Res, name: str, subresource: str, body: Obj, namespace: str | None = None
    ) -> Obj:
        """POST to a subresource: ``pods/binding``, ``pods/eviction``."""
        info = _info(res)
        path = resource_path(info, self._namespace(info, namespace), name, subresource)
        return await self._request("POST", path, body=body)

    async def watch(
        self,
        res: Res,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """Yield ``(type, object)`` (ADDED, MODIFIED, DELETED, BOOKMARK) until the stream ends.

        See :meth:`watch_events` for the trace context of each change as well.

        An ``ERROR`` event raises the :class:`ApiError` it carries (``410`` when
        ``resource_version`` is too old: list again). A broken stream raises 503.
        Close the iterator when leaving early (``contextlib.aclosing``) so the
        connection is released at once.
        """
        async for ev in self.watch_events(
            res,
            namespace,
            resource_version=resource_version,
            label_selector=label_selector,
            field_selector=field_selector,
            timeout_seconds=timeout_seconds,
            allow_bookmarks=allow_bookmarks,
        ):
            yield ev.type, ev.object

    async def watch_events(
        self,
        res: Res,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Like :meth:`watch`, yielding :class:`WatchEvent` with the write's ``traceparent``."""
        info = _info(res)
        params = {"watch": "1"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if timeout_seconds is not None:
            params["timeoutSeconds"] = str(int(timeout_seconds))
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        # A watch is quiet for as long as nothing changes: no read timeout beyond the
        # server's own deadline.
        read = timeout_seconds + self.timeout if timeout_seconds is not None else None
        timeout = httpx.Timeout(self.timeout, read=read)
        path = resource_path(info, namespace)
        self._refresh_token()
        headers: dict[str, str] = {}
        tracing.inject(headers)
        try:
            async with self._http.stream(
                "GET", path, params=params, headers=headers, timeout=timeout
            ) as resp:
                if not 200 <= resp.status_code < 300:
                    await resp.aread()
                    raise _response_error(resp, _status_of(resp))
                async for line in _lines(resp.aiter_bytes()):
                    yield _event(line)
        except httpx.TransportError as e:
            raise _transport_error(e, "WATCH", path) from e


async def _lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Split a byte stream into non-empty lines, without re-copying what is buffered."""
    parts: list[bytes] = []
    async for chunk in chunks:
        if b"\n" not in chunk:
            parts.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if parts:
            parts.append(lines[0])
            lines[0] = b"".join(parts)
            parts = []
        tail = lines.pop()
        if tail:
            parts.append(tail)
        for line in lines:
            if line.strip():
                yield line
    if parts and (last := b"".join(parts)).strip():
        yield last


class WatchEvent(NamedTuple):
    """One watch event; ``traceparent`` is the W3C context of the write, when it was traced."""

    type: str
    object: Obj
    traceparent: str | None = None


def _event(line: bytes) -> WatchEvent:
    try:
        ev = orjson.loads(line)
        etype, obj = ev["type"], ev["object"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ApiError(500, Reason.INTERNAL_ERROR, f"malformed watch event: {line[:200]!r}") from e
    if etype == "ERROR":
        raise status_error(obj if isinstance(obj, dict) else {})
    return WatchEvent(etype, obj, ev.get("traceparent"))
