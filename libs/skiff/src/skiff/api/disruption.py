"""PodDisruptionBudgets as both the eviction subresource and the disruption controller
read them (``k8s.io/api/policy/v1`` and ``k8s.io/component-helpers/apps/poddisruptionbudget``).
"""

from __future__ import annotations

from typing import Any

from skiff.api.errors import ApiError
from skiff.api.selectors import LabelSelector, selector_from_dict

Obj = dict[str, Any]

DISRUPTION_ALLOWED = "DisruptionAllowed"
"""The status condition saying whether an eviction may go ahead now."""
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
"""The ``StatusCause`` type of an eviction refused by a budget."""

IF_HEALTHY_BUDGET = "IfHealthyBudget"
ALWAYS_ALLOW = "AlwaysAllow"
UNHEALTHY_POD_EVICTION_POLICIES = [ALWAYS_ALLOW, IF_HEALTHY_BUDGET]

DELETION_TIMEOUT = 120.0
"""Seconds an eviction's entry in ``status.disruptedPods`` counts the pod as gone; after
that the controller assumes the delete never happened (kube's ``DeletionTimeout``)."""
MAX_DISRUPTED_POD_SIZE = 2000
"""More unconfirmed evictions than this and the budget refuses further ones."""


def pdb_selector(pdb: Obj) -> LabelSelector:
    """The pods a budget covers: in policy/v1 an empty selector covers every pod of the
    namespace, a missing or invalid one none."""
    try:
        return selector_from_dict((pdb.get("spec") or {}).get("selector"))
    except ApiError:
        return LabelSelector.nothing()


def set_disruption_allowed(status: Obj, at: str, *, reason: str = "", message: str = "") -> None:
    """``UpdateDisruptionAllowedCondition`` (or, with ``reason``, the ``SyncFailed``
    variant): ``DisruptionAllowed`` is True with SufficientPods while disruptions are
    allowed, else False. As ``meta.SetStatusCondition``, ``lastTransitionTime`` moves
    only when the status does."""
    allowed = not reason and int(status.get("disruptionsAllowed") or 0) > 0
    value = "True" if allowed else "False"
    cond: Obj = {
        "type": DISRUPTION_ALLOWED,
        "status": value,
        "observedGeneration": int(status.get("observedGeneration") or 0),
        "lastTransitionTime": at,
        "reason": reason or (SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS),
        "message": message,
    }
    if not cond["observedGeneration"]:
        del cond["observedGeneration"]
    conditions: list[Obj] = status.setdefault("conditions", [])
    for i, current in enumerate(conditions):
        if current.get("type") == DISRUPTION_ALLOWED:
            if current.get("status") == value:
                cond["lastTransitionTime"] = current.get("lastTransitionTime") or at
            conditions[i] = cond
            return
    conditions.append(cond)
