"""GPU health from NVML's critical XID events, as NVIDIA's device plugin reads them, with
one difference: a device marked unhealthy returns to healthy once NVML answers its queries
again and no critical XID has come for ``recover_after`` seconds (NVIDIA's plugin keeps it
unhealthy until the plugin restarts).

XIDs that an application causes (13 graphics engine exception, 31 memory page fault, 43
GPU stopped processing, 45 preemptive cleanup, 68 video processor exception, 109 context
switch timeout) say nothing about the GPU and are ignored, as NVIDIA's plugin does by
default; every other XID makes the device unhealthy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from skiff.log import get_logger

from .nvml import Nvml, XidEvent

log = get_logger(__name__)

APPLICATION_XIDS = frozenset({13, 31, 43, 45, 68, 109})


@dataclass
class Unhealthy:
    xid: int
    last: float
    """When the last critical XID came (monotonic seconds)."""


class HealthMonitor:
    """Which devices (GPU or MIG UUIDs) are unhealthy, and why."""

    def __init__(
        self,
        nvml: Nvml,
        *,
        ignored: Iterable[int] = APPLICATION_XIDS,
        recover_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.nvml = nvml
        self.ignored = frozenset(ignored)
        self.recover_after = recover_after
        self.clock = clock
        self.unhealthy: dict[str, Unhealthy] = {}

    def healthy(self, uuid: str) -> bool:
        return uuid not in self.unhealthy

    def events(self, events: Iterable[XidEvent]) -> bool:
        """Take events in; True when a device's health changed."""
        changed = False
        for e in events:
            if e.xid in self.ignored:
                log.info("application XID ignored", device=e.uuid, xid=e.xid)
                continue
            if e.uuid not in self.unhealthy:
                log.warning("critical XID: device unhealthy", device=e.uuid, xid=e.xid)
                changed = True
            self.unhealthy[e.uuid] = Unhealthy(e.xid, self.clock())
        return changed

    def recover(self) -> bool:
        """Devices NVML answers again, quiet for ``recover_after``; True when any did."""
        now = self.clock()
        back = [
            uuid
            for uuid, u in self.unhealthy.items()
            if now - u.last >= self.recover_after and self.nvml.usable(uuid)
        ]
        for uuid in back:
            log.info("device usable again: healthy", device=uuid, xid=self.unhealthy[uuid].xid)
            del self.unhealthy[uuid]
        return bool(back)
