"""Event printers: core ``v1`` Events and ``events.k8s.io/v1`` Events.

kube-apiserver converts events.k8s.io Events to the core type before printing, so
both share the core columns; :func:`_event_cells` takes the fields each API names
differently.
"""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    CORE,
    OM,
    Cells,
    Col,
    TablePrinter,
    name_of,
    timestamp,
    to_int,
    translate_timestamp_since,
)


def _event_cells(
    name: str,
    involved: dict,
    etype: str,
    reason: str,
    message: str,
    source: dict,
    controller: str,
    instance: str,
    first_ts: str | None,
    last_ts: str | None,
    event_time: str | None,
    count: int,
    series: dict | None,
    now: float,
) -> Cells:
    first = (
        translate_timestamp_since(first_ts, now)
        if timestamp(first_ts) is not None
        else translate_timestamp_since(event_time, now)
    )
    last = translate_timestamp_since(last_ts, now) if timestamp(last_ts) is not None else first
    if series:
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = to_int(series.get("count"))
    elif not count:
        count = 1  # singleton events have no count in the events.k8s.io API
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or controller or ""
    host = source.get("host") or instance or ""
    return [
        last,
        etype,
        reason,
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        (message or "").strip(),
        first,
        count,
        name,
    ]


def _print_event(obj: dict, now: float) -> Cells:
    return _event_cells(
        name_of(obj),
        obj.get("involvedObject") or {},
        obj.get("type", ""),
        obj.get("reason", ""),
        obj.get("message", ""),
        obj.get("source") or {},
        obj.get("reportingComponent", ""),
        obj.get("reportingInstance", ""),
        obj.get("firstTimestamp"),
        obj.get("lastTimestamp"),
        obj.get("eventTime"),
        to_int(obj.get("count")),
        obj.get("series"),
        now,
    )


def _print_events_v1_event(obj: dict, now: float) -> Cells:
    return _event_cells(
        name_of(obj),
        obj.get("regarding") or {},
        obj.get("type", ""),
        obj.get("reason", ""),
        obj.get("note", ""),
        obj.get("deprecatedSource") or {},
        obj.get("reportingController", ""),
        obj.get("reportingInstance", ""),
        obj.get("deprecatedFirstTimestamp"),
        obj.get("deprecatedLastTimestamp"),
        obj.get("eventTime"),
        to_int(obj.get("deprecatedCount")),
        obj.get("series"),
        now,
    )


_EVENT_COLUMNS = (
    Col("Last Seen", "string", (CORE + "Event", "lastTimestamp")),
    Col("Type", "string", (CORE + "Event", "type")),
    Col("Reason", "string", (CORE + "Event", "reason")),
    Col("Object", "string", (CORE + "Event", "involvedObject")),
    Col("Subobject", "string", (CORE + "ObjectReference", "fieldPath"), 1),
    Col("Source", "string", (CORE + "Event", "source"), 1),
    Col("Message", "string", (CORE + "Event", "message")),
    Col("First Seen", "string", (CORE + "Event", "firstTimestamp"), 1),
    Col("Count", "string", (CORE + "Event", "count"), 1),
    Col("Name", "string", (OM, "name"), 1, "name"),
)

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("", "Event"): TablePrinter(_EVENT_COLUMNS, _print_event),
    ("events.k8s.io", "Event"): TablePrinter(_EVENT_COLUMNS, _print_events_v1_event),
}
