"""Service cluster IPs and node ports, assigned by the apiservers (real etcd, NATS, kubectl).

Two apiservers share a deliberately small range (a /26: 61 usable addresses) so that
concurrent creates through both collide for real; every assignment must still be unique,
and every allocation key in etcd must belong to exactly one Service.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import subprocess
import time
from collections.abc import Iterator

import orjson
import pytest

from cluster import Cluster, start_cluster
from skiff.apiserver.storage.etcd import EtcdBackend
from skiff.client.rest import ApiClient

RANGE = "10.100.0.0/26"
PORTS = "30000-30099"
NS = "svc"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    env = {"SKIFF_SERVICE_CLUSTER_IP_RANGE": RANGE, "SKIFF_SERVICE_NODE_PORT_RANGE": PORTS}
    c = start_cluster(tmp_path_factory.mktemp("services"), apiservers=2, env=env)
    try:
        kubectl(c, "create", "namespace", NS)
        yield c
    finally:
        c.stop()


def kubectl(c: Cluster, *args: str, input: str | None = None, check: bool = True):  # type: ignore[no-untyped-def]
    return subprocess.run(
        ["kubectl", "--server", c.url, "-n", NS, *args],
        input=input,
        capture_output=True,
        text=True,
        check=check,
    )


def service(c: Cluster, name: str) -> dict:
    return json.loads(kubectl(c, "get", "service", name, "-o", "json").stdout)


def manifest(name: str, **spec: object) -> str:
    body = {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name}, **spec}
    return json.dumps(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": body}
    )


def refused(c: Cluster, name: str, **spec: object) -> str:
    """Apply a Service that must be refused; kubectl's error output."""
    res = kubectl(c, "apply", "-f", "-", input=manifest(name, **spec), check=False)
    assert res.returncode != 0, res
    return res.stderr


async def allocation_keys(c: Cluster) -> dict[str, dict]:
    async with EtcdBackend(c.etcd_endpoint) as etcd:
        kvs, _ = await etcd.range_all("/skiff/allocations/")
    return {kv.key: orjson.loads(kv.value) for kv in kvs}


def test_kubernetes_service_on_the_first_address(cluster: Cluster) -> None:
    svc = json.loads(
        kubectl(cluster, "get", "service", "kubernetes", "-n", "default", "-o", "json").stdout
    )
    assert svc["spec"]["clusterIP"] == "10.100.0.1"
    assert svc["spec"]["ports"][0]["name"] == "https" and svc["spec"]["ports"][0]["port"] == 443
    # A restarted apiserver finds it there and leaves it alone.
    cluster.apiservers[1].stop()
    cluster.start_apiserver(
        1, env={"SKIFF_SERVICE_CLUSTER_IP_RANGE": RANGE, "SKIFF_SERVICE_NODE_PORT_RANGE": PORTS}
    )
    again = json.loads(
        kubectl(cluster, "get", "service", "kubernetes", "-n", "default", "-o", "json").stdout
    )
    assert again["metadata"]["uid"] == svc["metadata"]["uid"]


def test_cluster_ip_and_node_port_assigned(cluster: Cluster) -> None:
    kubectl(cluster, "create", "service", "clusterip", "web", "--tcp=80:8080")
    spec = service(cluster, "web")["spec"]
    ip = ipaddress.ip_address(spec["clusterIP"])
    assert ip in ipaddress.ip_network(RANGE)
    assert spec["clusterIPs"] == [spec["clusterIP"]] and spec["ipFamilies"] == ["IPv4"]
    assert str(ip) != "10.100.0.1"  # the kubernetes Service's, never handed out
    table = kubectl(cluster, "get", "service", "web").stdout
    assert spec["clusterIP"] in table

    kubectl(cluster, "create", "service", "nodeport", "np", "--tcp=80:8080")
    port = service(cluster, "np")["spec"]["ports"][0]["nodePort"]
    assert 30016 <= port <= 30099  # the upper band first; the lower is for requested ports
    assert f"80:{port}/TCP" in kubectl(cluster, "get", "service", "np").stdout


def test_requested_values_once_each(cluster: Cluster) -> None:
    kubectl(cluster, "apply", "-f", "-", input=manifest("dns", clusterIP="10.100.0.10"))
    assert service(cluster, "dns")["spec"]["clusterIP"] == "10.100.0.10"
    assert (
        'spec.clusterIPs: Invalid value: []string{"10.100.0.10"}: failed to allocate IP '
        "10.100.0.10: provided IP is already allocated"
        in refused(cluster, "dns2", clusterIP="10.100.0.10")
    )
    assert (
        "the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is "
        f"{RANGE}" in refused(cluster, "far", clusterIP="10.0.0.5")
    )

    np = manifest("fixed", type="NodePort", ports=[{"port": 80, "nodePort": 30005}])
    kubectl(cluster, "apply", "-f", "-", input=np)
    assert (
        "spec.ports[0].nodePort: Invalid value: 30005: provided port is already allocated"
        in refused(cluster, "fixed2", type="NodePort", ports=[{"port": 80, "nodePort": 30005}])
    )
    assert (
        "provided port is not in the valid range. The range of valid ports is "
        f"{PORTS}" in refused(cluster, "low", type="NodePort", ports=[{"port": 80, "nodePort": 80}])
    )
    assert (
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        in refused(cluster, "cip", ports=[{"port": 80, "nodePort": 30050}])
    )

    # Deleting the holder frees the value for the next one.
    kubectl(cluster, "delete", "service", "dns")
    kubectl(cluster, "apply", "-f", "-", input=manifest("dns2", clusterIP="10.100.0.10"))
    assert service(cluster, "dns2")["spec"]["clusterIP"] == "10.100.0.10"


def test_updates_keep_change_and_release(cluster: Cluster) -> None:
    kubectl(cluster, "apply", "-f", "-", input=manifest("upd", type="NodePort"))
    before = service(cluster, "upd")["spec"]
    # Re-applying without the assigned values keeps them (no new IP, no new port).
    kubectl(
        cluster,
        "apply",
        "-f",
        "-",
        input=manifest("upd", type="NodePort", ports=[{"port": 80, "targetPort": 9090}]),
    )
    after = service(cluster, "upd")["spec"]
    assert after["clusterIP"] == before["clusterIP"]
    assert after["ports"][0]["nodePort"] == before["ports"][0]["nodePort"]
    assert after["ports"][0]["targetPort"] == 9090
    moved = kubectl(
        cluster,
        "patch",
        "service",
        "upd",
        "-p",
        '{"spec":{"clusterIP":"10.100.0.12","clusterIPs":["10.100.0.12"]}}',
        check=False,
    )
    assert moved.returncode != 0 and "may not change once set" in moved.stderr

    # NodePort → ClusterIP gives the node port back; → ExternalName gives the IP back.
    node_port = before["ports"][0]["nodePort"]
    kubectl(cluster, "patch", "service", "upd", "-p", '{"spec":{"type":"ClusterIP"}}')
    assert "nodePort" not in service(cluster, "upd")["spec"]["ports"][0]
    kubectl(
        cluster,
        "apply",
        "-f",
        "-",
        input=manifest("reuse", type="NodePort", ports=[{"port": 80, "nodePort": node_port}]),
    )
    kubectl(
        cluster,
        "patch",
        "service",
        "upd",
        "-p",
        '{"spec":{"type":"ExternalName","externalName":"example.test"}}',
    )
    spec = service(cluster, "upd")["spec"]
    assert "clusterIP" not in spec and "clusterIPs" not in spec
    keys = asyncio.run(allocation_keys(cluster))
    assert f"/skiff/allocations/serviceips/{before['clusterIP']}" not in keys
    assert keys[f"/skiff/allocations/nodeports/{node_port}"]["name"] == "reuse"


def test_headless_and_external_name_hold_nothing(cluster: Cluster) -> None:
    kubectl(cluster, "apply", "-f", "-", input=manifest("headless", clusterIP="None"))
    assert service(cluster, "headless")["spec"]["clusterIP"] == "None"
    assert "None" in kubectl(cluster, "get", "service", "headless").stdout
    keys = asyncio.run(allocation_keys(cluster))
    assert not any(v["name"] == "headless" for v in keys.values())


def test_concurrent_creates_through_two_apiservers(cluster: Cluster) -> None:
    """40 Services at once, alternating apiservers, in a range with 45 free addresses."""

    async def run() -> list[str]:
        clients = [ApiClient(f"http://127.0.0.1:{p}") for p in cluster.api_ports]
        try:

            async def one(i: int) -> str:
                body = {
                    "metadata": {"name": f"c{i}"},
                    "spec": {"ports": [{"port": 80}], "selector": {"app": "c"}},
                }
                svc = await clients[i % 2].create("services", body, namespace=NS)
                return svc["spec"]["clusterIP"]

            return await asyncio.gather(*(one(i) for i in range(40)))
        finally:
            for cl in clients:
                await cl.aclose()

    ips = asyncio.run(run())
    assert len(set(ips)) == 40
    # Every Service's IPs and ports are claimed by it, and nothing else is claimed.
    items = json.loads(kubectl(cluster, "get", "services", "-A", "-o", "json").stdout)["items"]
    expected = {}
    for s in items:
        spec = s["spec"]
        for ip in spec.get("clusterIPs") or []:
            if ip != "None":
                expected[f"/skiff/allocations/serviceips/{ip}"] = s["metadata"]["name"]
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                expected[f"/skiff/allocations/nodeports/{p['nodePort']}"] = s["metadata"]["name"]
    keys = asyncio.run(allocation_keys(cluster))
    assert {k: v["name"] for k, v in keys.items()} == expected


def test_official_client_sees_the_assignment(cluster: Cluster) -> None:
    from kubernetes import client as k8s

    cfg = k8s.Configuration()
    cfg.host = cluster.url
    with k8s.ApiClient(cfg) as api:
        core = k8s.CoreV1Api(api)
        created = core.create_namespaced_service(
            NS,
            k8s.V1Service(
                metadata=k8s.V1ObjectMeta(name="py"),
                spec=k8s.V1ServiceSpec(
                    type="NodePort", ports=[k8s.V1ServicePort(port=443)], selector={"a": "b"}
                ),
            ),
        )
        assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network(RANGE)
        assert 30000 <= created.spec.ports[0].node_port <= 30099
        core.delete_namespaced_service("py", NS)
    keys = asyncio.run(allocation_keys(cluster))
    assert not any(v["name"] == "py" for v in keys.values())


def test_kubernetes_endpoints_list_the_live_apiservers(cluster: Cluster) -> None:
    def endpoints() -> tuple[list[str], list[str]]:
        ep = json.loads(
            kubectl(cluster, "get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout
        )
        sl = json.loads(
            kubectl(
                cluster, "get", "endpointslice", "kubernetes", "-n", "default", "-o", "json"
            ).stdout
        )
        ips = [a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
        slice_ips = [a for e in sl.get("endpoints") or [] for a in e["addresses"]]
        return ips, slice_ips

    def wait_for(want: list[str]) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.CalledProcessError):
                if endpoints() == (want, want):
                    return
            time.sleep(0.5)
        raise AssertionError(f"kubernetes endpoints never became {want}: {endpoints()}")

    wait_for(["127.0.0.1"])  # both apiservers listen on loopback: one address
    port = json.loads(
        kubectl(cluster, "get", "endpoints", "kubernetes", "-n", "default", "-o", "json").stdout
    )["subsets"][0]["ports"][0]
    assert port["name"] == "https" and port["port"] in cluster.api_ports
    # A second address joins, and leaves at once when that apiserver stops.
    env = {"SKIFF_SERVICE_CLUSTER_IP_RANGE": RANGE, "SKIFF_SERVICE_NODE_PORT_RANGE": PORTS}
    cluster.apiservers[1].stop()
    cluster.start_apiserver(1, env=env | {"SKIFF_ADVERTISE_ADDRESS": "127.0.0.2"})
    wait_for(["127.0.0.1", "127.0.0.2"])
    cluster.apiservers[1].stop()
    wait_for(["127.0.0.1"])
    cluster.start_apiserver(1, env=env)


def test_health_check_node_port_for_local_load_balancers(cluster: Cluster) -> None:
    """A LoadBalancer with externalTrafficPolicy Local gets a healthCheckNodePort from the
    node port range (held like a node port), kept across updates, dropped when the policy
    goes back to Cluster; a requested one outside the range is refused."""
    kubectl(
        cluster,
        "apply",
        "-f",
        "-",
        input=manifest("lb", type="LoadBalancer", externalTrafficPolicy="Local"),
    )
    spec = service(cluster, "lb")["spec"]
    hc = spec["healthCheckNodePort"]
    assert 30000 <= hc <= 30099 and hc != spec["ports"][0]["nodePort"]
    kubectl(cluster, "label", "service", "lb", "touched=yes")
    assert service(cluster, "lb")["spec"]["healthCheckNodePort"] == hc
    kubectl(cluster, "patch", "service", "lb", "-p", '{"spec":{"externalTrafficPolicy":"Cluster"}}')
    assert "healthCheckNodePort" not in service(cluster, "lb")["spec"]
    bad = kubectl(
        cluster,
        "apply",
        "-f",
        "-",
        check=False,
        input=manifest(
            "lb2", type="LoadBalancer", externalTrafficPolicy="Local", healthCheckNodePort=31999
        ),
    )
    assert bad.returncode != 0
    assert (
        "spec.healthCheckNodePort: Invalid value: 31999: provided port is not in the valid range"
        in bad.stderr
    )
    kubectl(cluster, "delete", "service", "lb")
