"""The event recorder's spam filter: 25 per object, then one per 5 minutes."""

from __future__ import annotations

from typing import Any

from skiff.client import events
from skiff.client.events import EventRecorder


class Recording:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, _res: str, obj: dict[str, Any], _ns: str) -> dict[str, Any]:
        obj = {**obj, "metadata": {**obj["metadata"], "name": f"e{len(self.created)}"}}
        self.created.append(obj)
        return obj


async def test_spam_filter(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    monkeypatch.setattr(events.time, "monotonic", lambda: now[0])
    api = Recording()
    rec = EventRecorder(api, "test")  # type: ignore[arg-type]
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    other = {"kind": "ReplicaSet", "metadata": {"name": "db", "namespace": "ns", "uid": "u2"}}
    for i in range(100):
        await rec.record(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    assert len(api.created) == events.SPAM_BURST
    await rec.record(other, "Normal", "SuccessfulCreate", "Created pod: db-0")
    assert len(api.created) == events.SPAM_BURST + 1  # buckets are per object
    now[0] += events.SPAM_REFILL_S
    await rec.record(rs, "Normal", "SuccessfulCreate", "Created pod: web-100")
    await rec.record(rs, "Normal", "SuccessfulCreate", "Created pod: web-101")
    assert len(api.created) == events.SPAM_BURST + 2  # one token back after 5 minutes
