"""ControllerRevisions as kube 1.32's ``ValidateControllerRevision`` checks them: data is
mandatory and never changes, the revision is not negative."""

from __future__ import annotations

from skiff.api.errors import Cause

from ...validation import invalid, required
from ..strategy import Obj, Strategy


class ControllerRevisionStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        causes = [] if obj.get("data") is not None else [required("data", "data is mandatory")]
        revision = obj.get("revision")
        if isinstance(revision, int) and revision < 0:
            causes.append(invalid("revision", revision, "must be greater than or equal to 0"))
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        if obj.get("data") != old.get("data"):
            causes.append(invalid("data", obj.get("data"), "field is immutable"))
        return causes
