"""Jobs (kube's ``pkg/registry/batch/job``): a pod template that may not restart
always; their pods are orphaned by default."""

from __future__ import annotations

from skiff.api.errors import Cause

from ..apps import specs
from ..core.pod import validate_pod_spec
from ..strategy import Obj, Strategy


class JobStrategy(Strategy):
    default_gc_policy = "Orphan"

    def validate(self, obj: Obj) -> list[Cause]:
        template = (obj.get("spec") or {}).get("template") or {}
        tspec = template.get("spec") or {}
        causes = validate_pod_spec(tspec, "spec.template.spec", job=True)
        return causes + specs.job(obj.get("spec") or {}, "spec")

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        return self.validate(obj) + specs.job_update(spec, old_spec, old.get("status") or {})
