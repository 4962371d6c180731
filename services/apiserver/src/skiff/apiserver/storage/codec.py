"""How objects are stored: JSON without ``resourceVersion`` (the etcd revision is it), with
the writer's W3C trace context beside the object, so that the pump and the watch caches
can link their work to the write that caused it."""

from __future__ import annotations

from typing import Any

import orjson
from opentelemetry import trace

from skiff import tracing

TRACE_FIELD = "__trace"
_TRACE_MARK = f'"{TRACE_FIELD}"'.encode()


def encode(obj: dict[str, Any]) -> bytes:
    """The stored form of ``obj`` (which is left as it was)."""
    meta = obj["metadata"]
    rv = meta.pop("resourceVersion", None)
    carrier: dict[str, str] = {}
    if trace.get_current_span().get_span_context().is_valid:
        tracing.inject(carrier)
    if carrier:
        obj[TRACE_FIELD] = carrier
    try:
        return orjson.dumps(obj)
    finally:
        obj.pop(TRACE_FIELD, None)
        if rv is not None:
            meta["resourceVersion"] = rv


def decode(value: bytes, revision: int) -> dict[str, Any]:
    """A stored object with its resourceVersion set to the revision it was written at."""
    obj = orjson.loads(value)
    obj.pop(TRACE_FIELD, None)
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(revision)
    return obj


def trace_of(value: bytes) -> dict[str, str] | None:
    """The trace context stored beside an object, if any (without decoding it otherwise)."""
    if not value or _TRACE_MARK not in value:
        return None
    try:
        return orjson.loads(value).get(TRACE_FIELD)
    except orjson.JSONDecodeError:
        return None
