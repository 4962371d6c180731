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


def two_nodes(
    nodes: dict[str, tuple[str, str]],
    pods: dict[str, tuple[str, str]],
    *,
    tag: str,
    routes: bool = False,
) -> None:
    """Two nodes as namespaces on one veth "LAN", each with a pod bridge at ``<net>.1/24``,
    and pods (namespaces) on them.

    ``nodes``: name → (pod network prefix like ``10.244.1``, node address); ``pods``: name →
    (node, address). Links are named after ``tag`` (a few letters). ``routes``: each node
    routes the other's pod network via it (otherwise the agent under test does).
    """
    (a, (net_a, ip_a)), (b, (net_b, ip_b)) = nodes.items()
    for ns in (*nodes, *pods):
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    lan, bridge = f"{tag}lan", f"{tag}br"
    sh("ip", "link", "add", lan, "netns", a, "type", "veth", "peer", lan, "netns", b)
    for node, net, ip, other in ((a, net_a, ip_a, (net_b, ip_b)), (b, net_b, ip_b, (net_a, ip_a))):
        in_ns(node, "ip", "addr", "add", f"{ip}/24", "dev", lan)
        in_ns(node, "ip", "link", "set", lan, "up")
        in_ns(node, "ip", "link", "add", bridge, "type", "bridge")
        in_ns(node, "ip", "addr", "add", f"{net}.1/24", "dev", bridge)
        in_ns(node, "ip", "link", "set", bridge, "up")
        in_ns(node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        in_ns(node, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
        if routes:
            in_ns(node, "ip", "route", "add", f"{other[0]}.0/24", "via", other[1])
    for pod, (node, ip) in pods.items():
        veth = f"v{tag}{pod[-2:]}"
        sh("ip", "link", "add", veth, "netns", node, "type", "veth", "peer", "eth0", "netns", pod)
        in_ns(node, "ip", "link", "set", veth, "master", bridge, "up")
        in_ns(pod, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        in_ns(pod, "ip", "link", "set", "eth0", "up")
        in_ns(pod, "ip", "route", "add", "default", "via", f"{ip.rsplit('.', 1)[0]}.1")
