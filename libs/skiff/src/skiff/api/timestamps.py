"""Kubernetes timestamps, written and read in one place.

``metav1.Time`` is RFC 3339 in UTC with whole seconds (``2026-12-07T02:13:27Z``);
``metav1.MicroTime`` (Leases, Events' ``eventTime``) keeps microseconds. Times are
wall-clock seconds since the epoch, as ``time.time()`` gives them.
"""

from __future__ import annotations

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
