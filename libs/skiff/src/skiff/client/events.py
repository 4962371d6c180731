"""Recording core/v1 Events, aggregated as client-go's recorder does.

A repeat of the same (object, type, reason, message) bumps ``count`` and
``lastTimestamp`` of the Event already written instead of writing a new one, which is
what ``kubectl describe`` shows as ``(x5 over 2m)``. As client-go's spam filter, each
object gets a bucket of 25 events refilled at one per 5 minutes: a ReplicaSet creating
3,000 pods writes 25 ``SuccessfulCreate`` events, not 3,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.log import get_logger

from .rest import ApiClient

log = get_logger(__name__)

_MAX_REMEMBERED = 10_000
SPAM_BURST = 25
SPAM_REFILL_S = 300.0


class EventRecorder:
    """Writes Events about objects on behalf of ``component`` (e.g. ``kubelet``)."""

    def __init__(
        self, client: ApiClient, component: str, host: str = "", instance: str = ""
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self.instance = instance
        """``reportingInstance``: which replica of the component wrote (default: host)."""
        self._seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self._pending: set[asyncio.Task[None]] = set()
        self._buckets: dict[str, tuple[float, float]] = {}  # object → (tokens, at)

    def _allow(self, obj: dict[str, Any]) -> bool:
        """client-go's EventSourceObjectSpamFilter: a token bucket per involved object."""
        meta = obj.get("metadata") or {}
        key = meta.get("uid") or f"{obj.get('kind')}/{meta.get('namespace')}/{meta.get('name')}"
        now = time.monotonic()
        tokens, at = self._buckets.get(key, (float(SPAM_BURST), now))
        tokens = min(float(SPAM_BURST), tokens + (now - at) / SPAM_REFILL_S)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return False
        if len(self._buckets) > _MAX_REMEMBERED:
            self._buckets.clear()
        self._buckets[key] = (tokens - 1, now)
        return True

    def emit(
        self, obj: dict[str, Any], type_: str, reason: str, message: str, action: str = ""
    ) -> None:
        """Record in the background: callers on a hot path never wait for the API."""
        if len(self._pending) > 1000:
            return  # the API is not keeping up: events are best effort
        task = asyncio.create_task(self.record(obj, type_, reason, message, action))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def record(
        self, obj: dict[str, Any], type_: str, reason: str, message: str, action: str = ""
    ) -> None:
        """Write (or aggregate into) one Event; API errors are logged, not raised."""
        if not self._allow(obj):
            return  # this object is spamming (client-go drops these too)
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        key = (meta.get("uid") or meta.get("name", ""), type_, reason, message)
        now = rfc3339()
        previous = self._seen.get(key)
        try:
            if previous is not None:
                try:
                    self._seen[key] = await self.client.patch(
                        "events",
                        previous["metadata"]["name"],
                        {"count": int(previous.get("count") or 1) + 1, "lastTimestamp": now},
                        previous["metadata"]["namespace"],
                        type="merge",
                    )
                    return
                except ApiError as e:
                    if e.code != 404:
                        raise
            source: dict[str, str] = {"component": self.component}
            if self.host:
                source["host"] = self.host
            self._seen[key] = await self.client.create(
                "events",
                {
                    "metadata": {"generateName": f"{meta.get('name', 'object')}.", "namespace": ns},
                    "involvedObject": {
                        "kind": obj.get("kind") or "Pod",
                        "apiVersion": obj.get("apiVersion") or "v1",
                        "namespace": meta.get("namespace"),
                        "name": meta.get("name"),
                        "uid": meta.get("uid"),
                        "resourceVersion": meta.get("resourceVersion"),
                    },
                    "reason": reason,
                    "message": message,
                    "type": type_,
                    "source": source,
                    "reportingComponent": self.component,
                    "reportingInstance": self.instance or self.host or self.component,
                    "action": action or reason,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                },
                ns,
            )
            if len(self._seen) > _MAX_REMEMBERED:
                self._seen.clear()
        except ApiError as e:
            log.warning(
                "cannot record event", reason=reason, object=meta.get("name"), error=e.message
            )

    async def flush(self) -> None:
        """Wait for background writes (tests and shutdown)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*list(self._pending), return_exceptions=True)
