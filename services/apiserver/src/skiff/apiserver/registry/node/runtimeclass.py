"""RuntimeClasses (kube's ``pkg/apis/node/validation``): a handler that is a DNS label and
never changes, a fixed pod overhead of valid non-negative quantities, and the node
selector and tolerations that scheduling adds to the class's pods."""

from __future__ import annotations

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label
from skiff.api.quantity import parse_quantity

from ...validation import invalid, quantity_error, validate_labels
from ..core.tolerations import validate_tolerations
from ..strategy import Obj, Strategy


def _overhead(pod_fixed: dict | None) -> list[Cause]:
    """``ValidateResourceRequirements`` of the overhead as limits, as kube reuses it."""
    causes: list[Cause] = []
    for name, raw in (pod_fixed or {}).items():
        path = f"overhead.limits[{name}]"
        if quantity_error(str(raw)):
            continue  # the schema check already refused it
        q = parse_quantity(raw)
        if q is not None and q < 0:
            causes.append(invalid(path, str(raw), "must be greater than or equal to 0"))
    return causes


class RuntimeClassStrategy(Strategy):
    allow_unconditional_update = False  # kube: "must be specified for an update"

    def validate(self, obj: Obj) -> list[Cause]:
        handler = obj.get("handler") or ""
        causes = [invalid("handler", handler, m) for m in is_dns1123_label(handler)]
        causes += _overhead((obj.get("overhead") or {}).get("podFixed"))
        scheduling = obj.get("scheduling") or {}
        causes += validate_labels(scheduling.get("nodeSelector"), "scheduling.nodeSelector")
        causes += validate_tolerations(scheduling.get("tolerations"), "scheduling.tolerations")
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        if obj.get("handler") != old.get("handler"):
            causes.append(invalid("handler", obj.get("handler"), "field is immutable"))
        return causes
