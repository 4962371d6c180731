"""The generic store: create, read, update, patch, delete, list and watch.

Both the REST and the gRPC front ends call this one path, so admission,
defaulting, validation and storage rules hold whichever door a request uses.
What differs per resource is its strategy (:mod:`.registry`); the rules around
every write are :mod:`.registry.generic`'s; admission plugins run after them
(:mod:`.admission`). Subresources (status, scale, binding, eviction, finalize)
are the registry's handlers, reached through :meth:`Store.get`,
:meth:`Store.create_subresource`, :meth:`Store.update` and :meth:`Store.patch`.
Reads of single objects and paginated lists go to etcd; other lists and all
watches are served from the watch cache once it has reached the revision the
request needs.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry import trace

from skiff import tracing
from skiff.api import errors
from skiff.api import patch as patching
from skiff.api.errors import ApiError
from skiff.api.resources import ResourceInfo
from skiff.api.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from skiff.api.timestamps import rfc3339
from skiff.apiserver import apply as ssa
from skiff.apiserver.storage import (
    Backend,
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyValue,
    StorageError,
    codec,
)
from skiff.apiserver.storage.codec import decode
from skiff.apiserver.strategicpatch import strategic_merge_patch
from skiff.log import get_logger

from . import admission
from .admission import Attributes, Operation
from .allocators import ServiceAllocator
from .registry import Strategy, Subresource, generic, strategy_for
from .registry.options import (
    PATCH_APPLY,
    PATCH_JSON,
    PATCH_MERGE,
    PATCH_STRATEGIC,
    DeleteOptions,
    WriteOptions,
)
from .watchcache import Render, Watch, WatchCache

__all__ = [
    "PATCH_APPLY",
    "PATCH_JSON",
    "PATCH_MERGE",
    "PATCH_STRATEGIC",
    "DeleteOptions",
    "ListOptions",
    "ListResult",
    "Store",
    "WriteOptions",
]

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.apiserver.store")

MAX_OBJECT_BYTES = 1536 * 1024  # etcd's request limit, as kube-apiserver enforces
CONSISTENT_READ_WAIT = 3.0


@dataclass(slots=True)
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""

    @classmethod
    def parse(cls, label_selector: str, field_selector: str, **rest: Any) -> ListOptions:
        """Options from the selector strings of a REST query or a gRPC request."""
        return cls(
            label_selector=parse_label_selector(label_selector) if label_selector else None,
            field_selector=parse_field_selector(field_selector) if field_selector else None,
            **rest,
        )


@dataclass(slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


def _encode_limited(obj: dict[str, Any]) -> bytes:
    """:func:`codec.encode`, refusing (413) what etcd would refuse as too large."""
    value = codec.encode(obj)
    if len(value) > MAX_OBJECT_BYTES:
        raise errors.too_large(
            f"object is too large: {len(value)} bytes, the limit is {MAX_OBJECT_BYTES}"
        )
    return value


def _encode_continue(revision: int, start: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": start})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        return int(data["rv"]), str(data["start"])
    except Exception as e:
        raise errors.bad_request(f"continue key is not valid: {e}") from e


class CachedLister:
    """Reads for admission plugins: the watch cache first, then storage."""

    def __init__(self, etcd: Backend, cache: WatchCache) -> None:
        self.etcd = etcd
        self.cache = cache

    async def get(
        self, info: ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        obj = self.cache.get(info, namespace, name)
        if obj is None:
            kv = await self.etcd.get(info.etcd_key(namespace, name))
            obj = decode(kv.value, kv.mod_revision) if kv else None
        return obj

    def list(self, info: ResourceInfo) -> list[dict[str, Any]]:
        return self.cache.list(info)


class Store:
    """Storage rules of the Kubernetes API, on etcd and the watch cache."""

    def __init__(
        self,
        etcd: Backend,
        cache: WatchCache,
        services: ServiceAllocator | None = None,
        *,
        admission_plugins: Sequence[str] | None = None,
    ) -> None:
        """``admission_plugins``: the enabled admission plugins' names (None: the
        defaults, :func:`.admission.enabled_plugins`)."""
        self.etcd = etcd
        self.cache = cache
        self.services = services or ServiceAllocator(etcd)
        if admission_plugins is None:
            admission_plugins = admission.enabled_plugins()
        self.admission = admission.new_chain(admission_plugins, CachedLister(etcd, cache))

    async def _write(
        self,
        strategy: Strategy,
        key: str,
        value: bytes | None,
        expected_revision: int,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
    ) -> int:
        """Create (``expected_revision`` 0), replace or delete (``value`` None) one object.

        The other keys the object holds (a Service's IPs and node ports) are claimed and
        released in the same transaction.
        """
        if not strategy.claims_keys:
            if value is None:
                return await self.etcd.delete(key, expected_revision)
            if expected_revision == 0:
                return await self.etcd.create(key, value)
            return await self.etcd.update(key, value, expected_revision)
        before = strategy.held(old) if old is not None else {}
        after = strategy.held(new) if new is not None and value is not None else {}
        return await self.etcd.write_claiming(
            key,
            value,
            expected_revision,
            claim={k: v for k, v in after.items() if k not in before},
            release=[k for k in before if k not in after],
        )

    # -- reads -------------------------------------------------------------------------

    async def _get_kv(self, info: ResourceInfo, namespace: str | None, name: str) -> KeyValue:
        try:
            kv = await self.etcd.get(info.etcd_key(namespace, name))
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e
        if kv is None:
            raise errors.not_found(info.plural, name, info.group)
        return kv

    async def get(
        self, info: ResourceInfo, namespace: str | None, name: str, *, subresource: str = ""
    ) -> dict[str, Any]:
        """One object; with ``subresource``, what that subresource serves (e.g. a Scale)."""
        if subresource:
            handler = self._handler(info, subresource, "get")
            return await handler.get(self, info, namespace, name)
        kv = await self._get_kv(info, namespace, name)
        return decode(kv.value, kv.mod_revision)

    async def list(
        self, info: ResourceInfo, namespace: str | None, opts: ListOptions
    ) -> ListResult:
        matches = _matcher(info, opts)
        if opts.limit > 0 or opts.continue_token or opts.resource_version_match == "Exact":
            return await self._list_etcd(info, namespace, opts, matches)
        revision = await self._wait_cache(opts.resource_version)
        if revision is None:
            return await self._list_etcd(info, namespace, opts, matches)
        name = opts.field_selector.single_value("metadata.name") if opts.field_selector else None
        if name is not None and (namespace or not info.namespaced):
            obj = self.cache.get(info, namespace, name)
            candidates = [obj] if obj is not None else []
        else:
            candidates = self.cache.list(info, namespace)
        items = [o for o in candidates if matches(o)]
        return ListResult(items, self.cache.revision)

    async def _wait_cache(self, resource_version: str) -> int | None:
        """The revision to serve a cached read at, or None to read etcd instead."""
        if resource_version == "0":
            if self.cache.ready.is_set():
                return self.cache.revision
            return None
        if resource_version:
            try:
                wanted = int(resource_version)
            except ValueError as e:
                raise errors.bad_request(
                    f"invalid resource version {resource_version!r}: must be an integer"
                ) from e
            if not await self.cache.wait_for(wanted, CONSISTENT_READ_WAIT):
                if self.cache.ready.is_set():
                    raise errors.timeout(
                        f"Too large resource version: {wanted}, current: {self.cache.revision}"
                    )
                return None
            return self.cache.revision
        try:
            wanted = await self.etcd.current_revision()
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e
        if await self.cache.wait_for(wanted, CONSISTENT_READ_WAIT):
            return self.cache.revision
        log.warning(
            "watch cache behind etcd; reading etcd", wanted=wanted, cached=self.cache.revision
        )
        return None

    async def _list_etcd(
        self, info: ResourceInfo, namespace: str | None, opts: ListOptions, matches
    ) -> ListResult:  # type: ignore[no-untyped-def]
        prefix = info.etcd_prefix(namespace)
        revision = 0
        start: str | None = None
        if opts.continue_token:
            revision, start = _decode_continue(opts.continue_token)
            if not start.startswith(prefix):
                raise errors.bad_request("continue key does not belong to this list")
        elif (
            opts.resource_version
            and opts.resource_version != "0"
            and (opts.resource_version_match == "Exact")
        ):
            revision = int(opts.resource_version)
        items: list[dict[str, Any]] = []
        limit = opts.limit
        try:
            while True:
                page = max(limit - len(items), 1) if limit else 2000
                kvs, rev, more = await self.etcd.range(
                    prefix, start=start, revision=revision, limit=page if limit else 2000
                )
                revision = revision or rev
                for kv in kvs:
                    obj = decode(kv.value, kv.mod_revision)
                    if matches(obj):
                        items.append(obj)
                if not more or not kvs:
                    return ListResult(items, revision)
                start = kvs[-1].key + "\0"
                if limit and len(items) >= limit:
                    return ListResult(items, revision, _encode_continue(revision, start))
        except CompactedError as e:
            raise errors.gone(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            ) from e
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e

    async def watch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        opts: ListOptions,
        *,
        render: Render,
        render_key: tuple[Any, ...],
        send_initial: bool | None = None,
    ) -> tuple[Watch, list[dict[str, Any]], int]:
        """Open a watch; returns (watch, objects to send as ADDED first, start revision).

        Watches with the same ``render_key`` (output form), namespace and selectors share
        one group: each event is filtered and rendered (``render(event)``) once for all.
        """
        matches = _matcher(info, opts, namespace)
        rv = opts.resource_version
        if not self.cache.ready.is_set() and not await self.cache.wait_for(0, 10):
            raise errors.unavailable("the watch cache is not ready yet")
        initial: list[dict[str, Any]] = []
        if rv in ("", "0") or send_initial:
            if rv == "" or send_initial:
                await self._wait_cache("")
            initial = [o for o in self.cache.list(info, namespace) if matches(o)]
            since = self.cache.revision
        else:
            try:
                since = int(rv)
            except ValueError as e:
                raise errors.bad_request(f"invalid resource version {rv!r}") from e
            if since > self.cache.revision and not await self.cache.wait_for(
                since, CONSISTENT_READ_WAIT
            ):
                raise errors.timeout(
                    f"Too large resource version: {since}, current: {self.cache.revision}"
                )
        key = (
            render_key,
            namespace,
            opts.label_selector.to_string() if opts.label_selector else "",
            opts.field_selector.to_string() if opts.field_selector else "",
        )
        return self.cache.watch(info, since, key, matches, render), initial, since

    def unwatch(self, info: ResourceInfo, watch: Watch) -> None:
        """Close a watch opened with :meth:`watch`."""
        self.cache.unwatch(info, watch)

    @property
    def revision(self) -> int:
        """The revision the watch cache has reached (for bookmarks)."""
        return self.cache.revision

    # -- subresources ------------------------------------------------------------------

    def subresource(self, info: ResourceInfo, name: str) -> Subresource | None:
        """The registry's handler of ``info``'s subresource ``name`` (None: not one the
        registry serves, such as pods/log)."""
        return strategy_for(info).subresources.get(name)

    def _handler(self, info: ResourceInfo, name: str, verb: str) -> Subresource:
        handler = self.subresource(info, name)
        if handler is None:
            raise errors.ApiError(
                404,
                errors.Reason.NOT_FOUND,
                f"the server could not find the requested resource ({info.plural}/{name})",
            )
        if verb not in handler.verbs:
            raise handler.not_allowed(info, verb)
        return handler

    async def create_subresource(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        subresource: str,
        body: dict[str, Any],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        """POST to a subresource of ``name`` (pods/binding, pods/eviction)."""
        handler = self._handler(info, subresource, "create")
        return await handler.create(self, info, namespace, name, body, opts)

    # -- writes ------------------------------------------------------------------------

    async def _admit(self, attrs: Attributes) -> None:
        """The admission chain: every mutating plugin, then every validating one."""
        await self.admission.admit(attrs)
        await self.admission.validate(attrs)

    async def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        managed: bool = False,
    ) -> dict[str, Any]:
        """Create ``obj``; ``managed`` means managedFields were already set (apply)."""
        with _tracer.start_as_current_span(
            "store.create", attributes={"k8s.resource": info.plural}
        ):
            strategy = strategy_for(info)
            generic.decode(info, obj, opts)
            generic.before_create(strategy, obj, namespace, opts)
            if not managed:
                generic.track_fields(info, None, obj, opts, "")
            meta = obj["metadata"]
            await self._admit(
                Attributes(
                    Operation.CREATE,
                    info,
                    obj,
                    namespace=meta.get("namespace"),
                    name=meta["name"],
                    dry_run=opts.dry_run,
                )
            )
            return await self._create_in_storage(strategy, obj, opts)

    async def _create_in_storage(
        self, strategy: Strategy, obj: dict[str, Any], opts: WriteOptions
    ) -> dict[str, Any]:
        info = strategy.info
        meta = obj["metadata"]
        key = info.etcd_key(meta.get("namespace"), meta["name"])
        unassigned = copy.deepcopy(obj) if strategy.claims_keys else obj
        avoid: set[str] = set()
        for _attempt in range(16):
            picked: set[str] = set()
            if strategy.claims_keys:
                obj = copy.deepcopy(unassigned)
                picked = await strategy.assign(self, obj, None, avoid)
            value = _encode_limited(obj)
            if opts.dry_run:
                return obj
            try:
                with _tracer.start_as_current_span("etcd.txn.create", kind=trace.SpanKind.CLIENT):
                    rev = await self._write(strategy, key, value, 0, None, obj)
            except KeyExistsError as e:
                if e.key == key:
                    raise errors.already_exists(info.plural, meta["name"], info.group) from e
                if e.key not in picked:
                    raise strategy.taken(self, obj, e.key) from e
                avoid.add(e.key)  # another apiserver took what we picked: pick again
                continue
            except StorageError as e:
                raise errors.unavailable(f"storage is unavailable: {e}") from e
            obj["metadata"]["resourceVersion"] = str(rev)
            return obj
        raise errors.internal("too many allocation conflicts; try again")

    async def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Replace an object, or PUT to one of its subresources."""
        if subresource:
            handler = self._handler(info, subresource, "update")
            return await handler.update(self, info, namespace, name, obj, opts)
        return await self.update_object(info, namespace, name, obj, opts)

    async def update_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Replace with ``obj``; its resourceVersion, if any, is a precondition.

        ``subresource`` selects the update rules (``status`` writes only status).
        """
        generic.decode(info, obj, opts)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        wanted_rv = meta.get("resourceVersion") or None
        return await self.update_with(
            info,
            namespace,
            name,
            lambda _old: obj,
            opts,
            subresource=subresource,
            precondition_rv=wanted_rv,
        )

    async def update_with(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate,  # type: ignore[no-untyped-def]
        opts: WriteOptions,
        *,
        subresource: str = "",
        precondition_rv: str | None = None,
        create_if_missing=None,  # type: ignore[no-untyped-def]
        managed: bool = False,
    ) -> dict[str, Any]:
        """Read-modify-write with retries on conflict: ``mutate(current) -> new object``.

        ``precondition_rv`` turns a conflict into a 409 instead of a retry;
        ``create_if_missing`` is awaited when the object does not exist (apply);
        ``managed`` means managedFields were already set (apply).
        """
        with _tracer.start_as_current_span(
            "store.update", attributes={"k8s.resource": info.plural, "k8s.subresource": subresource}
        ):
            strategy = strategy_for(info)
            avoid: set[str] = set()
            for _attempt in range(16):
                try:
                    kv = await self.etcd.get(info.etcd_key(namespace, name))
                except StorageError as e:
                    raise errors.unavailable(f"storage is unavailable: {e}") from e
                if kv is None:
                    if create_if_missing is not None:
                        return await create_if_missing()
                    raise errors.not_found(info.plural, name, info.group)
                old = decode(kv.value, kv.mod_revision)
                if precondition_rv is not None and precondition_rv != str(kv.mod_revision):
                    raise errors.modified(info.plural, name, info.group)
                new = mutate(copy.deepcopy(old))
                if new.get("apiVersion") is None or new.get("metadata") is None:
                    generic.decode(info, new, opts)
                new = generic.before_update(strategy, old, new, subresource, opts, managed)
                if new is None:
                    return old  # nothing changed: no write, same resourceVersion
                await self._admit(
                    Attributes(
                        Operation.UPDATE,
                        info,
                        new,
                        old,
                        namespace=namespace,
                        name=name,
                        subresource=subresource,
                        dry_run=opts.dry_run,
                    )
                )
                done = await self._commit_update(
                    strategy, kv, old, new, opts, avoid, precondition_rv
                )
                if done is not None:
                    return done
            raise errors.conflict(
                info.plural, name, info.group, "too many concurrent updates; try again"
            )

    async def _commit_update(
        self,
        strategy: Strategy,
        kv: KeyValue,
        old: dict[str, Any],
        new: dict[str, Any],
        opts: WriteOptions,
        avoid: set[str],
        precondition_rv: str | None,
    ) -> dict[str, Any] | None:
        """Write ``new`` over ``kv`` (or delete it, when nothing keeps a deleted object any
        more); None when the write must be tried again."""
        info = strategy.info
        picked: set[str] = set()
        if strategy.claims_keys:
            picked = await strategy.assign(self, new, old, avoid)
        value = _encode_limited(new)
        if opts.dry_run:
            return new
        try:
            if generic.ready_to_delete(strategy, new):
                with _tracer.start_as_current_span("etcd.txn.delete"):
                    rev = await self._write(strategy, kv.key, None, kv.mod_revision, old, None)
            else:
                with _tracer.start_as_current_span("etcd.txn.update", kind=trace.SpanKind.CLIENT):
                    rev = await self._write(strategy, kv.key, value, kv.mod_revision, old, new)
        except KeyExistsError as e:
            if e.key not in picked:
                raise strategy.taken(self, new, e.key) from e
            avoid.add(e.key)
            return None
        except ConflictError:
            if precondition_rv is not None:
                name = new["metadata"].get("name") or ""
                raise errors.modified(info.plural, name, info.group) from None
            return None
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e
        new["metadata"]["resourceVersion"] = str(rev)
        return new

    async def patch(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Patch an object, or one of its subresources."""
        if subresource:
            handler = self._handler(info, subresource, "patch")
            return await handler.patch(self, info, namespace, name, patch_type, body, opts)
        return await self.patch_object(info, namespace, name, patch_type, body, opts)

    async def patch_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Apply a patch given by its media type (json, merge, strategic-merge, apply);
        ``subresource`` selects the update rules (``status`` writes only status)."""
        if patch_type == PATCH_APPLY:
            return await self._apply(info, namespace, name, body, opts, subresource)
        precondition = None
        if isinstance(body, dict):
            precondition = (body.get("metadata") or {}).get("resourceVersion")
        elif patch_type != PATCH_JSON:
            raise errors.bad_request("the patch must be a JSON object")
        if patch_type == PATCH_JSON and not isinstance(body, list):
            raise errors.bad_request("a json patch must be a list of operations")

        def mutate(cur: dict[str, Any]) -> dict[str, Any]:
            if precondition and precondition != cur["metadata"]["resourceVersion"]:
                raise errors.modified(info.plural, name, info.group)
            if patch_type == PATCH_JSON:
                out = patching.json_patch(cur, body)
            elif patch_type == PATCH_MERGE:
                out = patching.merge_patch(cur, body)
            elif patch_type == PATCH_STRATEGIC:
                out = strategic_merge_patch(cur, body, info.definition)
            else:
                raise errors.unsupported_media_type(patch_type)
            if not isinstance(out, dict):
                raise errors.bad_request("the patch did not produce an object")
            generic.decode(info, out, opts)
            return out

        return await self.update_with(info, namespace, name, mutate, opts, subresource=subresource)

    async def _apply(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        applied: Any,
        opts: WriteOptions,
        subresource: str,
    ) -> dict[str, Any]:
        """Server-side apply: merge the applied configuration, tracking field owners."""
        if not isinstance(applied, dict):
            raise errors.bad_request("the applied configuration must be an object")
        if not opts.field_manager:
            raise errors.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch"
            )
        applied_name = (applied.get("metadata") or {}).get("name")
        if applied_name and applied_name != name:
            raise errors.bad_request(
                f"the name of the object ({applied_name}) does not match the name on the URL "
                f"({name})"
            )
        generic.decode(info, applied, opts)

        def mutate(cur: dict[str, Any]) -> dict[str, Any]:
            return ssa.server_side_apply(
                cur,
                applied,
                manager=opts.field_manager,
                force=opts.force,
                definition=info.definition,
                now=rfc3339(),
            )

        async def create() -> dict[str, Any]:
            obj = ssa.server_side_apply(
                None,
                applied,
                manager=opts.field_manager,
                force=opts.force,
                definition=info.definition,
                now=rfc3339(),
            )
            obj.setdefault("metadata", {})["name"] = name
            return await self.create(info, namespace, obj, opts, managed=True)

        return await self.update_with(
            info,
            namespace,
            name,
            mutate,
            opts,
            subresource=subresource,
            create_if_missing=create,
            managed=True,
        )

    # -- delete ------------------------------------------------------------------------

    async def delete(
        self, info: ResourceInfo, namespace: str | None, name: str, opts: DeleteOptions
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object. Returns (object, whether it is gone now)."""
        with _tracer.start_as_current_span(
            "store.delete", attributes={"k8s.resource": info.plural}
        ):
            strategy = strategy_for(info)
            for _attempt in range(16):
                kv = await self._get_kv(info, namespace, name)
                obj = decode(kv.value, kv.mod_revision)
                _check_delete_preconditions(info, name, obj["metadata"], opts)
                await self._admit(
                    Attributes(
                        Operation.DELETE,
                        info,
                        None,
                        obj,
                        namespace=namespace,
                        name=name,
                        dry_run=opts.dry_run,
                    )
                )
                done = await self._commit_delete(strategy, kv, obj, opts)
                if done is not None:
                    return done
            raise errors.conflict(
                info.plural, name, info.group, "too many concurrent updates; try again"
            )

    async def _commit_delete(
        self, strategy: Strategy, kv: KeyValue, obj: dict[str, Any], opts: DeleteOptions
    ) -> tuple[dict[str, Any], bool] | None:
        """Mark or delete ``obj``; None when the write must be tried again."""
        meta = obj["metadata"]
        before = copy.deepcopy(meta) if meta.get("deletionTimestamp") else None
        graceful = generic.before_delete(strategy, obj, opts, rfc3339())
        if opts.dry_run:
            return obj, not graceful
        if graceful and before is not None and before == meta:
            return obj, False  # already terminating as asked: no write, no event
        try:
            if graceful:
                value = codec.encode(obj)
                rev = await self.etcd.update(kv.key, value, kv.mod_revision)
                meta["resourceVersion"] = str(rev)
                return obj, False
            with _tracer.start_as_current_span("etcd.txn.delete", kind=trace.SpanKind.CLIENT):
                rev = await self._write(strategy, kv.key, None, kv.mod_revision, obj, None)
            meta["resourceVersion"] = str(rev)
            return obj, True
        except ConflictError:
            return None
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e

    async def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        list_opts: ListOptions,
        opts: DeleteOptions,
    ) -> list[dict[str, Any]]:
        listed = await self._list_etcd(
            info,
            namespace,
            ListOptions(
                label_selector=list_opts.label_selector,
                field_selector=list_opts.field_selector,
            ),
            _matcher(info, list_opts),
        )
        out = []
        sem = asyncio.Semaphore(16)

        async def one(o: dict[str, Any]) -> None:
            async with sem:
                try:
                    obj, _ = await self.delete(
                        info, o["metadata"].get("namespace"), o["metadata"]["name"], opts
                    )
                    out.append(obj)
                except ApiError as e:
                    if e.code != 404:
                        raise

        await asyncio.gather(*(one(o) for o in listed.items))
        return out


def _check_delete_preconditions(
    info: ResourceInfo, name: str, meta: dict[str, Any], opts: DeleteOptions
) -> None:
    if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
        raise errors.conflict(
            info.plural,
            name,
            info.group,
            f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    if opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
        raise errors.conflict(
            info.plural,
            name,
            info.group,
            f"Precondition failed: ResourceVersion in precondition: "
            f"{opts.precondition_rv}, ResourceVersion in object meta: "
            f"{meta['resourceVersion']}",
        )


def _matcher(info: ResourceInfo, opts: ListOptions, namespace: str | None = None):  # type: ignore[no-untyped-def]
    """A predicate for the label and field selectors of a request."""
    ls = opts.label_selector if opts.label_selector and not opts.label_selector.empty else None
    fs = opts.field_selector
    if fs is not None:
        allowed = {"metadata.name", "metadata.namespace", *info.field_selectors}
        for f in fs.fields():
            if f not in allowed:
                raise errors.bad_request(f"field label not supported: {f}")
        if not fs.requirements:
            fs = None
    prefix_ns = namespace if info.namespaced else None

    def matches(obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if prefix_ns and meta.get("namespace") != prefix_ns:
            return False
        if ls is not None and not ls.matches(meta.get("labels")):
            return False
        return fs is None or fs.matches(obj)

    return matches
