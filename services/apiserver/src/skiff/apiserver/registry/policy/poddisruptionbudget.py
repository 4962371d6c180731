"""PodDisruptionBudgets (kube's ``pkg/registry/policy/poddisruptionbudget`` and
``pkg/apis/policy/validation``): minAvailable or maxUnavailable as a count or a
percentage, the selector, the unhealthy-pod eviction policy, and a status that starts
zeroed and only the ``/status`` subresource writes (the disruption controller, and the
eviction subresource as it spends a disruption)."""

from __future__ import annotations

from typing import Any

from skiff.api.disruption import UNHEALTHY_POD_EVICTION_POLICIES
from skiff.api.errors import Cause

from ...validation import int_or_percent, invalid, label_selector, not_supported
from ..strategy import Obj, Strategy

_COUNTS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")


def validate_spec(spec: dict[str, Any], path: str = "spec") -> list[Cause]:
    """``ValidatePodDisruptionBudgetSpec``."""
    causes: list[Cause] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        causes.append(invalid(path, spec, "minAvailable and maxUnavailable cannot be both set"))
    if min_available is not None:
        causes += int_or_percent(min_available, f"{path}.minAvailable")
    if max_unavailable is not None:
        causes += int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    causes += label_selector(spec.get("selector"), f"{path}.selector")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        causes.append(
            not_supported(
                f"{path}.unhealthyPodEvictionPolicy", policy, UNHEALTHY_POD_EVICTION_POLICIES
            )
        )
    return causes


def validate_status(status: dict[str, Any], path: str = "status") -> list[Cause]:
    """``ValidatePodDisruptionBudgetStatusUpdate`` for policy/v1: no negative counts."""
    causes: list[Cause] = []
    for field in _COUNTS:
        value = status.get(field)
        if isinstance(value, int) and value < 0:
            causes.append(invalid(f"{path}.{field}", value, "must be greater than or equal to 0"))
    return causes


class PodDisruptionBudgetStrategy(Strategy):
    """Spec changes bump ``metadata.generation`` (generically), which the eviction
    subresource compares with ``status.observedGeneration``."""

    allow_unconditional_update = False  # kube: "must be specified for an update"

    initial_status = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                      "expectedPods": 0}  # fmt: skip

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_spec(obj.get("spec") or {})

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self.validate(obj) + validate_status(obj.get("status") or {})
