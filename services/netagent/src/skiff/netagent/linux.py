"""The kernel side: the node's routes (tagged with their own protocol number, so the
agent lists and removes only its own), the masquerade chain and the forwarding accept.

``prefix`` runs every command through another (``ip netns exec <ns>`` in tests).
"""

from __future__ import annotations

from collections.abc import Sequence

from skiff import command
from skiff.log import get_logger

log = get_logger(__name__)

PROTO = "77"
"""Routes the agent owns carry ``proto 77`` (free in /etc/iproute2/rt_protos)."""
CHAIN = "SKIFF-POSTROUTING"
FORWARD_CHAIN = "SKIFF-FORWARD"


class NodeNetwork:
    def __init__(self, prefix: Sequence[str] = ()) -> None:
        self.prefix = list(prefix)

    async def run(self, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        rc, out, err = await command.run(*self.prefix, *args, stdin=stdin)
        return rc, out.decode(), err.decode()

    async def routes(self) -> dict[str, str]:
        """The agent's routes now: destination → gateway."""
        rc, out, err = await self.run("ip", "-4", "route", "show", "proto", PROTO)
        if rc != 0:
            raise OSError(f"ip route show: {err.strip()}")
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if "via" in parts:
                found[parts[0]] = parts[parts.index("via") + 1]
        return found

    async def sync_routes(self, wanted: dict[str, str]) -> tuple[int, int]:
        """Make the agent's routes exactly ``wanted``; (added or changed, removed)."""
        have = await self.routes()
        changed = removed = 0
        for dst, via in wanted.items():
            if have.get(dst) == via:
                continue
            rc, _, err = await self.run("ip", "route", "replace", dst, "via", via, "proto", PROTO)
            if rc != 0:
                log.error("cannot add route", dst=dst, via=via, error=err.strip())
                continue
            changed += 1
        for dst in have.keys() - wanted.keys():
            rc, _, err = await self.run("ip", "route", "del", dst, "proto", PROTO)
            if rc == 0:
                removed += 1
        return changed, removed

    async def sync_masquerade(self, cluster_cidr: str) -> None:
        """Masquerade pod traffic that leaves the cluster's pod CIDR, and nothing else; and
        forward pod traffic where the host's FORWARD policy is DROP (Docker sets it), as
        flannel's FLANNEL-FWD does: appended, so NetworkPolicies (first in FORWARD) still
        decide."""
        batch = "\n".join(
            [
                "*filter",
                f":{FORWARD_CHAIN} - [0:0]",
                f"-A {FORWARD_CHAIN} -s {cluster_cidr} -m comment --comment "
                '"pod traffic" -j ACCEPT',
                f"-A {FORWARD_CHAIN} -d {cluster_cidr} -m comment --comment "
                '"pod traffic" -j ACCEPT',
                "COMMIT",
                "*nat",
                f":{CHAIN} - [0:0]",
                f"-A {CHAIN} -s {cluster_cidr} -d {cluster_cidr} -m comment --comment "
                '"pod to pod: no NAT" -j RETURN',
                f"-A {CHAIN} -s {cluster_cidr} -d 224.0.0.0/4 -j RETURN",
                f"-A {CHAIN} -s {cluster_cidr} -m comment --comment "
                '"pod traffic leaving the cluster" -j MASQUERADE --random-fully',
                "COMMIT",
                "",
            ]
        )
        rc, _, err = await self.run("iptables-restore", "--noflush", stdin=batch.encode())
        if rc != 0:
            raise OSError(f"iptables-restore: {err.strip()}")
        for table, chain, target, how in (
            ("nat", "POSTROUTING", CHAIN, "-I"),
            ("filter", "FORWARD", FORWARD_CHAIN, "-A"),
        ):
            rc, _, _ = await self.run("iptables", "-w", "5", "-t", table, "-C", chain, "-j", target)
            if rc != 0:
                await self.run("iptables", "-w", "5", "-t", table, how, chain, "-j", target)

    async def bridge_ports(self, bridge: str) -> int:
        """How many links (pods' veths) are attached to ``bridge``."""
        rc, out, _ = await self.run("ip", "-o", "link", "show", "master", bridge)
        return len(out.splitlines()) if rc == 0 else 0

    async def delete_link(self, name: str) -> None:
        """Remove a link if it is there."""
        await self.run("ip", "link", "del", name)

    async def cleanup(self) -> None:
        await self.sync_routes({})
        await self.run("iptables", "-w", "5", "-t", "nat", "-D", "POSTROUTING", "-j", CHAIN)
        await self.run("iptables", "-w", "5", "-t", "nat", "-F", CHAIN)
        await self.run("iptables", "-w", "5", "-t", "nat", "-X", CHAIN)
        await self.run("iptables", "-w", "5", "-D", "FORWARD", "-j", FORWARD_CHAIN)
        await self.run("iptables", "-w", "5", "-F", FORWARD_CHAIN)
        await self.run("iptables", "-w", "5", "-X", FORWARD_CHAIN)
