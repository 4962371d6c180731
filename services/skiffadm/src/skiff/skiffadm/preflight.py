"""``skiffadm init phase preflight``: kubeadm's pre-flight checks, with its names and words.
A failed check is an error unless its name (or ``all``) is in ``--ignore-preflight-errors``,
where it is printed as a warning; warnings never stop the run."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

CONTROL_PLANE_BINARIES = ("etcd", "nats-server", "containerd", "runc", "iptables",
                          "iptables-restore", "ip", "mount", "nsenter")  # fmt: skip
"""What a control-plane node runs: missing ones are errors (kubeadm's FileExisting-*)."""
OPTIONAL_BINARIES = ("conntrack", "ctr")
"""Used when present (conntrack flushes stale UDP entries): missing ones are warnings."""
IGNORE_HINT = (
    "[preflight] If you know what you are doing, you can make a check non-fatal with "
    "`--ignore-preflight-errors=...`"
)


@dataclass(frozen=True)
class Problem:
    check: str
    message: str
    fatal: bool = True

    def line(self, as_warning: bool = False) -> str:
        kind = "WARNING" if as_warning or not self.fatal else "ERROR"
        return f"\t[{kind} {self.check}]: {self.message}"


@dataclass
class Host:
    """What the checks read of the machine (tests give their own)."""

    euid: Callable[[], int] = os.geteuid
    which: Callable[[str], str | None] = shutil.which
    proc: Path = Path("/proc")


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def _check_name(path: Path) -> str:
    return str(path).replace("/", "-")


MANIFESTS = ("kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml",
             "etcd.yaml", "nats.yaml")  # fmt: skip
PORTS = (6443, 10259, 10257, 10250, 2379, 2380, 4222)
"""The control plane's: apiserver, scheduler, controller manager, kubelet, etcd, NATS."""


def init_checks(
    host: Host, ports: Sequence[int], manifests: Path, etcd_data: Path
) -> list[Problem]:
    """kubeadm init's checks: root, ports, the static pod files, etcd's data folder,
    binaries, forwarding, swap."""
    found: list[Problem] = []
    if host.euid() != 0:
        found.append(Problem("IsPrivilegedUser", "user is not running as root"))
    for port in ports:
        if _port_in_use(port):
            found.append(Problem(f"Port-{port}", f"Port {port} is in use"))
    for name in MANIFESTS:
        file = manifests / name
        if file.exists():
            found.append(Problem(f"FileAvailable-{_check_name(file)}", f"{file} already exists"))
    if etcd_data.is_dir() and any(etcd_data.iterdir()):
        found.append(Problem(f"DirAvailable-{_check_name(etcd_data)}", f"{etcd_data} is not empty"))
    for binary in CONTROL_PLANE_BINARIES:
        if host.which(binary) is None:
            found.append(Problem(f"FileExisting-{binary}", f"{binary} not found in system path"))
    for binary in OPTIONAL_BINARIES:
        if host.which(binary) is None:
            found.append(
                Problem(f"FileExisting-{binary}", f"{binary} not found in system path", False)
            )
    forward = host.proc / "sys/net/ipv4/ip_forward"
    try:
        on = forward.read_text().strip() == "1"
    except OSError:
        on = False
    if not on:
        found.append(
            Problem(
                "FileContent--proc-sys-net-ipv4-ip_forward",
                f"{forward} contents are not set to 1",
            )
        )
    try:
        swaps = (host.proc / "swaps").read_text().splitlines()[1:]
    except OSError:
        swaps = []
    if any(line.strip() for line in swaps):
        found.append(Problem("Swap", "swap is enabled; the kubelet does not account for it", False))
    return found


def report(problems: Sequence[Problem], ignore: Iterable[str]) -> tuple[list[str], bool]:
    """kubeadm's lines for ``problems`` and whether the run may go on."""
    ignored = {i.strip().lower() for i in ignore if i.strip()}

    def ignored_(p: Problem) -> bool:
        return "all" in ignored or p.check.lower() in ignored

    lines = ["[preflight] Running pre-flight checks"]
    lines += [p.line(as_warning=True) for p in problems if not p.fatal or ignored_(p)]
    errors = [p for p in problems if p.fatal and not ignored_(p)]
    if errors:
        lines.append("[preflight] Some fatal errors occurred:")
        lines += [p.line() for p in errors]
        lines.append(IGNORE_HINT)
    return lines, not errors
