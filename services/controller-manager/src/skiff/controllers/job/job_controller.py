"""The Job controller (``job_controller.go``): informers, event handlers and ``syncJob``.

Jobs and their pods are watched; a pod event is mapped to its controlling Job (or, for
an orphan, to every Job whose selector matches it); pods of a deleted, replaced or
finished Job that still hold the tracking finalizer are queued as
``pod:<namespace>/<name>`` and have it removed. A sync works out the verdict (back-off
limit, active deadline, completions), has :mod:`.manage` create or delete pods, and
hands the counting of finished pods and the status write to :mod:`.tracking`. A status
write's resourceVersion is remembered (:class:`OwnWrites`) so that a sync never starts
from a cached Job older than our own last write: it would only be refused with a 409.
A finished Job is left alone (its TTL is :mod:`skiff.controllers.ttlafterfinished`'s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, TerminalError, writable
from skiff.controller.expectations import Expectations
from skiff.controller.owners import CONTROLLER_INDEX, SelectorCache, controller_ref
from skiff.controller.ownwrites import OwnWrites
from skiff.controller.podcontrol import PodControl
from skiff.controller.workload import WorkloadController

from ..pods import is_active, is_ready
from .backoff import (
    DEFAULT_POD_FAILURE_BACKOFF,
    MAX_POD_FAILURE_BACKOFF,
    BackoffRecord,
    next_backoff_record,
)
from .indexed import (
    completion_index,
    parse_indexes,
)
from .manage import delete_active_pods, manage_job
from .tracking import (
    JOB_TRACKING_FINALIZER,
    FinalizerExpectations,
    JobRefManager,
    has_tracking_finalizer,
    new_finished_pods,
    remove_tracking_finalizer,
    track_status_and_remove_finalizers,
)
from .util import (
    BACKOFF_LIMIT_EXCEEDED,
    COMPLETE,
    COMPLETIONS_REACHED,
    DEADLINE_EXCEEDED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    SUSPENDED,
    backoff_limit,
    deadline_left,
    ensure_condition,
    interim_finished_condition,
    is_finished,
    is_indexed,
    is_suspended,
    is_terminating,
    managed_elsewhere,
    new_condition,
    past_backoff_limit_on_failure,
    phase,
)

ORPHAN_PREFIX = "pod:"
"""Queue keys of pods whose tracking finalizer is to be removed."""


@dataclass(slots=True)
class JobSync:
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


class JobController(WorkloadController):
    """Runs the pods of every Job (see :mod:`skiff.controllers.job`)."""

    name: ClassVar[str] = "job-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("batch", "v1", "jobs")
    ref_manager = JobRefManager

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        expectations: Expectations | None = None,
        pod_failure_backoff: float = DEFAULT_POD_FAILURE_BACKOFF,
        max_pod_failure_backoff: float = MAX_POD_FAILURE_BACKOFF,
    ) -> None:
        super().__init__(ctx, workers=workers, selectors=SelectorCache(allow_empty=False))
        self.expectations = expectations or Expectations()
        self.pod_failure_backoff = pod_failure_backoff
        self.max_pod_failure_backoff = max_pod_failure_backoff
        self.finalizer_expectations = FinalizerExpectations()
        self.backoff: dict[str, BackoffRecord] = {}
        self.own_writes = OwnWrites()
        self.pod_control = PodControl(self.client, self.events)
        self.jobs = self.watch_owners()
        self.pods = self.watch_dependents("pods")
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_final_delete)

    # -- lookups -------------------------------------------------------------------------

    def _jobs_matching(self, pod: Obj) -> list[Obj]:
        return [job for job, _ in self.owners_selecting(pod)]

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

    def _owner_updated(self, old: Obj, new: Obj) -> None:
        super()._owner_updated(old, new)
        if is_finished(new):
            self._cleanup_pod_finalizers(new)

    def _owner_deleted(self, job: Obj) -> None:
        super()._owner_deleted(job)
        self._cleanup_pod_finalizers(job)

    def _pod_added(self, pod: Obj) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            # Seen for the first time already terminating (a relist): not a creation.
            self._pod_deleted(pod, final=False)
            return
        ref = controller_ref(pod)
        if ref is not None:
            job = self._owner_of(pod, ref)
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
            prev = self._owner_of(old, old_ref)
            if prev is not None:
                if finalizer_removed:
                    self._finalizer_removal_observed(key_of(prev), nm.get("uid", ""))
                self.enqueue(prev)
        if cur_ref is not None:
            job = self._owner_of(new, cur_ref)
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
        job = self._owner_of(pod, ref)
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
        self.finalizer_expectations.removal_observed(key, uid)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(ORPHAN_PREFIX):
            await self.sync_orphan_pod(key[len(ORPHAN_PREFIX) :])
            return None
        return await super().reconcile(key)

    def forget(self, key: str) -> None:
        self.expectations.delete(key)
        self.finalizer_expectations.delete(key)
        self.backoff.pop(key, None)
        self.own_writes.forget(key)

    async def sync_owner(self, key: str, cached: Obj) -> float | None:
        if self.own_writes.pending(key, self.jobs.get):
            return None  # our last status write's event is on its way
        if managed_elsewhere(cached):
            return None
        if is_finished(cached):
            self.backoff.pop(key, None)
            self._cleanup_pod_finalizers(cached)
            return None  # deleting it after its TTL is the ttl-after-finished controller's
        mode = (cached.get("spec") or {}).get("completionMode") or "NonIndexed"
        if mode not in ("NonIndexed", "Indexed"):
            self.events.emit(
                self.about(cached),
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
        s = JobSync(
            key=key,
            job=job,
            pods=pods,
            active_pods=active_pods,
            expected_rm=self.finalizer_expectations.expected(key),
            uncounted_succeeded=set(uncounted.get("succeeded") or ()),
            uncounted_failed=set(uncounted.get("failed") or ()),
            terminating=sum(1 for p in pods if is_terminating(p)),
            ready=sum(1 for p in active_pods if is_ready(p)),
        )
        active = len(active_pods)
        new_succeeded, new_failed = new_finished_pods(s)
        s.succeeded = (
            int(status.get("succeeded") or 0) + len(new_succeeded) + len(s.uncounted_succeeded)
        )
        s.failed = int(status.get("failed") or 0) + len(new_failed) + len(s.uncounted_failed)
        if status.get("startTime") is None and not is_suspended(job):
            status["startTime"] = rfc3339(now)
        s.backoff = next_backoff_record(
            self.backoff.get(key, BackoffRecord()), new_succeeded, new_failed, now
        )

        s.finished = interim_finished_condition(job, now)
        if s.finished is None:
            if s.failed > backoff_limit(job) or past_backoff_limit_on_failure(job, pods):
                s.finished = new_condition(
                    FAILURE_TARGET,
                    "True",
                    BACKOFF_LIMIT_EXCEEDED,
                    "Job has reached the specified backoff limit",
                    now,
                )
            elif (left := deadline_left(job, now)) is not None:
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
            deleted_ready, deleted, manage_error = await delete_active_pods(
                self, job, s.active_pods
            )
            if deleted != active or not satisfied:
                # Pods may still be unseen, or not all could be deleted: not finished yet.
                s.finished = None
            active -= deleted
            s.terminating += deleted
            s.ready -= deleted_ready
        else:
            manage_called = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, manage_error = await manage_job(self, s)
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
        await track_status_and_remove_finalizers(self, s, needs_update)
        if manage_error is not None:
            raise manage_error
        return min(s.requeue) if s.requeue else None

    def _update_suspended_condition(self, job: Obj, now: float) -> bool:
        status = job["status"]
        about = self.about(job)
        if is_suspended(job):
            changed = ensure_condition(
                status, SUSPENDED, "True", "JobSuspended", "Job suspended", now
            )
            if changed:
                self.events.emit(about, "Normal", "Suspended", "Job suspended")
        else:
            changed = ensure_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", now)
            if changed:
                self.events.emit(about, "Normal", "Resumed", "Job resumed")
                # activeDeadlineSeconds counts the time the Job runs uninterrupted.
                job["status"]["startTime"] = rfc3339(now)
        if not status.get("conditions", True):
            status.pop("conditions")
        return changed

    # -- pods ------------------------------------------------------------------------------

    async def pods_for_job(self, job: Obj) -> list[Obj]:
        """The Job's pods (adopting matching orphans, releasing those that stopped matching)."""
        pods = await self.claim(job, self.selector(job), self.pods)
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

    # -- status ----------------------------------------------------------------------------

    def record_finished(self, s: JobSync) -> None:
        """Events and a log line for a Job that just finished."""
        job, cond = s.job, s.finished
        assert cond is not None
        about = self.about(job)
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

    # -- orphans -------------------------------------------------------------------------------

    async def sync_orphan_pod(self, pod_key: str) -> None:
        """Remove the tracking finalizer of a pod no unfinished Job of ours controls."""
        pod = self.pods.get(pod_key)
        if pod is None or not has_tracking_finalizer(pod):
            return
        ref = controller_ref(pod)
        if ref is not None:
            if not self._is_job_ref(ref):
                return  # another owner's finalizer business
            job = self._owner_of(pod, ref)
            if job is not None and (managed_elsewhere(job) or not is_finished(job)):
                return
        try:
            await remove_tracking_finalizer(self.client, pod)
        except ApiError as e:
            if e.code != 404:
                raise
