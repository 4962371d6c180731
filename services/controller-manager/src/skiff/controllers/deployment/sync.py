"""One sync of a Deployment (``sync.go``, with ``rollback.go``'s revision bookkeeping).

:class:`DeploymentSync` holds one ``syncDeployment`` of one Deployment: the writes
(status, the revision annotation, ReplicaSet updates and scaling with their events),
finding and creating the new ReplicaSet (revisions, hash collisions), scaling without a
rollout when paused or when ``spec.replicas`` changed (proportional scaling), cleaning
up ReplicaSets beyond ``revisionHistoryLimit``, the Paused/Resumed record and the
status the ReplicaSets give. The rollouts themselves are in :mod:`.rolling` and
:mod:`.recreate`, the progress estimate in :mod:`.progress`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from skiff.api.conditions import get_condition, set_condition
from skiff.api.errors import ApiError, Reason, namespace_terminating
from skiff.client.informer import key_of
from skiff.client.rest import ApiClient, Obj
from skiff.controller.controller import writable
from skiff.controller.owners import controller_ref, new_controller_ref

from .util import (
    AVAILABLE,
    DESIRED_REPLICAS,
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    MAX_REPLICAS,
    MINIMUM_REPLICAS_AVAILABLE,
    MINIMUM_REPLICAS_UNAVAILABLE,
    NEW_RS_CREATED,
    PAUSED,
    POD_TEMPLATE_HASH,
    PROGRESSING,
    RESUMED,
    REVISION,
    TIMED_OUT,
    active,
    annotations_of,
    by_creation,
    compute_hash,
    creation_order,
    equal_ignore_hash,
    find_active_or_latest,
    find_new_replica_set,
    find_old_replica_sets,
    is_rolling_update,
    is_saturated,
    max_revision,
    max_surge,
    max_unavailable,
    new_condition,
    new_rs_new_replicas,
    progress_deadline,
    replicas,
    replicas_annotations_need_update,
    revision_or_zero,
    set_new_replica_set_annotations,
    set_replicas_annotations,
    status_int,
)

if TYPE_CHECKING:
    from .deployment_controller import DeploymentController

# -- scaling without a rollout ---------------------------------------------------------------


def _round(x: float) -> int:
    """Round half away from zero (Go's ``math.Round``)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _fraction(rs: Obj, d: Obj) -> int:
    """The replicas ``rs`` gains (or loses) in proportion (``getReplicaSetFraction``)."""
    want = replicas(d)
    if want == 0:
        return -replicas(rs)
    deployment_max = want + max_surge(d)
    try:
        annotated = int(annotations_of(rs).get(MAX_REPLICAS, ""))
    except ValueError:
        annotated = 0
    if annotated == 0:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    return _round(replicas(rs) * deployment_max / annotated) - replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Obj, rss: Sequence[Obj | None]) -> tuple[list[tuple[Obj, int]], str]:
    """New sizes spreading a change of ``spec.replicas`` over the active ReplicaSets.

    Each gets its share of the replicas to add (or remove) in proportion to its size
    against the max-replicas it was sized for; the leftover goes to the largest one.
    Scaling up favours newer ReplicaSets among equals, scaling down older ones (the
    ``scale`` step of ``sync.go``). Returns the (ReplicaSet, size) pairs in the order
    to apply them, and "up" or "down".
    """
    live = active(rss)
    want = replicas(d)
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - sum(replicas(rs) for rs in live)
    operation = ""
    ordered = by_creation(live)
    if to_add > 0:
        ordered.reverse()  # newer first among equals
        operation = "up"
    elif to_add < 0:
        operation = "down"
    ordered.sort(key=lambda rs: -replicas(rs))  # stable: larger first
    added = 0
    sizes: list[int] = []
    for rs in ordered:
        if to_add:
            p = _proportion(rs, d, to_add, added)
            sizes.append(replicas(rs) + p)
            added += p
        else:
            sizes.append(replicas(rs))
    if ordered and to_add:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(ordered, sizes, strict=True)), operation


def cleanup_candidates(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` to delete, lowest revision first.

    Only empty ones whose status has caught up, as ``cleanupDeployment`` does.
    """
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (revision_or_zero(rs), *creation_order(rs)))
    out = []
    for rs in alive[:diff]:
        meta = rs["metadata"]
        if (
            status_int(rs, "replicas") != 0
            or replicas(rs) != 0
            or int(meta.get("generation") or 0) > status_int(rs, "observedGeneration")
        ):
            continue
        out.append(rs)
    return out


# -- status ----------------------------------------------------------------------------------


def calculate_status(all_rss: Sequence[Obj], new_rs: Obj | None, d: Obj, now: float) -> Obj:
    """The status the ReplicaSets give the Deployment, with its Available condition.

    Zero counts are left out, as Go's ``omitempty`` leaves them out.
    """
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss)
    total = sum(replicas(rs) for rs in all_rss)
    old = d.get("status") or {}
    counts = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum(status_int(rs, "replicas") for rs in all_rss),
        "updatedReplicas": status_int(new_rs, "replicas"),
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    status: Obj = {k: v for k, v in counts.items() if v}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


# -- one sync ------------------------------------------------------------------------------


class DeploymentSync:
    """One ``syncDeployment`` of one Deployment over its claimed ReplicaSets.

    Works on copies: ``d`` and the ReplicaSets are updated in place with what the API
    answers, so later steps of the same sync see the writes of earlier ones.
    """

    def __init__(
        self,
        controller: DeploymentController,
        d: Obj,
        rss: list[Obj],
        pods: dict[str, list[Obj]],
        now: float,
    ) -> None:
        self.c = controller
        self.client: ApiClient = controller.client
        self.d = d
        self.rss = rss
        self.pods = pods
        """Pods by the uid of their ReplicaSet (for Recreate)."""
        self.now = now
        self.name = d["metadata"]["name"]
        self.namespace = d["metadata"]["namespace"]

    # -- writes ------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str) -> None:
        self.c.events.emit(self.c.about(self.d), type_, reason, message)

    async def write_status(self) -> None:
        """PUT ``d.status`` through ``/status``.

        The cache often lags our own previous status write: on a conflict the
        Deployment is read again and, when its spec and revision are the ones this sync
        worked from, the write is retried once (keeping the higher collisionCount).
        Otherwise the conflict is raised and the sync retried.
        """
        d = self.d
        meta = d["metadata"]
        for attempt in range(2):
            try:
                updated = await self.client.update("deployments", d, subresource="status")
            except ApiError as e:
                if e.code == 404:
                    return
                if e.code != 409 or attempt:
                    raise
                fresh = await self.client.get("deployments", self.name, self.namespace)
                fmeta = fresh["metadata"]
                if (
                    fmeta.get("uid") != meta.get("uid")
                    or fmeta.get("generation") != meta.get("generation")
                    or annotations_of(fresh).get(REVISION) != annotations_of(d).get(REVISION)
                ):
                    raise
                theirs = (fresh.get("status") or {}).get("collisionCount")
                if theirs is not None and theirs > int(d["status"].get("collisionCount") or 0):
                    d["status"]["collisionCount"] = theirs
                meta["resourceVersion"] = fmeta["resourceVersion"]
                continue
            meta["resourceVersion"] = updated["metadata"]["resourceVersion"]
            return

    async def set_revision(self, value: str) -> None:
        """Record the Deployment's revision (``SetDeploymentRevision``) when it differs.

        Kubernetes sends it along with a status update; this API keeps metadata out of
        ``/status``, so it is an update of the Deployment (the verb the
        deployment-controller's role has; a conflict retries the sync).
        """
        meta = self.d["metadata"]
        if (meta.get("annotations") or {}).get(REVISION) == value:
            return
        changed = copy.deepcopy(self.d)
        changed["metadata"].setdefault("annotations", {})[REVISION] = value
        changed.pop("status", None)
        updated = await self.client.update("deployments", changed, self.namespace)
        meta.setdefault("annotations", {})[REVISION] = value
        if updated["metadata"].get("generation") == meta.get("generation"):
            meta["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def update_rs(self, rs: Obj, changed: Obj) -> Obj:
        """PUT ``changed`` (a changed copy of ``rs``); ``rs`` becomes the answer."""
        updated = await self.client.update("replicasets", changed)
        rs.clear()
        rs.update(updated)
        return rs

    async def scale_rs(self, rs: Obj, size: int, operation: str = "") -> bool:
        """Resize ``rs`` and set its replica annotations (``scaleReplicaSet``); whether resized.

        Records "Scaled up replica set x from 2 to 5" (or down).
        """
        want = replicas(self.d)
        most = want + max_surge(self.d)
        old = replicas(rs)
        resize = old != size
        if not resize and not replicas_annotations_need_update(rs, want, most):
            return False
        if not operation:
            operation = "up" if old < size else "down"
        changed = writable(rs)
        changed["spec"]["replicas"] = size
        set_replicas_annotations(changed, want, most)
        await self.update_rs(rs, changed)
        if resize:
            self.event(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {operation} replica set {rs['metadata']['name']} from {old} to {size}",
            )
            self.c.log.info(
                "scaled replica set",
                deployment=key_of(self.d),
                replicaset=rs["metadata"]["name"],
                old=old,
                new=size,
            )
        return resize

    # -- the new and the old ReplicaSets -------------------------------------------------

    async def get_all_and_sync_revision(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, every old one), creating the new one if asked."""
        old_rss = find_old_replica_sets(self.d, self.rss)
        new_rs = await self.get_new_replica_set(old_rss, create)
        return new_rs, old_rss

    async def get_new_replica_set(self, old_rss: list[Obj], create: bool) -> Obj | None:
        """The new ReplicaSet with its annotations synced, created when ``create``."""
        d = self.d
        existing = find_new_replica_set(d, self.rss)
        new_revision = max_revision(old_rss) + 1
        status = d.setdefault("status", {})
        if existing is not None:
            changed = writable(existing)
            annotated = set_new_replica_set_annotations(d, changed, new_revision, exists=True)
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if annotated or int(changed["spec"].get("minReadySeconds") or 0) != min_ready:
                changed["spec"]["minReadySeconds"] = min_ready
                return await self.update_rs(existing, changed)
            await self.set_revision(annotations_of(existing).get(REVISION, ""))
            if progress_deadline(d) is not None and get_condition(status, PROGRESSING) is None:
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                set_condition(
                    status, new_condition(PROGRESSING, "True", FOUND_NEW_RS, msg, self.now)
                )
                await self.write_status()
            return existing
        if not create:
            return None
        return await self.create_new_replica_set(old_rss, new_revision)

    async def create_new_replica_set(self, old_rss: list[Obj], new_revision: int) -> Obj:
        d = self.d
        status = d.setdefault("status", {})
        spec = d["spec"]
        template = writable(spec.get("template") or {})
        h = compute_hash(spec.get("template") or {}, status.get("collisionCount"))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: h}
        selector = writable(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: h}
        name = f"{self.name}-{h}"
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(tmeta["labels"]),
                "ownerReferences": [new_controller_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        size = new_rs_new_replicas(d, [*old_rss, rs], rs)
        rs["spec"]["replicas"] = size
        set_new_replica_set_annotations(d, rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create("replicasets", rs, self.namespace)
        except ApiError as e:
            if e.code == 409 and e.reason == Reason.ALREADY_EXISTS:
                created = await self._existing_namesake(name)
                already_exists = True
            elif namespace_terminating(e):
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                if progress_deadline(d) is not None:
                    set_condition(
                        status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, msg, self.now)
                    )
                    try:
                        await self.write_status()
                    except ApiError:
                        pass  # the failure to create is the news
                self.event("Warning", FAILED_RS_CREATE, msg)
                raise
        created = writable(created)
        self.rss.append(created)
        if not already_exists and size > 0:
            self.event(
                "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {size}"
            )
        await self.set_revision(str(new_revision))
        if not already_exists and progress_deadline(d) is not None:
            msg = f'Created new replica set "{name}"'
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_CREATED, msg, self.now))
            await self.write_status()
        return created

    async def _existing_namesake(self, name: str) -> Obj:
        """The ReplicaSet that took the new one's name: ours, or a hash collision."""
        d = self.d
        cached = self.c.rss.get(f"{self.namespace}/{name}")
        if cached is None:
            raise ApiError(
                409, Reason.CONFLICT, f'replica set "{name}" exists but is not cached yet'
            )
        ref = controller_ref(cached)
        if (
            ref is not None
            and ref.get("uid") == d["metadata"]["uid"]
            and equal_ignore_hash(
                d["spec"].get("template"), (cached.get("spec") or {}).get("template")
            )
        ):
            return cached
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.write_status()
        self.c.log.info(
            "hash collision; bumped collisionCount",
            deployment=key_of(d),
            collision_count=status["collisionCount"],
        )
        raise ApiError(409, Reason.ALREADY_EXISTS, f'replica set "{name}" already exists')

    # -- scaling ---------------------------------------------------------------------------

    async def is_scaling_event(self) -> bool:
        """An active ReplicaSet was sized for another ``spec.replicas``."""
        new_rs, old_rss = await self.get_all_and_sync_revision(False)
        for rs in active([*old_rss, new_rs]):
            try:
                desired = int(annotations_of(rs).get(DESIRED_REPLICAS, ""))
            except ValueError:
                continue
            if desired != replicas(self.d):
                return True
        return False

    async def scale(self, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Bring the ReplicaSets to ``spec.replicas`` without rolling out (``scale``)."""
        d = self.d
        only = find_active_or_latest(new_rs, old_rss)
        if only is not None:
            if replicas(only) != replicas(d):
                await self.scale_rs(only, replicas(d))
            return
        if is_saturated(d, new_rs):
            for rs in active(old_rss):
                await self.scale_rs(rs, 0)
            return
        if is_rolling_update(d):
            plan, operation = proportional_sizes(d, [*old_rss, new_rs])
            for rs, size in plan:
                await self.scale_rs(
                    rs, size, operation or ("up" if size > replicas(rs) else "down")
                )

    async def sync(self) -> None:
        """Scale without a rollout (paused, or ``spec.replicas`` changed)."""
        new_rs, old_rss = await self.get_all_and_sync_revision(False)
        await self.scale(new_rs, old_rss)
        if self.d["spec"].get("paused"):
            await self.cleanup(old_rss)
        await self.sync_status([*old_rss, new_rs], new_rs)

    async def cleanup(self, old_rss: list[Obj]) -> None:
        """Delete the oldest empty ReplicaSets beyond ``revisionHistoryLimit``."""
        for rs in cleanup_candidates(self.d, old_rss):
            meta = rs["metadata"]
            self.c.log.info(
                "deleting old replica set", deployment=key_of(self.d), replicaset=meta["name"]
            )
            try:
                await self.client.delete(
                    "replicasets", meta["name"], self.namespace, preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    # -- status ----------------------------------------------------------------------------

    async def check_paused_conditions(self) -> None:
        """Record pausing and resuming in the Progressing condition."""
        d = self.d
        if progress_deadline(d) is None:
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return  # a reported lack of progress is not overwritten
        paused_recorded = cond is not None and cond.get("reason") == PAUSED
        paused = bool(d["spec"].get("paused"))
        if paused and not paused_recorded:
            set_condition(
                status,
                new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", self.now),
            )
        elif not paused and paused_recorded:
            set_condition(
                status,
                new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", self.now),
            )
        else:
            return
        await self.write_status()

    async def sync_status(self, rss: Sequence[Obj | None], new_rs: Obj | None) -> None:
        """Write the status the ReplicaSets give (``syncDeploymentStatus``)."""
        all_rss = [rs for rs in rss if rs is not None]
        status = calculate_status(all_rss, new_rs, self.d, self.now)
        if status == (self.d.get("status") or {}):
            return
        self.d["status"] = status
        await self.write_status()
