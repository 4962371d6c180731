"""The iptables proxier: Services and EndpointSlices in, one ``iptables-restore`` per sync.

As kube-proxy's: every sync writes the chains the proxy owns outright (``KUBE-SERVICES``,
``KUBE-NODEPORTS``... in nat and filter) whole, but a Service's own chains (``KUBE-SVC-``,
``KUBE-SEP-``...) only when their rules differ from what the last successful sync wrote
(partial sync); chains no Service produces any more are flushed and deleted in the same
batch. A full sync writes everything and also deletes ``KUBE-`` service chains found in
the kernel that nothing wants (left by an earlier run).

Only the Services that changed since the last sync are re-translated into rules, so the
cost of a sync follows what changed; the rest is joining cached lines. A batch that
``iptables-restore`` refuses changes nothing in the kernel and nothing here: the next
sync writes the same differences again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from skiff.api.endpointslices import service_key
from skiff.iptables import IptablesRunner, chains_in
from skiff.log import get_logger
from skiff.proxy.endpoints import categorize, endpoints_by_port
from skiff.proxy.iptables import rules as r
from skiff.proxy.iptables.conntrack import ConntrackCleaner
from skiff.proxy.serviceport import ServicePort, service_ports

log = get_logger(__name__)

JUMP_CHECK_PERIOD = 5.0
"""Seconds between checks that our jumps still come first in the built-in chains."""


@dataclass(slots=True)
class SyncResult:
    """What one sync wrote (for metrics, logs and tests)."""

    full: bool
    services: int
    chains_written: int
    chains_deleted: int
    bytes: int
    changed_services: set[str] = field(default_factory=set)
    conntrack_deleted: int = 0


class IptablesProxier:
    """Holds the cluster's Services and EndpointSlices and syncs them into iptables."""

    def __init__(
        self,
        runner: IptablesRunner,
        *,
        node_name: str,
        cluster_cidr: str = "",
    ) -> None:
        self.runner = runner
        self.node_name = node_name
        self.cluster_cidr = cluster_cidr
        self._services: dict[str, list[ServicePort]] = {}
        self._slices: dict[str, dict[str, dict[str, Any]]] = {}
        self._dirty: set[str] = set()
        self._rules: dict[str, list[tuple[ServicePort, r.ServiceRules]]] = {}
        self._written: dict[str, list[str]] = {}
        """nat service chain -> its rules as the last successful sync left them."""
        self._need_full = True
        self._jumps_checked = 0.0
        self._health: dict[str, dict[int, tuple[str, str, int]]] = {}
        """Service key -> health check node port -> (namespace, name, local endpoints)."""
        self._udp: dict[str, dict[tuple[str, int], set[str]]] = {}
        """Service key -> the UDP addresses clients send to -> its endpoints now."""
        self.conntrack = ConntrackCleaner(runner)

    # -- changes (informer handlers) ------------------------------------------------------

    def on_service(self, svc: dict[str, Any], *, deleted: bool = False) -> str:
        """Record a Service add/update/delete; returns its key."""
        meta = svc.get("metadata") or {}
        key = f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
        ports = [] if deleted else service_ports(svc)
        if ports != self._services.get(key, []):
            self._dirty.add(key)
        if ports:
            self._services[key] = ports
        else:
            self._services.pop(key, None)
        return key

    def on_slice(self, es: dict[str, Any], *, deleted: bool = False) -> str | None:
        """Record an EndpointSlice add/update/delete; returns its Service's key."""
        key = service_key(es)
        if key is None:
            return None
        name = (es.get("metadata") or {}).get("name") or ""
        slices = self._slices.setdefault(key, {})
        if deleted:
            slices.pop(name, None)
        else:
            slices[name] = es
        if not slices:
            del self._slices[key]
        self._dirty.add(key)
        return key

    def request_full_sync(self) -> None:
        self._need_full = True

    def health_check_ports(self) -> dict[int, tuple[str, str, int]]:
        """Health check node port -> (namespace, name, local endpoints), as last translated."""
        return {p: t for ports in self._health.values() for p, t in ports.items()}

    @property
    def pending(self) -> bool:
        return bool(self._dirty) or self._need_full

    # -- syncing --------------------------------------------------------------------------

    def _translate(self, key: str) -> None:
        ports = self._services.get(key)
        self._udp.pop(key, None)
        self._health.pop(key, None)
        if not ports:
            self._rules.pop(key, None)
            return
        eps = endpoints_by_port(self._slices.get(key, {}).values(), self.node_name)
        rules = []
        for sp in ports:
            categorized = categorize(sp, eps.get((sp.port_name, sp.protocol), ()))
            rules.append((sp, r.service_rules(sp, categorized, self.cluster_cidr)))
            if sp.health_check_node_port and sp.external_local:
                self._health.setdefault(key, {})[sp.health_check_node_port] = (
                    sp.namespace,
                    sp.name,
                    len(categorized.local),
                )
            if sp.protocol == "UDP":
                targets = {e.address for e in categorized.all_usable}
                udp = self._udp.setdefault(key, {})
                for ip in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
                    if ip:
                        udp[(ip, sp.port)] = targets
                if sp.node_port:
                    udp[("*", sp.node_port)] = targets
        self._rules[key] = rules

    def _tables(self) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
        """(nat chains owned outright, filter chains, nat service chains) as wanted now."""
        nat = {c: [] for c in r.NAT_CHAINS} | r.static_nat_rules()
        filt = {c: [] for c in r.FILTER_CHAINS} | r.static_filter_rules()
        chains: dict[str, list[str]] = {}
        for key in sorted(self._rules):
            for _, sr in self._rules[key]:
                nat[r.KUBE_SERVICES] += sr.nat_services
                nat[r.KUBE_NODEPORTS] += sr.nat_nodeports
                filt[r.KUBE_SERVICES] += sr.filter_services
                filt[r.KUBE_EXTERNAL_SERVICES] += sr.filter_external
                filt[r.KUBE_NODEPORTS] += sr.filter_nodeports
                chains.update(sr.chains)
        nat[r.KUBE_SERVICES].append(r.nodeports_last_rule())
        return nat, filt, chains

    async def _existing_service_chains(self) -> set[str]:
        saved = await self.runner.save("nat")
        return {c for c in chains_in(saved) if c.startswith(r.SERVICE_CHAIN_PREFIXES)}

    async def sync(self) -> SyncResult:
        """Write what changed (everything on a full sync); raises ``RestoreError``."""
        full = self._need_full
        changed = set(self._services) | set(self._rules) if full else set(self._dirty)
        self._dirty.clear()
        for key in changed:
            self._translate(key)
        if full or time.monotonic() - self._jumps_checked > JUMP_CHECK_PERIOD:
            await self._ensure_jumps(declare=full)
        nat, filt, chains = self._tables()
        written = {} if full else self._written
        to_write = [c for c, rules in chains.items() if written.get(c) != rules]
        stale = set(written) - set(chains)
        if full:
            stale |= await self._existing_service_chains() - set(chains)
        payload = _payload(filt, nat, {c: chains[c] for c in to_write}, sorted(stale))
        await self.runner.restore(payload)
        self._written = chains
        self._need_full = False
        udp = {k: v for targets in self._udp.values() for k, v in targets.items()}
        conntrack_deleted = await self.conntrack.reconcile(udp) if udp else 0
        return SyncResult(
            full=full,
            services=len(self._rules),
            chains_written=len(to_write),
            chains_deleted=len(stale),
            bytes=len(payload),
            changed_services=changed,
            conntrack_deleted=conntrack_deleted,
        )

    async def _ensure_jumps(self, *, declare: bool) -> None:
        """Our jumps first in each built-in chain, in JUMPS' order (behind only the
        network policy chain: policy decides before a Service's rules accept).

        Behind the CNI firewall plugin's ``CNI-FORWARD`` (which accepts pod traffic), our
        REJECT for a Service without endpoints is never reached, and the connection
        leaves through the default route instead of being refused.
        """
        if declare:  # our chains must exist before a built-in chain can jump to them
            await self.runner.restore(_declare_only())
        chains: dict[tuple[str, str], list[str]] = {}
        for table, chain, rule in r.JUMPS:
            chains.setdefault((table, chain), []).append(rule)
        for (table, chain), mine in chains.items():
            if await self.runner.keep_first(table, chain, mine, behind=r.AHEAD_OF_US):
                log.info("moved our jumps back to the top", table=table, chain=chain)
        self._jumps_checked = time.monotonic()

    async def cleanup(self) -> None:
        """Remove everything the proxy wrote (``--cleanup``, and tests)."""
        for table, chain, rule in r.JUMPS:
            await self.runner.delete_rule(table, chain, rule)
        nat_saved = await self.runner.save("nat")
        filt_saved = await self.runner.save("filter")
        nat_mine = [c for c in chains_in(nat_saved) if c.startswith("KUBE-")]
        filt_mine = [c for c in chains_in(filt_saved) if c.startswith("KUBE-")]
        lines = ["*filter", *(f":{c} - [0:0]" for c in filt_mine), *(f"-X {c}" for c in filt_mine)]
        lines += ["COMMIT", "*nat", *(f":{c} - [0:0]" for c in nat_mine)]
        lines += [*(f"-X {c}" for c in nat_mine), "COMMIT", ""]
        await self.runner.restore("\n".join(lines).encode())
        self._written = {}
        self.request_full_sync()


def _declare_only() -> bytes:
    lines = ["*filter", *(f":{c} - [0:0]" for c in r.FILTER_CHAINS), "COMMIT", "*nat"]
    lines += [*(f":{c} - [0:0]" for c in r.NAT_CHAINS), "COMMIT", ""]
    return "\n".join(lines).encode()


def _payload(
    filt: dict[str, list[str]],
    nat: dict[str, list[str]],
    chains: dict[str, list[str]],
    stale: Iterable[str],
) -> bytes:
    stale = list(stale)
    out = ["*filter"]
    out += [f":{c} - [0:0]" for c in filt]
    out += [f"-A {c} {rule}" for c, rules in filt.items() for rule in rules]
    out += ["COMMIT", "*nat"]
    out += [f":{c} - [0:0]" for c in nat]
    out += [f":{c} - [0:0]" for c in chains]
    out += [f":{c} - [0:0]" for c in stale]
    out += [f"-A {c} {rule}" for c, rules in nat.items() for rule in rules]
    out += [f"-A {c} {rule}" for c, rules in chains.items() for rule in rules]
    out += [f"-X {c}" for c in stale]
    out += ["COMMIT", ""]
    return "\n".join(out).encode()
