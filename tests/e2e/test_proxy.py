"""The proxy's rules in a real kernel: a node, two pods and an outside client as network
namespaces this test creates (a bridge for the pods, a veth to the client), the proxier
writing the node namespace's iptables, and real TCP connections through them.

Layout::

    skpx-client 192.168.77.2 ── 192.168.77.1 skpx-node 10.244.0.1 (bridge) ── pods .5, .6

Nothing leaves the namespaces; removing them removes their rules, routes and links.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from netns import CONNECT, connect, in_ns, remove, sh
from runtime import needs

from cluster import VENV_BIN, Cluster
from skiff.client.rest import ApiClient
from skiff.iptables import IptablesRunner
from skiff.kubelet.containerd_setup import ensure_shared_netns_dir
from skiff.proxy.iptables.proxier import IptablesProxier

pytestmark = needs("iptables", "iptables-restore", "ip", "conntrack")

NODE, CLIENT = "skpx-node", "skpx-client"
PODS = {"skpx-pod1": "10.244.0.5", "skpx-pod2": "10.244.0.6"}
NODE_IP, CLIENT_IP = "192.168.77.1", "192.168.77.2"
CLUSTER_CIDR = "10.244.0.0/16"

# Each pod answers a connection with its name and the address it saw the client at.
SERVER = """
import socket, sys, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
def udp():
    while True:
        _, peer = u.recvfrom(512)
        u.sendto(sys.argv[1].encode(), peer)
threading.Thread(target=udp, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(64)
while True:
    c, peer = s.accept()
    c.sendall(f"{sys.argv[1]} {peer[0]}\\n".encode()); c.close()
"""


def _teardown() -> None:
    remove((NODE, CLIENT, *PODS))


@pytest.fixture(scope="module")
def network() -> Iterator[list[subprocess.Popen[bytes]]]:
    ensure_shared_netns_dir()
    _teardown()
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for ns in (NODE, CLIENT, *PODS):
            sh("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
        in_ns(NODE, "ip", "link", "add", "skpxbr0", "type", "bridge")
        in_ns(NODE, "ip", "addr", "add", "10.244.0.1/24", "dev", "skpxbr0")
        in_ns(NODE, "ip", "link", "set", "skpxbr0", "up")
        for i, (ns, ip) in enumerate(PODS.items()):
            sh(
                "ip",
                "link",
                "add",
                f"skpxv{i}",
                "netns",
                NODE,
                "type",
                "veth",
                "peer",
                "eth0",
                "netns",
                ns,
            )
            in_ns(NODE, "ip", "link", "set", f"skpxv{i}", "master", "skpxbr0", "up")
            in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
            in_ns(ns, "ip", "link", "set", "eth0", "up")
            in_ns(ns, "ip", "route", "add", "default", "via", "10.244.0.1")
            servers.append(
                subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, ns])
            )
        sh(
            "ip",
            "link",
            "add",
            "skpxc0",
            "netns",
            NODE,
            "type",
            "veth",
            "peer",
            "eth0",
            "netns",
            CLIENT,
        )
        in_ns(NODE, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "skpxc0")
        in_ns(NODE, "ip", "link", "set", "skpxc0", "up")
        in_ns(CLIENT, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
        in_ns(CLIENT, "ip", "link", "set", "eth0", "up")
        # The client reaches Services through the node, as a router would send it.
        in_ns(CLIENT, "ip", "route", "add", "10.96.0.0/12", "via", NODE_IP)
        # The node routes service addresses somewhere (OUTPUT DNAT needs a route).
        in_ns(NODE, "ip", "route", "add", "default", "via", CLIENT_IP)
        for name in ("net.ipv4.ip_forward", "net.ipv4.conf.all.route_localnet"):
            in_ns(NODE, "sysctl", "-q", "-w", f"{name}=1")
        yield servers
    finally:
        for s in servers:
            s.kill()
            s.wait()
        _teardown()


@pytest.fixture
async def proxier(network: Any) -> AsyncIterator[IptablesProxier]:
    p = IptablesProxier(
        IptablesRunner(prefix=["ip", "netns", "exec", NODE]),
        node_name="node-a",
        cluster_cidr=CLUSTER_CIDR,
    )
    yield p
    await p.cleanup()
    save = in_ns(NODE, "iptables-save").stdout
    assert "KUBE-" not in save, save


def service(name: str, ip: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        | spec,
    }


def endpoints(name: str, *ips: str, node: str = "node-a") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{name}-x",
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": name},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": [ip], "nodeName": node, "conditions": {"ready": True}} for ip in ips
        ],
    }


async def wait_servers() -> None:
    for _ in range(100):
        if all(connect(NODE, ip, 8080).startswith("skpx-") for ip in PODS.values()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("pod servers did not start")


async def test_cluster_ip_node_port_and_refusal(proxier: IptablesProxier) -> None:
    await wait_servers()
    proxier.on_service(
        service(
            "web",
            "10.96.0.50",
            type="NodePort",
            ports=[{"name": "http", "port": 80, "nodePort": 30080}],
        )
    )
    proxier.on_slice(endpoints("web", *PODS.values()))
    proxier.on_service(service("db", "10.96.0.51"))
    await proxier.sync()

    # Cluster IP from the node, spread over both pods.
    seen = {connect(NODE, "10.96.0.50", 80).split()[0] for _ in range(30)}
    assert seen == set(PODS), seen
    # From outside the pod network: NodePort on the node's address, and on 127.0.0.1;
    # both masqueraded (the pod answers the node, which un-NATs the reply).
    name, peer = connect(CLIENT, NODE_IP, 30080).split()
    assert name in PODS and peer == "10.244.0.1"
    name, peer = connect(NODE, "127.0.0.1", 30080).split()
    assert name in PODS and peer == "10.244.0.1"
    # The cluster IP from the client is masqueraded too (its source is outside the CIDR).
    assert connect(CLIENT, "10.96.0.50", 80).split()[1] == "10.244.0.1"
    # A Service without endpoints refuses at once rather than timing out.
    out = connect(NODE, "10.96.0.51", 80)
    assert out.startswith("error ConnectionRefusedError"), out
    assert float(out.split()[-1]) < 1.0

    # Scale to zero and back: refused at once, then served again.
    proxier.on_slice(endpoints("web"))
    await proxier.sync()
    assert connect(NODE, "10.96.0.50", 80).startswith("error ConnectionRefusedError")
    assert connect(CLIENT, NODE_IP, 30080).startswith("error ConnectionRefusedError")
    proxier.on_slice(endpoints("web", PODS["skpx-pod2"]))
    result = await proxier.sync()
    assert result.chains_written >= 2 and not result.full
    assert connect(NODE, "10.96.0.50", 80).split()[0] == "skpx-pod2"


async def test_load_balancer_address_on_the_node(proxier: IptablesProxier) -> None:
    """ServiceLB publishes a LoadBalancer Service on the nodes' addresses; the proxy serves
    its port there (masqueraded, as any external destination)."""
    await wait_servers()
    lb = service(
        "lb",
        "10.96.0.90",
        type="LoadBalancer",
        ports=[{"name": "http", "port": 8443, "nodePort": 30443}],
    )
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": NODE_IP, "ipMode": "VIP"}]}}
    proxier.on_service(lb)
    proxier.on_slice(endpoints("lb", PODS["skpx-pod2"]))
    await proxier.sync()
    name, peer = connect(CLIENT, NODE_IP, 8443).split()
    assert (name, peer) == ("skpx-pod2", "10.244.0.1")


async def test_session_affinity_sticks(proxier: IptablesProxier) -> None:
    await wait_servers()
    proxier.on_service(
        service(
            "sticky",
            "10.96.0.60",
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}},
        )
    )
    proxier.on_slice(endpoints("sticky", *PODS.values()))
    await proxier.sync()
    seen = {connect(CLIENT, "10.96.0.60", 80).split()[0] for _ in range(15)}
    assert len(seen) == 1, seen


async def test_external_traffic_policy_local_keeps_the_client_address(
    proxier: IptablesProxier,
) -> None:
    await wait_servers()
    local = service(
        "local",
        "10.96.0.70",
        type="NodePort",
        externalTrafficPolicy="Local",
        ports=[{"name": "http", "port": 80, "nodePort": 30090}],
    )
    proxier.on_service(local)
    slice_ = endpoints("local", PODS["skpx-pod1"])
    slice_["endpoints"].append(
        {"addresses": [PODS["skpx-pod2"]], "nodeName": "node-b", "conditions": {"ready": True}}
    )
    proxier.on_slice(slice_)
    await proxier.sync()
    for _ in range(10):
        name, peer = connect(CLIENT, NODE_IP, 30090).split()
        assert (name, peer) == ("skpx-pod1", CLIENT_IP)  # only the local endpoint, unmasked
    # Cluster traffic still reaches both endpoints.
    seen = {connect(NODE, "10.96.0.70", 80).split()[0] for _ in range(30)}
    assert seen == set(PODS)


async def test_rules_stay_when_the_proxy_goes_and_are_adopted(proxier: IptablesProxier) -> None:
    await wait_servers()
    proxier.on_service(service("web", "10.96.0.50"))
    proxier.on_slice(endpoints("web", *PODS.values()))
    await proxier.sync()
    before = in_ns(NODE, "iptables-save", "-t", "nat").stdout
    # A new proxier (a restarted process) starts with a full sync over the same rules:
    # traffic flows throughout, and the result is the same table.
    fresh = IptablesProxier(proxier.runner, node_name="node-a", cluster_cidr=CLUSTER_CIDR)
    fresh.on_service(service("web", "10.96.0.50"))
    fresh.on_slice(endpoints("web", *PODS.values()))
    assert connect(NODE, "10.96.0.50", 80).startswith("skpx-")
    first = await fresh.sync()
    assert first.full and first.chains_deleted == 0
    after = in_ns(NODE, "iptables-save", "-t", "nat").stdout
    strip = lambda text: [x for x in text.splitlines() if not x.startswith("#")]  # noqa: E731
    assert strip(after) == strip(before)
    # Jumps from the built-in chains are not duplicated.
    assert after.count("-A PREROUTING -m comment --comment") == 1


UDP_ASK = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[3]))); s.settimeout(2)
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
try:
    print(s.recv(512).decode())
except OSError as e:
    print(f"error {type(e).__name__}")
"""


def udp_ask(ns: str, host: str, port: int, sport: int) -> str:
    """One datagram from a fixed source port, so that every ask is the same UDP "flow"."""
    args = (host, str(port), str(sport))
    return in_ns(ns, sys.executable, "-c", UDP_ASK, *args).stdout.strip()


async def test_udp_streams_follow_their_service_s_endpoints(proxier: IptablesProxier) -> None:
    """A UDP client that keeps its source port keeps its conntrack entry, and with it the
    endpoint it was first sent to; when that endpoint leaves the Service, the proxy
    deletes the entry (at the next sync, whatever triggered it) and the stream moves."""
    await wait_servers()
    udp = service("dns", "10.96.0.80", ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])
    proxier.on_service(udp)
    slice_ = endpoints("dns", PODS["skpx-pod1"])
    slice_["ports"] = [{"name": "dns", "port": 5353, "protocol": "UDP"}]
    proxier.on_slice(slice_)
    await proxier.sync()
    for _ in range(3):
        assert udp_ask(NODE, "10.96.0.80", 53, 45000) == "skpx-pod1"
    # pod1 still answers, but is no longer the Service's: the stream must move to pod2.
    slice_["endpoints"][0]["addresses"] = [PODS["skpx-pod2"]]
    proxier.on_slice(slice_)
    result = await proxier.sync()
    assert result.conntrack_deleted >= 1
    assert udp_ask(NODE, "10.96.0.80", 53, 45000) == "skpx-pod2"
    entries = in_ns(NODE, "conntrack", "-L", "-p", "udp").stdout
    assert PODS["skpx-pod1"] not in entries


# -- the skiff-proxy process against the real apiserver -------------------------------------

HOST_END, NS_END = "192.168.76.1", "192.168.76.2"


@contextlib.asynccontextmanager
async def apiserver_door(cluster: Cluster) -> AsyncIterator[str]:
    """A veth from the host into the node namespace and a TCP relay on its host end to
    the cluster's apiserver (which listens on loopback only); yields the URL to use."""
    sh("ip", "link", "del", "skpxh0", check=False)
    sh("ip", "link", "add", "skpxh0", "type", "veth", "peer", "skpxh1", "netns", NODE)
    try:
        sh("ip", "addr", "add", f"{HOST_END}/30", "dev", "skpxh0")
        sh("ip", "link", "set", "skpxh0", "up")
        in_ns(NODE, "ip", "addr", "add", f"{NS_END}/30", "dev", "skpxh1")
        in_ns(NODE, "ip", "link", "set", "skpxh1", "up")
        target = int(cluster.url.rsplit(":", 1)[1])

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            w.close()

        async def relay(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            ur, uw = await asyncio.open_connection("127.0.0.1", target)
            await asyncio.gather(pipe(r, uw), pipe(ur, w))

        server = await asyncio.start_server(relay, HOST_END, 0)
        try:
            yield f"http://{HOST_END}:{server.sockets[0].getsockname()[1]}"
        finally:
            server.close()
    finally:
        sh("ip", "link", "del", "skpxh0", check=False)


async def aconnect(ns: str, host: str, port: int) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        ns,
        sys.executable,
        "-c",
        CONNECT,
        host,
        str(port),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    return out.decode().strip()


async def http_get_in_ns(ns: str, url: str) -> tuple[int, str]:
    code = (
        "import sys, urllib.request, urllib.error\n"
        "try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=3); print(r.status); "
        "print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n    print(e.code); print(e.read().decode())\n"
        "except OSError as e:\n    print(0); print(e)\n"
    )
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        ns,
        sys.executable,
        "-c",
        code,
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    status, _, body = out.decode().partition("\n")
    return int(status), body


async def eventually(fn: Any, check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fn()
        if check(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"last value: {value!r}")
        await asyncio.sleep(0.1)


def start_proxy(url: str, log: Path) -> subprocess.Popen[bytes]:
    args = [
        "ip",
        "netns",
        "exec",
        NODE,
        str(VENV_BIN / "skiff-proxy"),
        "--server",
        url,
        "--hostname-override",
        "node-a",
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--min-sync-period",
        "0.1",
        "--sync-period",
        "5",
        "--healthz-bind-address",
        "127.0.0.1:10256",
    ]
    with log.open("ab") as f:
        return subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT)


async def test_the_proxy_process_follows_the_api(
    network: Any, cluster: Cluster, tmp_path: Path
) -> None:
    await wait_servers()
    async with apiserver_door(cluster) as url, ApiClient(cluster.url) as api:
        svc = await api.create(
            "services",
            {"metadata": {"name": "px"}, "spec": {"ports": [{"name": "http", "port": 80}]}},
            "default",
        )
        ip = svc["spec"]["clusterIP"]
        slice_ = endpoints("px", *PODS.values())
        slice_ |= {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}
        es = await api.create("endpointslices", slice_, "default")
        proxy = start_proxy(url, tmp_path / "proxy.log")
        try:
            await eventually(lambda: aconnect(NODE, ip, 80), lambda out: out.startswith("skpx-"))
            _, body = await eventually(
                lambda: http_get_in_ns(NODE, "http://127.0.0.1:10256/healthz"),
                lambda r: r[0] == 200,
            )
            assert "lastUpdated" in body
            _, metrics = await http_get_in_ns(NODE, "http://127.0.0.1:10256/metrics")
            assert "sync_proxy_rules_duration_seconds_count" in metrics
            assert "network_programming_duration_seconds_count" in metrics

            # Endpoints go: refused at once. They come back: served again.
            es["endpoints"] = []
            es = await api.update("endpointslices", es, "default")
            await eventually(lambda: aconnect(NODE, ip, 80), lambda out: "ConnectionRefused" in out)
            es["endpoints"] = endpoints("px", PODS["skpx-pod1"])["endpoints"]
            es = await api.update("endpointslices", es, "default")
            await eventually(
                lambda: aconnect(NODE, ip, 80), lambda out: out.startswith("skpx-pod1")
            )

            # kill -9: the rules stay and traffic flows; a new process adopts them.
            proxy.kill()
            proxy.wait()
            assert (await aconnect(NODE, ip, 80)).startswith("skpx-pod1")
            proxy = start_proxy(url, tmp_path / "proxy.log")
            await eventually(
                lambda: http_get_in_ns(NODE, "http://127.0.0.1:10256/healthz"),
                lambda r: r[0] == 200,
            )
            assert (await aconnect(NODE, ip, 80)).startswith("skpx-pod1")
            nat = in_ns(NODE, "iptables-save", "-t", "nat").stdout
            assert nat.count('-A PREROUTING -m comment --comment "kubernetes service') == 1

            # externalTrafficPolicy Local: the health check node port (assigned by the
            # apiserver) says whether this node has a local endpoint.
            lb = await api.create(
                "services",
                {
                    "metadata": {"name": "lbx"},
                    "spec": {
                        "type": "LoadBalancer",
                        "externalTrafficPolicy": "Local",
                        "ports": [{"name": "http", "port": 80}],
                    },
                },
                "default",
            )
            hc = lb["spec"]["healthCheckNodePort"]
            lbs = endpoints("lbx", PODS["skpx-pod1"])
            lbs |= {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice"}
            lbs = await api.create("endpointslices", lbs, "default")
            _, body = await eventually(
                lambda: http_get_in_ns(NODE, f"http://127.0.0.1:{hc}/"), lambda r: r[0] == 200
            )
            assert json.loads(body) == {
                "service": {"namespace": "default", "name": "lbx"},
                "localEndpoints": 1,
                "serviceProxyHealthy": True,
            }
            lbs["endpoints"][0]["nodeName"] = "node-b"
            await api.update("endpointslices", lbs, "default")
            await eventually(
                lambda: http_get_in_ns(NODE, f"http://127.0.0.1:{hc}/"), lambda r: r[0] == 503
            )
            await api.delete("services", "lbx", "default")
            await api.delete("endpointslices", lbs["metadata"]["name"], "default")

            # The Service goes: its chains go with it.
            await api.delete("services", "px", "default")
            await eventually(
                lambda: aconnect(NODE, ip, 80), lambda out: not out.startswith("skpx-")
            )
            assert "default/px" not in in_ns(NODE, "iptables-save", "-t", "nat").stdout
        finally:
            proxy.terminate()
            proxy.wait()
            with contextlib.suppress(Exception):
                await api.delete("services", "px", "default")
            with contextlib.suppress(Exception):
                await api.delete("endpointslices", es["metadata"]["name"], "default")
        # --cleanup removes every rule the proxy wrote.
        in_ns(NODE, str(VENV_BIN / "skiff-proxy"), "--cleanup", "--server", url)
        assert "KUBE-" not in in_ns(NODE, "iptables-save").stdout
