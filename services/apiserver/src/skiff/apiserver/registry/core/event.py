"""Events as kube 1.32's ``pkg/apis/core/validation/events.go`` checks them, for
core/v1 and events.k8s.io/v1 alike (errors name kube's internal fields: ``message`` for
a ``note``, ``involvedObject`` for ``regarding``): the namespace of the object an event is
about, the reporting fields and their lengths once ``eventTime`` is set, and, for
events.k8s.io, kube's stricter rules (a type, a series of at least 2, no deprecated
fields) and updates that change only the series."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain, is_qualified_name

from ...conversion.events import RENAMED
from ...validation import invalid, required
from ..strategy import Obj, Strategy
from .containers import dict_of

LIMIT, NOTE_LIMIT = 128, 1024
# events.k8s.io/v1 field → the internal (core) field kube's errors name; the controller
# keeps its events.k8s.io name there
_NEW_FIELDS = {**RENAMED, "reportingController": "reportingController"}
_IMMUTABLE = (
    "involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count",
    "reason", "type",
)  # fmt: skip
_IMMUTABLE_AFTER = ("action", "related", "reportingController", "reportingInstance")


def internal(obj: Obj, new_api: bool) -> Obj:
    """The event with kube's internal field names (core/v1's, the controller as
    ``reportingController``)."""
    if not new_api:
        out = dict(obj)
        out["reportingController"] = out.pop("reportingComponent", None)
        return out
    return {_NEW_FIELDS.get(k, k): v for k, v in obj.items()}


def _limited(event: Obj, key: str, limit: int, causes: list[Cause]) -> None:
    value = str(event.get(key) or "")
    if not value and key != "message":
        causes.append(required(key))
    elif len(value.encode()) > limit:
        causes.append(invalid(key, "", f"can have at most {limit} characters"))


def legacy(event: Obj, new_api: bool) -> list[Cause]:
    """``legacyValidateEvent``."""
    causes: list[Cause] = []
    namespace = dict_of(event.get("metadata")).get("namespace") or ""
    about = str(dict_of(event.get("involvedObject")).get("namespace") or "")
    mismatch = "does not match event.namespace"
    if not event.get("eventTime"):
        if not about:
            if namespace not in ("", "default"):
                causes.append(invalid("involvedObject.namespace", "", mismatch))
        elif namespace != about:
            causes.append(invalid("involvedObject.namespace", about, mismatch))
    else:
        if not about and namespace not in ("default", "kube-system"):
            causes.append(invalid("involvedObject.namespace", "", mismatch))
        at = "reportingController" if new_api else "reportingComponent"
        controller = str(event.get("reportingController") or "")
        if not controller:
            causes.append(required(at))
        causes += [invalid(at, controller, m) for m in is_qualified_name(controller)]
        for key in ("reportingInstance", "action", "reason"):
            _limited(event, key, LIMIT, causes)
        _limited(event, "message", NOTE_LIMIT, causes)
    return causes + [invalid("namespace", namespace, m) for m in is_dns1123_subdomain(namespace)]


def _series(series: Any) -> list[Cause]:
    if not isinstance(series, dict):
        return []
    causes: list[Cause] = []
    if (series.get("count") or 0) < 2:
        causes.append(invalid("series.count", "", "should be at least 2"))
    if not series.get("lastObservedTime"):
        causes.append(required("series.lastObservedTime"))
    return causes


def strict(event: Obj) -> list[Cause]:
    """The events.k8s.io/v1 rules beyond the legacy ones."""
    causes = _series(event.get("series"))
    if not event.get("eventTime"):
        causes.append(required("eventTime"))
    kind = event.get("type") or ""
    if kind not in ("Normal", "Warning"):
        causes.append(invalid("type", "", f"has invalid value: {kind}"))
    for key in ("firstTimestamp", "lastTimestamp", "count"):
        if event.get(key):
            causes.append(invalid(key, "", "needs to be unset"))
    source = dict_of(event.get("source"))
    if source.get("component") or source.get("host"):
        causes.append(invalid("source", "", "needs to be unset"))
    return causes


class EventStrategy(Strategy):
    """Events of either API group."""

    def _new_api(self) -> bool:
        return self.info.group == "events.k8s.io"

    def validate(self, obj: Obj) -> list[Cause]:
        event = internal(obj, self._new_api())
        causes = legacy(event, self._new_api())
        return causes + strict(event) if self._new_api() else causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        new_api = self._new_api()
        event = internal(obj, new_api)
        causes = legacy(event, new_api)
        if not new_api:
            return causes
        before = internal(old, new_api)
        if event.get("series") != before.get("series"):
            causes += _series(event.get("series"))
        for key in (*_IMMUTABLE, "eventTime", *_IMMUTABLE_AFTER):
            if (event.get(key) or None) != (before.get(key) or None):
                causes.append(invalid(key, event.get(key), "field is immutable"))
        return causes
