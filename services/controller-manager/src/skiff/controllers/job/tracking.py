"""Counting every pod of a Job exactly once (``tracking_utils.go`` and the tracking half of
``job_controller.go``).

As Kubernetes, every pod is created with the ``batch.kubernetes.io/job-tracking``
finalizer, so it cannot disappear before the controller has seen how it ended. A
finished pod is counted in three steps, each safe to interrupt:

1. its uid is written to ``status.uncountedTerminatedPods`` (one status write, with
   the resourceVersion the decision was based on, so a stale cache cannot write);
2. its finalizer is removed;
3. uids in ``uncountedTerminatedPods`` whose pod no longer has the finalizer (or is
   gone) move into ``status.succeeded`` / ``status.failed``.

A restart between steps repeats at most the step it interrupted: a uid already in
``uncountedTerminatedPods`` is never added again, and a pod whose finalizer is gone is
never looked at again. While a finalizer removal is in flight the cache may still show
the finalizer; per-Job :class:`FinalizerExpectations` (uids whose removal was asked for)
keep such a pod from being counted twice. Indexed Jobs count succeeded pods by index
(``status.completedIndexes``, written before the finalizer goes), so no uid is kept.
The terminal ``Complete`` / ``Failed`` condition is only added when nothing is
uncounted and no pod is still terminating; before that the Job carries the interim
``SuccessCriteriaMet`` / ``FailureTarget`` condition, as Kubernetes 1.31+.

Adoption adds the finalizer too (:class:`JobRefManager`), so an adopted pod is counted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from skiff.api.conditions import get_condition
from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.rest import ApiClient, Obj
from skiff.controller.owners import ControllerRefManager, new_controller_ref

from .indexed import completion_index, format_indexes
from .util import (
    COMPLETE,
    FAILED,
    FAILURE_TARGET,
    SUCCESS_CRITERIA_MET,
    ensure_condition,
    is_indexed,
    is_pod_failed,
    new_condition,
    phase,
)

if TYPE_CHECKING:
    from .job_controller import JobController, JobSync

JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
MAX_UNCOUNTED_PODS = 500
"""At most this many uids in ``uncountedTerminatedPods`` (its size stays ~20 KB)."""


def has_tracking_finalizer(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or ())


class FinalizerExpectations:
    """Per Job key: uids of pods whose finalizer removal was asked for and not seen yet
    (``uidTrackingExpectations``)."""

    def __init__(self) -> None:
        self._uids: dict[str, set[str]] = {}

    def expect_removals(self, key: str, uids: Iterable[str]) -> None:
        self._uids.setdefault(key, set()).update(uids)

    def removal_observed(self, key: str, uid: str) -> None:
        """The pod lost its finalizer (or is gone), or its removal failed."""
        uids = self._uids.get(key)
        if uids is not None:
            uids.discard(uid)

    def expected(self, key: str) -> set[str]:
        """A copy of the uids still expected for ``key``."""
        return set(self._uids.get(key, ()))

    def delete(self, key: str) -> None:
        self._uids.pop(key, None)


class JobRefManager(ControllerRefManager):
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


async def remove_tracking_finalizer(client: ApiClient, pod: Obj) -> None:
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
    await client.patch("pods", meta["name"], ops, meta.get("namespace"), type="json")


def clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
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


# -- one sync's accounting -------------------------------------------------------------------


def new_finished_pods(s: JobSync) -> tuple[list[Obj], list[Obj]]:
    """(succeeded, failed) finished pods not counted yet, in any way (``getNewFinishedPods``)."""
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


async def track_status_and_remove_finalizers(
    c: JobController, s: JobSync, needs_flush: bool
) -> None:
    """Count finished pods exactly once (see the module docstring) and finish the Job
    (``trackJobStatusAndRemoveFinalizers``)."""
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
    if clean_uncounted(status, with_finalizer):
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
        if not _can_remove_finalizer(s, pod, failed):
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
    if indexed and _record_indexes(s, status, new_indexes):
        needs_flush = True
    now = c.ctx.clock()
    if _record_verdict(s, status, now):
        needs_flush = True
    needs_flush = await _flush_and_remove_finalizers(c, s, to_remove, with_finalizer, needs_flush)
    finished = not reached_max and enact_finished(s, now)
    if finished:
        needs_flush = True
    if needs_flush:
        s.job = await c.update_status(s.job)
        if finished:
            c.record_finished(s)


def _record_indexes(s: JobSync, status: Obj, new_indexes: set[int]) -> bool:
    """``status.succeeded`` and ``completedIndexes`` of an Indexed Job; True if changed."""
    done = s.prev_succeeded_indexes | new_indexes
    text = format_indexes(done)
    changed = text != (status.get("completedIndexes") or "")
    status["succeeded"] = len(done)
    status["completedIndexes"] = text
    return changed


_FINAL = {FAILURE_TARGET: FAILED, SUCCESS_CRITERIA_MET: COMPLETE}


def _record_verdict(s: JobSync, status: Obj, now: float) -> bool:
    """Record a FailureTarget / SuccessCriteriaMet verdict before the finalizers (which hold
    the evidence) go, and turn it into the final Failed / Complete; True if status changed."""
    if s.finished is None or s.finished["type"] not in _FINAL:
        return False
    kind = s.finished["type"]
    changed = get_condition(status, kind) is None
    if changed:
        status.setdefault("conditions", []).append(s.finished)
    s.finished = new_condition(
        _FINAL[kind], "True", s.finished["reason"], s.finished["message"], now
    )
    return changed


def _can_remove_finalizer(s: JobSync, pod: Obj, failed: bool) -> bool:
    if s.job["metadata"].get("deletionTimestamp") or s.finished is not None:
        return True
    return phase(pod) == "Succeeded" or failed


async def _flush_and_remove_finalizers(
    c: JobController, s: JobSync, pods: list[Obj], with_finalizer: set[str], needs_flush: bool
) -> bool:
    """Write the new uncounted uids, then remove finalizers, then count what went."""
    if needs_flush:
        s.job = await c.update_status(s.job)
        c.backoff[s.key] = s.backoff
        needs_flush = False
    else:
        c.backoff[s.key] = s.backoff
    error: BaseException | None = None
    if pods:
        expected = c.finalizer_expectations
        expected.expect_removals(s.key, [p["metadata"]["uid"] for p in pods])

        async def remove(pod: Obj) -> None:
            try:
                await remove_tracking_finalizer(c.client, pod)
            except ApiError as e:
                expected.removal_observed(s.key, pod["metadata"]["uid"])
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
    if clean_uncounted(s.job["status"], with_finalizer):
        needs_flush = True
    if error is not None:
        if needs_flush:
            s.job = await c.update_status(s.job)
        raise error
    return needs_flush


def enact_finished(s: JobSync, now: float) -> bool:
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
    ensure_condition(status, cond["type"], "True", cond["reason"], cond["message"], now)
    if cond["type"] == COMPLETE:
        status["completionTime"] = rfc3339(now)
    return True
