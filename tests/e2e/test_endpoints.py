"""The Endpoints and EndpointSlice controllers against a real apiserver, scheduler and
hollow nodes; checked through the API and with the real kubectl."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterenv import hollow_env, started_cluster
from cmenv import until

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "endpoints"
SLICES = "endpointslices.discovery.k8s.io"
KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="module")
def ec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "endpoints")


@pytest.fixture(scope="module")
async def client(ec: Cluster) -> AsyncIterator[ApiClient]:
    async with hollow_env(
        ec,
        NS,
        nodes=2,
        prefix="ep-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        manager=(
            "--controllers=endpoints-controller,endpointslice-controller,"
            "endpointslice-mirroring-controller",
        ),
    ) as env:
        yield env.client


def pod(name: str, labels: dict[str, str], ports: dict[str, int], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "nginx",
                    "ports": [{"name": n, "containerPort": p} for n, p in ports.items()],
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                }
            ],
            **spec,
        },
    }


def ready(p: dict[str, Any]) -> bool:
    conditions = (p.get("status") or {}).get("conditions") or ()
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def running(client: ApiClient, *names: str) -> dict[str, dict[str, Any]]:
    async def check() -> dict[str, dict[str, Any]] | None:
        items = {p["metadata"]["name"]: p for p in (await client.list("pods", NS))["items"]}
        ok = all(n in items and ready(items[n]) and items[n]["status"].get("podIP") for n in names)
        return items if ok else None

    return await until(check, timeout=30, what=f"pods {names} running")


def ips(subset: dict[str, Any], field: str = "addresses") -> list[str]:
    return [a["ip"] for a in subset.get(field) or ()]


async def endpoints(client: ApiClient, name: str) -> dict[str, Any] | None:
    try:
        return await client.get("endpoints", name, NS)
    except ApiError as e:
        if e.code == 404:
            return None
        raise


async def slice_endpoints(client: ApiClient, service: str) -> dict[str, dict[str, Any]]:
    sel = f"kubernetes.io/service-name={service}"
    items = (await client.list(SLICES, NS, label_selector=sel))["items"]
    return {ep["targetRef"]["name"]: ep for s in items for ep in s.get("endpoints") or ()}


def kubectl(kubeconfig: Path, *args: str) -> str:
    assert KUBECTL, "kubectl is not installed"
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", NS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stdout}{proc.stderr}"
    return proc.stdout


async def test_endpoints_follow_pods_of_a_service(client: ApiClient, ec: Cluster) -> None:
    labels = {"app": "web"}
    for name in ("web-a", "web-b", "web-c"):
        await client.create("pods", pod(name, labels, {"http": 8080, "metrics": 9090}), NS)
    await client.create("pods", pod("web-noport", labels, {"other": 7070}), NS)
    svc = await client.create(
        "services",
        {
            "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {
                "selector": labels,
                "ports": [
                    {"name": "http", "port": 80, "targetPort": "http"},
                    {"name": "raw", "port": 81, "targetPort": 8081},
                ],
            },
        },
        NS,
    )
    pods = await running(client, "web-a", "web-b", "web-c", "web-noport")
    ip = {n: p["status"]["podIP"] for n, p in pods.items()}

    async def subsets_with(**want: list[str]) -> list[dict[str, Any]] | None:
        ep = await endpoints(client, "web")
        subsets = (ep or {}).get("subsets") or []
        by_ports = {tuple(sorted(p["port"] for p in s["ports"])): s for s in subsets}
        for ports, names in want.items():
            s = by_ports.get(tuple(int(x) for x in ports.split("_")[1:]))
            if s is None or sorted(ips(s)) != sorted(ip[n] for n in names):
                return None
        return subsets if len(subsets) == len(want) else None

    # web-noport lacks the named port: it serves only the numeric one. As RepackSubsets
    # packs them, each set of addresses gets its own subset.
    subsets = await until(
        lambda: subsets_with(p_8080=["web-a", "web-b", "web-c"], p_8081=[*ip]),
        what="Endpoints of web",
    )
    full = next(s for s in subsets if s["ports"][0]["port"] == 8080)
    assert full["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    raw = next(s for s in subsets if s["ports"][0]["port"] == 8081)
    assert raw["ports"] == [{"name": "raw", "port": 8081, "protocol": "TCP"}]
    address = next(a for a in full["addresses"] if a["ip"] == ip["web-a"])
    assert address["nodeName"] == pods["web-a"]["spec"]["nodeName"]
    assert address["targetRef"] == {
        "kind": "Pod",
        "namespace": NS,
        "name": "web-a",
        "uid": pods["web-a"]["metadata"]["uid"],
    }
    ep = await endpoints(client, "web")
    assert ep is not None
    assert ep["metadata"]["labels"]["tier"] == "front"

    # The slices say the same, with conditions, and belong to the Service.
    slice_eps = await until(
        lambda: _with_keys(slice_endpoints(client, "web"), 4), what="4 slice endpoints"
    )
    assert slice_eps["web-a"]["conditions"] == {
        "ready": True,
        "serving": True,
        "terminating": False,
    }
    slices = (await client.list(SLICES, NS, label_selector="kubernetes.io/service-name=web"))[
        "items"
    ]
    for s in slices:
        assert s["addressType"] == "IPv4"
        labels_ = s["metadata"]["labels"]
        assert (
            labels_["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
        )
        (owner,) = s["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "Service",
            svc["metadata"]["uid"],
            True,
        )

    # A pod stops being ready: it moves to notReadyAddresses (and ready=false in its slice).
    status = {"conditions": [{"type": "Ready", "status": "False"}]}
    await client.patch(
        "pods", "web-b", {"status": status}, NS, type="strategic", subresource="status"
    )

    async def not_ready() -> bool:
        ep = await endpoints(client, "web")
        return any(
            ip["web-b"] in ips(s, "notReadyAddresses") for s in (ep or {}).get("subsets") or ()
        )

    await until(not_ready, what="web-b under notReadyAddresses")
    eps = await slice_endpoints(client, "web")
    assert eps["web-b"]["conditions"]["ready"] is False

    # kubectl shows them.
    kubeconfig = ec.kubeconfig(0)
    out = await asyncio.to_thread(kubectl, kubeconfig, "get", "endpoints", "web")
    assert f"{ip['web-a']}:8080" in out or f"{ip['web-a']}:8081" in out, out
    described = await asyncio.to_thread(kubectl, kubeconfig, "describe", "service", "web")
    line = next(line for line in described.splitlines() if line.startswith("Endpoints:"))
    assert ip["web-a"] in line, described
    out = await asyncio.to_thread(kubectl, kubeconfig, "get", "endpointslices")
    assert "web-" in out and "IPv4" in out, out

    # Settled: nothing is rewritten.
    before = (await endpoints(client, "web") or {})["metadata"]["resourceVersion"]
    await asyncio.sleep(1.0)
    assert (await endpoints(client, "web") or {})["metadata"]["resourceVersion"] == before

    # A deleted pod leaves; a relabelled one too.
    await client.delete("pods", "web-a", NS)
    await client.patch("pods", "web-c", {"metadata": {"labels": {"app": "elsewhere"}}}, NS)
    await until(lambda: _only(client, ip), what="web-a and web-c gone from the Endpoints")
    await until(
        lambda: _keys_are(slice_endpoints(client, "web"), {"web-b", "web-noport"}),
        what="web-a and web-c gone from the slices",
    )

    # The Service goes: its Endpoints and slices go.
    await client.delete("services", "web", NS)

    async def gone() -> bool:
        sel = "kubernetes.io/service-name=web"
        left = (await client.list(SLICES, NS, label_selector=sel))["items"]
        return await endpoints(client, "web") is None and not left

    await until(gone, what="the Endpoints and slices of the deleted Service gone")


async def _with_keys(eps: Any, n: int) -> dict[str, Any] | None:
    got = await eps
    return got if len(got) == n else None


async def _keys_are(eps: Any, names: set[str]) -> bool:
    return set(await eps) == names


async def _only(client: ApiClient, ip: dict[str, str]) -> bool:
    """web-b (not ready) on both ports, web-noport on the numeric one."""
    ep = await endpoints(client, "web")
    got = {
        (
            tuple(sorted(p["port"] for p in s["ports"])),
            tuple(ips(s)),
            tuple(ips(s, "notReadyAddresses")),
        )
        for s in (ep or {}).get("subsets") or ()
    }
    return got == {
        ((8080,), (), (ip["web-b"],)),
        ((8081,), (ip["web-noport"],), (ip["web-b"],)),
    }


async def test_headless_service_hostnames_and_selectorless(client: ApiClient) -> None:
    labels = {"app": "db"}
    for i in range(2):
        spec = {"hostname": f"db-{i}", "subdomain": "db"}
        await client.create("pods", pod(f"db-{i}", labels, {"sql": 5432}, **spec), NS)
    await client.create(
        "services",
        {
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"port": 5432}]},
        },
        NS,
    )
    # A Service without a selector: its Endpoints are the user's, left alone, and mirrored
    # into an EndpointSlice (which the proxy and the DNS read).
    await client.create(
        "services",
        {"metadata": {"name": "external"}, "spec": {"ports": [{"port": 443}]}},
        NS,
    )
    manual = {
        "metadata": {"name": "external"},
        "subsets": [{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"port": 443}]}],
    }
    await client.create("endpoints", manual, NS)
    pods = await running(client, "db-0", "db-1")

    async def hostnames() -> dict[str, str] | None:
        ep = await endpoints(client, "db")
        addrs = [a for s in (ep or {}).get("subsets") or () for a in s.get("addresses") or ()]
        got = {a.get("hostname", ""): a["ip"] for a in addrs}
        return got if len(got) == 2 else None

    got = await until(hostnames, what="headless Endpoints with hostnames")
    assert got == {f"db-{i}": pods[f"db-{i}"]["status"]["podIP"] for i in range(2)}
    ep = await endpoints(client, "db")
    assert ep is not None and ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    eps = await until(lambda: _with_keys(slice_endpoints(client, "db"), 2), what="db slices")
    assert {e["hostname"] for e in eps.values()} == {"db-0", "db-1"}

    sel = "kubernetes.io/service-name=external"

    async def mirrored() -> list[dict[str, Any]]:
        return (await client.list(SLICES, NS, label_selector=sel))["items"]

    [mirror] = await until(mirrored, what="the mirrored slice of the selectorless Service")
    labels = mirror["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == (
        "endpointslicemirroring-controller.k8s.io"
    )
    assert mirror["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}}]
    assert mirror["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    ext = await endpoints(client, "external")
    assert ext is not None and ext["subsets"][0]["addresses"] == [{"ip": "192.0.2.10"}]
