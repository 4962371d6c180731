"""Network namespaces for the networking tests: running commands in them, and a TCP
client that prints the first line a server sends (or why it could not connect)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable

CONNECT = """
import socket, sys, time
t0 = time.monotonic()
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.makefile().readline().strip())
except OSError as e:
    print(f"error {type(e).__name__} {time.monotonic() - t0:.2f}")
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


def connect(ns: str, host: str, port: int) -> str:
    """From ``ns``: the server's first line, or ``error <exception> <seconds>``."""
    return in_ns(ns, sys.executable, "-c", CONNECT, host, str(port)).stdout.strip()


def remove(namespaces: Iterable[str]) -> None:
    """Delete these namespaces (their links, routes and rules go with them)."""
    for ns in namespaces:
        sh("ip", "netns", "del", ns, check=False)
