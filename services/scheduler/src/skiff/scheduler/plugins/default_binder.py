"""DefaultBinder: bind the pod by creating its ``pods/binding`` (``plugins/defaultbinder``).

The API call goes through the framework handle's client (``handle.client_set()``), as
kube's ``Pods(ns).Bind(ctx, binding)``; a failed call raises, which the framework turns
into an ERROR status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.scheduler.framework.interface import CycleState, Handle, Status

NAME = "DefaultBinder"


def binding(pod: dict[str, Any], node_name: str) -> dict[str, Any]:
    """The ``Binding`` object that assigns ``pod`` to ``node_name``."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    }


class DefaultBinder:
    """Bind through the API client of the framework handle."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._handle = handle

    async def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status | None:
        client = self._handle.client_set() if self._handle is not None else None
        if client is None:
            return Status.as_error("DefaultBinder has no API client", plugin=NAME)
        meta = pod["metadata"]
        await client.create_subresource(
            "pods", meta["name"], "binding", binding(pod, node_name), meta.get("namespace")
        )
        return None
