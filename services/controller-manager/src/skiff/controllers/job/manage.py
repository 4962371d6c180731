"""Creating and deleting a Job's pods (``manageJob`` and its helpers in ``job_controller.go``).

How many pods should be active (``parallelism``, what ``completions`` still needs,
none while suspended); surplus pods go (for an Indexed Job those with a bad, succeeded
or repeated index first), missing ones are created in slow-start batches once the
back-off has passed, from the template with the tracking finalizer (and the completion
index). Creations and deletions are announced to the controller's expectations first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from skiff.api.errors import ApiError
from skiff.client.rest import Obj
from skiff.controller.controller import writable

from ..pods import is_ready, pods_to_delete
from .indexed import (
    add_completion_index,
    first_pending_indexes,
    indexed_generate_name,
    surplus_indexed_pods,
)
from .tracking import JOB_TRACKING_FINALIZER, remove_tracking_finalizer
from .util import is_indexed, is_suspended, only_replace_failed

if TYPE_CHECKING:
    from .job_controller import JobController, JobSync

MAX_POD_CREATE_DELETE_PER_SYNC = 500
ONLY_NOT_FOUND = (404,)
"""The delete errors that mean a Job's pod went already (a 409 is a failure here)."""


async def manage_job(c: JobController, s: JobSync) -> tuple[int, Exception | None]:
    """Create or delete pods toward the wanted number of active ones.

    Returns the number of active pods after that, and the first error.
    """
    job, key = s.job, s.key
    spec = job.get("spec") or {}
    active = len(s.active_pods)
    parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)
    if is_suspended(job):
        removed_ready, removed, err = await delete_job_pods(c, job, key, s.active_pods)
        s.terminating += removed
        s.ready -= removed_ready
        return active - removed, err
    completions = spec.get("completions")
    if completions is None:
        want = active if s.succeeded > 0 else parallelism
    else:
        want = max(0, min(int(completions) - s.succeeded, parallelism))
    victims = pods_for_removal(s, max(0, active - want))
    if victims:
        victims = victims[:MAX_POD_CREATE_DELETE_PER_SYNC]
        removed_ready, removed, err = await delete_job_pods(c, job, key, victims)
        s.terminating += removed
        s.ready -= removed_ready
        return active - removed, err
    terminating = s.terminating if only_replace_failed(job) else 0
    diff = want - terminating - active
    if diff <= 0:
        return active, None
    now = c.ctx.clock()
    wait = s.backoff.remaining(now, c.pod_failure_backoff, c.max_pod_failure_backoff)
    if wait > 0:
        s.requeue.append(max(wait, 0.05))
        return active, None
    diff = min(diff, MAX_POD_CREATE_DELETE_PER_SYNC)
    indexes: list[int] = []
    if is_indexed(job):
        indexes = first_pending_indexes(
            s.succeeded_indexes, s.active_pods, diff, int(completions or 0)
        )
        diff = len(indexes)
        if diff == 0:
            return active, None
    created, err = await create_pods(c, job, key, diff, indexes)
    return active + created, err


def pods_for_removal(s: JobSync, at_least: int) -> list[Obj]:
    """Surplus pods: for Indexed Jobs those with a bad, done or repeated index first."""
    remove: list[Obj] = []
    left = list(s.active_pods)
    if is_indexed(s.job):
        completions = int((s.job.get("spec") or {}).get("completions") or 0)
        remove, left = surplus_indexed_pods(s.active_pods, s.succeeded_indexes, completions)
    if len(remove) < at_least:
        remove.extend(pods_to_delete(left, at_least - len(remove)))
    return remove


def pod_template(job: Obj, index: int | None) -> Obj:
    """The pod template with the tracking finalizer (and, if Indexed, the index)."""
    template = writable((job.get("spec") or {}).get("template") or {})
    meta = template.setdefault("metadata", {})
    finalizers = meta.setdefault("finalizers", [])
    if JOB_TRACKING_FINALIZER not in finalizers:
        finalizers.append(JOB_TRACKING_FINALIZER)
    if index is not None:
        add_completion_index(template, job["metadata"]["name"], index)
    return template


async def create_pods(
    c: JobController, job: Obj, key: str, count: int, indexes: list[int]
) -> tuple[int, Exception | None]:
    """Create ``count`` pods in slow-start batches: (how many were, the first error)."""
    name = job["metadata"]["name"]
    about = c.about(job)
    pending = list(indexes)
    plain = pod_template(job, None) if not indexes else None
    c.log.info("creating pods", key=key, count=count, indexes=indexes or None)

    async def create_one() -> None:
        if pending:
            ix = pending.pop(0)
            template, prefix = pod_template(job, ix), indexed_generate_name(name, ix)
        else:
            assert plain is not None
            template, prefix = plain, None
        await c.pod_control.create_pod(about, template, generate_name=prefix)

    successes, error = await c.pod_control.create_pods(c.expectations, key, count, create_one)
    if error is not None and not isinstance(error, Exception):
        raise error
    return successes, error


async def delete_job_pods(
    c: JobController, job: Obj, key: str, pods: list[Obj]
) -> tuple[int, int, Exception | None]:
    """Delete surplus pods, removing the finalizer first: they are not counted.

    Returns (ready pods deleted, pods deleted, the first error).
    """
    about = c.about(job)

    async def delete_one(pod: Obj) -> bool:
        try:
            await remove_tracking_finalizer(c.client, pod)
        except ApiError as e:
            if e.code == 404:
                return False
            c.pod_control.record("Delete", about, pod["metadata"]["name"], e)
            raise
        return await c.pod_control.delete_pod(about, pod, gone=ONLY_NOT_FOUND)

    results = await c.pod_control.delete_pods(about, pods, c.expectations, key, delete=delete_one)
    return _deleted(pods, results)


async def delete_active_pods(
    c: JobController, job: Obj, pods: list[Obj]
) -> tuple[int, int, Exception | None]:
    """Delete a finished Job's running pods, keeping their finalizers: they count as
    failed. Returns (ready pods deleted, pods deleted, the first error)."""
    about = c.about(job)

    async def delete_one(pod: Obj) -> bool:
        return await c.pod_control.delete_pod(about, pod, gone=ONLY_NOT_FOUND)

    return _deleted(pods, await c.pod_control.delete_pods(about, pods, delete=delete_one))


def _deleted(
    pods: list[Obj], results: list[BaseException | None]
) -> tuple[int, int, Exception | None]:
    """(ready pods done, pods done, the first error) of deleting ``pods``."""
    ready = done = 0
    error: Exception | None = None
    for p, r in zip(pods, results, strict=True):
        if r is not None:
            if not isinstance(r, Exception):
                raise r
            error = error or r
            continue
        done += 1
        ready += 1 if is_ready(p) else 0
    return ready, done, error
