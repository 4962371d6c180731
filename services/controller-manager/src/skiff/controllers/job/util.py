"""Job helpers (``pkg/controller/job/util`` and the small predicates of ``job_controller.go``).

The condition types and reasons a Job controller writes, whether a Job is finished,
succeeded, suspended, Indexed or managed by another controller, how its pods ended,
the Job flavour of a status condition (with ``lastProbeTime``; set through
:mod:`skiff.api.conditions`), and the pure parts of a sync's verdict: the back-off
limit, the active deadline, an earlier sync's interim condition.

Pure functions of the objects: nothing here talks to the API.
"""

from __future__ import annotations

from skiff.api import conditions
from skiff.api.conditions import get_condition, set_condition
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.rest import Obj

JOB_CONTROLLER_NAME = "kubernetes.io/job-controller"
"""The ``spec.managedBy`` value meaning this controller (as when the field is unset)."""

COMPLETE = "Complete"
FAILED = "Failed"
SUSPENDED = "Suspended"
FAILURE_TARGET = "FailureTarget"
SUCCESS_CRITERIA_MET = "SuccessCriteriaMet"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
DEADLINE_EXCEEDED = "DeadlineExceeded"
COMPLETIONS_REACHED = "CompletionsReached"
DEFAULT_BACKOFF_LIMIT = 6

# -- Jobs ----------------------------------------------------------------------------------


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


def only_replace_failed(job: Obj) -> bool:
    """``podReplacementPolicy: Failed`` (implied by a podFailurePolicy)."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def backoff_limit(job: Obj) -> int:
    """``spec.backoffLimit`` (6 when unset)."""
    limit = (job.get("spec") or {}).get("backoffLimit")
    return int(limit if limit is not None else DEFAULT_BACKOFF_LIMIT)


# -- pods ----------------------------------------------------------------------------------


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or ""


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in (
        "Succeeded",
        "Failed",
    )


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it succeeded."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


# -- conditions ----------------------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    """A Job condition, probed and transitioned now."""
    return conditions.new_condition(
        type_, status, reason, message, rfc3339(now), stamped="lastProbeTime"
    )


def ensure_condition(
    status: Obj, type_: str, cstatus: str, reason: str, message: str, now: float
) -> bool:
    """Set a condition, or add it unless ``cstatus`` is False; whether anything changed
    (``ensureJobConditionStatus``)."""
    if cstatus == "False" and get_condition(status, type_) is None:
        return False
    return set_condition(status, new_condition(type_, cstatus, reason, message, now))


# -- the verdict of a sync ----------------------------------------------------------------


def interim_finished_condition(job: Obj, now: float) -> Obj | None:
    """An earlier sync's verdict: SuccessCriteriaMet, or FailureTarget (→ Failed)."""
    status = job.get("status")
    met = get_condition(status, SUCCESS_CRITERIA_MET)
    if met is not None and met.get("status") == "True":
        return met
    target = get_condition(status, FAILURE_TARGET)
    if target is not None and target.get("status") == "True":
        return new_condition(
            FAILED, "True", target.get("reason", ""), target.get("message", ""), now
        )
    return None


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of live pods count as failures."""
    spec = job.get("spec") or {}
    tspec = (spec.get("template") or {}).get("spec") or {}
    if tspec.get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for p in pods:
        if phase(p) in ("Running", "Pending"):
            st = p.get("status") or {}
            for cs in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
                restarts += int(cs.get("restartCount") or 0)
    limit = backoff_limit(job)
    return restarts > 0 if limit == 0 else restarts >= limit


def deadline_left(job: Obj, now: float) -> float | None:
    """Seconds left before activeDeadlineSeconds (None: no deadline, or suspended)."""
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    start = parse_time((job.get("status") or {}).get("startTime"))
    if deadline is None or start is None or is_suspended(job):
        return None
    return start + int(deadline) - now
