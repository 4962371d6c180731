"""Reading a Node's status: its addresses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def internal_ip(node: Mapping[str, Any]) -> str | None:
    """The Node's first ``InternalIP`` address (None when it reports none)."""
    for a in (node.get("status") or {}).get("addresses") or ():
        if a.get("type") == "InternalIP":
            return a.get("address")
    return None
