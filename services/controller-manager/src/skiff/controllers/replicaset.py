"""The ReplicaSet and ReplicationController controllers (``pkg/controller/replicaset``).

Each keeps exactly ``spec.replicas`` active pods matching its selector: it claims
its pods (adopting matching orphans, releasing pods that stopped matching), creates
the missing ones from the template in slow-start batches, deletes the surplus in
``ActivePodsWithRanks`` order, and writes ``status`` through ``/status``. Creations
and deletions are recorded in :class:`~skiff.controller.expectations.Expectations`
first, so the controller does not act on a set again until its cache has seen them.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from skiff.api.errors import ApiError, namespace_terminating
from skiff.api.selectors import LabelSelector, selector_from_dict, selector_from_map
from skiff.api.timestamps import rfc3339
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.batch import slow_start_batch
from skiff.controller.controller import Controller, ControllerContext, TerminalError, writable
from skiff.controller.expectations import Expectations
from skiff.controller.owners import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    ControllerRefManager,
    OwnedPodEvents,
    SelectorCache,
    controller_index,
    namespace_index,
    new_controller_ref,
    owned_and_orphans,
    owners_selecting,
    resolve_controller_ref,
)

from .pods import (
    available_at,
    generate_name_prefix,
    is_active,
    is_ready,
    pod_from_template,
    pods_to_delete,
)

BURST_REPLICAS = 500
"""At most this many pods are created or deleted in one sync (``BurstReplicas``)."""
SLOW_START_INITIAL_BATCH = 1
REPLICA_FAILURE = "ReplicaFailure"


class ReplicaSetController(OwnedPodEvents, Controller):
    """Keeps the pods of every ReplicaSet; subclassed for ReplicationControllers."""

    name: ClassVar[str] = "replicaset-controller"
    resource: ClassVar[str] = "replicasets"
    api_version: ClassVar[str] = "apps/v1"
    kind: ClassVar[str] = "ReplicaSet"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        burst_replicas: int = BURST_REPLICAS,
        expectations: Expectations | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.burst_replicas = burst_replicas
        self.expectations = expectations or Expectations()
        self.group = self.api_version.rpartition("/")[0]
        ctx.informers.index(self.resource, NAMESPACE_INDEX, namespace_index)
        ctx.informers.index("pods", CONTROLLER_INDEX, controller_index)
        self.sets = self.watch(self.resource)
        self.pods = self.watch("pods")
        self._selectors = SelectorCache(self.parse_selector, allow_empty=False)
        self.sets.add_handler(self._set_added, self._set_updated, self._set_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # A sync either creates or deletes pods, never both: one Expectations serves as the
    # creations and the deletions OwnedPodEvents observes.

    @property
    def creations(self) -> Expectations:
        return self.expectations

    @property
    def deletions(self) -> Expectations:
        return self.expectations

    # -- selectors -----------------------------------------------------------------------

    def raw_selector(self, rs: Obj) -> Any:
        return (rs.get("spec") or {}).get("selector")

    def parse_selector(self, raw: Any) -> LabelSelector:
        return selector_from_dict(raw)

    def selector(self, rs: Obj) -> LabelSelector:
        """The parsed selector of ``rs`` (cached per uid); TerminalError when unusable."""
        return self._selectors.get(rs, self.raw_selector(rs))

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        """The sets in the pod's namespace whose selector selects it (for orphans)."""
        return [rs for rs, _ in owners_selecting(self.sets, pod, self.selector)]

    def _owner_of(self, pod: Obj, ref: Obj | None) -> Obj | None:
        if ref is None:
            return None
        return resolve_controller_ref(
            self.sets, pod["metadata"].get("namespace"), ref, self.kind, self.group
        )

    # -- event handlers ------------------------------------------------------------------

    def _set_added(self, rs: Obj) -> None:
        self.enqueue(rs)

    def _set_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._set_deleted(old)
        self.enqueue(new)

    def _set_deleted(self, rs: Obj) -> None:
        self.expectations.delete(key_of(rs))
        self._selectors.pop(rs["metadata"].get("uid", ""), None)
        self.enqueue(rs)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.delete(key)
            return None
        needs_sync = self.expectations.satisfied(key)
        selector = self.selector(rs)
        candidates = [p for p in owned_and_orphans(self.pods, rs) if is_active(p)]
        refs = ControllerRefManager(
            self.client,
            rs,
            selector,
            owner_resource=self.resource,
            owner_api_version=self.api_version,
            owner_kind=self.kind,
        )
        pods = await refs.claim(candidates)
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
        return self._next_availability(rs, pods, now)

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
        ns, name = split_key(key)
        assert ns is not None
        template = (rs.get("spec") or {}).get("template") or {}
        ref = new_controller_ref(rs, self.api_version, self.kind)
        prefix = generate_name_prefix(name)
        about = self._about(rs)
        self.expectations.expect_creations(key, count)
        self.log.info("creating pods", key=key, count=count)

        async def create_one() -> None:
            pod = pod_from_template(template, ns, prefix, ref)
            try:
                created = await self.client.create("pods", pod, ns)
            except ApiError as e:
                if namespace_terminating(e):
                    return
                self.events.emit(about, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.events.emit(
                about, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
            )

        successes, error = await slow_start_batch(count, SLOW_START_INITIAL_BATCH, create_one)
        if skipped := count - successes:
            # Failed or never tried: the cache will never show these.
            self.expectations.lower_creations(key, skipped)
        if error is not None:
            raise error

    async def _delete(self, rs: Obj, key: str, pods: list[Obj], count: int) -> None:
        victims = pods_to_delete(pods, count, self.related_pods(rs, pods))
        self.expectations.expect_deletions(key, [key_of(p) for p in victims])
        self.log.info("deleting pods", key=key, count=len(victims))
        about = self._about(rs)

        async def delete_one(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.client.delete(
                    "pods", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                # The cache will never show this deletion from us.
                self.expectations.deletion_observed(key, key_of(pod))
                if e.code in (404, 409):
                    return  # gone already, or another pod of the same name
                self.events.emit(about, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self.events.emit(about, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        results = await asyncio.gather(*(delete_one(p) for p in victims), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def related_pods(self, rs: Obj, pods: list[Obj]) -> list[Obj]:
        """Pods whose nodes rank deletion (sharing a node with more of them goes first).

        Kubernetes counts the pods of sibling ReplicaSets of the same Deployment too; a
        Deployment-aware subclass can override this.
        """
        return pods

    def _about(self, rs: Obj) -> Obj:
        return {"kind": self.kind, "apiVersion": self.api_version, "metadata": rs["metadata"]}

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

    async def update_status(self, rs: Obj, status: Obj) -> None:
        """Write ``status`` through ``/status`` when it differs from the cached one.

        The cache often lags our own previous status write: on a conflict the object is
        read again and the write retried once, as ``updateReplicaSetStatus`` does.
        """
        if status == (rs.get("status") or {}):
            return
        obj = writable(rs)
        for attempt in range(2):
            obj["status"] = status
            try:
                await self.client.update(self.resource, obj, subresource="status")
                return
            except ApiError as e:
                if e.code == 404:
                    return  # deleted meanwhile
                if e.code != 409 or attempt:
                    raise
            meta = rs["metadata"]
            obj = await self.client.get(self.resource, meta["name"], meta.get("namespace"))
            if obj["metadata"].get("uid") != meta.get("uid"):
                return  # replaced by a namesake: its own events requeue it
            if (obj.get("status") or {}) == status:
                return

    def _next_availability(self, rs: Obj, pods: list[Obj], now: float) -> float | None:
        """Seconds until the next ready pod passes minReadySeconds (None: none waiting)."""
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready <= 0:
            return None
        waits = [
            at - now for p in pods if (at := available_at(p, min_ready)) is not None and at > now
        ]
        return min(waits) + 0.05 if waits else None


class ReplicationControllerController(ReplicaSetController):
    """The same controller for core/v1 ReplicationControllers (a plain map selector)."""

    name: ClassVar[str] = "replicationcontroller-controller"
    resource: ClassVar[str] = "replicationcontrollers"
    api_version: ClassVar[str] = "v1"
    kind: ClassVar[str] = "ReplicationController"

    def parse_selector(self, raw: Any) -> LabelSelector:
        if raw is not None and not isinstance(raw, dict):
            raise TerminalError("spec.selector must be a map of labels")
        return selector_from_map(raw)
