"""CronJobs (kube's ``pkg/registry/batch/cronjob``): schedule, time zone and the job
template."""

from __future__ import annotations

from skiff.api import cron
from skiff.api.errors import Cause

from ..apps import specs
from ..core.pod import validate_pod_spec
from ..strategy import Obj, Strategy


def _schedule_causes(spec: dict, old: Obj | None) -> list[Cause]:
    schedule = spec.get("schedule")
    if not schedule:
        return [Cause("spec.schedule", "Required value", "FieldValueRequired")]
    if not isinstance(schedule, str):
        return []
    old_schedule = ((old or {}).get("spec") or {}).get("schedule") or ""
    # TZ= in the schedule is refused on create, kept on updates that had it.
    why = cron.validate_schedule(
        schedule, spec.get("timeZone"), allow_tz_in_schedule="TZ" in old_schedule
    )
    return [Cause("spec.schedule", f'Invalid value: "{schedule}": {why}')] if why else []


class CronJobStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate(obj, None)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self._validate(obj, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = _schedule_causes(spec, old)
        tz = spec.get("timeZone")
        if tz is not None and (why := cron.validate_time_zone(tz)):
            causes.append(Cause("spec.timeZone", f'Invalid value: "{tz}": {why}'))
        jt = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        causes.extend(
            validate_pod_spec(jt.get("spec") or {}, "spec.jobTemplate.spec.template.spec", job=True)
        )
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        causes += specs.job(job_spec, "spec.jobTemplate.spec")
        return causes + specs.cron_job(spec)
