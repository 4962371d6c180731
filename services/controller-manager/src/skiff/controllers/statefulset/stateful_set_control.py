"""The StatefulSet update algorithm (``stateful_set_control.go``).

One sync step towards the spec (``updateStatefulSet``): the pods are split into the
replicas (ordinals ``start`` … ``start + replicas - 1``) and the condemned others;
missing ordinals are created and finished pods deleted (to be created again) first;
then the condemned are deleted from the highest ordinal; then ``RollingUpdate``
replaces one out-of-date pod, from the highest ordinal down to ``partition``.
``OrderedReady`` does one thing at a time, each waiting for the ordinals below to be
Running and available; ``Parallel`` does everything it can. Also the revisions
(``getStatefulSetRevisions``, ``truncateHistory``) and the status
(``computeReplicaStatus``). Pods and claims are written through
:mod:`.stateful_pod_control`.
"""

from __future__ import annotations

from skiff.api.errors import ApiError
from skiff.client.rest import Obj

from ..history import (
    HISTORY_HASH_LABEL,
    create_revision,
    find_equal_revisions,
    new_revision,
    next_revision,
    sort_revisions,
)
from .stateful_pod_control import StatefulPodControlMixin
from .utils import (
    ON_DELETE,
    PARALLEL,
    is_finished,
    is_running_and_available,
    is_running_and_ready,
    is_terminating,
    ordinal_of,
    replicas_of,
    revision_of,
    spec_of,
    start_ordinal,
)


def split_replicas(pods: list[Obj], start: int, end: int) -> tuple[dict[int, Obj], list[Obj]]:
    """``updateStatefulSet``'s split: the pods of ordinals ``start`` … ``end - 1`` by
    ordinal, and the condemned others, highest ordinal first."""
    replicas: dict[int, Obj] = {}
    condemned: list[Obj] = []
    for p in pods:
        ordinal = ordinal_of(p)
        if start <= ordinal < end:
            replicas[ordinal] = p
        else:
            condemned.append(p)
    condemned.sort(key=ordinal_of, reverse=True)
    return replicas, condemned


class StatefulSetControlMixin(StatefulPodControlMixin):
    """The update algorithm, revisions and status of
    :class:`~skiff.controllers.statefulset.stateful_set.StatefulSetController`."""

    # -- revisions -----------------------------------------------------------------------

    async def _sync_revisions(self, sts: Obj, revisions: list[Obj]) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count): ``getStatefulSetRevisions``.

        The update revision is the existing one recording the current template (renumbered
        to the newest when it is an older one: a rollback), or a new one.
        """
        revisions = sort_revisions(revisions)
        status = sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        revision = next_revision(revisions)
        wanted = new_revision(sts, api_version=self.api_version, kind=self.kind, revision=revision)
        equal = find_equal_revisions(revisions, wanted)
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            latest = equal[-1]
            meta = latest["metadata"]
            update = await self.client.patch(
                "controllerrevisions",
                meta["name"],
                {"revision": wanted["revision"]},
                meta.get("namespace"),
            )
        else:
            update, collisions = await create_revision(
                self.client, sts, wanted, collisions, hash_label=HISTORY_HASH_LABEL
            )
        name = status.get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == name), None)
        return (current or update), update, collisions

    async def _truncate_history(
        self, sts: Obj, pods: list[Obj], revisions: list[Obj], current: Obj, update: Obj
    ) -> None:
        """Delete the oldest revisions no pod uses beyond ``revisionHistoryLimit``."""
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live.update(revision_of(p) for p in pods)
        seen: set[str] = set()
        history = []
        for r in sort_revisions(revisions):
            name = r["metadata"]["name"]
            if name in live or name in seen:
                continue
            seen.add(name)
            history.append(r)
        limit = int(spec_of(sts).get("revisionHistoryLimit", 10) or 0)
        for r in history[: max(len(history) - limit, 0)]:
            meta = r["metadata"]
            try:
                await self.client.delete(
                    "controllerrevisions",
                    meta["name"],
                    meta.get("namespace"),
                    preconditions={"uid": meta["uid"]},
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    # -- pods ----------------------------------------------------------------------------

    def _healthy(self, pod: Obj, min_ready: int, now: float) -> bool:
        return not is_terminating(pod) and is_running_and_available(pod, min_ready, now)

    async def manage(self, sts: Obj, key: str, pods: list[Obj], current: Obj, update: Obj) -> None:
        """One step towards the spec (``updateStatefulSet``).

        Creations (and deletions of finished pods) come first; while any is needed
        nothing is scaled down or updated. ``OrderedReady`` does one thing and waits
        for it to show in the cache, ``Parallel`` everything it can.
        """
        spec = spec_of(sts)
        start = start_ordinal(sts)
        end = start + replicas_of(sts)
        monotonic = spec.get("podManagementPolicy") != PARALLEL
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.ctx.clock()
        replicas, condemned = split_replicas(pods, start, end)
        first_unhealthy = self._first_unhealthy(replicas, condemned, min_ready, now)

        to_create, to_delete, blocked = await self._process_replicas(
            sts, replicas, start, end, monotonic, min_ready, now
        )
        if to_delete:
            await self._recreate_finished(sts, key, to_delete)
        if to_create:
            await self._create_pods(sts, key, to_create, current, update)
        if to_delete or to_create or (monotonic and blocked):
            return
        if await self._process_condemned(
            sts, key, condemned, first_unhealthy, monotonic, min_ready, now
        ):
            return
        await self._rolling_update(sts, key, replicas, start, end, update, min_ready, now)

    def _first_unhealthy(
        self, replicas: dict[int, Obj], condemned: list[Obj], min_ready: int, now: float
    ) -> Obj | None:
        """The lowest unhealthy replica, else the lowest unhealthy condemned pod.

        ``OrderedReady`` only scales down past an unhealthy pod when it is this one.
        """
        unhealthy = [
            replicas[o] for o in sorted(replicas) if not self._healthy(replicas[o], min_ready, now)
        ]
        unhealthy += [p for p in reversed(condemned) if not self._healthy(p, min_ready, now)]
        return unhealthy[0] if unhealthy else None

    async def _process_replicas(
        self,
        sts: Obj,
        replicas: dict[int, Obj],
        start: int,
        end: int,
        monotonic: bool,
        min_ready: int,
        now: float,
    ) -> tuple[list[int], list[Obj], bool]:
        """``processReplica`` over ordinals ``start`` … ``end - 1``, lowest first.

        Returns the ordinals to create, the finished pods to delete (and create again)
        and whether a pod blocks the pass: one being deleted, or, for ``OrderedReady``,
        one not yet Running and available. Live pods get their invariants enforced;
        ``OrderedReady`` stops at the first ordinal that needs anything.
        """
        to_create: list[int] = []
        to_delete: list[Obj] = []
        blocked = False
        for ordinal in range(start, end):
            pod = replicas.get(ordinal)
            if pod is None:
                to_create.append(ordinal)
            elif is_terminating(pod):
                blocked = True  # wait until it is gone to create it again
            elif is_finished(pod):
                to_delete.append(pod)
            else:
                await self._enforce_invariants(sts, pod, ordinal)
                if not monotonic or self._healthy(pod, min_ready, now):
                    continue
                blocked = True  # OrderedReady: wait for it to be Running and Ready
            if monotonic:
                break
        return to_create, to_delete, blocked

    async def _recreate_finished(self, sts: Obj, key: str, pods: list[Obj]) -> None:
        """Delete Failed and Succeeded pods so that they are created again."""
        for pod in pods:
            name = pod["metadata"]["name"]
            if (pod.get("status") or {}).get("phase") == "Failed":
                kind, reason, what = "Warning", "RecreatingFailedPod", "failed"
            else:
                kind, reason, what = "Normal", "RecreatingTerminatedPod", "terminated"
            self.events.emit(
                self.about(sts),
                kind,
                reason,
                f"StatefulSet {key} is recreating {what} Pod {name}",
            )
        await self._delete_pods(sts, key, pods)

    async def _process_condemned(
        self,
        sts: Obj,
        key: str,
        condemned: list[Obj],
        first_unhealthy: Obj | None,
        monotonic: bool,
        min_ready: int,
        now: float,
    ) -> bool:
        """``processCondemned``: scale down from the highest ordinal.

        ``OrderedReady`` deletes one pod, and waits while one is terminating or an
        unhealthy pod other than ``first_unhealthy`` remains; ``Parallel`` deletes every
        condemned pod not already terminating. Returns whether the pass stops here.
        """
        for pod in condemned:  # highest ordinal first
            if is_terminating(pod):
                if monotonic:
                    return True
                continue
            if monotonic and not self._healthy(pod, min_ready, now) and pod is not first_unhealthy:
                return True
            victims = [pod] if monotonic else [p for p in condemned if not is_terminating(p)]
            await self._delete_pods(sts, key, victims, scaled_down=True)
            return True
        return False

    async def _rolling_update(
        self,
        sts: Obj,
        key: str,
        replicas: dict[int, Obj],
        start: int,
        end: int,
        update: Obj,
        min_ready: int,
        now: float,
    ) -> None:
        """``RollingUpdate``: replace one out-of-date pod, from the highest ordinal down.

        Ordinals below ``partition`` are left alone; the pass waits on a missing or
        unhealthy pod. ``OnDelete`` does nothing here.
        """
        strategy = spec_of(sts).get("updateStrategy") or {}
        if strategy.get("type") == ON_DELETE:
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        update_name = update["metadata"]["name"]
        for ordinal in range(end - 1, max(partition, start) - 1, -1):
            pod = replicas.get(ordinal)
            if pod is None:
                return
            if revision_of(pod) != update_name and not is_terminating(pod):
                self.log.info(
                    "updating pod", key=key, pod=pod["metadata"]["name"], revision=update_name
                )
                await self._delete_pods(sts, key, [pod])
                return
            if not self._healthy(pod, min_ready, now):
                return

    # -- status --------------------------------------------------------------------------

    def calculate_status(
        self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collisions: int, now: float
    ) -> Obj:
        """The status the cached pods give the set (``computeReplicaStatus``)."""
        min_ready = int(spec_of(sts).get("minReadySeconds") or 0)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        ready = available = current_n = updated = 0
        for p in pods:
            if is_running_and_ready(p):
                ready += 1
                if is_running_and_available(p, min_ready, now):
                    available += 1
            if not is_terminating(p):
                rev = revision_of(p)
                current_n += rev == current_name
                updated += rev == update_name
        status: Obj = dict(sts.get("status") or {})
        status.update(
            observedGeneration=int(sts["metadata"].get("generation") or 0),
            replicas=len(pods),
            readyReplicas=ready,
            availableReplicas=available,
            currentReplicas=current_n,
            updatedReplicas=updated,
            currentRevision=current_name,
            updateRevision=update_name,
            collisionCount=collisions,
        )
        strategy = (spec_of(sts).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != ON_DELETE and updated == len(pods) and ready == len(pods):
            # completeRollingUpdate: every pod runs the update revision.
            status["currentReplicas"] = updated
            status["currentRevision"] = update_name
        return status
