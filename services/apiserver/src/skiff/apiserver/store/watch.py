"""Watches of the generic store, all served from the watch cache: the start revision
(now, once the cache has caught up with etcd, or the one the client names), the initial
objects to send as ADDED, and the groups of alike watches whose events are filtered and
rendered once for all.
"""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.api import errors
from skiff.api.resources import ResourceInfo

from .. import conversion
from ..watchcache import Event, Render, Watch
from .reads import CONSISTENT_READ_WAIT, ListOptions, ReadMixin, matcher


class WatchMixin(ReadMixin):
    """``watch``, ``unwatch`` and the cache's revision (for bookmarks)."""

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
        matches = matcher(info, opts, namespace)
        if conversion.multi(info):
            render = self._converting(render, info)
        rv = opts.resource_version
        if not self.cache.ready.is_set() and not await self.cache.wait_for(0, 10):
            raise errors.unavailable("the watch cache is not ready yet")
        initial: list[dict[str, Any]] = []
        if rv in ("", "0") or send_initial:
            if rv == "" or send_initial:
                await self._wait_cache("")
            initial = await self.converted_all(
                [o for o in self.cache.list(info, namespace) if matches(o)], info
            )
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
            info.api_version,
            namespace,
            opts.label_selector.to_string() if opts.label_selector else "",
            opts.field_selector.to_string() if opts.field_selector else "",
        )
        return self.cache.watch(info, since, key, matches, render), initial, since

    def unwatch(self, info: ResourceInfo, watch: Watch) -> None:
        """Close a watch opened with :meth:`watch`."""
        self.cache.unwatch(info, watch)

    def _converting(self, render: Render, info: ResourceInfo) -> Render:
        """``render`` of each event's object in ``info``'s version. With a conversion
        webhook the rendering is a task (consumers await it: :func:`resolve`), so that
        events keep their order while the webhook answers."""
        if conversion.by_webhook(info):

            async def later(e: Event) -> Any:
                obj = await self.converted(e.obj, info)
                return render(Event(e.type, obj, e.revision, e.key, trace=e.trace))

            return lambda e: asyncio.ensure_future(later(e))

        def converted(e: Event) -> Any:
            obj = conversion.convert(e.obj, info)
            if obj is not e.obj:
                e = Event(e.type, obj, e.revision, e.key, trace=e.trace)
            return render(e)

        return converted

    @property
    def revision(self) -> int:
        """The revision the watch cache has reached (for bookmarks)."""
        return self.cache.revision


async def resolve(items: list[Any]) -> list[Any]:
    """A watch's rendered items, the ones still being converted awaited in order (an
    :class:`~skiff.api.errors.ApiError` when a conversion webhook failed)."""
    if not any(isinstance(i, asyncio.Future) for i in items):
        return items
    return [await i if isinstance(i, asyncio.Future) else i for i in items]
