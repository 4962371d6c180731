"""Building the dependency graph from informer events (``graph_builder.go``).

The collector watches every resource type that can be listed, watched and deleted
(events excepted, ``DefaultIgnoredResources``); informers of types no other controller
watches keep metadata only (:class:`MetadataClient`). :class:`DependencyGraph` turns
their events into graph changes (``processGraphChanges``): new owner references link
a dependent to its owners (to a virtual node for an owner not seen yet), removed ones
unlink it; an object gone leaves its uid in the absent-owner cache. What may have
become garbage is handed to the collector's queue: dependents whose owner went, owners
in foreground deletion whose dependents changed, owners being deleted with the orphan
finalizer, virtual nodes to verify.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from skiff.api.resources import ResourceInfo
from skiff.client.rest import ApiClient, Obj, Res

from .graph import AbsentOwnerCache, Node, deleting_dependents, orphaning, owner_info, ref_identity

IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
"""(group, resource) never watched (``DefaultIgnoredResources``)."""


def collectable(info: ResourceInfo) -> bool:
    """Whether the collector watches ``info`` (listable, watchable, deletable, not ignored)."""
    if (info.group, info.plural) in IGNORED_RESOURCES:
        return False
    return all(v in info.verbs for v in ("list", "watch", "delete"))


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


# -- the graph builder -----------------------------------------------------------------


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
