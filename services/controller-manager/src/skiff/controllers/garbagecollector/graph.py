"""The nodes of the garbage collector's dependency graph (``graph.go``, ``uid_cache.go``).

A :class:`Node` is one object that has, or is named in, ``ownerReferences``: its
identity (uid, group, kind, namespace, name), its owner references as last observed,
its dependents, and whether it is being deleted (in the foreground, or orphaning its
dependents). A node known only from references is *virtual* until an informer shows
it. Also the identity an owner reference names, the resource type it names, the
deletion finalizers, and :class:`AbsentOwnerCache`, the owners verified absent.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.client.rest import Obj
from skiff.controller.owners import api_group

FOREGROUND = "foregroundDeletion"
"""``metav1.FinalizerDeleteDependents``."""
ORPHAN = "orphan"
"""``metav1.FinalizerOrphanDependents``."""

ABSENT_OWNER_CACHE_SIZE = 500

Identity = tuple[str, str, str, str, str]
"""(uid, group, kind, namespace, name) of an object."""

_BY_GROUP_KIND = {(r.group, r.kind): r for r in REGISTRY.resources}


def owner_info(ref: Obj) -> ResourceInfo | None:
    """The resource type an owner reference names (by group and kind; any version)."""
    return _BY_GROUP_KIND.get((api_group(ref.get("apiVersion") or ""), ref.get("kind") or ""))


def has_finalizer(meta: Obj, name: str) -> bool:
    return name in (meta.get("finalizers") or ())


def deleting_dependents(meta: Obj) -> bool:
    """Being deleted in the foreground: deletionTimestamp and the foregroundDeletion finalizer."""
    return bool(meta.get("deletionTimestamp")) and has_finalizer(meta, FOREGROUND)


def orphaning(meta: Obj) -> bool:
    """Being deleted with the orphan finalizer."""
    return bool(meta.get("deletionTimestamp")) and has_finalizer(meta, ORPHAN)


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
