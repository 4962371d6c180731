"""Problems reported once per reason: the first time an object has a problem, or when its
reason changes, one error line and one Warning event; a problem gone is forgotten, so it
is reported again if it comes back. (The agent re-plans at every sync and would otherwise
repeat itself every minute.)"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.controller.controller import Controller


class ReportedProblems:
    def __init__(self, controller: Controller, *, reason: str, message: str, field: str) -> None:
        self.controller = controller
        self.reason = reason
        """The events' reason (``PodCIDRConflict``...)."""
        self.message = message
        """The log line's message."""
        self.field = field
        """The log field that names the object (``node``, ``policy``)."""
        self._seen: dict[str, str] = {}

    def report(self, problems: Mapping[str, str], objects: Mapping[str, Any]) -> None:
        """``problems``: key → why, now; ``objects``: key → the object to put events on
        (a problem of an object not there is not reported)."""
        for key, why in problems.items():
            if self._seen.get(key) != why and key in objects:
                self._seen[key] = why
                self.controller.log.error(self.message, **{self.field: key}, reason=why)
                self.controller.events.emit(objects[key], "Warning", self.reason, why)
        for key in list(self._seen):
            if key not in problems:
                del self._seen[key]
