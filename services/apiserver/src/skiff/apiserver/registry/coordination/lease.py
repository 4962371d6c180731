"""Leases as kube 1.32's ``ValidateLeaseSpec`` checks them: a positive duration and
non-negative transitions. ``strategy`` and ``preferredHolder`` are dropped as kube 1.32
drops them with its CoordinatedLeaderElection gate off (its default), unless the stored
lease already has them."""

from __future__ import annotations

from skiff.api.errors import Cause

from ...validation import invalid
from ..core.containers import dict_of
from ..strategy import Obj, Strategy

_GATED = ("strategy", "preferredHolder")


class LeaseStrategy(Strategy):
    allow_unconditional_update = False  # kube: "must be specified for an update"

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        for key in _GATED:
            dict_of(obj.get("spec")).pop(key, None)

    def prepare_for_update(self, obj: Obj, old: Obj, subresource: str) -> Obj:
        obj = super().prepare_for_update(obj, old, subresource)
        for key in _GATED:
            if dict_of(old.get("spec")).get(key) is None:
                dict_of(obj.get("spec")).pop(key, None)
        return obj

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
