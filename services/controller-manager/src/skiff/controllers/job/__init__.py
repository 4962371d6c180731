"""The Job controller (``pkg/controller/job``), cut as Kubernetes cuts it.

A Job runs pods from its template until ``completions`` of them succeed (or, without
``completions``, until one succeeds and the rest finish), at most ``parallelism`` at a
time; in ``Indexed`` mode each pod gets a completion index and every index must
succeed once. Failed pods are replaced after an exponential back-off (10 s doubling,
capped at 6 minutes) until more than ``backoffLimit`` have failed;
``activeDeadlineSeconds`` bounds the run; ``suspend`` deletes the running pods. Every
pod carries the ``batch.kubernetes.io/job-tracking`` finalizer and passes through
``status.uncountedTerminatedPods``, so each outcome is counted exactly once across
restarts. Deleting a finished Job ``ttlSecondsAfterFinished`` after it finished is the
TTL-after-finished controller's (:mod:`skiff.controllers.ttlafterfinished`), as in
Kubernetes; the Job's pods are then deleted by the garbage collector.

Modules: :mod:`.job_controller` (the controller: informers, handlers, ``syncJob``),
:mod:`.manage` (creating and deleting pods), :mod:`.tracking` (the tracking finalizer
and ``uncountedTerminatedPods``: counting each pod once), :mod:`.indexed` (completion
indexes), :mod:`.backoff` (the delay before the next pod), :mod:`.util` (conditions
and predicates; conditions are set with :mod:`skiff.api.conditions`).

Not implemented: ``podFailurePolicy``, ``backoffLimitPerIndex`` / ``maxFailedIndexes``,
``successPolicy``; a Job with ``spec.managedBy`` set to another controller is left alone.
"""

from skiff.controllers.job.backoff import BackoffRecord, next_backoff_record
from skiff.controllers.job.indexed import COMPLETION_INDEX, format_indexes, parse_indexes
from skiff.controllers.job.job_controller import ORPHAN_PREFIX, JobController, JobSync
from skiff.controllers.job.tracking import JOB_TRACKING_FINALIZER, has_tracking_finalizer
from skiff.controllers.job.util import (
    COMPLETE,
    FAILED,
    finished_condition,
    is_finished,
    is_succeeded,
)

__all__ = [
    "COMPLETE",
    "COMPLETION_INDEX",
    "FAILED",
    "JOB_TRACKING_FINALIZER",
    "ORPHAN_PREFIX",
    "BackoffRecord",
    "JobController",
    "JobSync",
    "finished_condition",
    "format_indexes",
    "has_tracking_finalizer",
    "is_finished",
    "is_succeeded",
    "next_backoff_record",
    "parse_indexes",
]
