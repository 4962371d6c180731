"""Owners and dependents: controller references, adoption and release
(``ControllerRefManager``), owner lookups by index, selector caching, and the pod event
handlers of controllers whose pods carry their controller reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from skiff.api.errors import ApiError, Reason
from skiff.api.pods import is_ready
from skiff.api.selectors import LabelSelector, selector_from_dict
from skiff.client.informer import Informer, key_of
from skiff.client.rest import ApiClient, Obj
from skiff.client.workqueue import WorkQueue
from skiff.controller.controller import TerminalError
from skiff.controller.expectations import Expectations
from skiff.log import get_logger

log = get_logger(__name__)


NAMESPACE_INDEX = "namespace"
CONTROLLER_INDEX = "controller"
"""Index of dependents by their controller: ``uid:<owner uid>``, or ``orphan:<namespace>``."""


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with ``controller: true``, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller") is True:
            return ref
    return None


def new_controller_ref(owner: Obj, api_version: str, kind: str) -> Obj:
    """An ownerReference making ``owner`` the controller (blocking its foreground deletion)."""
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def api_group(api_version: str) -> str:
    """The group of an ``apiVersion`` (``""`` for the core ``v1``)."""
    group, _, _ = api_version.rpartition("/")
    return group


def namespace_index(obj: Obj) -> list[str]:
    """Index function: the object's namespace."""
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def controller_index(obj: Obj) -> list[str]:
    """Index function for :data:`CONTROLLER_INDEX`."""
    ref = controller_ref(obj)
    if ref is not None:
        return [f"uid:{ref.get('uid', '')}"]
    return [f"orphan:{(obj.get('metadata') or {}).get('namespace') or ''}"]


def owned_and_orphans(informer: Informer, owner: Obj) -> list[Obj]:
    """Objects controlled by ``owner`` plus the orphans of its namespace (candidates to claim).

    The informer needs :data:`CONTROLLER_INDEX` (see :meth:`SharedInformers.index`).
    """
    meta = owner["metadata"]
    store = informer.store
    return store.by_index(CONTROLLER_INDEX, f"uid:{meta['uid']}") + store.by_index(
        CONTROLLER_INDEX, f"orphan:{meta.get('namespace') or ''}"
    )


def resolve_controller_ref(
    informer: Informer, namespace: str | None, ref: Obj, kind: str, group: str
) -> Obj | None:
    """The cached owner ``ref`` points at, when it is of ``kind``/``group`` and has its uid."""
    if ref.get("kind") != kind or api_group(ref.get("apiVersion") or "") != group:
        return None
    key = f"{namespace}/{ref.get('name', '')}" if namespace else ref.get("name", "")
    owner = informer.get(key)
    if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
        return None
    return owner


class ControllerRefManager:
    """Claims dependents for one owner, as kube-controller-manager's ``ControllerRefManager``.

    :meth:`claim` keeps the objects the owner controls that still match its selector,
    adopts matching orphans (adding a controller ownerReference) and releases controlled
    objects that no longer match (removing it). Nothing is adopted or released while
    the owner or the object is being deleted. Before the first adoption the owner is
    read again from the API (not the cache) so that a deleted-and-recreated owner never
    adopts in the name of its predecessor.
    """

    def __init__(
        self,
        client: ApiClient,
        owner: Obj,
        selector: LabelSelector,
        *,
        owner_resource: str,
        owner_api_version: str,
        owner_kind: str,
        resource: str = "pods",
    ) -> None:
        self.client = client
        self.owner = owner
        self.selector = selector
        self.owner_resource = owner_resource
        self.owner_api_version = owner_api_version
        self.owner_kind = owner_kind
        self.resource = resource
        self._can_adopt: bool | None = None

    async def claim(self, objs: Iterable[Obj]) -> list[Obj]:
        """The objects this owner controls after adoption and release.

        Errors other than 404 are raised after every object was tried.
        """
        owner_meta = self.owner["metadata"]
        owner_deleting = bool(owner_meta.get("deletionTimestamp"))
        claimed: list[Obj] = []
        errors: list[Exception] = []
        for obj in objs:
            meta = obj["metadata"]
            matches = self.selector.matches(meta.get("labels"))
            ref = controller_ref(obj)
            try:
                if ref is not None:
                    if ref.get("uid") != owner_meta["uid"]:
                        continue  # someone else's
                    if matches:
                        claimed.append(obj)
                    elif not owner_deleting and not meta.get("deletionTimestamp"):
                        await self.release(obj)
                    continue
                if owner_deleting or not matches or meta.get("deletionTimestamp"):
                    continue
                await self.adopt(obj)
                claimed.append(obj)
            except ApiError as e:
                if e.code != 404:
                    errors.append(e)
        if errors:
            raise errors[0]
        return claimed

    async def _check_can_adopt(self) -> None:
        if self._can_adopt is None:
            meta = self.owner["metadata"]
            fresh = await self.client.get(self.owner_resource, meta["name"], meta.get("namespace"))
            fmeta = fresh["metadata"]
            if fmeta.get("uid") != meta["uid"]:
                self._can_adopt = False
                raise cache_conflict(
                    f"original {self.owner_kind} {meta['name']} is gone: got uid "
                    f"{fmeta.get('uid')}, wanted {meta['uid']}"
                )
            self._can_adopt = not fmeta.get("deletionTimestamp")
        if not self._can_adopt:
            raise cache_conflict(
                f"{self.owner_kind} {self.owner['metadata']['name']} is being deleted: "
                "it cannot adopt"
            )

    async def adopt(self, obj: Obj) -> None:
        """Make the owner the controller of an orphan (409 when the orphan changed meanwhile)."""
        await self._check_can_adopt()
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        new = [*refs, new_controller_ref(self.owner, self.owner_api_version, self.owner_kind)]
        ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
        if refs:
            ops.append({"op": "test", "path": "/metadata/ownerReferences", "value": refs})
        else:
            # JSON patch cannot test for absence: the resourceVersion stands in, so two
            # controllers never both adopt the same orphan.
            rv = meta.get("resourceVersion", "")
            ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": rv})
        ops.append({"op": "add", "path": "/metadata/ownerReferences", "value": new})
        await self._patch(obj, ops, "adopting")
        log.info(
            "adopted",
            owner=key_of(self.owner),
            kind=self.owner_kind,
            object=key_of(obj),
        )

    async def release(self, obj: Obj) -> None:
        """Remove the owner's ownerReference from an object that stopped matching."""
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        uid = self.owner["metadata"]["uid"]
        kept = [r for r in refs if r.get("uid") != uid]
        ops: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
        ]
        if kept:
            ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": kept})
        else:
            ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
        await self._patch(obj, ops, "releasing")
        log.info("released", owner=key_of(self.owner), kind=self.owner_kind, object=key_of(obj))

    async def _patch(self, obj: Obj, ops: list[Obj], what: str) -> None:
        meta = obj["metadata"]
        try:
            await self.client.patch(
                self.resource, meta["name"], ops, meta.get("namespace"), type="json"
            )
        except ApiError as e:
            if e.code == 422 and "test failed" in e.message:
                # The object changed since the cache saw it: retry from a fresher cache.
                raise cache_conflict(f"{what} {key_of(obj)}: it changed meanwhile") from e
            raise


def cache_conflict(message: str) -> ApiError:
    return ApiError(409, Reason.CONFLICT, message)


MIN_READY_SKEW = 1.0
"""Added to ``minReadySeconds`` when an owner is enqueued for its availability check, so
that it runs after the pod became available (Kubernetes adds a second, too)."""


class OwnedPodEvents:
    """Pod event handlers of a controller whose pods carry its controller reference:
    kube-controller-manager's addPod/updatePod/deletePod of ReplicaSets (and
    ReplicationControllers), DaemonSets and StatefulSets.

    An owned pod enqueues its owner and feeds its expectations: its addition is a
    ``creations`` observation, its deletion, or the deletionTimestamp that starts it, a
    ``deletions`` one (so a gracefully deleted pod is replaced at once). A pod whose
    controller reference changed enqueues its previous owner too; an orphan enqueues every
    owner whose selector matches it (for adoption) when it is added or its labels or
    controller reference changed. A pod that turned Ready enqueues its owner again
    ``minReadySeconds`` (plus :data:`MIN_READY_SKEW`) later, when it counts as available.

    The class mixing this in (before :class:`~skiff.controller.controller.Controller`)
    provides ``_owner_of(obj, ref)`` (the cached owner a controller reference resolves to,
    None for a None ref) and ``_sets_for_orphan(pod)``, and the ``creations`` and
    ``deletions`` expectations (one :class:`Expectations` may serve as both when a sync
    never both creates and deletes).
    """

    creations: Expectations
    deletions: Expectations
    queue: WorkQueue[str]
    enqueue: Callable[[Obj], None]  # Controller's
    enqueue_after: Callable[[Obj, float], None]  # Controller's

    def _owner_of(self, obj: Obj, ref: Obj | None) -> Obj | None:
        raise NotImplementedError

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        raise NotImplementedError

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # First seen already terminating (a relist): a deletion, never a creation.
            self._pod_deleted(pod)
            return
        ref = controller_ref(pod)
        if ref is not None:
            owner = self._owner_of(pod, ref)
            if owner is not None:
                key = key_of(owner)
                self.creations.creation_observed(key)
                self.queue.add(key)
            return
        # An orphan: no owner waits for its creation, matching ones may adopt it.
        for owner in self._sets_for_orphan(pod):
            self.enqueue(owner)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old["metadata"], new["metadata"]
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return  # a resync: nothing changed
        labels_changed = (om.get("labels") or {}) != (nm.get("labels") or {})
        if nm.get("deletionTimestamp"):
            # Graceful deletion: replace the pod now, not when its kubelet is done. As in
            # Kubernetes, a label change makes the old pod's controller hear of it too
            # (a deletionTimestamp is never unset, so the old pod needs no check).
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(new)
        ref_changed = old_ref != cur_ref
        if ref_changed and old_ref is not None:
            if (prev := self._owner_of(old, old_ref)) is not None:
                self.enqueue(prev)
        if cur_ref is not None:
            owner = self._owner_of(new, cur_ref)
            if owner is None:
                return
            self.enqueue(owner)
            min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_ready(old) and is_ready(new):
                # Its availability changes without an event of its own: look again then.
                self.enqueue_after(owner, min_ready + MIN_READY_SKEW)
            return
        if labels_changed or ref_changed:
            for owner in self._sets_for_orphan(new):
                self.enqueue(owner)

    def _pod_deleted(self, pod: Obj) -> None:
        ref = controller_ref(pod)
        if ref is None:
            return  # no controller cares about an orphan's deletion
        owner = self._owner_of(pod, ref)
        if owner is None:
            return
        key = key_of(owner)
        self.deletions.deletion_observed(key, key_of(pod))
        self.queue.add(key)

    def _revision_changed(self, revision: Obj) -> None:
        owner = self._owner_of(revision, controller_ref(revision))
        if owner is not None:
            self.enqueue(owner)


_SPEC_SELECTOR = object()


class SelectorCache:
    """Parsed ``spec.selector`` of owners by uid, parsed again only when it changes.

    An unparsable selector is a :class:`TerminalError` (retrying cannot fix it); with
    ``allow_empty=False`` so is one that selects nothing or everything.
    """

    def __init__(
        self,
        parse: Callable[[Any], LabelSelector] = selector_from_dict,
        *,
        allow_empty: bool = True,
    ) -> None:
        self._parse = parse
        self._allow_empty = allow_empty
        self._cache: dict[str, tuple[Any, LabelSelector]] = {}

    def get(self, obj: Obj, raw: Any = _SPEC_SELECTOR) -> LabelSelector:
        """``obj``'s selector (``raw`` when given, else ``spec.selector``)."""
        if raw is _SPEC_SELECTOR:
            raw = (obj.get("spec") or {}).get("selector")
        uid = obj["metadata"].get("uid", "")
        cached = self._cache.get(uid)
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            sel = self._parse(raw)
        except ApiError as e:
            raise TerminalError(f"invalid selector: {e.message}") from e
        if not self._allow_empty and (sel.empty or sel.matches_nothing):
            raise TerminalError("the selector is empty: it would select no pod or every pod")
        self._cache[uid] = (raw, sel)
        return sel

    def pop(self, uid: str, default: Any = None) -> Any:
        """Forget an owner (deleted or replaced)."""
        return self._cache.pop(uid, default)


def owners_selecting(
    owners: Informer, obj: Obj, selector_of: Callable[[Obj], LabelSelector]
) -> list[tuple[Obj, LabelSelector]]:
    """Owners in ``obj``'s namespace whose selector selects its labels (for orphans);
    owners with an unusable selector (``TerminalError``) are skipped."""
    meta = obj["metadata"]
    out = []
    for owner in owners.store.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
        try:
            sel = selector_of(owner)
        except TerminalError:
            continue
        if sel.matches(meta.get("labels")):
            out.append((owner, sel))
    return out
