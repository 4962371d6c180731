"""The garbage collector controller (``garbagecollector.go``): monitors, work items, and
deciding what to delete.

It starts an informer per collectable resource type (reusing shared informers) feeding
the :class:`~.graph_builder.DependencyGraph`, waits for all of them, then works two
kinds of items keyed by uid: ``delete:<uid>`` (``attemptToDeleteItem``: classify the
owner references against the API, then delete the object, or only drop its dangling
references, or finish a foreground deletion) and ``orphan:<uid>``
(``attemptToOrphan``: remove the owner from its dependents, then its ``orphan``
finalizer). Virtual owners are verified against the API. The writes are in
:mod:`.operations`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.client.informer import Informer
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, TerminalError

from .graph import (
    FOREGROUND,
    ORPHAN,
    AbsentOwnerCache,
    Node,
    deleting_dependents,
    has_finalizer,
    owner_info,
    ref_identity,
)
from .graph_builder import DependencyGraph, MetadataClient, collectable
from .operations import GarbageCollectorOperationsMixin

VIRTUAL_RECHECK_SECONDS = 1.0
"""How soon an owner the API has but no informer has shown yet is looked at again."""
ORPHAN_CONCURRENCY = 20

DELETE = "delete"
ORPHAN_ITEM = "orphan"


class GarbageCollector(GarbageCollectorOperationsMixin, Controller):
    """Deletes objects whose owners are gone; runs foreground and orphan deletion."""

    name: ClassVar[str] = "garbage-collector-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 20,
        resources: Iterable[ResourceInfo] | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.absent = AbsentOwnerCache()
        self.graph = DependencyGraph(self._queue_delete, self._queue_orphan, self.absent)
        self.resources = [
            r
            for r in (resources if resources is not None else REGISTRY.resources)
            if collectable(r)
        ]
        self.monitored: set[ResourceInfo] = set()
        self._metadata_client = MetadataClient(ctx.client)
        self._own: list[Informer] = []

    # -- queueing ------------------------------------------------------------------------

    def _queue_delete(self, node: Node) -> None:
        self.queue.add(f"{DELETE}:{node.uid}")

    def _queue_orphan(self, node: Node) -> None:
        self.queue.add(f"{ORPHAN_ITEM}:{node.uid}")

    # -- monitors ------------------------------------------------------------------------

    def monitor(self) -> None:
        """An informer per collectable resource type, feeding the graph.

        A shared informer another controller already uses is reused; otherwise the
        collector runs its own, caching metadata only.
        """
        for info in self.resources:
            if info in self.monitored:
                continue
            inf = self.ctx.informers.existing_for(info)
            if inf is None:
                inf = Informer(self._metadata_client, info)  # type: ignore[arg-type]
                self._own.append(inf)
            inf.add_handler(*self.graph.handlers(info))
            self.informers.append(inf)
            self.monitored.add(info)

    async def run(self) -> None:
        """Start the monitors, wait for the whole graph, then run the workers."""
        self.monitor()
        tasks = [asyncio.create_task(inf.run(), name=f"gc:{inf.name}") for inf in self._own]
        try:
            await super().run()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        kind, _, uid = key.partition(":")
        node = self.graph.get(uid)
        if node is None:
            return None  # gone meanwhile: whatever it affected was queued then
        if kind == ORPHAN_ITEM:
            await self.attempt_to_orphan(node)
            return None
        return await self.attempt_to_delete(node)

    async def attempt_to_delete(self, node: Node) -> float | None:
        """Delete ``node`` if all its owners are gone (``attemptToDeleteItem``)."""
        if not node.observed:
            return await self._verify_virtual(node)
        if node.being_deleted and not node.deleting_dependents:
            return None  # on its way out; nothing for us to do
        if not node.owners and not node.deleting_dependents:
            return None  # no owner to lose (a later change with owners queues it again)
        latest = await self._latest(node)
        if latest is None:
            return None  # already gone: the informer will say so
        meta = latest["metadata"]
        if deleting_dependents(meta):
            await self._process_deleting_dependents(node)
            return None
        if meta.get("deletionTimestamp"):
            return None  # on its way out already; the cache was late to show it
        refs: list[Obj] = meta.get("ownerReferences") or []
        if not refs:
            return None
        solid, dangling, waiting = await self._classify(node, refs)
        if solid:
            if dangling or waiting:
                gone = {r["uid"] for r in dangling + waiting}
                await self._remove_references(node, latest, gone)
            return None
        if waiting and node.dependents:
            if any(d.deleting_dependents for d in node.dependents):
                # A cycle of foreground deletions would wait for ever: stop blocking.
                await self._unblock_owner_references(node, latest)
            await self._delete(node, "Foreground")
            return None
        if has_finalizer(meta, ORPHAN):
            policy = "Orphan"
        elif has_finalizer(meta, FOREGROUND):
            policy = "Foreground"
        else:
            policy = "Background"
        await self._delete(node, policy)
        return None

    async def _verify_virtual(self, node: Node) -> float | None:
        """An owner known only from references: absent from the API → its dependents go."""
        if node.info is None:
            # Not a type the API serves: nothing can ever verify it (restMappingError).
            self.log.info("owner of an unknown kind", owner=node.describe())
            return None
        if node.info.namespaced and not node.namespace:
            # Named by cluster-scoped dependents: their own attempts report it.
            for dep in node.dependents:
                self._queue_delete(dep)
            return None
        try:
            obj = await self.client.get(node.info, node.name, node.namespace or None)
        except ApiError as e:
            if e.code != 404:
                raise
            obj = None
        if obj is None or obj["metadata"].get("uid") != node.uid:
            self.log.info("owner is absent", owner=node.describe(), dependents=len(node.dependents))
            self.graph.remove(node)
            return None
        if node.info in self.monitored:
            return VIRTUAL_RECHECK_SECONDS  # there, but its informer has not shown it yet
        return None

    async def _classify(
        self, node: Node, refs: list[Obj]
    ) -> tuple[list[Obj], list[Obj], list[Obj]]:
        """(solid, dangling, waiting-for-dependents) owner references (``classifyReferences``)."""
        solid: list[Obj] = []
        dangling: list[Obj] = []
        waiting: list[Obj] = []
        for ref in refs:
            state = await self._owner_state(node, ref)
            if state == "absent":
                dangling.append(ref)
            elif state == "waiting":
                waiting.append(ref)
            else:
                solid.append(ref)
        return solid, dangling, waiting

    async def _owner_state(self, node: Node, ref: Obj) -> str:
        """``absent``, ``waiting`` (foreground deletion) or ``solid``, checked by uid."""
        info = owner_info(ref)
        if info is None:
            raise TerminalError(
                f"{node.describe()}: owner reference to {ref.get('apiVersion')}/"
                f"{ref.get('kind')} {ref.get('name')}: the API serves no such kind"
            )
        if info.namespaced and not node.namespace:
            message = (
                f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, namespace: , name: "
                f"{ref.get('name')}, uid: {ref.get('uid')}] is namespaced, but "
                f"{node.kind} {node.name} is cluster-scoped"
            )
            self.events.emit(self._about(node), "Warning", "OwnerRefInvalidNamespace", message)
            raise TerminalError(message)
        ident = ref_identity(ref, node.namespace)
        if ident in self.absent:
            return "absent"
        owner = self.graph.get(ident[0])
        if owner is not None and owner.observed and owner.identity == ident:
            # Seen alive: the cache can only be late to show a deletion, whose event
            # queues this dependent again.
            return "waiting" if owner.deleting_dependents else "solid"
        namespace = node.namespace if info.namespaced else None
        try:
            obj = await self.client.get(info, ref.get("name") or "", namespace)
        except ApiError as e:
            if e.code != 404:
                raise
            obj = None
        if obj is None or obj["metadata"].get("uid") != ref.get("uid"):
            self.absent.add(ident)
            return "absent"
        return "waiting" if deleting_dependents(obj["metadata"]) else "solid"

    async def _process_deleting_dependents(self, node: Node) -> None:
        """An owner in foreground deletion: done once no blocking dependent is left."""
        blocking = node.blocked_by()
        if not blocking:
            await self._remove_finalizer(node, FOREGROUND)
            return
        for dep in blocking:
            if not dep.deleting_dependents and not dep.being_deleted:
                self._queue_delete(dep)

    async def attempt_to_orphan(self, node: Node) -> None:
        """Remove ``node`` from its dependents' owners, then its orphan finalizer."""
        sem = asyncio.Semaphore(ORPHAN_CONCURRENCY)

        async def release(dep: Node) -> None:
            async with sem:
                await self._remove_references(dep, None, {node.uid})

        results = await asyncio.gather(
            *(release(d) for d in list(node.dependents)), return_exceptions=True
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        await self._remove_finalizer(node, ORPHAN)

    def _about(self, node: Node) -> Obj:
        meta: Obj = {"name": node.name, "uid": node.uid}
        if node.namespace:
            meta["namespace"] = node.namespace
        return {
            "apiVersion": node.info.api_version if node.info else "",
            "kind": node.kind,
            "metadata": meta,
        }
