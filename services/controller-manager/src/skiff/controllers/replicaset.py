"""The ReplicaSet and ReplicationController controllers (``pkg/controller/replicaset``).

Each keeps exactly ``spec.replicas`` active pods matching its selector: it claims
its pods (adopting matching orphans, releasing pods that stopped matching), creates
the missing ones from the template in slow-start batches, deletes the surplus in
``ActivePodsWithRanks`` order, and writes ``status`` through ``/status``. Creations
and deletions are recorded in :class:`~skiff.controller.expectations.Expectations`
first, so the controller does not act on a set again until its cache has seen them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_dict, selector_from_map
from skiff.api.timestamps import rfc3339
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, TerminalError
from skiff.controller.expectations import Expectations
from skiff.controller.owners import SelectorCache
from skiff.controller.workload import PodOwnerController

from .pods import available_at, is_active, is_ready, next_availability, pods_to_delete

BURST_REPLICAS = 500
"""At most this many pods are created or deleted in one sync (``BurstReplicas``)."""
REPLICA_FAILURE = "ReplicaFailure"


class ReplicaSetController(PodOwnerController):
    """Keeps the pods of every ReplicaSet; subclassed for ReplicationControllers.

    A sync either creates or deletes pods, never both: one :class:`Expectations`
    (:attr:`expectations`) serves as the creations and the deletions.
    """

    name: ClassVar[str] = "replicaset-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("apps", "v1", "replicasets")

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        burst_replicas: int = BURST_REPLICAS,
        expectations: Expectations | None = None,
    ) -> None:
        self.expectations = expectations or Expectations()
        super().__init__(
            ctx,
            workers=workers,
            selectors=SelectorCache(self.parse_selector, allow_empty=False),
            creations=self.expectations,
            deletions=self.expectations,
        )
        self.burst_replicas = burst_replicas

    # -- selectors -----------------------------------------------------------------------

    def raw_selector(self, rs: Obj) -> Any:
        return (rs.get("spec") or {}).get("selector")

    def parse_selector(self, raw: Any) -> LabelSelector:
        return selector_from_dict(raw)

    def selector(self, rs: Obj) -> LabelSelector:
        """The parsed selector of ``rs`` (cached per uid); TerminalError when unusable."""
        return self.selectors.get(rs, self.raw_selector(rs))

    # -- reconcile -----------------------------------------------------------------------

    async def sync_owner(self, key: str, rs: Obj) -> float | None:
        needs_sync = self.expectations.satisfied(key)
        selector = self.selector(rs)
        pods = await self.claim(rs, selector, self.pods, keep=is_active)
        manage_error: ApiError | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(rs, pods)
            except ApiError as e:
                manage_error = e
        now = self.ctx.clock()
        status = self.calculate_status(rs, pods, now, manage_error)
        await self.update_status(rs, status)
        if manage_error is not None:
            raise manage_error
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        return next_availability(pods, min_ready, now)

    async def manage_replicas(self, rs: Obj, pods: list[Obj]) -> None:
        """Create or delete pods so that ``len(pods) == spec.replicas``."""
        key = key_of(rs)
        want = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = len(pods) - want
        if diff < 0:
            await self._create(rs, key, min(-diff, self.burst_replicas))
        elif diff > 0:
            await self._delete(rs, key, pods, min(diff, self.burst_replicas))

    async def _create(self, rs: Obj, key: str, count: int) -> None:
        template = (rs.get("spec") or {}).get("template") or {}
        about = self.about(rs)
        self.log.info("creating pods", key=key, count=count)

        async def create_one() -> None:
            await self.pod_control.create_pod(about, template)

        _, error = await self.pod_control.create_pods(self.expectations, key, count, create_one)
        if error is not None:
            raise error

    async def _delete(self, rs: Obj, key: str, pods: list[Obj], count: int) -> None:
        victims = pods_to_delete(pods, count, self.related_pods(rs, pods))
        self.log.info("deleting pods", key=key, count=len(victims))
        about = self.about(rs)
        for error in await self.pod_control.delete_pods(about, victims, self.expectations, key):
            if error is not None:
                raise error

    def related_pods(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods whose nodes rank deletion (sharing a node with more of them goes first).

        Kubernetes counts the pods of sibling ReplicaSets of the same Deployment too; a
        Deployment-aware subclass can override this.
        """
        return pods

    # -- status --------------------------------------------------------------------------

    def calculate_status(
        self, rs: Obj, pods: list[Obj], now: float, manage_error: ApiError | None
    ) -> Obj:
        """The status ``pods`` give ``rs`` (``calculateStatus``)."""
        spec = rs.get("spec") or {}
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        fully = ready = available = 0
        for p in pods:
            labels = p["metadata"].get("labels") or {}
            if all(labels.get(k) == v for k, v in template_labels.items()):
                fully += 1
            if is_ready(p):
                ready += 1
                at = available_at(p, min_ready)
                if at is not None and at <= now:
                    available += 1
        status: Obj = dict(rs.get("status") or {})
        status["replicas"] = len(pods)
        counts = {
            "fullyLabeledReplicas": fully,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": int(rs["metadata"].get("generation") or 0),
        }
        for field, count in counts.items():  # zero counts are left out (Go's omitempty)
            if count:
                status[field] = count
            else:
                status.pop(field, None)
        conditions = [c for c in status.get("conditions") or () if c.get("type") != REPLICA_FAILURE]
        failure = next(
            (c for c in status.get("conditions") or () if c.get("type") == REPLICA_FAILURE), None
        )
        if manage_error is not None:
            want = int(spec.get("replicas", 1) or 0)
            reason = "FailedCreate" if len(pods) < want else "FailedDelete"
            if failure is None or failure.get("reason") != reason:
                failure = {
                    "type": REPLICA_FAILURE,
                    "status": "True",
                    "lastTransitionTime": rfc3339(now),
                    "reason": reason,
                    "message": manage_error.message,
                }
            conditions.append(failure)
        if conditions:
            status["conditions"] = conditions
        else:
            status.pop("conditions", None)
        return status


class ReplicationControllerController(ReplicaSetController):
    """The same controller for core/v1 ReplicationControllers (a plain map selector)."""

    name: ClassVar[str] = "replicationcontroller-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("", "v1", "replicationcontrollers")

    def parse_selector(self, raw: Any) -> LabelSelector:
        if raw is not None and not isinstance(raw, dict):
            raise TerminalError("spec.selector must be a map of labels")
        return selector_from_map(raw)
