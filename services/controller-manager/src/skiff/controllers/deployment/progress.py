"""Progress of a rollout (``progress.go``): the Progressing condition and its deadline.

A rollout is *complete* when every replica is updated and available; it is
*progressing* while its counts improve; it has *timed out* when the Progressing
condition has not been updated for ``progressDeadlineSeconds``. :func:`sync_rollout_status`
writes the status with that estimate (and the ReplicaFailure condition copied from the
ReplicaSets) and says when to look again for a deadline that may pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from skiff.api.conditions import get_condition, remove_condition, set_condition
from skiff.api.timestamps import parse_time
from skiff.client.rest import Obj

from .sync import DeploymentSync, calculate_status
from .util import (
    NEW_RS_AVAILABLE,
    PROGRESSING,
    REPLICA_FAILURE,
    REPLICA_SET_UPDATED,
    TIMED_OUT,
    new_condition,
    progress_deadline,
    replicas,
)

# -- estimates -------------------------------------------------------------------------------


def deployment_complete(d: Obj, status: Obj) -> bool:
    """Every replica updated and available, the latest generation observed."""
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    """Whether ``status`` shows progress over the Deployment's current status."""
    old = d.get("status") or {}

    def get(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(status, "replicas") - get(status, "updatedReplicas")
    return (
        get(status, "updatedReplicas") > get(old, "updatedReplicas")
        or new_old < old_old
        or get(status, "readyReplicas") > get(old, "readyReplicas")
        or get(status, "availableReplicas") > get(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    """No progress reported for ``progressDeadlineSeconds`` (``DeploymentTimedOut``)."""
    deadline = progress_deadline(d)
    if deadline is None:
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now


def replica_failure(rss: Iterable[Obj | None]) -> Obj | None:
    """A ReplicaSet's ReplicaFailure condition, as the Deployment's (``getReplicaFailures``)."""
    for rs in rss:
        if rs is None:
            continue
        for c in (rs.get("status") or {}).get("conditions") or ():
            if c.get("type") == REPLICA_FAILURE:
                return {
                    "type": REPLICA_FAILURE,
                    "status": c.get("status"),
                    "lastUpdateTime": c.get("lastTransitionTime"),
                    "lastTransitionTime": c.get("lastTransitionTime"),
                    "reason": c.get("reason"),
                    "message": c.get("message"),
                }
    return None


# -- writing it ------------------------------------------------------------------------------


async def sync_rollout_status(
    s: DeploymentSync, rss: Sequence[Obj | None], new_rs: Obj | None
) -> float | None:
    """Write status with the progress estimate (``syncRolloutStatus``).

    Returns when to look again for a progress deadline, if one may pass.
    """
    d = s.d
    all_rss = [rs for rs in rss if rs is not None]
    status = calculate_status(all_rss, new_rs, d, s.now)
    deadline = progress_deadline(d)
    if deadline is None:
        remove_condition(status, PROGRESSING)
    current = get_condition(d.get("status") or {}, PROGRESSING)
    complete_before = (
        int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
        and current is not None
        and current.get("reason") == NEW_RS_AVAILABLE
    )
    if deadline is not None and not complete_before:
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
        if deployment_complete(d, status):
            msg = (
                f'ReplicaSet "{rs_name}" has successfully progressed.'
                if rs_name
                else f'Deployment "{s.name}" has successfully progressed.'
            )
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, s.now))
        elif deployment_progressing(d, status):
            msg = (
                f'ReplicaSet "{rs_name}" is progressing.'
                if rs_name
                else f'Deployment "{s.name}" is progressing.'
            )
            cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, s.now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime")
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, s.now):
            msg = (
                f'ReplicaSet "{rs_name}" has timed out progressing.'
                if rs_name
                else f'Deployment "{s.name}" has timed out progressing.'
            )
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, s.now))
    failure = replica_failure([new_rs]) or replica_failure(all_rss)
    if failure is not None:
        set_condition(status, failure)
    else:
        remove_condition(status, REPLICA_FAILURE)
    if status == (d.get("status") or {}):
        return progress_check_after(s, status)
    d["status"] = status
    await s.write_status()
    return None


def progress_check_after(s: DeploymentSync, status: Obj) -> float | None:
    """Seconds until the progress deadline may pass (``requeueStuckDeployment``)."""
    d = s.d
    deadline = progress_deadline(d)
    cond = get_condition(d.get("status") or {}, PROGRESSING)
    if deadline is None or cond is None:
        return None
    if deployment_complete(d, status) or cond.get("reason") == TIMED_OUT:
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    after = since + deadline - s.now
    return after + 1.0 if after >= 1.0 else 1.0
