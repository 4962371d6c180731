"""Running the iptables tools: ``iptables-restore --noflush`` for a whole batch,
``iptables-save`` to see what is there, and ``iptables -C``/``-I`` for the jumps from the
built-in chains (which skiff-proxy and skiff-netagent share with others, so they never
rewrite them whole).

``prefix`` runs every command through another one (``ip netns exec <ns>`` in tests).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from skiff import command
from skiff.log import get_logger

log = get_logger(__name__)

_LINE = re.compile(r"line:? (\d+)")


class RestoreError(Exception):
    """``iptables-restore`` refused a batch (nothing of it was applied)."""

    def __init__(self, message: str, line: str = "") -> None:
        super().__init__(message)
        self.line = line
        """The offending input line, when the tool named one."""


@dataclass
class IptablesRunner:
    prefix: Sequence[str] = ()
    iptables: str = "iptables"
    restore_cmd: str = "iptables-restore"
    save_cmd: str = "iptables-save"

    async def run(self, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run a command (after ``prefix``): its exit status, stdout and stderr."""
        return await command.run(*self.prefix, *args, stdin=stdin)

    async def restore(self, data: bytes) -> None:
        """Apply a batch atomically (``--noflush``: chains not named are left alone)."""
        rc, _, err = await self.run(self.restore_cmd, "--noflush", stdin=data)
        if rc != 0:
            message = err.decode(errors="replace").strip()
            line = ""
            if m := _LINE.search(message):
                lines = data.decode(errors="replace").split("\n")
                n = int(m.group(1))
                if 0 < n <= len(lines):
                    line = lines[n - 1]
            raise RestoreError(message or f"iptables-restore exited with {rc}", line)

    async def save(self, table: str) -> str:
        """``iptables-save -t <table>``."""
        rc, out, err = await self.run(self.save_cmd, "-t", table)
        if rc != 0:
            raise RestoreError(err.decode(errors="replace").strip())
        return out.decode(errors="replace")

    async def ensure_rule(self, table: str, chain: str, rule: str, *, first: bool = True) -> bool:
        """Make sure ``rule`` is in a built-in chain; True when it had to be added."""
        args = _split(rule)
        rc, _, _ = await self.run(self.iptables, "-w", "5", "-t", table, "-C", chain, *args)
        if rc == 0:
            return False
        verb = ("-I", chain, "1") if first else ("-A", chain)
        rc, _, err = await self.run(self.iptables, "-w", "5", "-t", table, *verb, *args)
        if rc != 0:
            raise RestoreError(f"adding to {table}/{chain}: {err.decode(errors='replace').strip()}")
        return True

    async def list_rules(self, table: str, chain: str) -> list[str]:
        """The rules of one chain as ``iptables -S`` prints them, without ``-A CHAIN``."""
        rc, out, err = await self.run(self.iptables, "-w", "5", "-t", table, "-S", chain)
        if rc != 0:
            raise RestoreError(f"listing {table}/{chain}: {err.decode(errors='replace').strip()}")
        prefix = f"-A {chain} "
        return [ln[len(prefix) :] for ln in out.decode().splitlines() if ln.startswith(prefix)]

    async def sysctl(self, name: str, value: str) -> None:
        """Set a kernel parameter (of the namespace the commands run in)."""
        rc, _, err = await self.run("sysctl", "-q", "-w", f"{name}={value}")
        if rc != 0:
            log.warning("sysctl failed", name=name, error=err.decode(errors="replace").strip())

    async def modprobe(self, module: str) -> None:
        """Load a kernel module (best effort: it may be built in, or loaded by the host)."""
        rc, _, err = await self.run("modprobe", module)
        if rc != 0:
            log.info("modprobe failed", module=module, error=err.decode(errors="replace").strip())

    async def keep_first(
        self, table: str, chain: str, mine: Sequence[str], *, behind: Sequence[str] = ()
    ) -> bool:
        """Keep ``mine`` at the top of a built-in chain, in order; True when they moved.

        Others insert at the top too (the CNI firewall plugin puts its accepting chain
        first in FORWARD when a node's first pod starts), so the order is checked, and
        ours moved back up when something got in front. Rules jumping to a chain named in
        ``behind`` may stay ahead of ours: the components agree on one order instead of
        taking turns at the top.
        """
        current = await self.list_rules(table, chain)
        skip = 0
        while skip < len(current) and _target(current[skip]) in behind:
            skip += 1
        if current[skip : skip + len(mine)] == list(mine):
            return False
        for rule in mine:
            await self.delete_rule(table, chain, rule)
        position = str(skip + 1)
        for rule in reversed(mine):
            args = _split(rule)
            rc, _, err = await self.run(
                self.iptables, "-w", "5", "-t", table, "-I", chain, position, *args
            )
            if rc != 0:
                message = err.decode(errors="replace").strip()
                raise RestoreError(f"adding to {table}/{chain}: {message}")
        return any(rule in current for rule in mine)

    async def delete_rule(self, table: str, chain: str, rule: str) -> None:
        """Remove every copy of ``rule`` from a chain (absent: nothing to do)."""
        args = _split(rule)
        while True:
            rc, _, _ = await self.run(self.iptables, "-w", "5", "-t", table, "-D", chain, *args)
            if rc != 0:
                return


def _split(rule: str) -> list[str]:
    """Split a rule as a shell would (our rules quote only comments, with double quotes)."""
    out: list[str] = []
    for i, part in enumerate(rule.split('"')):
        if i % 2:
            out.append(part)
        else:
            out.extend(part.split())
    return out


def _target(rule: str) -> str:
    """The chain or target a rule jumps to (``-j X``), or ``""``."""
    parts = rule.split()
    return parts[parts.index("-j") + 1] if "-j" in parts[:-1] else ""


def chains_in(save_output: str) -> list[str]:
    """The chain names an ``iptables-save`` of one table declares."""
    return [line[1:].split(" ", 1)[0] for line in save_output.splitlines() if line.startswith(":")]
