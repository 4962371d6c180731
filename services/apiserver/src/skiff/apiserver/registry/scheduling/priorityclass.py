"""PriorityClasses (kube's ``pkg/registry/scheduling/priorityclass``): the system classes'
fixed values, the reserved ``system-`` prefix, the user maximum, an immutable value."""

from __future__ import annotations

from skiff.api.errors import Cause

from ..strategy import Obj, Strategy

SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2000001000,
    "system-cluster-critical": 2000000000,
}
HIGHEST_USER_PRIORITY = 1_000_000_000


def _value_causes(name: str, value: object) -> list[Cause]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [Cause("value", "Required value", "FieldValueRequired")]
    if name in SYSTEM_PRIORITY_CLASSES:
        if value != SYSTEM_PRIORITY_CLASSES[name]:
            return [
                Cause(
                    "value",
                    f"Invalid value: {value}: value of {name} "
                    f"PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}",
                )
            ]
        return []
    if name.startswith("system-"):
        return [
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": priority class names '
                "with 'system-' prefix are reserved for system use only",
            )
        ]
    if value > HIGHEST_USER_PRIORITY:
        return [
            Cause(
                "value",
                f"Invalid value: {value}: maximum allowed value of a user "
                f"defined priority is {HIGHEST_USER_PRIORITY}",
            )
        ]
    return []


class PriorityClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate(obj, None)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self._validate(obj, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        value = obj.get("value")
        causes = _value_causes(obj["metadata"].get("name") or "", value)
        if old is not None and old.get("value") != value:
            causes.append(
                Cause("value", "Forbidden: may not be changed in an update.", "FieldValueForbidden")
            )
        policy = obj.get("preemptionPolicy")
        if policy not in (None, "PreemptLowerPriority", "Never"):
            causes.append(
                Cause(
                    "preemptionPolicy",
                    f'Unsupported value: "{policy}": supported values: "Never", '
                    '"PreemptLowerPriority"',
                    "FieldValueNotSupported",
                )
            )
        return causes
