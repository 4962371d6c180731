"""DefaultBinder: bind the pod by creating its ``pods/binding`` (``plugins/defaultbinder``).

The API call itself is the service's: the plugin awaits the ``binder`` callable from its
args, ``async binder(pod, node_name)``, which raises on failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from skiff.scheduler.framework import CycleState, Handle, Status

NAME = "DefaultBinder"

Binder = Callable[[dict[str, Any], str], Awaitable[None]]


class DefaultBinder:
    """Bind through the injected ``binder`` callable."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._binder: Binder | None = args.get("binder")

    async def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status | None:
        if self._binder is None:
            return Status.as_error("DefaultBinder has no binder configured", plugin=NAME)
        await self._binder(pod, node_name)
        return None
