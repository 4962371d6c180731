"""Leases as kube 1.32's ``ValidateLeaseSpec`` checks them: a positive duration and
non-negative transitions. (1.32 drops ``strategy`` and ``preferredHolder`` while its
CoordinatedLeaderElection gate is off, as it is by default; Skiff keeps them unchecked.)"""

from __future__ import annotations

from skiff.api.errors import Cause

from ...validation import invalid
from ..core.containers import dict_of
from ..strategy import Obj, Strategy


class LeaseStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        spec = dict_of(obj.get("spec"))
        causes: list[Cause] = []
        duration = spec.get("leaseDurationSeconds")
        if isinstance(duration, int) and duration <= 0:
            causes.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if isinstance(transitions, int) and transitions < 0:
            detail = "must be greater than or equal to 0"
            causes.append(invalid("spec.leaseTransitions", transitions, detail))
        return causes
