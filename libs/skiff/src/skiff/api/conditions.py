"""Status conditions: reading and writing ``status.conditions`` by type.

The one copy of what every controller does to its object's conditions
(``meta.SetStatusCondition`` and its per-API copies, ``SetDeploymentCondition`` and the
Job controller's ``ensureJobConditionStatus``): a condition is found by ``type``;
setting one that is already there with the same status, reason and message changes
nothing; otherwise it is replaced in place, keeping its ``lastTransitionTime`` unless
its status changed. Each API's other time fields (``lastUpdateTime``,
``lastProbeTime``) are the new condition's. Conditions are plain dicts in a status
dict, changed in place.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def new_condition(
    type_: str, status: str, reason: str, message: str, at: str, *, stamped: str = ""
) -> Obj:
    """A condition that transitioned at ``at``; ``stamped`` names the API's other time
    field (``lastUpdateTime`` for Deployments, ``lastProbeTime`` for Jobs), also ``at``."""
    cond: Obj = {"type": type_, "status": status}
    if stamped:
        cond[stamped] = at
    cond.update(lastTransitionTime=at, reason=reason, message=message)
    return cond


def get_condition(status: Obj | None, type_: str) -> Obj | None:
    """The condition of ``type_`` in ``status``, or None."""
    for c in (status or {}).get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def set_condition(status: Obj, cond: Obj) -> bool:
    """Add ``cond`` to ``status``, or replace the one of its type; whether anything changed.

    Nothing changes when the current one has the same status, reason and message. A
    replacement keeps the current ``lastTransitionTime`` when the status is the same.
    """
    conditions: list[Obj] | None = status.get("conditions")
    if conditions is None:
        conditions = status["conditions"] = []
    for i, current in enumerate(conditions):
        if current.get("type") != cond["type"]:
            continue
        if all(current.get(f) == cond.get(f) for f in ("status", "reason", "message")):
            return False
        new = dict(cond)
        if current.get("status") == cond.get("status"):
            new["lastTransitionTime"] = current.get("lastTransitionTime")
        conditions[i] = new
        return True
    conditions.append(dict(cond))
    return True


def remove_condition(status: Obj, type_: str) -> bool:
    """Remove the condition of ``type_`` (and ``conditions`` when it empties); whether any was."""
    current = status.get("conditions") or []
    kept = [c for c in current if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)
    return len(kept) != len(current)
