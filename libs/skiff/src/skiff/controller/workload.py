"""Workload controllers: controllers of owner objects whose dependents carry the owner's
controller reference (kube-controller-manager's ReplicaSet, ReplicationController,
DaemonSet, StatefulSet, Job, CronJob and Deployment controllers).

:class:`WorkloadController` is what they all set up alike: the owners' informer
(indexed by namespace, to find the owners whose selector picks an orphan) with its event
handlers, the dependents' informers (indexed by controller), the owners' parsed
selectors, the cached owner a controller reference points at, claiming dependents
(:class:`~skiff.controller.owners.ControllerRefManager`), the object events are
recorded against, and a reconcile that forgets an owner that is gone (kube's sync
handlers all start so) and syncs one that is there::

    class FooController(WorkloadController):
        name = "foo-controller"
        resource, api_version, kind = "foos", "example.com/v1", "Foo"

        def __init__(self, ctx: ControllerContext) -> None:
            super().__init__(ctx)
            self.foos = self.watch_owners()
            self.pods = self.watch_dependents("pods")

        async def sync_owner(self, key: str, foo: Obj) -> float | None:
            pods = await self.claim(foo, self.selector(foo), self.pods)
            ...

:class:`PodOwnerController` adds what the controllers whose pods carry their controller
reference share (ReplicaSet, DaemonSet, StatefulSet): the pods' informer with the
:class:`~skiff.controller.owners.OwnedPodEvents` handlers, the expectations of pod
creations and deletions (forgotten with the owner), a
:class:`~skiff.controller.podcontrol.PodControl`, and writing the owners' status.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.api.selectors import LabelSelector
from skiff.client.informer import Informer, copy_object, key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.expectations import Expectations
from skiff.controller.owners import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    ControllerRefManager,
    OwnedPodEvents,
    SelectorCache,
    api_group,
    controller_index,
    namespace_index,
    owned_and_orphans,
    owners_selecting,
    resolve_controller_ref,
)
from skiff.controller.podcontrol import PodControl


class WorkloadController(Controller):
    """A controller of owners (``resource``, of ``kind`` in ``api_version``) and their
    dependents (see the module docstring).

    Subclasses call :meth:`watch_owners` and :meth:`watch_dependents`, implement
    :meth:`sync_owner`, and extend :meth:`forget` when they keep anything per owner.
    """

    owner_type: ClassVar[tuple[str, str, str]]
    """The owners' (group, version, plural); ``resource``, ``api_version`` and ``kind``
    come from the API registry."""
    resource: ClassVar[str]
    api_version: ClassVar[str]
    kind: ClassVar[str]
    ref_manager: ClassVar[type[ControllerRefManager]] = ControllerRefManager
    """What :meth:`claim` adopts and releases with."""

    owners: Informer

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner_type = cls.__dict__.get("owner_type")
        if owner_type is not None:
            info = REGISTRY.by_path(*owner_type)
            if info is None:
                raise TypeError(f"{cls.__name__}: unknown resource {owner_type}")
            cls.resource, cls.api_version, cls.kind = info.plural, info.api_version, info.kind

    def __init__(
        self, ctx: ControllerContext, *, workers: int = 5, selectors: SelectorCache | None = None
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.group = api_group(self.api_version)
        self.selectors = selectors if selectors is not None else SelectorCache()

    # -- informers -----------------------------------------------------------------------

    def watch_owners(self, *, adopts: bool = True) -> Informer:
        """The owners' informer (:attr:`owners`), each change enqueueing the owner; with
        ``adopts`` indexed by namespace, for :meth:`owners_selecting`."""
        if adopts:
            self.ctx.informers.index(self.resource, NAMESPACE_INDEX, namespace_index)
        self.owners = self.watch(self.resource)
        self.owners.add_handler(self.enqueue, self._owner_updated, self._owner_deleted)
        return self.owners

    def watch_dependents(self, res: str) -> Informer:
        """The informer of dependents ``res``, indexed by their controller."""
        self.ctx.informers.index(res, CONTROLLER_INDEX, controller_index)
        return self.watch(res)

    # -- owners --------------------------------------------------------------------------

    def selector(self, owner: Obj) -> LabelSelector:
        """The parsed selector of ``owner`` (cached per uid); TerminalError when unusable."""
        return self.selectors.get(owner)

    def owners_selecting(self, obj: Obj) -> list[tuple[Obj, LabelSelector]]:
        """The owners in ``obj``'s namespace whose selector picks it (for an orphan)."""
        return owners_selecting(self.owners, obj, self.selector)

    def _owner_of(self, obj: Obj, ref: Obj | None) -> Obj | None:
        """The cached owner that ``obj``'s controller reference ``ref`` points at (None
        for no reference, or one to another kind or to an owner gone)."""
        if ref is None:
            return None
        namespace = obj["metadata"].get("namespace")
        return resolve_controller_ref(self.owners, namespace, ref, self.kind, self.group)

    def about(self, owner: Obj) -> Obj:
        """What events about ``owner`` are recorded against (with kind and apiVersion)."""
        return {"kind": self.kind, "apiVersion": self.api_version, "metadata": owner["metadata"]}

    async def claim(
        self,
        owner: Obj,
        selector: LabelSelector,
        dependents: Informer,
        *,
        keep: Callable[[Obj], bool] | None = None,
    ) -> list[Obj]:
        """The cached dependents ``owner`` controls once it adopted the orphans
        ``selector`` picks and released those it stopped picking (``keep`` sorts out
        the candidates first)."""
        candidates = owned_and_orphans(dependents, owner)
        if keep is not None:
            candidates = [obj for obj in candidates if keep(obj)]
        refs = self.ref_manager(
            self.client,
            owner,
            selector,
            owner_resource=self.resource,
            owner_api_version=self.api_version,
            owner_kind=self.kind,
            resource=dependents.info.plural,
        )
        return await refs.claim(candidates)

    # -- owner events --------------------------------------------------------------------

    def _owner_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._owner_deleted(old)  # replaced by a namesake
        self.enqueue(new)

    def _owner_deleted(self, owner: Obj) -> None:
        self.selectors.pop(owner["metadata"].get("uid", ""), None)
        self.enqueue(owner)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        owner = self.owners.get(key)
        if owner is None:
            self.forget(key)
            return None
        return await self.sync_owner(key, owner)

    def forget(self, key: str) -> None:
        """Drop what is kept for the owner at ``key``: it is gone (nothing here)."""

    @abstractmethod
    async def sync_owner(self, key: str, owner: Obj) -> float | None:
        """Reconcile the cached ``owner`` at ``key`` (see :meth:`Controller.reconcile`)."""


class PodOwnerController(OwnedPodEvents, WorkloadController):
    """A :class:`WorkloadController` whose pods carry its controller reference: the
    owners' informer as :attr:`sets`, the pods' as :attr:`pods` with the
    :class:`OwnedPodEvents` handlers, the ``creations`` and ``deletions`` expectations
    (one :class:`Expectations` may serve as both), forgotten with the owner,
    :attr:`pod_control` (a :attr:`pod_control_type`), and status writes.
    """

    pod_control_type: ClassVar[type[PodControl]] = PodControl

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        selectors: SelectorCache | None = None,
        creations: Expectations | None = None,
        deletions: Expectations | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers, selectors=selectors)
        self.creations = creations if creations is not None else Expectations()
        self.deletions = deletions if deletions is not None else Expectations()
        self.pod_control = self.pod_control_type(self.client, self.events)
        self.sets = self.watch_owners()
        self.pods = self.watch_dependents("pods")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    def watch_revisions(self) -> Informer:
        """The ControllerRevisions' informer (the owners' template history), each change
        enqueueing the revision's owner."""
        revisions = self.watch_dependents("controllerrevisions")
        revisions.add_handler(
            self._revision_changed, lambda _o, n: self._revision_changed(n), self._revision_changed
        )
        return revisions

    _owner_of = WorkloadController._owner_of  # what OwnedPodEvents asks for

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        """The owners whose selector picks the orphan ``pod`` (to adopt it)."""
        return [owner for owner, _ in self.owners_selecting(pod)]

    def _owner_deleted(self, owner: Obj) -> None:
        self.forget(key_of(owner))
        super()._owner_deleted(owner)

    def forget(self, key: str) -> None:
        self.creations.delete(key)
        self.deletions.delete(key)

    def satisfied(self, key: str) -> bool:
        """Whether the cache shows every pod creation and deletion expected for ``key``."""
        return self.creations.satisfied(key) and self.deletions.satisfied(key)

    async def update_status(self, owner: Obj, status: Obj) -> None:
        """Write ``status`` through ``/status`` when it differs from the cached one
        (``updateReplicaSetStatus``, ``storeDaemonSetStatus``, ``updateStatefulSetStatus``).

        The cache often lags our own previous status write: on a conflict the object is
        read again and the write retried once. An owner deleted meanwhile, or replaced
        by a namesake (whose own events requeue it), is left alone.
        """
        if status == (owner.get("status") or {}):
            return
        obj = copy_object(owner)
        for attempt in range(2):
            obj["status"] = status
            try:
                await self.client.update(self.resource, obj, subresource="status")
                return
            except ApiError as e:
                if e.code == 404:
                    return
                if e.code != 409 or attempt:
                    raise
            meta = owner["metadata"]
            obj = await self.client.get(self.resource, meta["name"], meta.get("namespace"))
            if obj["metadata"].get("uid") != meta.get("uid"):
                return
            if (obj.get("status") or {}) == status:
                return
