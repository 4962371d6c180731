"""A small kopf operator (run by ``tests/e2e/test_kopf.py`` with ``kopf run``): it
watches KopfTabs, records in their status that it handled them, posts an event, and
holds a finalizer that its deletion handler releases."""

from __future__ import annotations

import logging
from typing import Any

import kopf

GROUP = "kopf.skiff.io"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 10
    settings.watching.connect_timeout = 5
    settings.networking.request_timeout = 10


@kopf.on.create(GROUP, "v1", "kopftabs")
def created(
    body: kopf.Body,
    spec: dict[str, Any],
    name: str,
    patch: kopf.Patch,
    logger: logging.Logger,
    **_: Any,
) -> dict[str, Any]:
    message = f"handled {name} with schedule {spec.get('schedule')}"
    logger.info(message)
    kopf.info(body, reason="Handled", message=message)  # an Event (kopf posts no log lines)
    patch.status["phase"] = "Handled"
    return {"schedule": spec.get("schedule")}


@kopf.on.update(GROUP, "v1", "kopftabs", field="spec.schedule")
def updated(new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = f"Updated to {new}"


@kopf.on.delete(GROUP, "v1", "kopftabs")
def deleted(name: str, logger: logging.Logger, **_: Any) -> None:
    logger.info(f"deleted {name}")
