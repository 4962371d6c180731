"""Kubernetes timestamps, written and read in one place.

``metav1.Time`` is RFC 3339 in UTC with whole seconds (``2026-12-07T02:13:27Z``);
``metav1.MicroTime`` (Leases, Events' ``eventTime``) keeps microseconds; durations are
Go's (``1m30s``), as flags and kubeadm take them. Times are
wall-clock seconds since the epoch, as ``time.time()`` gives them.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime


def rfc3339(t: float | None = None) -> str:
    """``metav1.Time`` for ``t`` (now when None)."""
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def micro_time(t: float | None = None) -> str:
    """``metav1.MicroTime`` for ``t`` (now when None)."""
    return datetime.fromtimestamp(time.time() if t is None else t, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ"
    )


def parse_time(value: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp; None when empty or unparsable.

    A timestamp without a zone is taken as UTC.
    """
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``40s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total
