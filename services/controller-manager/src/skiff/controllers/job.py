"""The Job controller (``pkg/controller/job``), with the TTL-after-finished cleanup.

A Job runs pods from its template until ``completions`` of them succeed (or, without
``completions``, until one succeeds and the rest finish), at most ``parallelism`` at a
time; in ``Indexed`` mode each pod gets a completion index (annotation and label
``batch.kubernetes.io/job-completion-index``, env ``JOB_COMPLETION_INDEX``, hostname
``<job>-<index>``) and every index must succeed once. Failed pods are replaced after an
exponential back-off (10 s doubling, capped at 6 minutes) until more than
``backoffLimit`` have failed; ``activeDeadlineSeconds`` bounds the run; ``suspend``
deletes the running pods; a finished Job is deleted ``ttlSecondsAfterFinished`` later.

**Counting every pod exactly once.** As Kubernetes, every pod is created with the
``batch.kubernetes.io/job-tracking`` finalizer, so it cannot disappear before the
controller has seen how it ended. A finished pod is counted in three steps, each
safe to interrupt:

1. its uid is written to ``status.uncountedTerminatedPods`` (one status write, with
   the resourceVersion the decision was based on, so a stale cache cannot write);
2. its finalizer is removed;
3. uids in ``uncountedTerminatedPods`` whose pod no longer has the finalizer (or is
   gone) move into ``status.succeeded`` / ``status.failed``.

A restart between steps repeats at most the step it interrupted: a uid already in
``uncountedTerminatedPods`` is never added again, and a pod whose finalizer is gone is
never looked at again. While a finalizer removal is in flight the cache may still show
the finalizer; per-Job "finalizer expectations" (uids whose removal was asked for)
keep such a pod from being counted twice. Indexed Jobs count succeeded pods by index
(``status.completedIndexes``, written before the finalizer goes), so no uid is kept.
The terminal ``Complete`` / ``Failed`` condition is only added when nothing is
uncounted and no pod is still terminating; before that the Job carries the interim
``SuccessCriteriaMet`` / ``FailureTarget`` condition, as Kubernetes 1.31+.

The back-off (failures since the last success, and when the last one was) is kept in
memory, as in Kubernetes: a restarted controller starts the next pod at once. A status
write's resourceVersion is remembered (:class:`OwnWrites`) so that a sync never starts
from a cached Job older than our own last write: it would only be refused with a 409.

Pods of a deleted, replaced or finished Job that still hold the finalizer are
"orphans": their keys are queued as ``pod:<namespace>/<name>`` and the finalizer is
removed. The Job's pods themselves are deleted by the garbage collector (the TTL
deletion uses ``propagationPolicy: Background``, as Kubernetes).

Not implemented: ``podFailurePolicy``, ``backoffLimitPerIndex`` / ``maxFailedIndexes``,
``successPolicy``; a Job with ``spec.managedBy`` set to another controller is left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from skiff.api.errors import ApiError, namespace_terminating
from skiff.api.selectors import LabelSelector
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
    SelectorCache,
    controller_index,
    controller_ref,
    namespace_index,
    new_controller_ref,
    owned_and_orphans,
    owners_selecting,
    resolve_controller_ref,
)
from skiff.controller.ownwrites import OwnWrites

from .pods import (
    MAX_GENERATE_NAME_PREFIX,
    generate_name_prefix,
    is_active,
    is_ready,
    parse_time,
    pod_from_template,
    pods_to_delete,
)

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
"""Annotation (and label) with an Indexed Job pod's completion index."""
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
"""The ``spec.managedBy`` value meaning this controller (as when the field is unset)."""

DEFAULT_POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0
MAX_UNCOUNTED_PODS = 500
"""At most this many uids in ``uncountedTerminatedPods`` (its size stays ~20 KB)."""
MAX_POD_CREATE_DELETE_PER_SYNC = 500
SLOW_START_INITIAL_BATCH = 1
ORPHAN_PREFIX = "pod:"
"""Queue keys of pods whose tracking finalizer is to be removed."""

COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
COMPLETIONS_REACHED = "CompletionsReached"

_UNKNOWN_INDEX = -1


# -- Job and pod helpers ---------------------------------------------------------------


def find_condition(job: Obj, type_: str) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def finished_condition(job: Obj) -> Obj | None:
    """The ``Complete`` or ``Failed`` condition that is True, if any (``IsJobFinished``)."""
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in (COMPLETE, FAILED) and c.get("status") == "True":
            return c
    return None


def is_finished(job: Obj) -> bool:
    return finished_condition(job) is not None


def is_succeeded(job: Obj) -> bool:
    c = finished_condition(job)
    return c is not None and c.get("type") == COMPLETE


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def managed_elsewhere(job: Obj) -> bool:
    managed_by = (job.get("spec") or {}).get("managedBy")
    return managed_by is not None and managed_by != JOB_CONTROLLER_NAME


def has_tracking_finalizer(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


def completion_index(pod: Obj) -> int:
    """The pod's completion index, or -1 when absent or malformed."""
    meta = pod["metadata"]
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    if raw is None:
        raw = (meta.get("labels") or {}).get(COMPLETION_INDEX)
    if raw is None or not raw.isdigit():
        return _UNKNOWN_INDEX
    return int(raw)


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in (
        "Succeeded",
        "Failed",
    )


def only_replace_failed(job: Obj) -> bool:
    """``podReplacementPolicy: Failed`` (implied by a podFailurePolicy)."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it succeeded."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def pod_finished_at(pod: Obj, now: float) -> float:
    """When a pod finished: its containers' last exit, else it turning not Ready, else
    its deletion, else ``now`` (``getFinishedTime``)."""
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or ()
    latest: float | None = None
    for s in statuses:
        term = (s.get("state") or {}).get("terminated")
        at = parse_time((term or {}).get("finishedAt"))
        if at is None:
            latest = None
            break
        latest = at if latest is None else max(latest, at)
    if latest is not None:
        return latest
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready" and c.get("status") == "False":
            at = parse_time(c.get("lastTransitionTime"))
            if at is not None:
                return at
    deleted = parse_time(pod["metadata"].get("deletionTimestamp"))
    return deleted if deleted is not None else now


def format_indexes(indexes: set[int]) -> str:
    """``0-2,4,6,7``: ranges of three or more with a dash (``orderedIntervals.String``)."""
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = ordered[i], ordered[j]
        if last == first:
            out.append(str(first))
        elif last == first + 1:
            out.append(f"{first},{last}")
        else:
            out.append(f"{first}-{last}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None, completions: int) -> set[int]:
    """The indexes below ``completions`` in a ``completedIndexes`` string (bad parts skipped)."""
    out: set[int] = set()
    for part in (text or "").split(","):
        first_s, _, last_s = part.partition("-")
        if not first_s.isdigit() or (last_s and not last_s.isdigit()):
            continue
        first = int(first_s)
        last = int(last_s) if last_s else first
        out.update(range(first, min(last, completions - 1) + 1))
    return out


def indexed_generate_name(job_name: str, index: int) -> str:
    """``<job>-<index>-``, the job name shortened so the generated name stays valid."""
    suffix = f"-{index}-"
    return job_name[: MAX_GENERATE_NAME_PREFIX - len(suffix)] + suffix


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    ts = rfc3339(now)
    return {
        "type": type_,
        "status": status,
        "lastProbeTime": ts,
        "lastTransitionTime": ts,
        "reason": reason,
        "message": message,
    }


def ensure_condition(
    conditions: list[Obj], type_: str, status: str, reason: str, message: str, now: float
) -> bool:
    """Set (or add, unless ``status`` is False) a condition; whether anything changed."""
    for i, c in enumerate(conditions):
        if c.get("type") == type_:
            if (c.get("status"), c.get("reason"), c.get("message")) != (status, reason, message):
                conditions[i] = new_condition(type_, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_condition(type_, status, reason, message, now))
        return True
    return False


# -- back-off --------------------------------------------------------------------------


@dataclass(slots=True)
class BackoffRecord:
    """Pod failures since the last success, for the delay before the next pod."""

    failures: int = 0
    last_failure: float | None = None

    def remaining(self, now: float, base: float, cap: float) -> float:
        """Seconds until a pod may be created again (0 when it may now)."""
        if self.failures == 0 or self.last_failure is None:
            return 0.0
        delay = base
        for _ in range(1, self.failures):
            delay *= 2
            if delay >= cap:
                delay = cap
                break
        return max(0.0, delay - (now - self.last_failure))


def next_backoff_record(
    prev: BackoffRecord, succeeded: list[Obj], failed: list[Obj], now: float
) -> BackoffRecord:
    """The record after these newly finished pods (``newBackoffRecord``)."""
    fail_times = sorted(pod_finished_at(p, now) for p in failed)
    if not succeeded:
        if not fail_times:
            return BackoffRecord(prev.failures, prev.last_failure)
        return BackoffRecord(prev.failures + len(fail_times), fail_times[-1])
    last_success = max(pod_finished_at(p, now) for p in succeeded)
    after = [t for t in fail_times if t > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


# -- the controller --------------------------------------------------------------------


@dataclass(slots=True)
class _Sync:
    """What one sync of a Job works out (``syncJobCtx``)."""

    key: str
    job: Obj
    """A private copy: its status is what is written."""
    pods: list[Obj]
    active_pods: list[Obj]
    expected_rm: set[str]
    uncounted_succeeded: set[str]
    uncounted_failed: set[str]
    terminating: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    finished: Obj | None = None
    prev_succeeded_indexes: set[int] = field(default_factory=set)
    succeeded_indexes: set[int] = field(default_factory=set)
    backoff: BackoffRecord = field(default_factory=BackoffRecord)
    requeue: list[float] = field(default_factory=list)


class _JobRefManager(ControllerRefManager):
    """Adoption also adds the tracking finalizer, so the adopted pod is counted."""

    async def adopt(self, obj: Obj) -> None:
        await self._check_can_adopt()
        meta = obj["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        new = [*refs, new_controller_ref(self.owner, self.owner_api_version, self.owner_kind)]
        ops: list[Obj] = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/metadata/ownerReferences", "value": new},
        ]
        finalizers = list(meta.get("finalizers") or ())
        if JOB_TRACKING_FINALIZER not in finalizers:
            finalizers.append(JOB_TRACKING_FINALIZER)
            ops.append({"op": "add", "path": "/metadata/finalizers", "value": finalizers})
        await self._patch(obj, ops, "adopting")


class JobController(Controller):
    """Runs the pods of every Job (see the module docstring)."""

    name: ClassVar[str] = "job-controller"
    api_version: ClassVar[str] = "batch/v1"
    kind: ClassVar[str] = "Job"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        expectations: Expectations | None = None,
        pod_failure_backoff: float = DEFAULT_POD_FAILURE_BACKOFF,
        max_pod_failure_backoff: float = MAX_POD_FAILURE_BACKOFF,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.expectations = expectations or Expectations()
        self.pod_failure_backoff = pod_failure_backoff
        self.max_pod_failure_backoff = max_pod_failure_backoff
        self.finalizer_expectations: dict[str, set[str]] = {}
        """Per Job key: uids of pods whose finalizer removal was asked for, not yet seen."""
        self.backoff: dict[str, BackoffRecord] = {}
        self.own_writes = OwnWrites()
        ctx.informers.index("jobs", NAMESPACE_INDEX, namespace_index)
        ctx.informers.index("pods", CONTROLLER_INDEX, controller_index)
        self.jobs = self.watch("jobs")
        self.pods = self.watch("pods")
        self._selectors = SelectorCache(allow_empty=False)
        self.jobs.add_handler(self._job_added, self._job_updated, self._job_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_final_delete)

    # -- lookups -------------------------------------------------------------------------

    def selector(self, job: Obj) -> LabelSelector:
        """The parsed selector of ``job`` (cached per uid); TerminalError when unusable."""
        return self._selectors.get(job)

    def _jobs_matching(self, pod: Obj) -> list[Obj]:
        return [job for job, _ in owners_selecting(self.jobs, pod, self.selector)]

    def _job_of(self, pod: Obj, ref: Obj | None) -> Obj | None:
        if ref is None:
            return None
        return resolve_controller_ref(
            self.jobs, pod["metadata"].get("namespace"), ref, self.kind, "batch"
        )

    @staticmethod
    def _is_job_ref(ref: Obj) -> bool:
        return ref.get("kind") == "Job" and ref.get("apiVersion") == "batch/v1"

    def _pods_of(self, job: Obj) -> list[Obj]:
        return self.pods.store.by_index(CONTROLLER_INDEX, f"uid:{job['metadata']['uid']}")

    # -- event handlers ------------------------------------------------------------------

    def _enqueue_orphan(self, pod: Obj) -> None:
        self.queue.add(ORPHAN_PREFIX + key_of(pod))

    def _cleanup_pod_finalizers(self, job: Obj) -> None:
        for pod in self._pods_of(job):
            if has_tracking_finalizer(pod):
                self._enqueue_orphan(pod)

    def _job_added(self, job: Obj) -> None:
        self.enqueue(job)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._job_deleted(old)
        self.enqueue(new)
        if is_finished(new):
            self._cleanup_pod_finalizers(new)

    def _job_deleted(self, job: Obj) -> None:
        self.enqueue(job)
        self._selectors.pop(job["metadata"].get("uid", ""), None)
        self._cleanup_pod_finalizers(job)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # Seen for the first time already terminating (a relist): not a creation.
            self._pod_deleted(pod, final=False)
            return
        ref = controller_ref(pod)
        if ref is not None:
            job = self._job_of(pod, ref)
            if job is None:
                if has_tracking_finalizer(pod) and self._is_job_ref(ref):
                    self._enqueue_orphan(pod)  # its Job went away (maybe while we were down)
                return
            key = key_of(job)
            self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        if has_tracking_finalizer(pod):
            self._enqueue_orphan(pod)
        for job in self._jobs_matching(pod):
            self.enqueue(job)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old["metadata"], new["metadata"]
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return
        if nm.get("deletionTimestamp"):
            self._pod_deleted(new, final=False)
            return
        finalizer_removed = not has_tracking_finalizer(new)
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = cur_ref != old_ref
        if ref_changed and old_ref is not None:
            prev = self._job_of(old, old_ref)
            if prev is not None:
                if finalizer_removed:
                    self._finalizer_removal_observed(key_of(prev), nm.get("uid", ""))
                self.enqueue(prev)
        if cur_ref is not None:
            job = self._job_of(new, cur_ref)
            if job is None:
                if not finalizer_removed and self._is_job_ref(cur_ref):
                    self._enqueue_orphan(new)
                return
            if finalizer_removed:
                self._finalizer_removal_observed(key_of(job), nm.get("uid", ""))
            self.enqueue(job)
            return
        if not finalizer_removed:
            self._enqueue_orphan(new)
        if ref_changed or om.get("labels") != nm.get("labels"):
            for job in self._jobs_matching(new):
                self.enqueue(job)

    def _pod_final_delete(self, pod: Obj) -> None:
        self._pod_deleted(pod, final=True)

    def _pod_deleted(self, pod: Obj, *, final: bool) -> None:
        ref = controller_ref(pod)
        finalizer = has_tracking_finalizer(pod)
        if ref is None:
            if finalizer and not final:
                self._enqueue_orphan(pod)
            return
        job = self._job_of(pod, ref)
        if job is None or is_finished(job):
            if finalizer and not final and self._is_job_ref(ref):
                self._enqueue_orphan(pod)
            return
        key = key_of(job)
        self.expectations.deletion_observed(key, key_of(pod))
        if final or not finalizer:
            self._finalizer_removal_observed(key, pod["metadata"].get("uid", ""))
        self.queue.add(key)

    def _finalizer_removal_observed(self, key: str, uid: str) -> None:
        uids = self.finalizer_expectations.get(key)
        if uids is not None:
            uids.discard(uid)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(ORPHAN_PREFIX):
            await self.sync_orphan_pod(key[len(ORPHAN_PREFIX) :])
            return None
        cached = self.jobs.get(key)
        if cached is None:
            self.expectations.delete(key)
            self.finalizer_expectations.pop(key, None)
            self.backoff.pop(key, None)
            self.own_writes.forget(key)
            return None
        if self.own_writes.pending(key, self.jobs.get):
            return None  # our last status write's event is on its way
        if managed_elsewhere(cached):
            return None
        if is_finished(cached):
            self.backoff.pop(key, None)
            self._cleanup_pod_finalizers(cached)
            return await self.delete_if_expired(cached)
        mode = (cached.get("spec") or {}).get("completionMode") or "NonIndexed"
        if mode not in ("NonIndexed", "Indexed"):
            self.events.emit(
                self._about(cached),
                "Warning",
                "UnknownCompletionMode",
                "Skipped Job sync because completion mode is unknown",
            )
            return None
        if mode == "Indexed" and (cached.get("spec") or {}).get("completions") is None:
            raise TerminalError("an Indexed Job needs spec.completions")
        return await self.sync_job(key, cached)

    async def sync_job(self, key: str, cached: Obj) -> float | None:
        """One level-triggered sync of an unfinished Job (``syncJob``)."""
        job = writable(cached)
        spec = job.get("spec") or {}
        status = job.setdefault("status", {})
        uncounted = status.get("uncountedTerminatedPods") or {}
        status["uncountedTerminatedPods"] = {
            k: list(v) for k, v in uncounted.items() if k in ("succeeded", "failed") and v
        }
        now = self.ctx.clock()
        # Before reading the pods: a pod that shows up later defers the sync to its event.
        satisfied = self.expectations.satisfied(key)
        pods = await self.pods_for_job(job)
        active_pods = [p for p in pods if is_active(p)]
        s = _Sync(
            key=key,
            job=job,
            pods=pods,
            active_pods=active_pods,
            expected_rm=set(self.finalizer_expectations.get(key, ())),
            uncounted_succeeded=set(uncounted.get("succeeded") or ()),
            uncounted_failed=set(uncounted.get("failed") or ()),
            terminating=sum(1 for p in pods if is_terminating(p)),
            ready=sum(1 for p in active_pods if is_ready(p)),
        )
        active = len(active_pods)
        new_succeeded, new_failed = self._new_finished_pods(s)
        s.succeeded = (
            int(status.get("succeeded") or 0) + len(new_succeeded) + len(s.uncounted_succeeded)
        )
        s.failed = int(status.get("failed") or 0) + len(new_failed) + len(s.uncounted_failed)
        if status.get("startTime") is None and not is_suspended(job):
            status["startTime"] = rfc3339(now)
        s.backoff = next_backoff_record(
            self.backoff.get(key, BackoffRecord()), new_succeeded, new_failed, now
        )

        s.finished = self._interim_finished_condition(job, now)
        backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
        if s.finished is None:
            if s.failed > backoff_limit or self._past_backoff_limit_on_failure(job, pods):
                s.finished = new_condition(
                    FAILURE_TARGET,
                    "True",
                    BACKOFF_LIMIT_EXCEEDED,
                    "Job has reached the specified backoff limit",
                    now,
                )
            elif (left := self._deadline_left(job, now)) is not None:
                if left <= 0:
                    s.finished = new_condition(
                        FAILURE_TARGET,
                        "True",
                        DEADLINE_EXCEEDED,
                        "Job was active longer than specified deadline",
                        now,
                    )
                else:
                    s.requeue.append(left)
        if is_indexed(job):
            completions = int(spec.get("completions") or 0)
            s.prev_succeeded_indexes = parse_indexes(status.get("completedIndexes"), completions)
            s.succeeded_indexes = s.prev_succeeded_indexes | {
                ix
                for p in pods
                if phase(p) == "Succeeded"
                and has_tracking_finalizer(p)
                and 0 <= (ix := completion_index(p)) < completions
            }
            s.succeeded = len(s.succeeded_indexes)

        suspend_changed = False
        manage_error: Exception | None = None
        if s.finished is not None:
            deleted_ready, deleted, manage_error = await self.delete_active_pods(job, s.active_pods)
            if deleted != active or not satisfied:
                # Pods may still be unseen, or not all could be deleted: not finished yet.
                s.finished = None
            active -= deleted
            s.terminating += deleted
            s.ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, manage_error = await self.manage_job(s)
                manage_called = True
            completions = spec.get("completions")
            if completions is None:
                complete = s.succeeded > 0 and active == 0
            else:
                complete = s.succeeded >= int(completions) and active == 0
            if complete:
                s.finished = new_condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    COMPLETIONS_REACHED,
                    "Reached expected number of succeeded pods",
                    now,
                )
            elif manage_called:
                suspend_changed = self._update_suspended_condition(job, now)

        needs_update = suspend_changed or status.get("startTime") != (
            cached.get("status") or {}
        ).get("startTime")
        for name, value in (("active", active), ("ready", s.ready), ("terminating", s.terminating)):
            if status.get(name, 0 if name == "active" else None) != value:
                needs_update = True
            status[name] = value
        await self.track_status_and_remove_finalizers(s, needs_update)
        if manage_error is not None:
            raise manage_error
        return min(s.requeue) if s.requeue else None

    # -- deciding --------------------------------------------------------------------------

    def _new_finished_pods(self, s: _Sync) -> tuple[list[Obj], list[Obj]]:
        """Finished pods not counted yet, in any way (``getNewFinishedPods``)."""
        indexed = is_indexed(s.job)
        completions = int((s.job.get("spec") or {}).get("completions") or 0)
        succeeded, failed = [], []
        for p in s.pods:
            uid = p["metadata"].get("uid", "")
            if not has_tracking_finalizer(p) or uid in s.expected_rm:
                continue
            if indexed and not 0 <= completion_index(p) < completions:
                continue
            if phase(p) == "Succeeded" and uid not in s.uncounted_succeeded:
                succeeded.append(p)
            elif is_pod_failed(p, s.job) and uid not in s.uncounted_failed:
                failed.append(p)
        return succeeded, failed

    def _interim_finished_condition(self, job: Obj, now: float) -> Obj | None:
        """An earlier sync's verdict: SuccessCriteriaMet, or FailureTarget (→ Failed)."""
        met = find_condition(job, SUCCESS_CRITERIA_MET)
        if met is not None and met.get("status") == "True":
            return met
        target = find_condition(job, FAILURE_TARGET)
        if target is not None and target.get("status") == "True":
            return new_condition(
                FAILED, "True", target.get("reason", ""), target.get("message", ""), now
            )
        return None

    @staticmethod
    def _past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
        """restartPolicy OnFailure: container restarts of live pods count as failures."""
        spec = job.get("spec") or {}
        tspec = (spec.get("template") or {}).get("spec") or {}
        if tspec.get("restartPolicy") != "OnFailure":
            return False
        restarts = 0
        for p in pods:
            if phase(p) in ("Running", "Pending"):
                st = p.get("status") or {}
                for cs in (st.get("initContainerStatuses") or []) + (
                    st.get("containerStatuses") or []
                ):
                    restarts += int(cs.get("restartCount") or 0)
        limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None else 6)
        return restarts > 0 if limit == 0 else restarts >= limit

    @staticmethod
    def _deadline_left(job: Obj, now: float) -> float | None:
        """Seconds left before activeDeadlineSeconds (None: no deadline, or suspended)."""
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        start = parse_time((job.get("status") or {}).get("startTime"))
        if deadline is None or start is None or is_suspended(job):
            return None
        return start + int(deadline) - now

    def _update_suspended_condition(self, job: Obj, now: float) -> bool:
        conditions = job["status"].setdefault("conditions", [])
        about = self._about(job)
        if is_suspended(job):
            changed = ensure_condition(
                conditions, SUSPENDED, "True", "JobSuspended", "Job suspended", now
            )
            if changed:
                self.events.emit(about, "Normal", "Suspended", "Job suspended")
        else:
            changed = ensure_condition(
                conditions, SUSPENDED, "False", "JobResumed", "Job resumed", now
            )
            if changed:
                self.events.emit(about, "Normal", "Resumed", "Job resumed")
                # activeDeadlineSeconds counts the time the Job runs uninterrupted.
                job["status"]["startTime"] = rfc3339(now)
        if not conditions:
            job["status"].pop("conditions")
        return changed

    # -- pods ------------------------------------------------------------------------------

    async def pods_for_job(self, job: Obj) -> list[Obj]:
        """The Job's pods (adopting matching orphans, releasing those that stopped matching)."""
        refs = _JobRefManager(
            self.client,
            job,
            self.selector(job),
            owner_resource="jobs",
            owner_api_version=self.api_version,
            owner_kind=self.kind,
        )
        pods = await refs.claim(owned_and_orphans(self.pods, job))
        uid = job["metadata"]["uid"]
        out = []
        for p in pods:
            if not has_tracking_finalizer(p) and not any(
                r.get("uid") == uid for r in p["metadata"].get("ownerReferences") or ()
            ):
                # Adopted just now: the finalizer is on it, though not in the cache yet.
                p = writable(p)
                p["metadata"].setdefault("finalizers", []).append(JOB_TRACKING_FINALIZER)
            out.append(p)
        return out

    async def manage_job(self, s: _Sync) -> tuple[int, Exception | None]:
        """Create or delete pods toward the wanted number of active ones.

        Returns the number of active pods after that, and the first error.
        """
        job, key = s.job, s.key
        spec = job.get("spec") or {}
        active = len(s.active_pods)
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
        if is_suspended(job):
            removed_ready, removed, err = await self.delete_job_pods(job, key, s.active_pods)
            s.terminating += removed
            s.ready -= removed_ready
            return active - removed, err
        completions = spec.get("completions")
        if completions is None:
            want = active if s.succeeded > 0 else parallelism
        else:
            want = max(0, min(int(completions) - s.succeeded, parallelism))
        victims = self._pods_for_removal(s, max(0, active - want))
        if victims:
            victims = victims[:MAX_POD_CREATE_DELETE_PER_SYNC]
            removed_ready, removed, err = await self.delete_job_pods(job, key, victims)
            s.terminating += removed
            s.ready -= removed_ready
            return active - removed, err
        terminating = s.terminating if only_replace_failed(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active, None
        now = self.ctx.clock()
        wait = s.backoff.remaining(now, self.pod_failure_backoff, self.max_pod_failure_backoff)
        if wait > 0:
            s.requeue.append(max(wait, 0.05))
            return active, None
        diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int] = []
        if is_indexed(job):
            indexes = self._first_pending_indexes(s, diff, int(completions or 0))
            diff = len(indexes)
            if diff == 0:
                return active, None
        created, err = await self.create_pods(job, key, diff, indexes)
        return active + created, err

    def _pods_for_removal(self, s: _Sync, at_least: int) -> list[Obj]:
        """Surplus pods: for Indexed Jobs those with a bad, done or repeated index first."""
        remove: list[Obj] = []
        left = list(s.active_pods)
        if is_indexed(s.job):
            completions = int((s.job.get("spec") or {}).get("completions") or 0)
            by_index: dict[int, list[Obj]] = {}
            left = []
            for p in s.active_pods:
                ix = completion_index(p)
                if not 0 <= ix < completions or ix in s.succeeded_indexes:
                    remove.append(p)
                else:
                    by_index.setdefault(ix, []).append(p)
            for same in by_index.values():
                # Keep the most advanced pod of an index; the others go.
                doomed = pods_to_delete(same, len(same) - 1)
                remove.extend(doomed)
                left.extend(p for p in same if p not in doomed)
        if len(remove) < at_least:
            remove.extend(pods_to_delete(left, at_least - len(remove)))
        return remove

    @staticmethod
    def _first_pending_indexes(s: _Sync, count: int, completions: int) -> list[int]:
        taken = s.succeeded_indexes | {completion_index(p) for p in s.active_pods}
        out = []
        for ix in range(completions):
            if len(out) >= count:
                break
            if ix not in taken:
                out.append(ix)
        return out

    def pod_template(self, job: Obj, index: int | None) -> Obj:
        """The pod template with the tracking finalizer (and, if Indexed, the index)."""
        template = writable((job.get("spec") or {}).get("template") or {})
        meta = template.setdefault("metadata", {})
        finalizers = meta.setdefault("finalizers", [])
        if JOB_TRACKING_FINALIZER not in finalizers:
            finalizers.append(JOB_TRACKING_FINALIZER)
        if index is not None:
            meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
            meta.setdefault("labels", {})[COMPLETION_INDEX] = str(index)
            pspec = template.setdefault("spec", {})
            pspec["hostname"] = f"{job['metadata']['name']}-{index}"
            env_var = {
                "name": COMPLETION_INDEX_ENV,
                "valueFrom": {
                    "fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}
                },
            }
            for kind in ("initContainers", "containers"):
                for c in pspec.get(kind) or ():
                    env = c.setdefault("env", [])
                    if not any(e.get("name") == COMPLETION_INDEX_ENV for e in env):
                        env.append(env_var)
        return template

    async def create_pods(
        self, job: Obj, key: str, count: int, indexes: list[int]
    ) -> tuple[int, Exception | None]:
        """Create ``count`` pods in slow-start batches: (how many were, the first error)."""
        ns, name = split_key(key)
        assert ns is not None
        ref = new_controller_ref(job, self.api_version, self.kind)
        about = self._about(job)
        pending = list(indexes)
        plain = self.pod_template(job, None) if not indexes else None
        self.expectations.expect_creations(key, count)
        self.log.info("creating pods", key=key, count=count, indexes=indexes or None)

        async def create_one() -> None:
            if pending:
                ix = pending.pop(0)
                template = self.pod_template(job, ix)
                prefix = indexed_generate_name(name, ix)
            else:
                assert plain is not None
                template, prefix = plain, generate_name_prefix(name)
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
            self.expectations.lower_creations(key, skipped)
        if error is not None and not isinstance(error, Exception):
            raise error
        return successes, error

    async def delete_job_pods(
        self, job: Obj, key: str, pods: list[Obj]
    ) -> tuple[int, int, Exception | None]:
        """Delete surplus pods, removing the finalizer first: they are not counted.

        Returns (ready pods deleted, pods deleted, the first error).
        """
        self.expectations.expect_deletions(key, [key_of(p) for p in pods])
        about = self._about(job)

        async def delete_one(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.remove_finalizer(pod)
                await self.client.delete(
                    "pods", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                self.expectations.deletion_observed(key, key_of(pod))
                if e.code == 404:
                    return
                self.events.emit(about, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self.events.emit(about, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        return await _delete_all(pods, delete_one)

    async def delete_active_pods(
        self, job: Obj, pods: list[Obj]
    ) -> tuple[int, int, Exception | None]:
        """Delete a finished Job's running pods, keeping their finalizers: they count as
        failed. Returns (ready pods deleted, pods deleted, the first error)."""
        about = self._about(job)

        async def delete_one(pod: Obj) -> None:
            meta = pod["metadata"]
            try:
                await self.client.delete(
                    "pods", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                if e.code == 404:
                    return
                self.events.emit(about, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                raise
            self.events.emit(about, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}")

        return await _delete_all(pods, delete_one)

    async def remove_finalizer(self, pod: Obj) -> None:
        """Remove the tracking finalizer (a json patch that checks it is still there)."""
        meta = pod["metadata"]
        finalizers = meta.get("finalizers") or []
        if JOB_TRACKING_FINALIZER not in finalizers:
            return
        i = finalizers.index(JOB_TRACKING_FINALIZER)
        ops = [
            {"op": "test", "path": "/metadata/uid", "value": meta["uid"]},
            {"op": "test", "path": f"/metadata/finalizers/{i}", "value": JOB_TRACKING_FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{i}"},
        ]
        await self.client.patch("pods", meta["name"], ops, meta.get("namespace"), type="json")

    # -- status ----------------------------------------------------------------------------

    async def track_status_and_remove_finalizers(self, s: _Sync, needs_flush: bool) -> None:
        """Count finished pods exactly once (see the module docstring) and finish the Job."""
        job = s.job
        status = job["status"]
        spec = job.get("spec") or {}
        indexed = is_indexed(job)
        completions = int(spec.get("completions") or 0)
        uncounted = status["uncountedTerminatedPods"]
        with_finalizer = {
            p["metadata"]["uid"]
            for p in s.pods
            if has_tracking_finalizer(p) and p["metadata"]["uid"] not in s.expected_rm
        }
        if _clean_uncounted(status, with_finalizer):
            needs_flush = True
        to_remove: list[Obj] = []
        new_indexes: set[int] = set()
        reached_max = False
        pods = sorted(s.pods, key=completion_index) if indexed else s.pods
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not has_tracking_finalizer(pod) or uid in s.expected_rm:
                continue  # counted in an earlier sync
            failed = is_pod_failed(pod, job)
            if not self._can_remove_finalizer(s, pod, failed):
                continue
            to_remove.append(pod)
            ix = completion_index(pod)
            if phase(pod) == "Succeeded" and uid not in s.uncounted_failed:
                if indexed:
                    if 0 <= ix < completions and ix not in s.prev_succeeded_indexes:
                        new_indexes.add(ix)
                        needs_flush = True
                elif uid not in s.uncounted_succeeded:
                    uncounted.setdefault("succeeded", []).append(uid)
                    s.uncounted_succeeded.add(uid)
                    needs_flush = True
            elif failed or (s.finished is not None and s.finished["type"] != SUCCESS_CRITERIA_MET):
                # Once the Job has failed, every pod not finished counts as failed.
                if uid not in s.uncounted_failed and (not indexed or 0 <= ix < completions):
                    uncounted.setdefault("failed", []).append(uid)
                    s.uncounted_failed.add(uid)
                    needs_flush = True
            n_uncounted = len(uncounted.get("succeeded") or ()) + len(uncounted.get("failed") or ())
            if len(new_indexes) + n_uncounted >= MAX_UNCOUNTED_PODS:
                reached_max = True
                break
        if indexed:
            done = s.prev_succeeded_indexes | new_indexes
            text = format_indexes(done)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = len(done)
            status["completedIndexes"] = text
        now = self.ctx.clock()
        if s.finished is not None and s.finished["type"] == FAILURE_TARGET:
            # Record the verdict before the finalizers (which hold the evidence) go.
            if find_condition(job, FAILURE_TARGET) is None:
                status.setdefault("conditions", []).append(s.finished)
                needs_flush = True
            s.finished = new_condition(
                FAILED, "True", s.finished["reason"], s.finished["message"], now
            )
        elif s.finished is not None and s.finished["type"] == SUCCESS_CRITERIA_MET:
            if find_condition(job, SUCCESS_CRITERIA_MET) is None:
                status.setdefault("conditions", []).append(s.finished)
                needs_flush = True
            s.finished = new_condition(
                COMPLETE, "True", s.finished["reason"], s.finished["message"], now
            )
        needs_flush = await self._flush_and_remove_finalizers(
            s, to_remove, with_finalizer, needs_flush
        )
        finished = not reached_max and self._enact_finished(s, now)
        if finished:
            needs_flush = True
        if needs_flush:
            s.job = await self.update_status(s.job)
            if finished:
                self._record_finished(s)

    @staticmethod
    def _can_remove_finalizer(s: _Sync, pod: Obj, failed: bool) -> bool:
        if s.job["metadata"].get("deletionTimestamp") or s.finished is not None:
            return True
        return phase(pod) == "Succeeded" or failed

    async def _flush_and_remove_finalizers(
        self, s: _Sync, pods: list[Obj], with_finalizer: set[str], needs_flush: bool
    ) -> bool:
        """Write the new uncounted uids, then remove finalizers, then count what went."""
        if needs_flush:
            s.job = await self.update_status(s.job)
            self.backoff[s.key] = s.backoff
            needs_flush = False
        else:
            self.backoff[s.key] = s.backoff
        error: BaseException | None = None
        if pods:
            expected = self.finalizer_expectations.setdefault(s.key, set())
            expected.update(p["metadata"]["uid"] for p in pods)

            async def remove(pod: Obj) -> None:
                try:
                    await self.remove_finalizer(pod)
                except ApiError as e:
                    expected.discard(pod["metadata"]["uid"])
                    if e.code != 404:
                        raise

            results = await asyncio.gather(*(remove(p) for p in pods), return_exceptions=True)
            for p, r in zip(pods, results, strict=True):
                if isinstance(r, BaseException):
                    if isinstance(r, asyncio.CancelledError):
                        raise r
                    error = error or r
                else:
                    with_finalizer.discard(p["metadata"]["uid"])
        if _clean_uncounted(s.job["status"], with_finalizer):
            needs_flush = True
        if error is not None:
            if needs_flush:
                s.job = await self.update_status(s.job)
            raise error
        return needs_flush

    def _enact_finished(self, s: _Sync, now: float) -> bool:
        """Add Complete or Failed once nothing is uncounted and no pod is terminating."""
        if s.finished is None:
            return False
        status = s.job["status"]
        uncounted = status.get("uncountedTerminatedPods") or {}
        if uncounted.get("succeeded") or uncounted.get("failed"):
            return False
        if s.terminating > 0:
            return False
        cond = s.finished
        conditions = status.setdefault("conditions", [])
        ensure_condition(conditions, cond["type"], "True", cond["reason"], cond["message"], now)
        if cond["type"] == COMPLETE:
            status["completionTime"] = rfc3339(now)
        return True

    def _record_finished(self, s: _Sync) -> None:
        job, cond = s.job, s.finished
        assert cond is not None
        about = self._about(job)
        if cond["type"] == COMPLETE:
            completions = (job.get("spec") or {}).get("completions")
            succeeded = int((job.get("status") or {}).get("succeeded") or 0)
            if completions is not None and succeeded > int(completions):
                self.events.emit(
                    about,
                    "Warning",
                    "TooManySucceededPods",
                    "Too many succeeded pods running after completion count reached",
                )
            self.events.emit(about, "Normal", "Completed", "Job completed")
        else:
            self.events.emit(about, "Warning", cond["reason"], cond["message"])
        self.log.info("job finished", key=s.key, condition=cond["type"], reason=cond["reason"])

    async def update_status(self, job: Obj) -> Obj:
        """PUT the status with the resourceVersion it was computed from (409 → retry later)."""
        status = job.get("status") or {}
        if not status.get("uncountedTerminatedPods"):
            status["uncountedTerminatedPods"] = {}
        for name in ("active", "succeeded", "failed"):
            if status.get(name) == 0:
                del status[name]  # omitted when zero, as Kubernetes writes them
        written = await self.client.update("jobs", job, subresource="status")
        self.own_writes.wrote(key_of(job), written)
        written.setdefault("status", {}).setdefault("uncountedTerminatedPods", {})
        return written

    # -- finished Jobs: orphans and TTL ------------------------------------------------------

    async def sync_orphan_pod(self, pod_key: str) -> None:
        """Remove the tracking finalizer of a pod no unfinished Job of ours controls."""
        pod = self.pods.get(pod_key)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if not self._is_job_ref(ref):
                return  # another owner's finalizer business
            job = self._job_of(pod, ref)
            if job is not None and (managed_elsewhere(job) or not is_finished(job)):
                return
        try:
            await self.remove_finalizer(pod)
        except ApiError as e:
            if e.code != 404:
                raise

    async def delete_if_expired(self, job: Obj) -> float | None:
        """Delete a finished Job ``ttlSecondsAfterFinished`` after it finished; else the
        seconds until then (the ``ttlafterfinished`` controller)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None or job["metadata"].get("deletionTimestamp"):
            return None
        cond = finished_condition(job)
        finished_at = parse_time((cond or {}).get("lastTransitionTime"))
        if finished_at is None:
            return None
        left = finished_at + int(ttl) - self.ctx.clock()
        if left > 0:
            return left + 0.05
        meta = job["metadata"]
        try:
            # The cache may be stale: the TTL could have been changed meanwhile.
            fresh = await self.client.get("jobs", meta["name"], meta["namespace"])
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        fmeta = fresh["metadata"]
        if fmeta.get("uid") != meta.get("uid") or fmeta.get("deletionTimestamp"):
            return None
        if not is_finished(fresh):
            return None
        if (fresh.get("spec") or {}).get("ttlSecondsAfterFinished") != ttl:
            return 0.05  # changed: decide again from the cache
        self.log.info("deleting finished job: ttlSecondsAfterFinished passed", key=key_of(job))
        try:
            await self.client.delete(
                "jobs",
                meta["name"],
                meta["namespace"],
                propagation_policy="Background",
                preconditions={"uid": fmeta["uid"], "resourceVersion": fmeta["resourceVersion"]},
            )
        except ApiError as e:
            if e.code != 404:
                raise
        return None

    def _about(self, job: Obj) -> Obj:
        return {"kind": self.kind, "apiVersion": self.api_version, "metadata": job["metadata"]}


async def _delete_all(
    pods: list[Obj], fn: Callable[[Obj], Awaitable[None]]
) -> tuple[int, int, Exception | None]:
    """Run ``fn`` on every pod at once: (ready pods done, pods done, the first error)."""
    results = await asyncio.gather(*(fn(p) for p in pods), return_exceptions=True)
    ready = done = 0
    error: Exception | None = None
    for p, r in zip(pods, results, strict=True):
        if isinstance(r, BaseException):
            if not isinstance(r, Exception):
                raise r
            error = error or r
            continue
        done += 1
        ready += 1 if is_ready(p) else 0
    return ready, done, error


def _clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """Move uncounted uids whose pod lost its finalizer into the counters; any change?"""
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for field_name, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = uncounted.get(field_name) or []
        kept = [u for u in uids if u in with_finalizer]
        if len(kept) != len(uids):
            changed = True
            status[counter] = int(status.get(counter) or 0) + len(uids) - len(kept)
        if kept:
            uncounted[field_name] = kept
        else:
            uncounted.pop(field_name, None)
    return changed
