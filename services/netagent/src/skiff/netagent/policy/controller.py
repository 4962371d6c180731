"""NetworkPolicy enforcement on the shared controller runtime: informers on
NetworkPolicies, pods and namespaces, one key (a pod's labels or a namespace's can change
what any policy allows), reconcile = compute the plan, render it, write what changed.

A full write (every chain, and leftovers of an earlier run deleted) on start and every
``full_period``; between them only the chains that differ from the last write. A policy
part that cannot be used gets one Warning event (``InvalidNetworkPolicy``) per reason.
"""

from __future__ import annotations

import time
from typing import ClassVar

from prometheus_client import Counter, Histogram

from skiff.client.informer import key_of
from skiff.controller.controller import Controller, ControllerContext
from skiff.iptables import IptablesRunner

from ..problems import ReportedProblems
from .chains import PolicyTables, render
from .model import compute

KEY = "policy"

SYNC_SECONDS = Histogram(
    "skiff_netagent_policy_sync_duration_seconds",
    "Time to compute and write the network policy chains.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CHAINS_WRITTEN = Counter(
    "skiff_netagent_policy_chains_written_total", "Network policy chains written."
)


class PolicyController(Controller):
    """Keeps this node's network policy chains in step with the API."""

    name: ClassVar[str] = "skiff-netagent-policy"

    def __init__(
        self,
        ctx: ControllerContext,
        runner: IptablesRunner,
        *,
        node_name: str,
        full_period: float = 60.0,
    ) -> None:
        super().__init__(ctx, workers=1)
        self.tables = PolicyTables(runner)
        self.node_name = node_name
        self.full_period = full_period
        self._last_full = -full_period
        self.invalid = ReportedProblems(
            self,
            reason="InvalidNetworkPolicy",
            message="network policy part not enforced",
            field="policy",
        )
        self.policies = self.watch("networkpolicies")
        self.pods = self.watch("pods")
        self.namespaces = self.watch("namespaces")
        for informer in (self.policies, self.pods, self.namespaces):
            informer.add_handler(
                lambda _o: self.queue.add(KEY),
                lambda _o, _n: self.queue.add(KEY),
                lambda _o: self.queue.add(KEY),
            )
        self.queue.add(KEY)

    async def reconcile(self, key: str) -> float | None:
        t0 = time.perf_counter()
        policies = self.policies.list()
        plan = compute(policies, self.pods.list(), self.namespaces.list(), self.node_name)
        full = time.monotonic() - self._last_full >= self.full_period
        written, deleted = await self.tables.sync(render(plan), full=full)
        if full:
            self._last_full = time.monotonic()
        SYNC_SECONDS.observe(time.perf_counter() - t0)
        CHAINS_WRITTEN.inc(written)
        if written or deleted:
            self.log.info(
                "network policy chains synced",
                isolated_pods=len(plan.pods),
                written=written,
                deleted=deleted,
                full=full,
            )
        self.invalid.report(plan.problems, {key_of(p): p for p in policies})
        return max(0.0, self._last_full + self.full_period - time.monotonic())

    @staticmethod
    async def cleanup_tables(runner: IptablesRunner) -> None:
        """Remove every network policy chain and the jump to them (``--cleanup``)."""
        await PolicyTables(runner).cleanup()
