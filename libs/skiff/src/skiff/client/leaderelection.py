"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

A candidate takes the Lease when it is free or when its holder has not renewed it
for ``lease_duration`` as *observed locally* (no reliance on synchronized clocks);
every write is a compare-and-swap on resourceVersion, so two candidates cannot
both win. The leader renews every ``retry_period``; if it cannot renew within
``renew_deadline`` it stops leading (its work is cancelled) before anyone else may
take over. On a clean stop it releases the Lease so a successor starts at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import micro_time
from skiff.log import get_logger

log = get_logger(__name__)
LEASES = "leases.coordination.k8s.io"


def default_identity() -> str:
    return f"{socket.gethostname()}_{os.getpid()}"


class LeaderElector:
    """``await LeaderElector(client, "kube-system", "skiff-scheduler").run(lead)``."""

    def __init__(
        self,
        client: Any,
        namespace: str,
        name: str,
        *,
        identity: str | None = None,
        lease_duration: float = 10.0,
        renew_deadline: float = 8.0,
        retry_period: float = 2.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity or default_identity()
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.is_leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0

    def healthy(self, max_tolerable_expired: float = 20.0) -> bool:
        """kube's leader-election healthz: unhealthy only while leading with a lease not
        renewed for its duration plus ``max_tolerable_expired`` seconds (a stuck loop)."""
        if not self.is_leader:
            return True
        return time.monotonic() - self._observed_at <= self.lease_duration + max_tolerable_expired

    @property
    def observed_holder(self) -> str | None:
        """The holder this elector last saw in the Lease (None before its first look)."""
        return self._observed[0] if self._observed is not None else None

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; while leader, run ``lead()`` (cancelled on losing the lease)."""
        while True:
            await self._acquire()
            log.info("became leader", lease=f"{self.namespace}/{self.name}", identity=self.identity)
            self.is_leader = True
            work = asyncio.create_task(lead(), name=f"leading-{self.name}")
            renew = asyncio.create_task(self._renew_loop(), name=f"renew-{self.name}")
            try:
                done, _ = await asyncio.wait({work, renew}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                work.cancel()
                renew.cancel()
                await asyncio.gather(work, renew, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._release())
                raise
            finally:
                self.is_leader = False
            work.cancel()
            renew.cancel()
            await asyncio.gather(work, renew, return_exceptions=True)
            if work in done and not work.cancelled() and work.exception() is not None:
                log.error("leader work failed", error=repr(work.exception()))
            log.warning("stopped leading", lease=f"{self.namespace}/{self.name}")

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try_acquire_or_renew():
                    return
            except ApiError as e:
                log.info("lease not acquired", error=e.message)
            await asyncio.sleep(self.retry_period)

    async def _renew_loop(self) -> None:
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                if await self._try_acquire_or_renew():
                    last_ok = time.monotonic()
                    continue
                return  # someone else holds it
            except ApiError as e:
                log.warning("lease renewal failed", error=e.message)
            if time.monotonic() - last_ok > self.renew_deadline:
                return

    async def _try_acquire_or_renew(self) -> bool:
        now = micro_time()
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as e:
            if e.code != 404:
                raise
            await self.client.create(
                LEASES,
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, now, 0),
                },
                self.namespace,
            )
            self._observe(self.identity, now)
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        renew_time = spec.get("renewTime") or ""
        self._observe(holder, renew_time)
        expired = time.monotonic() > self._observed_at + float(
            spec.get("leaseDurationSeconds") or self.lease_duration
        )
        if holder and holder != self.identity and not expired:
            return False
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire_time = spec.get("acquireTime") or now
        if holder != self.identity:
            transitions += 1
            acquire_time = now
        lease["spec"] = self._spec(acquire_time, now, transitions)
        await self.client.update(LEASES, lease, self.namespace)  # 409 if someone else wrote
        self._observe(self.identity, now)
        return True

    def _observe(self, holder: str, renew_time: str) -> None:
        if self._observed != (holder, renew_time):
            self._observed = (holder, renew_time)
            self._observed_at = time.monotonic()

    def _spec(self, acquire_time: str, renew_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    async def _release(self) -> None:
        lease = await self.client.get(LEASES, self.name, self.namespace)
        if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        lease["spec"]["holderIdentity"] = ""
        lease["spec"]["leaseDurationSeconds"] = 1
        await self.client.update(LEASES, lease, self.namespace)
        log.info("released lease", lease=f"{self.namespace}/{self.name}")
