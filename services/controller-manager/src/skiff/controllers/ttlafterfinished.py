"""The TTL-after-finished controller (``pkg/controller/ttlafterfinished``).

Deletes a finished Job (``Complete`` or ``Failed``) ``spec.ttlSecondsAfterFinished``
seconds after it finished, the time being the ``lastTransitionTime`` of that
condition. It only watches Jobs: a finished Job with a TTL and no deletionTimestamp is
queued when it is added or updated, and requeued until it expires. Before deleting,
the Job is read again from the API and its expiry worked out anew from that fresh
copy, so a TTL changed a moment ago (and not yet in the cache) is honoured. The
delete is foreground (``propagationPolicy: Foreground``), as Kubernetes', so the Job
stays until the garbage collector has deleted its pods; it carries the uid and
resourceVersion of the copy that was checked as preconditions.
"""

from __future__ import annotations

from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.timestamps import parse_time
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

from .job.util import finished_condition

REQUEUE_MARGIN = 0.05
"""Seconds added to a requeue, so the expiry has passed when the key comes back."""


def ttl_seconds(job: Obj) -> int | None:
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    return int(ttl) if ttl is not None else None


def needs_cleanup(job: Obj) -> bool:
    """A finished Job with a TTL (``needsCleanup``)."""
    return ttl_seconds(job) is not None and finished_condition(job) is not None


def finish_time(job: Obj) -> float | None:
    """When the Job finished: its Complete or Failed condition's lastTransitionTime."""
    cond = finished_condition(job)
    return parse_time((cond or {}).get("lastTransitionTime"))


class TTLAfterFinishedController(Controller):
    """Deletes finished Jobs once their ``ttlSecondsAfterFinished`` has passed."""

    name: ClassVar[str] = "ttl-after-finished-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        self.jobs = self.watch("jobs")
        self.jobs.add_handler(self._job_changed, lambda _old, new: self._job_changed(new))

    def _job_changed(self, job: Obj) -> None:
        if not job["metadata"].get("deletionTimestamp") and needs_cleanup(job):
            self.enqueue(job)

    def time_left(self, job: Obj) -> float | None:
        """Seconds until the Job expires (0 or less: expired); None when it is not to be
        cleaned up (being deleted, unfinished, no TTL, or no finish time)."""
        if job["metadata"].get("deletionTimestamp") or not needs_cleanup(job):
            return None
        finished_at = finish_time(job)
        if finished_at is None:
            self.log.warning("finished job without a finish time", key=key_of(job))
            return None
        ttl = ttl_seconds(job)
        assert ttl is not None
        now = self.ctx.clock()
        if finished_at > now:
            self.log.warning(
                "job finished in the future (clock skew?); its cleanup is deferred",
                key=key_of(job),
            )
        return finished_at + ttl - now

    async def reconcile(self, key: str) -> float | None:
        cached = self.jobs.get(key)
        if cached is None:
            return None
        left = self.time_left(cached)
        if left is None:
            return None
        if left > 0:
            return left + REQUEUE_MARGIN
        # The cache may be stale: the TTL could have been changed meanwhile.
        namespace, name = split_key(key)
        try:
            fresh = await self.client.get("jobs", name, namespace)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        left = self.time_left(fresh)
        if left is None:
            return None
        if left > 0:
            return left + REQUEUE_MARGIN
        meta = fresh["metadata"]
        self.log.info("deleting finished job: ttlSecondsAfterFinished passed", key=key)
        try:
            await self.client.delete(
                "jobs",
                name,
                namespace,
                propagation_policy="Foreground",
                preconditions={"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
            )
        except ApiError as e:
            if e.code != 404:
                raise
        return None
