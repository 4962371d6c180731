"""Pods on two nodes reach each other by pod IP, without NAT, through the agent's routes
(host-gw): nodes and pods as network namespaces this test creates, real routes and
iptables in them. Layout::

    pod pa 10.244.1.5 ─ brA ─ node a 192.168.80.1 ══ 192.168.80.2 node b ─ brB ─ pod pb 10.244.2.5
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from netns import connect, in_ns, remove, two_nodes
from runtime import needs

from skiff.kubelet.containerd_setup import ensure_shared_netns_dir
from skiff.netagent.linux import NodeNetwork
from skiff.netagent.routes import plan

pytestmark = needs("iptables", "iptables-restore", "ip")

NODES = {"skpn-a": ("10.244.1", "192.168.80.1"), "skpn-b": ("10.244.2", "192.168.80.2")}
PODS = {"skpn-pa": "skpn-a", "skpn-pb": "skpn-b"}
CLUSTER_CIDR = "10.244.0.0/16"

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, peer = s.accept(); c.sendall(f"{peer[0]}\\n".encode()); c.close()
"""


def _teardown() -> None:
    remove((*NODES, *PODS))


@pytest.fixture(scope="module")
def nodes() -> Iterator[None]:
    ensure_shared_netns_dir()
    _teardown()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        pods = {pod: (node, f"{NODES[node][0]}.5") for pod, node in PODS.items()}
        two_nodes(NODES, pods, tag="skpn")
        servers.append(
            subprocess.Popen(
                ["ip", "netns", "exec", "skpn-pb", sys.executable, "-c", SERVER, "0.0.0.0", "8080"]
            )
        )
        servers.append(
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    "skpn-b",
                    sys.executable,
                    "-c",
                    SERVER,
                    "192.168.80.2",
                    "9090",
                ]
            )
        )
        yield
    finally:
        for s in servers:
            s.kill()
            s.wait()
        _teardown()


def node(name: str, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    net, ip = NODES[name]
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"podCIDR": f"{net}.0/24"},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


async def sync(objects: list[dict[str, Any]]) -> dict[str, Any]:
    plans = {}
    for name in NODES:
        net = NodeNetwork(prefix=["ip", "netns", "exec", name])
        p = plan(objects, name)
        await net.sync_routes(p.routes)
        await net.sync_masquerade(CLUSTER_CIDR)
        plans[name] = p
    return plans


async def until(check: Any, want: Any, tries: int = 50) -> Any:
    import asyncio

    value = None
    for _ in range(tries):
        value = check()
        if value == want:
            return value
        await asyncio.sleep(0.1)
    return value


async def test_pods_on_two_nodes_talk_by_pod_ip_without_nat(nodes: None) -> None:
    # No route yet: the other node's pods are unreachable.
    assert connect("skpn-pa", "10.244.2.5", 8080).startswith("error")
    await sync([node("skpn-a"), node("skpn-b")])
    assert in_ns("skpn-a", "ip", "route", "show", "proto", "77").stdout.split()[:3] == [
        "10.244.2.0/24",
        "via",
        "192.168.80.2",
    ]
    # Pod to pod: the server sees the client pod's own address.
    assert await until(lambda: connect("skpn-pa", "10.244.2.5", 8080), "10.244.1.5") == (
        "10.244.1.5"
    )
    # Leaving the pod network (to node b's own address): masqueraded to node a's.
    assert connect("skpn-pa", "192.168.80.2", 9090) == "192.168.80.1"


async def test_overlapping_node_is_left_out_and_deleted_nodes_lose_their_route(
    nodes: None,
) -> None:
    late = node("skpn-b", "2026-01-02T00:00:00Z")
    late["metadata"]["name"] = "late"
    late["spec"]["podCIDR"] = "10.244.2.128/25"
    late["status"]["addresses"][0]["address"] = "192.168.80.9"
    plans = await sync([node("skpn-a"), node("skpn-b"), late])
    assert plans["skpn-a"].problems == {"late": "pod CIDR 10.244.2.128/25 overlaps node skpn-b's"}
    routes = in_ns("skpn-a", "ip", "route", "show", "proto", "77").stdout
    assert "192.168.80.9" not in routes and "10.244.2.0/24 via 192.168.80.2" in routes
    # Node b is deleted: its route goes; the agent's masquerade and nothing else stays.
    await sync([node("skpn-a")])
    assert in_ns("skpn-a", "ip", "route", "show", "proto", "77").stdout == ""
    assert connect("skpn-pa", "10.244.2.5", 8080).startswith("error")
    for name in NODES:
        await NodeNetwork(prefix=["ip", "netns", "exec", name]).cleanup()
        assert "SKIFF-" not in in_ns(name, "iptables-save").stdout
