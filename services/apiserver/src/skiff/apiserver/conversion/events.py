"""Events between core/v1 and events.k8s.io/v1, one resource in two groups as in kube
(``pkg/apis/events/v1/conversion.go``): both are stored as core Events, so an event
written through either group is read through both (``kubectl describe`` shows what a
client-go events recorder wrote)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

# events.k8s.io/v1 field → core/v1 field; the others have the same name in both.
RENAMED = {
    "note": "message",
    "regarding": "involvedObject",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
    "reportingController": "reportingComponent",
}
_BACK = {core: new for new, core in RENAMED.items()}
FIELD_LABELS = {
    "regarding.kind": "involvedObject.kind",
    "regarding.namespace": "involvedObject.namespace",
    "regarding.name": "involvedObject.name",
    "regarding.uid": "involvedObject.uid",
    "reportingController": "reportingComponent",
}
"""events.k8s.io's field selectors as the stored core Events name them."""


def to_core(obj: Obj, version: str) -> Obj:
    """An events.k8s.io/v1 Event as core/v1's."""
    out = {RENAMED.get(k, k): v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    return {"apiVersion": "v1", "kind": "Event", **out}


def to_events(obj: Obj, version: str) -> Obj:
    """A core/v1 Event as events.k8s.io/v1's (a zero count or empty source left out)."""
    out: Obj = {"apiVersion": f"events.k8s.io/{version}", "kind": "Event"}
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or value in (None, "", {}):
            continue
        if key == "count" and value == 0:
            continue
        out[_BACK.get(key, key)] = value
    return out
