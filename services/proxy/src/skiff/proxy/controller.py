"""The proxy's loop on the shared controller runtime: informers feed the proxier, one
worker syncs.

Two keys go through the work queue: ``sync`` (write what changed) and ``full`` (write
everything, on start and every ``sync_period``). A change schedules ``sync`` no sooner
than ``min_sync_period`` after the previous one, so a burst of endpoint updates becomes
one ``iptables-restore`` (kube-proxy's bounded-frequency runner). A failed restore raises,
so the queue retries it with back-off; the kernel keeps the previous rules meanwhile.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from prometheus_client import Counter, Gauge, Histogram

from skiff.api.timestamps import parse_time
from skiff.controller.controller import Controller, ControllerContext
from skiff.iptables import RestoreError
from skiff.proxy.healthcheck import HealthCheckServers
from skiff.proxy.iptables.proxier import IptablesProxier

SYNC_KEY, FULL_KEY = "sync", "full"
_COMMENT = re.compile(r'--comment "(?:[a-z ]+ for )?([a-z0-9-]+/[a-z0-9.-]+)')
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"

SYNC_SECONDS = Histogram(
    "sync_proxy_rules_duration_seconds",
    "SyncProxyRules latency in seconds",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAST_SYNC = Gauge(
    "sync_proxy_rules_last_timestamp_seconds", "The last time proxy rules were synced"
)
RESTORE_FAILURES = Counter(
    "sync_proxy_rules_iptables_restore_failures_total", "iptables-restore failures"
)
PROGRAMMING_SECONDS = Histogram(
    "network_programming_duration_seconds",
    "From an endpoint change (or its arrival here) to its rules being in place",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
SYNCED_CHAINS = Counter(
    "sync_proxy_rules_chains_written_total", "Service chains written by iptables-restore"
)


class ProxyController(Controller):
    """Watches Services and EndpointSlices; keeps the node's iptables in step."""

    name: ClassVar[str] = "skiff-proxy"

    def __init__(
        self,
        ctx: ControllerContext,
        proxier: IptablesProxier,
        *,
        sync_period: float = 30.0,
        min_sync_period: float = 1.0,
        health: HealthCheckServers | None = None,
    ) -> None:
        super().__init__(ctx, workers=1)
        self.proxier = proxier
        self.health = health if health is not None else HealthCheckServers()
        self.sync_period = sync_period
        self.min_sync_period = min_sync_period
        self.last_sync = 0.0
        """Monotonic time of the last successful sync (0: none yet)."""
        self._changed_at: dict[str, float] = {}
        self.services = self.watch("services")
        self.slices = self.watch("endpointslices")
        self.services.add_handler(
            lambda o: self._service(o),
            lambda _o, n: self._service(n),
            lambda o: self._service(o, deleted=True),
        )
        self.slices.add_handler(
            lambda o: self._slice(o),
            lambda _o, n: self._slice(n),
            lambda o: self._slice(o, deleted=True),
        )
        self.queue.add(FULL_KEY)

    def _service(self, svc: dict[str, Any], *, deleted: bool = False) -> None:
        self._changed(self.proxier.on_service(svc, deleted=deleted), None)

    def _slice(self, es: dict[str, Any], *, deleted: bool = False) -> None:
        key = self.proxier.on_slice(es, deleted=deleted)
        trigger = ((es.get("metadata") or {}).get("annotations") or {}).get(TRIGGER_TIME)
        self._changed(key, trigger)

    def _changed(self, key: str | None, trigger: str | None) -> None:
        if key is None or not self.proxier.pending:
            return
        at = time.time()
        if trigger and (t := parse_time(trigger)) is not None:
            at = min(at, t)
        self._changed_at.setdefault(key, at)
        wait = self.last_sync + self.min_sync_period - time.monotonic()
        if wait > 0:
            self.queue.add_after(SYNC_KEY, wait)
        else:
            self.queue.add(SYNC_KEY)

    async def reconcile(self, key: str) -> float | None:
        if key == FULL_KEY:
            self.proxier.request_full_sync()
        elif not self.proxier.pending:
            return None
        t0 = time.perf_counter()
        try:
            result = await self.proxier.sync()
        except RestoreError as e:
            RESTORE_FAILURES.inc()
            self.log.error("iptables-restore failed", error=str(e), line=e.line)
            self._blame(e)
            raise
        await self.health.sync(self.proxier.health_check_ports())
        elapsed = time.perf_counter() - t0
        SYNC_SECONDS.observe(elapsed)
        LAST_SYNC.set(time.time())
        SYNCED_CHAINS.inc(result.chains_written)
        self.last_sync = time.monotonic()
        now = time.time()
        for svc in result.changed_services:
            if (at := self._changed_at.pop(svc, None)) is not None:
                PROGRAMMING_SECONDS.observe(max(0.0, now - at))
        self.log.info(
            "synced rules",
            full=result.full,
            services=result.services,
            chains_written=result.chains_written,
            chains_deleted=result.chains_deleted,
            seconds=round(elapsed, 4),
        )
        return self.sync_period if key == FULL_KEY else None

    def _blame(self, e: RestoreError) -> None:
        """An Event on the Service whose rule the kernel refused (named in its comment)."""
        m = _COMMENT.search(e.line)
        svc = self.services.get(m.group(1)) if m else None
        if svc is not None:
            self.events.emit(
                svc, "Warning", "FailedToProgram", f"iptables-restore refused its rules: {e}"
            )

    def healthy(self, now: float | None = None) -> bool:
        """kube-proxy's rule: rules were synced within twice the sync period, or nothing
        is waiting to be synced."""
        now = time.monotonic() if now is None else now
        if self.last_sync == 0.0:
            return False
        return not self.proxier.pending or now - self.last_sync < 2 * self.sync_period
