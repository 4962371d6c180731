"""Reads of the generic store: one object (from etcd), and lists: from the watch cache
once it has reached the revision the request needs, from etcd for paginated and
exact-revision lists (with continue tokens) or when the cache lags. Also the list options
and the selector matching that watch and deletecollection share.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from skiff.api import errors
from skiff.api.fields import FieldSelector
from skiff.api.resources import ResourceInfo
from skiff.apiserver.storage import CompactedError, StorageError
from skiff.apiserver.storage.codec import decode
from skiff.log import get_logger

from .. import conversion
from ..registry.options import ListOptions
from .base import StoreBase

log = get_logger(__name__)

CONSISTENT_READ_WAIT = 3.0


@dataclass(slots=True)
class ListResult:
    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str = ""
    remaining: int | None = None


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


class ReadMixin(StoreBase):
    """``get`` and ``list``."""

    async def get(
        self, info: ResourceInfo, namespace: str | None, name: str, *, subresource: str = ""
    ) -> dict[str, Any]:
        """One object; with ``subresource``, what that subresource serves (e.g. a Scale)."""
        if subresource:
            handler = self._handler(info, subresource, "get")
            return await handler.get(self, info, namespace, name)
        kv = await self._get_kv(info, namespace, name)
        return await self.converted(decode(kv.value, kv.mod_revision), info)

    async def list(
        self, info: ResourceInfo, namespace: str | None, opts: ListOptions
    ) -> ListResult:
        matches = matcher(info, opts)
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
        items = await self.converted_all([o for o in candidates if matches(o)], info)
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
                    return ListResult(await self.converted_all(items, info), revision)
                start = kvs[-1].key + "\0"
                if limit and len(items) >= limit:
                    token = _encode_continue(revision, start)
                    return ListResult(await self.converted_all(items, info), revision, token)
        except CompactedError as e:
            raise errors.gone(
                "The provided continue parameter is too old to display a consistent list "
                "result. You can start a new list without the continue parameter."
            ) from e
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e


def matcher(info: ResourceInfo, opts: ListOptions, namespace: str | None = None):  # type: ignore[no-untyped-def]
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
        elif info.stored_in is not None:
            fs = FieldSelector(
                [(conversion.field_label(info, f), op, v) for f, op, v in fs.requirements]
            )
    prefix_ns = namespace if info.namespaced else None

    def matches(obj: dict[str, Any]) -> bool:
        meta = obj["metadata"]
        if prefix_ns and meta.get("namespace") != prefix_ns:
            return False
        if ls is not None and not ls.matches(meta.get("labels")):
            return False
        return fs is None or fs.matches(obj)

    return matches
