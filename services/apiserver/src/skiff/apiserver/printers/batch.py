"""Printers of the ``batch`` group: Jobs (status, completions, duration) and CronJobs."""

from __future__ import annotations

from typing import Any

from skiff.apiserver.printers.common import (
    AGE_COL,
    CONTAINERS_COL,
    IMAGES_COL,
    NAME_COL,
    NONE,
    UNSET,
    Cells,
    Col,
    TablePrinter,
    age,
    containers_cells,
    format_label_selector,
    has_condition,
    human_duration,
    name_of,
    template_spec,
    timestamp,
    to_int,
    translate_timestamp_since,
)

_BATCH = "io.k8s.api.batch.v1."


def _job_completions(spec: dict, status: dict) -> str:
    succeeded = to_int(status.get("succeeded"))
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    if to_int(spec.get("parallelism")) > 1:
        return f"{succeeded}/1 of {spec['parallelism']}"
    return f"{succeeded}/1"


def _job_duration(status: dict, now: float) -> str:
    start = timestamp(status.get("startTime"))
    end = timestamp(status.get("completionTime"))
    if start is None:
        return ""
    if end is None:
        return human_duration(now - start)
    return human_duration(end - start)


def _job_state(meta: dict, conditions: list[dict]) -> str:
    if has_condition(conditions, "Complete"):
        return "Complete"
    if has_condition(conditions, "Failed"):
        return "Failed"
    if meta.get("deletionTimestamp"):
        return "Terminating"
    if has_condition(conditions, "Suspended"):
        return "Suspended"
    if has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _print_job(obj: dict, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    completions = _job_completions(spec, status)
    job_duration = _job_duration(status, now)
    state = _job_state(meta, status.get("conditions") or [])
    names, images = containers_cells(template_spec(spec))
    return [
        meta.get("name", ""),
        state,
        completions,
        job_duration,
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _bool_ptr(value: Any) -> str:
    if value is None:
        return UNSET
    return "True" if value else "False"


def _print_cron_job(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = containers_cells(template_spec(job_spec))
    return [
        name_of(obj),
        spec.get("schedule", ""),
        spec.get("timeZone") or NONE,
        _bool_ptr(spec.get("suspend")),
        len(status.get("active") or ()),
        translate_timestamp_since(last, now) if last else NONE,
        age(obj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("batch", "Job"): TablePrinter(
        (
            NAME_COL,
            Col("Status", "string", "Status of the job."),
            Col("Completions", "string", (_BATCH + "JobStatus", "succeeded")),
            Col("Duration", "string", "Time required to complete the job."),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (_BATCH + "JobSpec", "selector"), 1),
        ),
        _print_job,
    ),
    ("batch", "CronJob"): TablePrinter(
        (
            NAME_COL,
            Col("Schedule", "string", (_BATCH + "CronJobSpec", "schedule")),
            Col("Timezone", "string", (_BATCH + "CronJobSpec", "timeZone")),
            Col("Suspend", "boolean", (_BATCH + "CronJobSpec", "suspend")),
            Col("Active", "integer", (_BATCH + "CronJobStatus", "active")),
            Col("Last Schedule", "string", (_BATCH + "CronJobStatus", "lastScheduleTime")),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (_BATCH + "JobSpec", "selector"), 1),
        ),
        _print_cron_job,
    ),
}
