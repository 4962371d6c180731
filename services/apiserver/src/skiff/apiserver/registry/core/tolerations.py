"""Tolerations (kube's ``validateTolerations``), for the objects that carry them."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_qualified_name, is_valid_label_value

from ...validation import invalid, not_supported

OPERATORS = ["Equal", "Exists"]
_EMPTY_KEY = (
    'operator must be Exists when `key` is empty, which means "match all values and all keys"'
)
_SECONDS = "effect must be 'NoExecute' when `tolerationSeconds` is set"
_EXISTS_VALUE = "value must be empty when `operator` is 'Exists'"
EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]


def validate_tolerations(tolerations: list[dict[str, Any]] | None, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, t in enumerate(tolerations or ()):
        where = f"{path}[{i}]"
        key, operator, value = t.get("key") or "", t.get("operator") or "", t.get("value") or ""
        if key:
            causes += [invalid(f"{where}.key", key, m) for m in is_qualified_name(key)]
        elif operator != "Exists":
            causes.append(invalid(f"{where}.operator", operator, _EMPTY_KEY))
        effect = t.get("effect") or ""
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(invalid(f"{where}.effect", effect, _SECONDS))
        if operator in ("", "Equal"):
            causes += [invalid(f"{where}.value", value, m) for m in is_valid_label_value(value)]
        elif operator == "Exists":
            if value:
                causes.append(invalid(f"{where}.operator", t, _EXISTS_VALUE))
        else:
            causes.append(not_supported(f"{where}.operator", operator, OPERATORS))
        if effect and effect not in EFFECTS:
            causes.append(not_supported(f"{where}.effect", effect, EFFECTS))
    return causes
