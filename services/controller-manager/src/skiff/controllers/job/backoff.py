"""The back-off before a Job's next pod (``backoff_utils.go``).

Failures since the last success, and when the last one was: the delay before the next
pod is 10 s doubling per failure, capped at 6 minutes. As in Kubernetes the record is
kept in memory only: a restarted controller starts the next pod at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from skiff.api.timestamps import parse_time
from skiff.client.rest import Obj

DEFAULT_POD_FAILURE_BACKOFF = 10.0
MAX_POD_FAILURE_BACKOFF = 360.0


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
