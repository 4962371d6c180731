"""Pod networking through CNI (bridge + host-local + portmap + firewall) with real containerd.

Each pod gets its own IP on a bridge this test creates; the host reaches a pod and pods
reach each other. Traffic stays on that bridge; the bridge and CNI chains are removed.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs, start_containerd

from skiff.cri.client import CriClient, pb
from skiff.kubelet.containerd_setup import (
    RuntimePaths,
    ensure_shared_netns_dir,
    teardown_network,
    write_cni_config,
)

BRIDGE = "skifftest0"
SUBNET = "10.244.250.0/24"
GATEWAY = "10.244.250.1"  # the bridge's own address (isGateway)
HOST_PORT = 30947

pytestmark = needs(*CONTAINERD, "iptables", paths=(CNI_PLUGINS / "bridge",))


@pytest.fixture(scope="module")
async def cri(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[CriClient]:
    base = Path(tmp_path_factory.mktemp("cni"))
    ensure_shared_netns_dir()
    write_cni_config(RuntimePaths(base), SUBNET, bridge=BRIDGE, name="skifftest")
    paths, proc = start_containerd(base)
    try:
        async with CriClient(paths.endpoint) as client:
            yield client
            for sb in await client.list_pod_sandbox():
                await client.stop_pod_sandbox(sb.id)
                await client.remove_pod_sandbox(sb.id)
    finally:
        proc.stop()
        teardown_network(BRIDGE)


async def run_pod(
    cri: CriClient, name: str, logs: Path, command: list[str], host_port: int = 0
) -> tuple[str, str]:
    ports = (
        [pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=host_port)]
        if host_port
        else []
    )
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}"),
        hostname=name,
        log_directory=str(logs / name),
        port_mappings=ports,
    )
    sandbox = await cri.run_pod_sandbox(sandbox_config)
    config = pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="c"),
        image=pb.ImageSpec(image="busybox"),
        command=command,
        log_path="c/0.log",
    )
    container = await cri.create_container(sandbox, config, sandbox_config)
    await cri.start_container(container)
    status = await cri.pod_sandbox_status(sandbox)
    return container, status.status.network.ip


def iptables(table: str) -> str:
    return subprocess.run(
        ["iptables-save", "-t", table], capture_output=True, text=True, check=True
    ).stdout


async def test_pods_get_ips_and_talk(cri: CriClient, tmp_path: Path) -> None:
    serve = ["sh", "-c", "echo hello-$(hostname) > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    _, ip1 = await run_pod(cri, "web", tmp_path, serve, host_port=HOST_PORT)
    c2, ip2 = await run_pod(cri, "client", tmp_path, ["sleep", "3600"])
    assert ip1.startswith("10.244.250.") and ip2.startswith("10.244.250.") and ip1 != ip2

    def fetch(url: str = f"http://{ip1}:8080/index.html") -> str:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()

    body = ""
    for _ in range(30):  # httpd may need a moment to listen
        try:
            body = await asyncio.to_thread(fetch)
            break
        except OSError:
            await asyncio.sleep(0.2)
    assert body.strip() == "hello-web"
    # pod → pod (busybox 1.35's wget -T crashes: bound it with timeout instead)
    result = await cri.exec_sync(
        c2, ["timeout", "5", "wget", "-qO-", f"http://{ip1}:8080/index.html"], timeout=15
    )
    assert result.exit_code == 0 and result.stdout.decode().strip() == "hello-web"
    # portmap: the host port is DNAT'ed to the pod (reached here through the test's bridge).
    nat = iptables("nat")
    assert f"--dport {HOST_PORT} -j DNAT --to-destination {ip1}:8080" in nat, nat
    via_host_port = await asyncio.to_thread(fetch, f"http://{GATEWAY}:{HOST_PORT}/index.html")
    assert via_host_port.strip() == "hello-web"
    # firewall: the pods' traffic is accepted in CNI-FORWARD (Docker's DROP policy aside).
    assert f"-A CNI-FORWARD -d {ip1}/32" in iptables("filter")
    # Removing the pods removes their CNI chains and rules.
    for sb in await cri.list_pod_sandbox():
        await cri.stop_pod_sandbox(sb.id)
        await cri.remove_pod_sandbox(sb.id)
    after = iptables("nat") + iptables("filter")
    assert ip1 not in after and ip2 not in after and f"--dport {HOST_PORT} " not in after


TEARDOWN = """
import sys
from skiff.kubelet.containerd_setup import teardown_network
teardown_network(sys.argv[1])
"""


def test_teardown_removes_only_its_own_network() -> None:
    """Two CNI networks on one host (two clusters, or a cluster and the tests): tearing
    one down leaves the other's rules, chains and the shared firewall chains in place."""
    ns = "skiff-teardown-test"

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", ns, *a], check=True, capture_output=True, text=True
        )

    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        for name, net in (("bra", "10.244.200"), ("brb", "10.244.201")):
            run("ip", "link", "add", name, "type", "bridge")
            run("ip", "addr", "add", f"{net}.1/24", "dev", name)
        rules = "\n".join(
            [
                "*nat",
                ":CNI-aaa - [0:0]",
                ":CNI-bbb - [0:0]",
                '-A POSTROUTING -s 10.244.200.5/32 -m comment --comment "name: \\"a\\"" -j CNI-aaa',
                '-A POSTROUTING -s 10.244.201.5/32 -m comment --comment "name: \\"b\\"" -j CNI-bbb',
                "-A CNI-aaa -d 10.244.200.0/24 -j ACCEPT",
                "-A CNI-bbb -d 10.244.201.0/24 -j ACCEPT",
                "COMMIT",
                "*filter",
                ":CNI-FORWARD - [0:0]",
                ":CNI-ADMIN - [0:0]",
                '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
                "-A CNI-FORWARD -j CNI-ADMIN",
                "-A CNI-FORWARD -s 10.244.200.5/32 -j ACCEPT",
                "-A CNI-FORWARD -s 10.244.201.5/32 -j ACCEPT",
                "COMMIT",
                "",
            ]
        )
        subprocess.run(
            ["ip", "netns", "exec", ns, "iptables-restore", "--noflush"],
            input=rules,
            text=True,
            check=True,
        )
        run(sys.executable, "-c", TEARDOWN, "bra")
        saved = run("iptables-save").stdout
        assert "10.244.200." not in saved and "CNI-aaa" not in saved
        assert "CNI-bbb" in saved and "-A CNI-FORWARD -s 10.244.201.5/32 -j ACCEPT" in saved
        assert "-j CNI-FORWARD" in saved  # still used by the other network
        assert "bra" not in run("ip", "-o", "link").stdout
        run(sys.executable, "-c", TEARDOWN, "brb")
        assert "CNI-" not in run("iptables-save").stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
