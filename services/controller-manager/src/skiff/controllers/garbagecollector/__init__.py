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

Modules: :mod:`.garbagecollector` (the controller: monitors, work items,
``attemptToDeleteItem`` and ``attemptToOrphan``), :mod:`.graph` (the graph's nodes and
identities, the absent-owner cache), :mod:`.graph_builder` (the graph kept from informer
events, metadata-only informers), :mod:`.operations` (deleting, patching owner
references and finalizers).
"""

from skiff.controllers.garbagecollector.garbagecollector import (
    DELETE,
    ORPHAN_CONCURRENCY,
    ORPHAN_ITEM,
    VIRTUAL_RECHECK_SECONDS,
    GarbageCollector,
)
from skiff.controllers.garbagecollector.graph import (
    ABSENT_OWNER_CACHE_SIZE,
    FOREGROUND,
    ORPHAN,
    AbsentOwnerCache,
    Identity,
    Node,
    deleting_dependents,
    has_finalizer,
    orphaning,
    owner_info,
    ref_identity,
)
from skiff.controllers.garbagecollector.graph_builder import (
    IGNORED_RESOURCES,
    DependencyGraph,
    MetadataClient,
    collectable,
    metadata_only,
)

__all__ = [
    "ABSENT_OWNER_CACHE_SIZE",
    "DELETE",
    "FOREGROUND",
    "IGNORED_RESOURCES",
    "ORPHAN",
    "ORPHAN_CONCURRENCY",
    "ORPHAN_ITEM",
    "VIRTUAL_RECHECK_SECONDS",
    "AbsentOwnerCache",
    "DependencyGraph",
    "GarbageCollector",
    "Identity",
    "MetadataClient",
    "Node",
    "collectable",
    "deleting_dependents",
    "has_finalizer",
    "metadata_only",
    "orphaning",
    "owner_info",
    "ref_identity",
]
