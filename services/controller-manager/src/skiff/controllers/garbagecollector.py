"""The garbage collector (``pkg/controller/garbagecollector``).

A dependency graph of every object that has, or is named in, ``ownerReferences``,
across every resource type the API serves that can be listed, watched and deleted
(events excepted, as in Kubernetes). Informer events only update the graph and
queue work; two kinds of work items, both keyed by uid, are reconciled by workers:

- ``delete:<uid>`` (``attemptToDeleteItem``): a dependent whose owners may be gone.
  Each owner reference is classified by its uid against the API: *dangling* (no
  object of that name, or one with another uid: the owner is absent), *waiting*
  (the owner is being deleted in the foreground) or *solid*. A dependent with a
  solid owner only loses its dangling and waiting references; one with none is
  deleted (in the foreground when it has dependents of its own and an owner waits
  for it). An owner in foreground deletion is reconciled by the same item: it
  queues its dependents and, once none with ``blockOwnerDeletion`` remains, its
  ``foregroundDeletion`` finalizer is removed. A *virtual* node (an owner named in a
  reference but not seen by any informer) is verified the same way: if the API has
  no such object its dependents are queued, which is how objects whose owner
  vanished while the controller was down are collected after a restart.
- ``orphan:<uid>`` (``attemptToOrphan``): an owner being deleted with the ``orphan``
  finalizer; its reference is removed from every dependent, then the finalizer.

Informers of resource types no other controller watches keep only metadata (see
:class:`MetadataClient`); shared informers are reused where they exist. Verified
absent owners are remembered (:class:`AbsentOwnerCache`), so deleting a thousand
pods of one ReplicaSet looks the ReplicaSet up once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient, Obj, Res
from skiff.controller.controller import Controller, ControllerContext, TerminalError
from skiff.controller.owners import api_group

FOREGROUND = "foregroundDeletion"
"""``metav1.FinalizerDeleteDependents``."""
ORPHAN = "orphan"
"""``metav1.FinalizerOrphanDependents``."""

IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
"""(group, resource) never watched (``DefaultIgnoredResources``)."""
ABSENT_OWNER_CACHE_SIZE = 500
VIRTUAL_RECHECK_SECONDS = 1.0
"""How soon an owner the API has but no informer has shown yet is looked at again."""
ORPHAN_CONCURRENCY = 20

DELETE = "delete"
ORPHAN_ITEM = "orphan"

Identity = tuple[str, str, str, str, str]
"""(uid, group, kind, namespace, name) of an object."""

_BY_GROUP_KIND = {(r.group, r.kind): r for r in REGISTRY.resources}


def owner_info(ref: Obj) -> ResourceInfo | None:
    """The resource type an owner reference names (by group and kind; any version)."""
    return _BY_GROUP_KIND.get((api_group(ref.get("apiVersion") or ""), ref.get("kind") or ""))


def collectable(info: ResourceInfo) -> bool:
    """Whether the collector watches ``info`` (listable, watchable, deletable, not ignored)."""
    if (info.group, info.plural) in IGNORED_RESOURCES:
        return False
    return all(v in info.verbs for v in ("list", "watch", "delete"))


def has_finalizer(meta: Obj, name: str) -> bool:
    return name in (meta.get("finalizers") or ())


def deleting_dependents(meta: Obj) -> bool:
    """Being deleted in the foreground: deletionTimestamp and the foregroundDeletion finalizer."""
    return bool(meta.get("deletionTimestamp")) and has_finalizer(meta, FOREGROUND)


def orphaning(meta: Obj) -> bool:
    """Being deleted with the orphan finalizer."""
    return bool(meta.get("deletionTimestamp")) and has_finalizer(meta, ORPHAN)


# -- metadata-only informers -----------------------------------------------------------

_KEPT_METADATA = (
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "ownerReferences",
    "finalizers",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)


def metadata_only(obj: Obj) -> Obj:
    """What the collector needs of an object: its type and the identity part of metadata."""
    meta = obj.get("metadata") or {}
    return {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": {k: meta[k] for k in _KEPT_METADATA if k in meta},
    }


class MetadataClient:
    """Lists and watches through ``client``, handing back :func:`metadata_only` objects.

    An informer built on it caches a few hundred bytes per object (the apiserver has
    no ``PartialObjectMetadata`` representation yet, so full objects still cross the
    wire).
    """

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    async def list_all(
        self, res: Res, namespace: str | None = None, **kw: Any
    ) -> tuple[list[Obj], str]:
        items, rv = await self.client.list_all(res, namespace, **kw)
        return [metadata_only(o) for o in items], rv

    async def watch(
        self, res: Res, namespace: str | None = None, **kw: Any
    ) -> AsyncIterator[tuple[str, Obj]]:
        stream = self.client.watch(res, namespace, **kw)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            async for etype, obj in stream:
                yield etype, metadata_only(obj)


# -- the graph -------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Node:
    """One object of the graph (hashed by identity)."""

    uid: str
    info: ResourceInfo | None
    """None: a kind the API does not serve (only ever a virtual node)."""
    kind: str
    namespace: str
    name: str
    owners: list[Obj] = field(default_factory=list)
    """The object's ownerReferences as last observed (shared with the cache: read only)."""
    dependents: set[Node] = field(default_factory=set)
    observed: bool = False
    """Seen through an informer; False for a *virtual* node known only from references."""
    being_deleted: bool = False
    deleting_dependents: bool = False
    orphaning: bool = False

    @property
    def identity(self) -> Identity:
        return (
            self.uid,
            self.info.group if self.info else "",
            self.kind,
            self.namespace,
            self.name,
        )

    def matches(self, ref: Obj, dependent_namespace: str) -> bool:
        """Whether ``ref`` (of a dependent in ``dependent_namespace``) names this object."""
        return self.observed and ref_identity(ref, dependent_namespace) == self.identity

    def blocked_by(self) -> list[Node]:
        """Dependents whose reference to this node has ``blockOwnerDeletion``."""
        return [d for d in self.dependents if _blocks(d, self.uid)]

    def describe(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.uid})"


def ref_identity(ref: Obj, dependent_namespace: str) -> Identity:
    """The identity an owner reference names, from a dependent in ``dependent_namespace``."""
    info = owner_info(ref)
    namespaced = info.namespaced if info is not None else bool(dependent_namespace)
    group = info.group if info is not None else api_group(ref.get("apiVersion") or "")
    return (
        ref.get("uid") or "",
        group,
        ref.get("kind") or "",
        dependent_namespace if namespaced else "",
        ref.get("name") or "",
    )


def _blocks(dep: Node, owner_uid: str) -> bool:
    return any(r.get("uid") == owner_uid and r.get("blockOwnerDeletion") for r in dep.owners)


class AbsentOwnerCache:
    """An LRU set of identities verified absent (a deleted uid never comes back)."""

    def __init__(self, size: int = ABSENT_OWNER_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[Identity, None] = OrderedDict()

    def add(self, ident: Identity) -> None:
        self._items[ident] = None
        self._items.move_to_end(ident)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __contains__(self, ident: object) -> bool:
        if ident in self._items:
            self._items.move_to_end(ident)  # type: ignore[arg-type]
            return True
        return False

    def __len__(self) -> int:
        return len(self._items)


class DependencyGraph:
    """Owners and dependents by uid (``GraphBuilder``), kept by informer events.

    Like a store index it is updated in the event handlers themselves (one event loop,
    no locks); everything that talks to the API happens in the collector's workers,
    which the graph asks for through ``attempt_to_delete`` and ``attempt_to_orphan``.
    """

    def __init__(
        self,
        attempt_to_delete: Callable[[Node], None],
        attempt_to_orphan: Callable[[Node], None],
        absent: AbsentOwnerCache,
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self.attempt_to_delete = attempt_to_delete
        self.attempt_to_orphan = attempt_to_orphan
        self.absent = absent

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    # -- informer events -----------------------------------------------------------------

    def handlers(
        self, info: ResourceInfo
    ) -> tuple[Callable[[Obj], None], Callable[[Obj, Obj], None], Callable[[Obj], None]]:
        """(on_add, on_update, on_delete) for the informer of ``info``."""

        def added(obj: Obj) -> None:
            self.observe(info, obj)

        def updated(old: Obj, new: Obj) -> None:
            if old["metadata"].get("uid") != new["metadata"].get("uid"):
                self.observe_deleted(info, old)  # replaced by a namesake between two lists
            self.observe(info, new)

        def deleted(obj: Obj) -> None:
            self.observe_deleted(info, obj)

        return added, updated, deleted

    def observe(self, info: ResourceInfo, obj: Obj) -> None:
        """An object was added or changed (``processGraphChanges``)."""
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        owners: list[Obj] = meta.get("ownerReferences") or []
        node = self.nodes.get(uid)
        was_deleting = was_orphaning = False
        if node is None:
            node = Node(
                uid,
                info,
                info.kind,
                meta.get("namespace") or "",
                meta.get("name") or "",
                owners=owners,
                observed=True,
            )
            self.nodes[uid] = node
            for ref in owners:
                self._link(node, ref)
        else:
            if node.observed:
                was_deleting, was_orphaning = node.deleting_dependents, node.orphaning
            else:
                self._now_observed(node, info, meta)
            if owners is not node.owners and owners != node.owners:
                self._update_owners(node, node.owners, owners)
            node.owners = owners
        node.being_deleted = bool(meta.get("deletionTimestamp"))
        node.deleting_dependents = deleting_dependents(meta)
        node.orphaning = orphaning(meta)
        if node.orphaning and not was_orphaning:
            self.attempt_to_orphan(node)
        if node.deleting_dependents and not was_deleting:
            for dep in node.dependents:
                self.attempt_to_delete(dep)
            self.attempt_to_delete(node)

    def observe_deleted(self, info: ResourceInfo, obj: Obj) -> None:
        """An object is gone: its dependents may be garbage now."""
        uid = (obj.get("metadata") or {}).get("uid")
        node = self.nodes.get(uid or "")
        if node is None or (node.observed and node.info != info):
            return
        self.remove(node)

    def remove(self, node: Node) -> None:
        """Forget a node known to be absent; queue what depended on it.

        Its dependents are queued (their owner is gone) and so are its owners waiting
        in the foreground for their dependents to go.
        """
        if self.nodes.get(node.uid) is not node:
            return
        del self.nodes[node.uid]
        self.absent.add(node.identity)
        for dep in node.dependents:
            self.attempt_to_delete(dep)
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid") or "")
            if owner is None:
                continue
            owner.dependents.discard(node)
            if owner.deleting_dependents:
                self.attempt_to_delete(owner)
            elif not owner.observed and not owner.dependents:
                del self.nodes[owner.uid]

    # -- edges ---------------------------------------------------------------------------

    def _link(self, node: Node, ref: Obj) -> None:
        uid = ref.get("uid") or ""
        if not uid:
            return
        owner = self.nodes.get(uid)
        if owner is None:
            # Named but not seen (yet): a virtual node, verified against the API.
            _, _, kind, namespace, name = ref_identity(ref, node.namespace)
            owner = Node(uid, owner_info(ref), kind, namespace, name)
            self.nodes[uid] = owner
            owner.dependents.add(node)
            self.attempt_to_delete(owner)
            return
        owner.dependents.add(node)
        if owner.observed and not owner.matches(ref, node.namespace):
            # The uid exists, but not where the reference says: verify the dependent.
            self.attempt_to_delete(node)

    def _unlink(self, node: Node, ref: Obj) -> None:
        owner = self.nodes.get(ref.get("uid") or "")
        if owner is None:
            return
        owner.dependents.discard(node)
        if owner.deleting_dependents:
            self.attempt_to_delete(owner)  # one blocking dependent fewer
        elif not owner.observed and not owner.dependents:
            del self.nodes[owner.uid]

    def _update_owners(self, node: Node, old: list[Obj], new: list[Obj]) -> None:
        before = {r.get("uid"): r for r in old}
        after = {r.get("uid"): r for r in new}
        for uid, ref in before.items():
            if uid not in after:
                self._unlink(node, ref)
        for uid, ref in after.items():
            prev = before.get(uid)
            if prev is None:
                self._link(node, ref)
            elif prev != ref:
                owner = self.nodes.get(uid or "")
                if owner is not None and owner.deleting_dependents:
                    self.attempt_to_delete(owner)  # blockOwnerDeletion may have changed
                if owner is not None and owner.observed and not owner.matches(ref, node.namespace):
                    self.attempt_to_delete(node)

    def _now_observed(self, node: Node, info: ResourceInfo, meta: Obj) -> None:
        """A virtual node turned out to exist: take its real coordinates."""
        node.observed = True
        node.info = info
        node.kind = info.kind
        node.namespace = meta.get("namespace") or ""
        node.name = meta.get("name") or ""
        for dep in node.dependents:
            ref = next((r for r in dep.owners if r.get("uid") == node.uid), None)
            if ref is not None and not node.matches(ref, dep.namespace):
                self.attempt_to_delete(dep)


# -- the controller --------------------------------------------------------------------


class GarbageCollector(Controller):
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

    async def _latest(self, node: Node) -> Obj | None:
        assert node.info is not None
        try:
            obj = await self.client.get(node.info, node.name, node.namespace or None)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

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

    # -- writes --------------------------------------------------------------------------

    async def _delete(self, node: Node, policy: str) -> None:
        assert node.info is not None
        self.log.info("deleting object", object=node.describe(), propagation=policy)
        try:
            await self.client.delete(
                node.info,
                node.name,
                node.namespace or None,
                propagation_policy=policy,
                preconditions={"uid": node.uid},
            )
        except ApiError as e:
            if e.code not in (404, 409):  # gone, or a namesake
                raise

    async def _patch_metadata(
        self, node: Node, current: Obj | None, build: Callable[[Obj], list[Obj] | None]
    ) -> None:
        """JSON-patch ``node``'s metadata with ops ``build(metadata)`` (None: nothing to do).

        ``build`` tests what it relies on; when the object changed meanwhile it is read
        again and the patch rebuilt (three tries, then a conflict to retry later).
        """
        assert node.info is not None
        for _attempt in range(3):
            if current is None:
                current = await self._latest(node)
                if current is None:
                    return
            ops = build(current["metadata"])
            if ops is None:
                return
            ops.insert(0, {"op": "test", "path": "/metadata/uid", "value": node.uid})
            try:
                await self.client.patch(
                    node.info, node.name, ops, node.namespace or None, type="json"
                )
                return
            except ApiError as e:
                if e.code == 404:
                    return
                if not (e.code == 422 and "test failed" in e.message):
                    raise
            current = None
        raise ApiError(409, Reason.CONFLICT, f"{node.describe()} keeps changing")

    async def _remove_references(self, node: Node, current: Obj | None, uids: set[str]) -> None:
        """Drop the owner references to ``uids`` from ``node`` (cached refs tried first)."""
        if current is None and node.owners:
            current = {"metadata": {"ownerReferences": node.owners}}

        def build(meta: Obj) -> list[Obj] | None:
            refs = list(meta.get("ownerReferences") or ())
            kept = [r for r in refs if r.get("uid") not in uids]
            if len(kept) == len(refs):
                return None
            ops: list[Obj] = [{"op": "test", "path": "/metadata/ownerReferences", "value": refs}]
            if kept:
                ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": kept})
            else:
                ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
            return ops

        self.log.info("removing owner references", object=node.describe(), owners=sorted(uids))
        await self._patch_metadata(node, current, build)

    async def _unblock_owner_references(self, node: Node, current: Obj) -> None:
        """Set ``blockOwnerDeletion: false`` on every reference of ``node`` that blocks."""

        def build(meta: Obj) -> list[Obj] | None:
            refs = list(meta.get("ownerReferences") or ())
            if not any(r.get("blockOwnerDeletion") for r in refs):
                return None
            new = [
                {**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
                for r in refs
            ]
            return [
                {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
                {"op": "replace", "path": "/metadata/ownerReferences", "value": new},
            ]

        await self._patch_metadata(node, current, build)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        def build(meta: Obj) -> list[Obj] | None:
            finalizers = list(meta.get("finalizers") or ())
            if finalizer not in finalizers:
                return None
            kept = [f for f in finalizers if f != finalizer]
            ops: list[Obj] = [{"op": "test", "path": "/metadata/finalizers", "value": finalizers}]
            if kept:
                ops.append({"op": "replace", "path": "/metadata/finalizers", "value": kept})
            else:
                ops.append({"op": "remove", "path": "/metadata/finalizers"})
            return ops

        self.log.info("removing finalizer", object=node.describe(), finalizer=finalizer)
        await self._patch_metadata(node, None, build)

    def _about(self, node: Node) -> Obj:
        meta: Obj = {"name": node.name, "uid": node.uid}
        if node.namespace:
            meta["namespace"] = node.namespace
        return {
            "apiVersion": node.info.api_version if node.info else "",
            "kind": node.kind,
            "metadata": meta,
        }
