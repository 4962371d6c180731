"""NetworkPolicies enforced by skiff-netagent's chains in real iptables: nodes and pods as
network namespaces this test creates (pods on one bridge, and on another node, routed
host-gw). Each node's chains come from the same plan code the agent runs. Layout::

    pod a1 10.244.1.5 ┐
                      ├ brA ─ node a 192.168.81.1 ══ 192.168.81.2 node b ─ brB ─ pod b1 10.244.2.5
    pod a2 10.244.1.6 ┘
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from netns import in_ns, remove, two_nodes
from runtime import needs

from skiff.iptables import IptablesRunner
from skiff.kubelet.containerd_setup import ensure_shared_netns_dir
from skiff.netagent.policy.chains import PolicyTables, render
from skiff.netagent.policy.model import compute

pytestmark = needs("iptables", "iptables-restore", "ip")

NODES = {"skpp-a": ("10.244.1", "192.168.81.1"), "skpp-b": ("10.244.2", "192.168.81.2")}
PODS = {
    "skpp-a1": ("skpp-a", "10.244.1.5", {"app": "web"}),
    "skpp-a2": ("skpp-a", "10.244.1.6", {"app": "client"}),
    "skpp-b1": ("skpp-b", "10.244.2.5", {"app": "other"}),
}
PORTS = (8080, 9090)

SERVER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, peer = s.accept(); c.sendall(f"{peer[0]}\\n".encode()); c.close()
for p in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(p),), daemon=True).start()
threading.Event().wait()
"""

# Connect with a short timeout: a dropped SYN is the answer, not a slow one.
CONNECT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1.0)
    print(c.makefile().readline().strip())
except OSError as e:
    print(f"error {type(e).__name__}")
"""


def reach(src: str, dst: str, port: int = 8080) -> bool:
    ip = PODS[dst][1]
    out = in_ns(src, sys.executable, "-c", CONNECT, ip, str(port)).stdout.strip()
    assert out == PODS[src][1] or out.startswith("error"), out  # no NAT between pods
    return not out.startswith("error")


def _teardown() -> None:
    remove((*NODES, *PODS))


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ensure_shared_netns_dir()
    _teardown()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        pods = {name: (node, ip) for name, (node, ip, _labels) in PODS.items()}
        two_nodes(NODES, pods, tag="skpp", routes=True)
        for pod in PODS:
            servers.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", pod, sys.executable, "-c", SERVER]
                    + [str(p) for p in PORTS]
                )
            )
        yield
    finally:
        for s in servers:
            s.kill()
            s.wait()
        _teardown()


def pods() -> list[dict[str, Any]]:
    return [
        {
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {
                "nodeName": node,
                "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
            },
            "status": {"podIP": ip, "phase": "Running"},
        }
        for name, (node, ip, labels) in PODS.items()
    ]


NAMESPACES = [
    {"metadata": {"name": "default", "labels": {"kubernetes.io/metadata.name": "default"}}}
]
TABLES = {
    node: PolicyTables(IptablesRunner(prefix=["ip", "netns", "exec", node])) for node in NODES
}


async def enforce(*policies: dict[str, Any]) -> None:
    """What each node's agent does at a sync."""
    for node, tables in TABLES.items():
        await tables.sync(render(compute(policies, pods(), NAMESPACES, node)))


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec}


WEB = {"matchLabels": {"app": "web"}}


async def test_default_deny_then_allow_by_label_and_named_port(cluster: None) -> None:
    await enforce()
    assert reach("skpp-a2", "skpp-a1") and reach("skpp-b1", "skpp-a1")

    # Default deny for web: neither its bridge neighbour nor the other node gets in...
    await enforce(policy("deny", {"podSelector": WEB, "policyTypes": ["Ingress"]}))
    assert not reach("skpp-a2", "skpp-a1")
    assert not reach("skpp-b1", "skpp-a1")
    # ...while web still reaches out, and its replies come back (connection tracking).
    assert reach("skpp-a1", "skpp-a2") and reach("skpp-a1", "skpp-b1")

    # Allow clients on the named port "http" (8080): only there, and only clients.
    allow = policy(
        "allow-clients",
        {
            "podSelector": WEB,
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                    "ports": [{"port": "http"}],
                }
            ],
        },
    )
    await enforce(policy("deny", {"podSelector": WEB, "policyTypes": ["Ingress"]}), allow)
    assert reach("skpp-a2", "skpp-a1", 8080)
    assert not reach("skpp-a2", "skpp-a1", 9090)
    assert not reach("skpp-b1", "skpp-a1", 8080)


async def test_egress_with_ip_block_except(cluster: None) -> None:
    egress = policy(
        "egress",
        {
            "podSelector": WEB,
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": "10.244.0.0/16", "except": ["10.244.2.0/24"]}}]}
            ],
        },
    )
    await enforce(egress)
    assert reach("skpp-a1", "skpp-a2")  # inside the block
    assert not reach("skpp-a1", "skpp-b1")  # in its except
    assert reach("skpp-b1", "skpp-a1")  # ingress is not isolated


async def test_policies_removed_and_chains_cleaned_up(cluster: None) -> None:
    await enforce(policy("deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    assert not reach("skpp-a2", "skpp-a1")
    await enforce()
    assert reach("skpp-a2", "skpp-a1") and reach("skpp-a1", "skpp-b1")
    for node, tables in TABLES.items():
        saved = in_ns(node, "iptables-save", "-t", "filter").stdout
        assert "SKIFF-NP-" not in saved and "-j SKIFF-NETPOL" in saved  # only the empty top
        await tables.cleanup()
        assert "SKIFF-" not in in_ns(node, "iptables-save").stdout
