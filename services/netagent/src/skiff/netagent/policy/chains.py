"""A policy plan as iptables chains in the filter table, and keeping the kernel's in step.

Layout (FORWARD jumps to ``SKIFF-NETPOL`` first, ahead of kube-proxy's and the CNI
plugins' accepting chains; nothing here ever ACCEPTs, it only returns or drops)::

    SKIFF-NETPOL          established and related traffic returns at once; then per
                          isolated local pod: -s <pod> -j SKIFF-NP-E-<hash> (egress),
                          -d <pod> -j SKIFF-NP-I-<hash> (ingress)
    SKIFF-NP-I-/E-<hash>  one pod's way in (out): clear the allow mark; a rule with any
                          peer returns on its port match; a rule with peers jumps to their
                          set on its port match; return when marked; otherwise DROP
    SKIFF-NP-S-<hash>     one peer set: -s (ingress) or -d (egress) per address or CIDR,
                          with its port where it carries one, sets the allow mark

The allow mark is bit 0x10000, clear of kube-proxy's 0x4000 and 0x8000. A pod's chain
clears it first, so one pod's egress verdict never leaks into another's ingress.

:class:`PolicyTables` writes one ``iptables-restore --noflush`` batch per sync with only
the chains whose rules changed since the last successful write (all of them on a full
sync), flushing and deleting chains no longer wanted in the same batch.
"""

from __future__ import annotations

import time

from skiff.iptables import IptablesRunner, chains_in
from skiff.log import get_logger

from .model import INGRESS, Allow, Plan, PodRules, short_hash

log = get_logger(__name__)

TOP = "SKIFF-NETPOL"
PREFIX = "SKIFF-NP-"
MARK = "0x10000"
JUMP = ("filter", "FORWARD", '-m comment --comment "skiff network policy" -j SKIFF-NETPOL')

JUMP_CHECK_PERIOD = 5.0
"""Seconds between checks that the FORWARD jump still comes first."""

Chains = dict[str, list[str]]


def pod_chain(direction: str, namespace: str, name: str) -> str:
    letter = "I" if direction == INGRESS else "E"
    return f"{PREFIX}{letter}-{short_hash(f'{namespace}/{name}')}"


def set_chain(set_id: str) -> str:
    return f"{PREFIX}S-{short_hash(set_id)}"


def _side(set_id: str) -> str:
    """Peers are sources for ingress sets, destinations for egress ones (the id is
    ``namespace/policy/ingress|egress/index[/protocol/port]``)."""
    return "-s" if set_id.split("/")[2] == "ingress" else "-d"


def _comment(text: str) -> str:
    return '-m comment --comment "' + text.replace('"', "") + '"'


def _pod_rules(pod: PodRules, direction: str, allows: list[Allow], sets: Plan) -> list[str]:
    what = f"{pod.namespace}/{pod.name} {direction.lower()}"
    out = [f"{_comment(what)} -j MARK --set-xmark 0x0/{MARK}"]
    for allow in allows:
        port = allow.port.match() + " " if allow.port else ""
        if allow.peers is None:
            out.append(f"{port}-j RETURN")
        elif sets.peer_sets.get(allow.peers):
            out.append(f"{port}-j {set_chain(allow.peers)}")
    out.append(f"-m mark --mark {MARK}/{MARK} -j RETURN")
    out.append(f"{_comment(what + ' not allowed by any policy')} -j DROP")
    return list(dict.fromkeys(out))


def render(plan: Plan) -> Chains:
    """Every chain the plan needs, by name, with its rules (without ``-A <chain>``)."""
    chains: Chains = {TOP: ["-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"]}
    used: set[str] = set()
    for pod in plan.pods:
        for direction, allows in ((INGRESS, pod.ingress), ("Egress", pod.egress)):
            if allows is None:
                continue
            chain = pod_chain(direction, pod.namespace, pod.name)
            chains[chain] = _pod_rules(pod, direction, allows, plan)
            used.update(a.peers for a in allows if a.peers)
            side = "-d" if direction == INGRESS else "-s"
            what = _comment(f"{pod.namespace}/{pod.name} {direction.lower()}")
            chains[TOP].extend(f"{side} {ip}/32 {what} -j {chain}" for ip in pod.ips)
    for set_id in sorted(used):
        entries = plan.peer_sets.get(set_id)
        if not entries:
            continue
        side = _side(set_id)
        rules: list[str] = []
        for e in entries:
            port = " " + e.port.match() if e.port else ""
            rules.append(f"{side} {e.cidr}{port} -j MARK --set-xmark {MARK}/{MARK}")
        chains[set_chain(set_id)] = list(dict.fromkeys(rules))
    return chains


class PolicyTables:
    """The chains in the kernel: what the last successful batch wrote, and the writes."""

    def __init__(self, runner: IptablesRunner) -> None:
        self.runner = runner
        self.written: Chains = {}
        self._jump_checked = -JUMP_CHECK_PERIOD

    async def sync(self, chains: Chains, *, full: bool = False) -> tuple[int, int]:
        """Make the kernel's policy chains ``chains``; (chains written, chains deleted)."""
        changed = [c for c, rules in chains.items() if full or self.written.get(c) != rules]
        stale = set(self.written) - set(chains)
        if full:
            saved = await self.runner.save("filter")
            stale |= {c for c in chains_in(saved) if c.startswith(PREFIX)} - set(chains)
        if changed or stale:
            lines = ["*filter"]
            lines += [f":{c} - [0:0]" for c in [*changed, *sorted(stale)]]
            for c in changed:
                lines += [f"-A {c} {rule}" for rule in chains[c]]
            lines += [f"-X {c}" for c in sorted(stale)]
            lines += ["COMMIT", ""]
            await self.runner.restore("\n".join(lines).encode())
        self.written = {c: list(rules) for c, rules in chains.items()}
        if full or time.monotonic() - self._jump_checked >= JUMP_CHECK_PERIOD:
            table, chain, rule = JUMP
            if await self.runner.keep_first(table, chain, [rule]):
                log.info("moved the network policy jump back to the top", chain=chain)
            self._jump_checked = time.monotonic()
        return len(changed), len(stale)

    async def cleanup(self) -> None:
        """Remove the jump and every chain of ours."""
        table, chain, rule = JUMP
        await self.runner.delete_rule(table, chain, rule)
        ours = [
            c
            for c in chains_in(await self.runner.save("filter"))
            if c == TOP or c.startswith(PREFIX)
        ]
        if ours:
            lines = ["*filter", *(f":{c} - [0:0]" for c in ours), *(f"-X {c}" for c in ours)]
            await self.runner.restore("\n".join([*lines, "COMMIT", ""]).encode())
        self.written = {}
        self._jump_checked = -JUMP_CHECK_PERIOD
