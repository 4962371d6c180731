"""The StatefulSet controller (``stateful_set.go``): informers, claiming pods, the sync.

It watches StatefulSets, their pods, ControllerRevisions and PersistentVolumeClaims.
A sync claims the revisions and the pods (an orphan only when its name makes it one
of the set's), works out the current and update revisions, takes one step of
:mod:`.stateful_set_control` once the cache shows its own earlier creations and
deletions, writes the status, truncates the history, and requeues for the next pod
to become available.
"""

from __future__ import annotations

from typing import ClassVar

from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext
from skiff.controller.owners import SelectorCache, controller_ref
from skiff.controller.workload import PodOwnerController

from ..pods import next_availability
from .stateful_set_control import StatefulSetControlMixin
from .utils import is_member, spec_of


class StatefulSetController(StatefulSetControlMixin, PodOwnerController):
    """Keeps the ordered pods and claims of every StatefulSet."""

    name: ClassVar[str] = "statefulset-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("apps", "v1", "statefulsets")

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers, selectors=SelectorCache(allow_empty=False))
        self.revisions = self.watch_revisions()
        self.claims = self.watch("persistentvolumeclaims")

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        return [sts for sts, _ in self.owners_selecting(pod) if is_member(sts, pod)]

    # -- reconcile -----------------------------------------------------------------------

    async def sync_owner(self, key: str, sts: Obj) -> float | None:
        selector = self.selector(sts)
        revisions = await self.claim(sts, selector, self.revisions)
        pods = await self.claim(sts, selector, self.pods, keep=lambda p: self._candidate(sts, p))
        pods = [p for p in pods if is_member(sts, p)]
        current, update, collisions = await self._sync_revisions(sts, revisions)
        if not sts["metadata"].get("deletionTimestamp") and self.satisfied(key):
            await self.manage(sts, key, pods, current, update)
        now = self.ctx.clock()
        status = self.calculate_status(sts, pods, current, update, collisions, now)
        await self.update_status(sts, status)
        await self._truncate_history(sts, pods, [*revisions, current, update], current, update)
        return next_availability(pods, int(spec_of(sts).get("minReadySeconds") or 0), now)

    @staticmethod
    def _candidate(sts: Obj, pod: Obj) -> bool:
        """A pod the set may claim: controlled by someone, or an orphan named as its own."""
        return controller_ref(pod) is not None or is_member(sts, pod)
