"""The StatefulSet controller (``pkg/controller/statefulset``).

A StatefulSet of ``replicas`` runs pods ``<set>-0`` … ``<set>-<replicas-1>``, each with
hostname = its name and subdomain = ``spec.serviceName``, and one
PersistentVolumeClaim ``<template>-<set>-<ordinal>`` per ``volumeClaimTemplates``
entry, created before the pod and never deleted by scale-down or pod deletion (unless
``persistentVolumeClaimRetentionPolicy`` says Delete: the claims then get an
ownerReference that lets the garbage collector remove them with the set, or with the
pod when it is scaled away).

``OrderedReady`` creates ordinals in increasing order, each only once every lower one
is Running and Ready, and removes them from the highest down, one at a time;
``Parallel`` creates and deletes without waiting. Failed (or Succeeded) pods are
deleted and created again under the same name, with the same claims.

Templates are recorded in ControllerRevisions (:mod:`.history`); a pod's
``controller-revision-hash`` label names its revision. ``RollingUpdate`` replaces
pods from the highest ordinal down to ``partition``, one at a time, each waiting for
its replacement to be Ready; ordinals below the partition keep the current revision.
``OnDelete`` only gives the new revision to pods created again after a deletion.

Pod creations and deletions are recorded in
:class:`~skiff.controller.expectations.Expectations`, so a slow cache never makes the
controller act twice on the same observation.
"""

from __future__ import annotations

import re
from typing import ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, writable
from skiff.controller.owners import SelectorCache, controller_ref, new_controller_ref
from skiff.controller.podcontrol import PodControl, pod_from_template
from skiff.controller.workload import PodOwnerController

from .history import (
    CONTROLLER_REVISION_HASH_LABEL,
    HISTORY_HASH_LABEL,
    create_revision,
    find_equal_revisions,
    new_revision,
    next_revision,
    revision_template,
    sort_revisions,
)
from .pods import available_at, is_ready, next_availability

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = CONTROLLER_REVISION_HASH_LABEL
"""``apps.StatefulSetRevisionLabel``: the name of the pod's ControllerRevision."""
PARALLEL = "Parallel"
ON_DELETE = "OnDelete"
RETAIN = "Retain"
DELETE = "Delete"
_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")


# -- identity ------------------------------------------------------------------------------


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """The set name and ordinal in a pod's name (``("", -1)`` when it has none)."""
    m = _ORDINAL_RE.match(pod["metadata"].get("name", ""))
    if m is None:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    """``<template>-<set>-<ordinal>``: the claim of one ordinal."""
    return f"{template_name}-{set_name}-{ordinal}"


def is_member(sts: Obj, pod: Obj) -> bool:
    """Whether the pod's name makes it one of the set's (``isMemberOf``)."""
    parent, ordinal = parent_and_ordinal(pod)
    return ordinal >= 0 and parent == sts["metadata"]["name"]


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    """Failed or Succeeded: the pod is deleted and created again."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    at = available_at(pod, min_ready_seconds)
    return at is not None and at <= now


def _spec(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def replicas_of(sts: Obj) -> int:
    return int(_spec(sts).get("replicas", 1) or 0)


def start_ordinal(sts: Obj) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def retention_policy(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled) of ``persistentVolumeClaimRetentionPolicy``."""
    policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or RETAIN, policy.get("whenScaled") or RETAIN


def identity_labels(sts: Obj, ordinal: int) -> dict[str, str]:
    return {
        POD_NAME_LABEL: pod_name(sts["metadata"]["name"], ordinal),
        POD_INDEX_LABEL: str(ordinal),
    }


def identity_matches(sts: Obj, pod: Obj, ordinal: int) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in identity_labels(sts, ordinal).items())


def claims_for(sts: Obj, ordinal: int) -> dict[str, Obj]:
    """The claim of each volumeClaimTemplate for ``ordinal`` (``getPersistentVolumeClaims``)."""
    meta = sts["metadata"]
    match = ((_spec(sts).get("selector")) or {}).get("matchLabels") or {}
    out: dict[str, Obj] = {}
    for template in _spec(sts).get("volumeClaimTemplates") or ():
        tmeta = template.get("metadata") or {}
        tname = tmeta.get("name", "")
        claim_meta: Obj = {
            "name": claim_name(tname, meta["name"], ordinal),
            "namespace": meta.get("namespace"),
            "labels": {**(tmeta.get("labels") or {}), **match},
        }
        if tmeta.get("annotations"):
            claim_meta["annotations"] = dict(tmeta["annotations"])
        out[tname] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": claim_meta,
            "spec": writable(template.get("spec") or {}),
        }
    return out


def storage_volumes(sts: Obj, ordinal: int, volumes: list[Obj]) -> list[Obj]:
    """``updateStorage``: a volume per claim template first, then the template's others."""
    claims = claims_for(sts, ordinal)
    out: list[Obj] = [
        {"name": name, "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
        for name, c in claims.items()
    ]
    out.extend(v for v in volumes if v.get("name") not in claims)
    return out


def storage_matches(sts: Obj, pod: Obj, ordinal: int) -> bool:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or ()}
    for name, claim in claims_for(sts, ordinal).items():
        source = (volumes.get(name) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim["metadata"]["name"]:
            return False
    return True


def new_pod(sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
    """The pod of ``ordinal`` from ``template`` at ``revision`` (``newStatefulSetPod``)."""
    meta = sts["metadata"]
    ref = new_controller_ref(sts, StatefulSetController.api_version, StatefulSetController.kind)
    pod = pod_from_template(template, meta["namespace"], "", ref)
    name = pod_name(meta["name"], ordinal)
    pmeta = pod["metadata"]
    pmeta.pop("generateName", None)
    pmeta["name"] = name
    pmeta["labels"] = {
        **(pmeta.get("labels") or {}),
        **identity_labels(sts, ordinal),
        REVISION_LABEL: revision,
    }
    spec = pod["spec"]
    spec["hostname"] = name
    if service := _spec(sts).get("serviceName"):
        spec["subdomain"] = service
    if _spec(sts).get("volumeClaimTemplates"):
        spec["volumes"] = storage_volumes(sts, ordinal, list(spec.get("volumes") or ()))
    return pod


def claim_owner_refs(claim: Obj, sts: Obj, pod: Obj | None, scaled_down: bool) -> list[Obj]:
    """The claim's ownerReferences under the set's retention policy.

    whenDeleted=Delete makes the set an owner (the garbage collector deletes the claim
    with the set); whenScaled=Delete makes the pod the owner of a claim whose ordinal
    was scaled away (``updateClaimOwnerRefForSetAndPod``). Other owners are kept.
    """
    when_deleted, when_scaled = retention_policy(sts)
    set_uid = sts["metadata"]["uid"]
    pod_uid = pod["metadata"].get("uid") if pod is not None else None
    want_set = when_deleted == DELETE and not (when_scaled == DELETE and scaled_down)
    want_pod = when_scaled == DELETE and scaled_down and pod_uid is not None
    pod_name_ = pod["metadata"].get("name") if pod is not None else None
    out: list[Obj] = []
    for ref in claim["metadata"].get("ownerReferences") or ():
        uid = ref.get("uid")
        if uid == set_uid and not want_set:
            continue
        if ref.get("kind") == "Pod" and pod_name_ is not None and ref.get("name") == pod_name_:
            # This ordinal's pod, or an earlier incarnation of it scaled away before.
            if not (want_pod and uid == pod_uid):
                continue
        out.append(dict(ref))
    uids = {r.get("uid") for r in out}
    if want_set and set_uid not in uids:
        out.append(
            {
                "apiVersion": StatefulSetController.api_version,
                "kind": StatefulSetController.kind,
                "name": sts["metadata"]["name"],
                "uid": set_uid,
            }
        )
    if want_pod and pod is not None and pod_uid not in uids:
        out.append(
            {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod_uid}
        )
    return out


def _same_refs(a: list[Obj], b: list[Obj]) -> bool:
    return sorted(r.get("uid", "") for r in a) == sorted(r.get("uid", "") for r in b)


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


# -- the controller ------------------------------------------------------------------------


class StatefulPodControl(PodControl):
    """Pod events worded as the StatefulSet controller words them (``recordPodEvent``)."""

    def message(self, verb: str, owner: Obj, pod_name: str, error: ApiError | None) -> str:
        what = f"{verb.lower()} Pod {pod_name} in StatefulSet {owner['metadata']['name']}"
        if error is not None:
            return f"{what} failed error: {error.message}"
        return f"{what} successful"


class StatefulSetController(PodOwnerController):
    """Keeps the ordered pods and claims of every StatefulSet."""

    name: ClassVar[str] = "statefulset-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("apps", "v1", "statefulsets")
    pod_control_type: ClassVar[type[PodControl]] = StatefulPodControl

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
        return next_availability(pods, int(_spec(sts).get("minReadySeconds") or 0), now)

    @staticmethod
    def _candidate(sts: Obj, pod: Obj) -> bool:
        """A pod the set may claim: controlled by someone, or an orphan named as its own."""
        return controller_ref(pod) is not None or is_member(sts, pod)

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
        limit = int(_spec(sts).get("revisionHistoryLimit", 10) or 0)
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
        spec = _spec(sts)
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
        strategy = _spec(sts).get("updateStrategy") or {}
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

    def _template_for(self, sts: Obj, ordinal: int, current: Obj, update: Obj) -> tuple[Obj, str]:
        """``newVersionedStatefulSetPod``: which revision a new pod of ``ordinal`` gets."""
        strategy = _spec(sts).get("updateStrategy") or {}
        use_current = False
        if strategy.get("type", "RollingUpdate") != ON_DELETE:
            rolling = strategy.get("rollingUpdate")
            if rolling is None:
                current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
                use_current = ordinal < current_replicas
            else:
                use_current = ordinal < int(rolling.get("partition") or 0)
        revision = current if use_current else update
        return revision_template(revision), revision["metadata"]["name"]

    async def _create_pods(
        self, sts: Obj, key: str, ordinals: list[int], current: Obj, update: Obj
    ) -> None:
        about = self.about(sts)
        pending = list(ordinals)

        async def create_one() -> None:
            # Not PodControl.create_pod: the claims come first, and a pod of a set has
            # its own name (``CreateStatefulPod``).
            ordinal = pending.pop(0)
            template, revision = self._template_for(sts, ordinal, current, update)
            pod = new_pod(sts, template, ordinal, revision)
            name = pod["metadata"]["name"]
            try:
                await self._create_claims(sts, ordinal, name)
                await self.client.create("pods", pod, pod["metadata"]["namespace"])
            except ApiError as e:
                self.pod_control.record("Create", about, name, e)
                raise
            self.pod_control.record("Create", about, name)

        self.log.info("creating pods", key=key, ordinals=ordinals)
        _, error = await self.pod_control.create_pods(
            self.creations, key, len(ordinals), create_one
        )
        if error is not None:
            raise error

    async def _create_claims(self, sts: Obj, ordinal: int, pod: str) -> None:
        """Create the missing claims of ``ordinal`` (``createPersistentVolumeClaims``)."""
        set_name = sts["metadata"]["name"]
        for claim in claims_for(sts, ordinal).values():
            cmeta = claim["metadata"]
            existing = self.claims.get(f"{cmeta['namespace']}/{cmeta['name']}")
            if existing is not None:
                if existing["metadata"].get("deletionTimestamp"):
                    raise ApiError(409, Reason.CONFLICT, f"pvc {cmeta['name']} is being deleted")
                continue
            refs = claim_owner_refs(claim, sts, None, scaled_down=False)
            if refs:
                cmeta["ownerReferences"] = refs
            try:
                await self.client.create("persistentvolumeclaims", claim, cmeta["namespace"])
            except ApiError as e:
                if e.code == 409 and e.reason == Reason.ALREADY_EXISTS:
                    continue  # our cache is behind
                self.events.emit(
                    self.about(sts),
                    "Warning",
                    "FailedCreate",
                    f"create Claim {cmeta['name']} for Pod {pod} in StatefulSet {set_name} "
                    f"failed error: {e.message}",
                )
                raise
            self.events.emit(
                self.about(sts),
                "Normal",
                "SuccessfulCreate",
                f"create Claim {cmeta['name']} Pod {pod} in StatefulSet {set_name} success",
            )

    async def _enforce_invariants(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """Restore a live pod's identity labels, its missing claims and the claims' owners.

        Missing claims are created for a Pending pod, or one whose volumes do not name
        them, as Kubernetes does; a running pod is left alone.
        """
        meta = pod["metadata"]
        if not identity_matches(sts, pod, ordinal):
            await self.client.patch(
                "pods",
                meta["name"],
                {"metadata": {"labels": identity_labels(sts, ordinal)}},
                meta["namespace"],
            )
            self.pod_control.record("Update", self.about(sts), meta["name"])
        if not _spec(sts).get("volumeClaimTemplates"):
            return
        pending = (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        if pending or not storage_matches(sts, pod, ordinal):
            await self._create_claims(sts, ordinal, meta["name"])
        await self._update_claim_owners(sts, pod, ordinal, scaled_down=False)

    async def _update_claim_owners(
        self, sts: Obj, pod: Obj, ordinal: int, *, scaled_down: bool
    ) -> None:
        """Make the claims' ownerReferences follow the retention policy."""
        for claim in claims_for(sts, ordinal).values():
            cmeta = claim["metadata"]
            existing = self.claims.get(f"{cmeta['namespace']}/{cmeta['name']}")
            if existing is None or existing["metadata"].get("deletionTimestamp"):
                continue
            have = list(existing["metadata"].get("ownerReferences") or ())
            want = claim_owner_refs(existing, sts, pod, scaled_down)
            if _same_refs(have, want):
                continue
            emeta = existing["metadata"]
            ops: list[Obj] = [
                {"op": "test", "path": "/metadata/uid", "value": emeta["uid"]},
                {"op": "add", "path": "/metadata/ownerReferences", "value": want},
            ]
            if not want:
                ops[1] = {"op": "remove", "path": "/metadata/ownerReferences"}
            try:
                await self.client.patch(
                    "persistentvolumeclaims", emeta["name"], ops, emeta["namespace"], type="json"
                )
            except ApiError as e:
                if e.code != 404:
                    raise

    async def _delete_pods(
        self, sts: Obj, key: str, pods: list[Obj], *, scaled_down: bool = False
    ) -> None:
        if scaled_down and _spec(sts).get("volumeClaimTemplates"):
            for pod in pods:
                await self._update_claim_owners(sts, pod, ordinal_of(pod), scaled_down=True)
        self.log.info("deleting pods", key=key, pods=[p["metadata"]["name"] for p in pods])
        results = await self.pod_control.delete_pods(self.about(sts), pods, self.deletions, key)
        for error in results:
            if error is not None:
                raise error

    # -- status --------------------------------------------------------------------------

    def calculate_status(
        self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collisions: int, now: float
    ) -> Obj:
        """The status the cached pods give the set (``computeReplicaStatus``)."""
        min_ready = int(_spec(sts).get("minReadySeconds") or 0)
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
        strategy = (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy != ON_DELETE and updated == len(pods) and ready == len(pods):
            # completeRollingUpdate: every pod runs the update revision.
            status["currentReplicas"] = updated
            status["currentRevision"] = update_name
        return status
