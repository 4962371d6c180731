"""The CronJob controller (``pkg/controller/cronjob``, the v2 controller).

Every CronJob is synced when it or one of its Jobs changes, and again just after its
next scheduled time. A sync:

- drops finished Jobs from ``status.active`` (``SawCompletedJob``), records
  ``lastSuccessfulTime``, drops Jobs that went missing, and deletes the oldest finished
  Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit``;
- unless suspended, finds the most recent scheduled time since ``lastScheduleTime``
  (or the creation) — **at most one** run for any number of missed times, none when
  it is more than ``startingDeadlineSeconds`` late, and a ``TooManyMissedTimes``
  warning past 100 missed times — and starts a Job for it, honouring
  ``concurrencyPolicy`` (Allow; Forbid skips while one runs; Replace deletes the
  running ones first);
- names the Job ``<cronjob>-<scheduled time in minutes since the epoch>``: a Job is the
  lock for its scheduled time, so a restarted controller, or one reading a stale cache,
  finds the Job already there (409) instead of creating a second one;
- warns (``TooManyActiveJobs``) when more than ``active_jobs_warning`` Jobs of one
  CronJob run at once: with ``concurrencyPolicy: Allow`` a schedule faster than its
  Jobs finish would otherwise pile up pods without a word.

Schedules are read by :mod:`.cron` in ``spec.timeZone``, else in the controller's
local zone, as Kubernetes does.

**Time.** The controller reads only the clock it is given (``ControllerContext.clock``).
A background task notices when that clock jumps against the monotonic one (a wall clock
set by hand or NTP) and resyncs every CronJob at once, rather than at the times
computed before the jump. (Tests run the controller manager on a clock moved by a file,
``--clock-offset-file``, and check for jumps every 0.2 s: see :mod:`.clock`.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, tzinfo
from enum import Enum
from typing import ClassVar

from skiff.api.cron import (
    Schedule,
    ScheduleError,
    format_time,
    load_time_zone,
    local_time_zone,
    parse_schedule,
)
from skiff.api.errors import ApiError, Reason, namespace_terminating
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, writable
from skiff.controller.owners import CONTROLLER_INDEX, controller_ref, new_controller_ref
from skiff.controller.ownwrites import OwnWrites
from skiff.controller.workload import WorkloadController

from .job.util import finished_condition, is_succeeded

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
"""Annotation on a created Job: its scheduled time, RFC 3339 in the CronJob's zone."""
NEXT_SCHEDULE_DELTA = 0.1
"""Requeue this long after the next scheduled time (clock skew between components)."""
MANY_MISSED = 100
ACTIVE_JOBS_WARNING = 10
"""More active Jobs than this for one CronJob is worth a ``TooManyActiveJobs`` warning."""
CLOCK_JUMP = 1.0
"""A wall-clock jump (against the monotonic clock) larger than this resyncs everything."""


class Missed(Enum):
    """How many scheduled times passed unmet (``missedSchedulesType``)."""

    NONE = "none"
    FEW = "few"
    MANY = "many"


# -- schedule arithmetic (utils.go) ----------------------------------------------------


def most_recent_schedule_time(
    cj: Obj, now: float, schedule: Schedule, *, include_starting_deadline: bool
) -> tuple[float, float | None, Missed]:
    """(the earliest time considered, the most recent unmet scheduled time or None, how
    many were missed). Raises ScheduleError for a schedule that never comes round."""
    created = parse_time(cj["metadata"].get("creationTimestamp")) or now
    status = cj.get("status") or {}
    earliest = parse_time(status.get("lastScheduleTime")) or created
    deadline = (cj.get("spec") or {}).get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        earliest = max(earliest, now - int(deadline))
    t1 = schedule.next(earliest)
    t2 = schedule.next(t1) if t1 is not None else None
    if t1 is None or t2 is None:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    if now < t1:
        return earliest, None, Missed.NONE
    if now < t2:
        return earliest, t1, Missed.NONE
    between = round(t2 - t1)
    if between < 1:
        raise ScheduleError("time difference between two schedules is less than 1 second")
    # A rough count of the missed times: how many intervals fit between t1 and now.
    missed_count = int(now - t1) // between + 1
    most_recent: float | None = None
    t: float | None = schedule.next(t1 + (missed_count - 2) * between)
    while t is not None and t <= now:
        most_recent = t
        t = schedule.next(t)
    missed = Missed.MANY if missed_count > MANY_MISSED else Missed.FEW
    return earliest, most_recent, missed


def next_schedule_delay(cj: Obj, now: float, schedule: Schedule) -> float | None:
    """Seconds until just after the next scheduled time (None: it never comes)."""
    try:
        earliest, most_recent, missed = most_recent_schedule_time(
            cj, now, schedule, include_starting_deadline=False
        )
        base = (
            most_recent if most_recent is not None else (earliest if missed is Missed.NONE else now)
        )
    except ScheduleError:
        base = now
    nxt = schedule.next(base)
    if nxt is None:
        return None
    return max(0.0, nxt + NEXT_SCHEDULE_DELTA - now)


def job_name(cj: Obj, scheduled: float) -> str:
    """``<cronjob>-<minutes since the epoch>``: one name per scheduled time."""
    return f"{cj['metadata']['name']}-{int(scheduled) // 60}"


def job_ref(job: Obj) -> Obj:
    """An ObjectReference to a Job, as ``status.active`` holds them."""
    meta = job["metadata"]
    return {
        "kind": "Job",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": meta.get("resourceVersion"),
    }


def _rfc1123z(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def _start_order(job: Obj) -> tuple[int, float, str]:
    """Oldest first; Jobs never started last; the name breaks ties (``byJobStartTime``)."""
    start = parse_time((job.get("status") or {}).get("startTime"))
    return (1 if start is None else 0, start or 0.0, job["metadata"].get("name", ""))


# -- the controller --------------------------------------------------------------------


class CronJobController(WorkloadController):
    """Starts the Jobs of every CronJob on schedule (see the module docstring)."""

    name: ClassVar[str] = "cronjob-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("batch", "v1", "cronjobs")

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        local_tz: tzinfo | None = None,
        active_jobs_warning: int = ACTIVE_JOBS_WARNING,
        clock_check_interval: float = 1.0,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.local_tz = local_tz or local_time_zone()
        self.active_jobs_warning = active_jobs_warning
        self.clock_check_interval = clock_check_interval
        self.own_writes = OwnWrites()
        self.cronjobs = self.watch_owners(adopts=False)
        self.jobs = self.watch_dependents("jobs")
        self.jobs.add_handler(self._job_added, self._job_updated, self._job_deleted)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch_clock(), name=f"{self.name}:clock")
        try:
            await super().run()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_clock(self) -> None:
        """Resync every CronJob when the clock jumps (the requeue times are then wrong)."""
        skew = self.ctx.clock() - time.monotonic()
        while True:
            await asyncio.sleep(self.clock_check_interval)
            now_skew = self.ctx.clock() - time.monotonic()
            if abs(now_skew - skew) > CLOCK_JUMP:
                self.log.info("the clock jumped: resyncing", seconds=round(now_skew - skew, 1))
                for cj in self.cronjobs.list():
                    self.enqueue(cj)
            skew = now_skew

    # -- event handlers --------------------------------------------------------------------

    def _job_added(self, job: Obj) -> None:
        if (cj := self._owner_of(job, controller_ref(job))) is not None:
            self.enqueue(cj)

    def _job_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        if cur_ref != old_ref and (prev := self._owner_of(old, old_ref)) is not None:
            self.enqueue(prev)
        if (cj := self._owner_of(new, cur_ref)) is not None:
            self.enqueue(cj)

    def _job_deleted(self, job: Obj) -> None:
        self._job_added(job)

    # -- reconcile -------------------------------------------------------------------------

    def forget(self, key: str) -> None:
        self.own_writes.forget(key)

    async def sync_owner(self, key: str, cached: Obj) -> float | None:
        if self.own_writes.pending(key, self.cronjobs.get):
            return None  # our last status write's event is on its way
        jobs = self.jobs.store.by_index(CONTROLLER_INDEX, f"uid:{cached['metadata']['uid']}")
        cj = writable(cached)
        cj.setdefault("status", {})
        deleted = await self.cleanup_finished_jobs(cj, jobs)
        cj, base, requeue = await self.sync(cj, cached.get("status") or {}, jobs, deleted)
        if _normalized(cj["status"]) != _normalized(base):
            await self.update_status(cj)
        return requeue

    async def cleanup_finished_jobs(self, cj: Obj, jobs: list[Obj]) -> set[str]:
        """Delete the oldest finished Jobs beyond the history limits; the uids deleted."""
        spec = cj.get("spec") or {}
        succeeded_limit = spec.get("successfulJobsHistoryLimit")
        failed_limit = spec.get("failedJobsHistoryLimit")
        deleted: set[str] = set()
        if succeeded_limit is None and failed_limit is None:
            return deleted
        done: dict[str, list[Obj]] = {"Complete": [], "Failed": []}
        for j in jobs:
            cond = finished_condition(j)
            if cond is not None and not j["metadata"].get("deletionTimestamp"):
                done[cond["type"]].append(j)
        for kind, limit in (("Complete", succeeded_limit), ("Failed", failed_limit)):
            if limit is None or len(done[kind]) <= int(limit):
                continue
            oldest = sorted(done[kind], key=_start_order)[: len(done[kind]) - int(limit)]
            for j in oldest:
                if await self.delete_job(cj, j):
                    deleted.add(j["metadata"]["uid"])
        return deleted

    async def delete_job(self, cj: Obj, job: Obj) -> bool:
        """Delete a Job (its pods go with it, in the background) and drop it from active."""
        meta = job["metadata"]
        try:
            await self.client.delete(
                "jobs",
                meta["name"],
                meta["namespace"],
                propagation_policy="Background",
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as e:
            if e.code in (404, 409):  # gone already (the cache lags), or a namesake
                _remove_active(cj, meta["uid"])
                return True
            self.events.emit(self.about(cj), "Warning", "FailedDelete", f"Deleted job: {e}")
            self.log.warning("cannot delete job", job=key_of(job), error=e.message)
            return False
        _remove_active(cj, meta["uid"])
        self.events.emit(
            self.about(cj), "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}"
        )
        return True

    async def sync(
        self, cj: Obj, base: Obj, jobs: list[Obj], deleted: set[str]
    ) -> tuple[Obj, Obj, float | None]:
        """Account for the Jobs, then start the one due, if any (``syncCronJob``).

        ``base`` is the status ``cj`` was read with. Returns the CronJob with the status
        to write, the status it is based on (a fresh read may replace a stale cached
        one), and the seconds until the next sync.
        """
        now = self.ctx.clock()
        cj, base = await self.reconcile_jobs(cj, base, jobs, deleted)
        if cj["metadata"].get("deletionTimestamp"):
            return cj, base, None
        schedule = self.schedule_of(cj)
        if schedule is None:
            return cj, base, None
        try:
            _, scheduled, missed = most_recent_schedule_time(
                cj, now, schedule, include_starting_deadline=True
            )
        except ScheduleError as e:
            text = (cj.get("spec") or {}).get("schedule") or ""
            self.events.emit(
                self.about(cj), "Warning", "InvalidSchedule", f"invalid schedule: {text} : {e}"
            )
            return cj, base, None
        if scheduled is not None and self.should_start(cj, now, scheduled, missed):
            await self.start_job(cj, scheduled)
        return cj, base, next_schedule_delay(cj, now, schedule)

    # -- the steps of a sync ---------------------------------------------------------------

    async def reconcile_jobs(
        self, cj: Obj, base: Obj, jobs: list[Obj], deleted: set[str]
    ) -> tuple[Obj, Obj]:
        """Reconcile ``status.active`` with the Jobs: drop finished and missing ones,
        report unexpected ones, record ``lastSuccessfulTime``. Returns the CronJob and the
        status it is based on (replaced by a fresh read when the cache was stale)."""
        for j in jobs:
            cj, base = await self._account_job(cj, base, j, deleted)
            _record_success(cj, j)
        await self._drop_missing_active(cj, {j["metadata"]["uid"] for j in jobs})
        return cj, base

    async def _account_job(
        self, cj: Obj, base: Obj, job: Obj, deleted: set[str]
    ) -> tuple[Obj, Obj]:
        """One Job of the CronJob against ``status.active``."""
        uid = job["metadata"]["uid"]
        found = _in_active(cj, uid)
        finished = finished_condition(job)
        if not found and finished is None and uid not in deleted:
            # Our own status write may not be in the cache yet: ask the API.
            fresh = await self._get_fresh(cj)
            if fresh is not None and _in_active(fresh, uid):
                base = writable(fresh["status"])
                for gone in deleted:
                    _remove_active(fresh, gone)
                return fresh, base
            self.events.emit(
                self.about(cj),
                "Warning",
                "UnexpectedJob",
                "Saw a job that the controller did not create or forgot: "
                + job["metadata"]["name"],
            )
        elif found and finished is not None:
            _remove_active(cj, uid)
            self.events.emit(
                self.about(cj),
                "Normal",
                "SawCompletedJob",
                f"Saw completed job: {job['metadata']['name']}, condition: {finished['type']}",
            )
        return cj, base

    async def _drop_missing_active(self, cj: Obj, children: set[str]) -> None:
        """Drop the active Jobs that are neither in the cache nor in the API."""
        for ref in list(cj["status"].get("active") or ()):
            if ref.get("uid") in children:
                continue
            try:
                await self.client.get("jobs", ref["name"], ref.get("namespace"))
            except ApiError as e:
                if e.code != 404:
                    raise
                self.events.emit(
                    self.about(cj),
                    "Normal",
                    "MissingJob",
                    f"Active job went missing: {ref['name']}",
                )
                _remove_active(cj, ref.get("uid", ""))

    def schedule_of(self, cj: Obj) -> Schedule | None:
        """The CronJob's schedule in its time zone; None when suspended or when the time
        zone or the schedule is invalid (reported in an event)."""
        about = self.about(cj)
        spec = cj.get("spec") or {}
        tz_name = spec.get("timeZone")
        tz = self.local_tz
        if tz_name is not None:
            try:
                tz = load_time_zone(tz_name)
            except ScheduleError as e:
                self.events.emit(
                    about, "Warning", "UnknownTimeZone", f'invalid timeZone: "{tz_name}": {e}'
                )
                return None
        if spec.get("suspend"):
            return None
        text = spec.get("schedule") or ""
        if "TZ" in text:
            self.events.emit(
                about,
                "Warning",
                "UnsupportedSchedule",
                f'CRON_TZ or TZ used in schedule "{text}" is not officially supported, see '
                "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ "
                "for more details",
            )
            tz = self.local_tz
        try:
            return parse_schedule(text, tz)
        except ScheduleError as e:
            self.events.emit(
                about, "Warning", "UnparseableSchedule", f'unparseable schedule: "{text}" : {e}'
            )
            return None

    def should_start(self, cj: Obj, now: float, scheduled: float, missed: Missed) -> bool:
        """Whether to start the Job of ``scheduled``: not past the starting deadline, not
        started already, and not forbidden by ``concurrencyPolicy: Forbid``."""
        about = self.about(cj)
        spec = cj.get("spec") or {}
        if missed is Missed.MANY:
            self.events.emit(
                about,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds "
                "or check clock skew",
            )
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled + int(deadline) < now:
            self.events.emit(
                about,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc1123z(scheduled)}",
            )
            return False
        name = job_name(cj, scheduled)
        active = cj["status"].get("active") or []
        if any(r.get("name") == name for r in active) or parse_time(
            cj["status"].get("lastScheduleTime")
        ) == float(int(scheduled)):
            return False
        if (spec.get("concurrencyPolicy") or "Allow") == "Forbid" and active:
            self.events.emit(
                about,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy "
                "is Forbid",
            )
            return False
        return True

    async def start_job(self, cj: Obj, scheduled: float) -> None:
        """Replace the running Jobs under ``concurrencyPolicy: Replace``, create the Job of
        ``scheduled`` and record it in the status (warning when too many are active)."""
        if ((cj.get("spec") or {}).get("concurrencyPolicy") or "Allow") == "Replace":
            for ref in list(cj["status"].get("active") or []):
                await self._replace(cj, ref)
        job = await self.create_job(cj, scheduled)
        if job is None:
            return
        cj["status"].setdefault("active", []).append(job_ref(job))
        cj["status"]["lastScheduleTime"] = rfc3339(scheduled)
        running = len(cj["status"]["active"])
        if running > self.active_jobs_warning:
            self.events.emit(
                self.about(cj),
                "Warning",
                "TooManyActiveJobs",
                f"More than {self.active_jobs_warning} jobs are active at once: jobs start "
                "faster than they finish; consider concurrencyPolicy Forbid or Replace, or "
                "activeDeadlineSeconds in the job template",
            )
            self.log.warning("too many active jobs", cronjob=key_of(cj), active=running)

    async def _replace(self, cj: Obj, ref: Obj) -> None:
        """concurrencyPolicy Replace: delete a still-running Job before the next starts."""
        try:
            job = await self.client.get("jobs", ref["name"], ref.get("namespace"))
        except ApiError as e:
            if e.code == 404:
                _remove_active(cj, ref.get("uid", ""))
                return
            self.events.emit(self.about(cj), "Warning", "FailedGet", f"Get job: {e}")
            raise
        if not await self.delete_job(cj, job):
            raise ApiError(500, Reason.INTERNAL_ERROR, f"could not replace job {key_of(job)}")
        _remove_active(cj, ref.get("uid", ""))

    async def create_job(self, cj: Obj, scheduled: float) -> Obj | None:
        """Create the Job of one scheduled time (or find ours already there); None when
        a Job of that name belongs to someone else or is already in ``status.active``."""
        meta = cj["metadata"]
        template = writable((cj.get("spec") or {}).get("jobTemplate") or {})
        tmeta = template.get("metadata") or {}
        annotations = dict(tmeta.get("annotations") or {})
        try:
            zone = load_time_zone((cj.get("spec") or {}).get("timeZone") or "")
        except ScheduleError:
            zone = UTC
        annotations[SCHEDULED_TIMESTAMP] = format_time(scheduled, zone)
        name = job_name(cj, scheduled)
        job: Obj = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [new_controller_ref(cj, self.api_version, self.kind)],
            },
            "spec": template.get("spec") or {},
        }
        if not job["metadata"]["labels"]:
            del job["metadata"]["labels"]
        try:
            created = await self.client.create("jobs", job, meta["namespace"])
        except ApiError as e:
            if namespace_terminating(e):
                raise
            if e.code != 409:
                self.events.emit(
                    self.about(cj), "Warning", "FailedCreate", f"Error creating job: {e}"
                )
                raise
            # Created before (then a crash, or a stale cache): ours if we control it.
            existing = await self.client.get("jobs", name, meta["namespace"])
            ref = controller_ref(existing)
            if (
                ref is None
                or ref.get("uid") != meta["uid"]
                or _in_active(cj, existing["metadata"]["uid"])
            ):
                return None
            self.log.info("job already exists", cronjob=key_of(cj), job=name)
            return existing
        self.events.emit(self.about(cj), "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    async def _get_fresh(self, cj: Obj) -> Obj | None:
        meta = cj["metadata"]
        try:
            fresh = await self.client.get("cronjobs", meta["name"], meta["namespace"])
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if fresh["metadata"].get("uid") != meta.get("uid"):
            return None
        fresh.setdefault("status", {})
        return fresh

    async def update_status(self, cj: Obj) -> None:
        """PUT the status (409 when our view is stale: the sync is retried)."""
        cj["status"] = _normalized(cj["status"])
        try:
            written = await self.client.update("cronjobs", cj, subresource="status")
            self.own_writes.wrote(key_of(cj), written)
        except ApiError as e:
            if e.code != 404:
                raise


def _record_success(cj: Obj, job: Obj) -> None:
    """``lastSuccessfulTime``: the latest completion of a succeeded Job."""
    if not is_succeeded(job):
        return
    done = (job.get("status") or {}).get("completionTime")
    last = cj["status"].get("lastSuccessfulTime")
    if done and (last is None or (parse_time(done) or 0) > (parse_time(last) or 0)):
        cj["status"]["lastSuccessfulTime"] = done


def _in_active(cj: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid for r in (cj.get("status") or {}).get("active") or ())


def _normalized(status: Obj) -> Obj:
    """The status without an empty ``active`` list (the API drops it)."""
    return {k: v for k, v in status.items() if k != "active" or v}


def _remove_active(cj: Obj, uid: str) -> None:
    status = cj.setdefault("status", {})
    active = [r for r in status.get("active") or () if r.get("uid") != uid]
    status["active"] = active
