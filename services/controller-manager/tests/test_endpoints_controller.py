"""The Endpoints and EndpointSlice controllers against an in-memory API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.endpoints import (
    EndpointsController,
    find_port,
    repack_subsets,
    truncate_subsets,
)
from skiff.controllers.endpointslice import SLICES, EndpointSliceController

NS = "ns"


def pod(
    name: str,
    ip: str | None = "10.0.0.1",
    *,
    ready: bool = True,
    labels: dict[str, str] | None = None,
    ports: list[dict[str, Any]] | None = None,
    node: str = "n1",
    **spec: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
    }
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {
        "metadata": {"name": name, "labels": labels if labels is not None else {"app": "web"}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "c", "image": "nginx", "ports": ports or []}],
            **spec,
        },
        "status": status,
    }


def service(name: str = "web", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        "clusterIP": "10.96.0.10",
        "ipFamilies": ["IPv4"],
    }
    base.update(spec)
    return {"metadata": {"name": name, "labels": {"tier": "front"}}, "spec": base}


def test_find_port() -> None:
    p = pod("p", ports=[{"name": "http", "containerPort": 8080, "protocol": "TCP"}])
    assert find_port(p, {"port": 80, "targetPort": 9090}) == 9090
    assert find_port(p, {"port": 80, "targetPort": "http", "protocol": "TCP"}) == 8080
    assert find_port(p, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None
    assert find_port(p, {"port": 80, "targetPort": "metrics"}) is None
    assert find_port(p, {"port": 80}) == 80
    sidecar = pod("s")
    sidecar["spec"]["initContainers"] = [
        {
            "name": "proxy",
            "restartPolicy": "Always",
            "ports": [{"name": "proxy", "containerPort": 15001}],
        }
    ]
    assert find_port(sidecar, {"port": 1, "targetPort": "proxy"}) == 15001


def test_repack_groups_addresses_by_port_set() -> None:
    a = {"ip": "10.0.0.2", "targetRef": {"uid": "a"}}
    b = {"ip": "10.0.0.1", "targetRef": {"uid": "b"}}
    http = {"name": "http", "port": 8080, "protocol": "TCP"}
    metrics = {"name": "metrics", "port": 9090, "protocol": "TCP"}
    subsets = repack_subsets([(a, True, http), (b, False, http), (a, True, metrics)])
    # a and b both offer http (b not ready); only a offers metrics.
    assert subsets == [
        {"addresses": [a], "ports": [metrics]},
        {"addresses": [a], "notReadyAddresses": [b], "ports": [http]},
    ]
    c = {"ip": "10.0.0.3", "targetRef": {"uid": "c"}}
    assert repack_subsets(
        [(a, True, http), (c, True, metrics), (c, True, http), (a, True, metrics)]
    ) == [{"addresses": [a, c], "ports": [http, metrics]}]
    # Same input in another order: same output.
    assert repack_subsets([(a, True, metrics), (b, False, http), (a, True, http)]) == subsets


def test_truncate_keeps_ready_first() -> None:
    subsets = [
        {
            "addresses": [{"ip": f"10.0.0.{i}"} for i in range(3)],
            "notReadyAddresses": [{"ip": "x"}],
        },
        {"addresses": [{"ip": f"10.0.1.{i}"} for i in range(3)]},
    ]
    assert truncate_subsets(subsets, capacity=4)
    assert [len(s.get("addresses", ())) for s in subsets] == [2, 2]
    assert "notReadyAddresses" not in subsets[0]
    assert not truncate_subsets(subsets, capacity=4)


class Env:
    def __init__(self, fake: FakeApi, ep: EndpointsController, sl: EndpointSliceController) -> None:
        self.fake = fake
        self.ep = ep
        self.sl = sl

    async def settle(self) -> None:
        await self.fake.settle(self.ep.services, self.ep.pods, self.ep.endpoints, self.sl.slices)

    async def sync(self, name: str = "web") -> None:
        await self.settle()
        await self.ep.reconcile(f"{NS}/{name}")
        await self.settle()
        await self.sl.reconcile(f"{NS}/{name}")
        await self.settle()

    async def endpoints(self, name: str = "web") -> dict[str, Any]:
        return await self.fake.get("endpoints", name, NS)

    def slices(self, name: str = "web") -> list[dict[str, Any]]:
        return sorted(
            (
                s
                for s in self.fake.list_objects(SLICES, NS)
                if s["metadata"]["labels"].get("kubernetes.io/service-name") == name
            ),
            key=lambda s: s["metadata"]["name"],
        )

    def slice_endpoints(self, name: str = "web") -> dict[str, dict[str, Any]]:
        return {
            ep["targetRef"]["name"]: ep for s in self.slices(name) for ep in s["endpoints"] or ()
        }

    async def set_ready(self, name: str, ready: bool) -> None:
        cond = [{"type": "Ready", "status": "True" if ready else "False"}]
        await self.fake.patch("pods", name, {"status": {"conditions": cond}}, NS)


@contextlib.asynccontextmanager
async def env(max_per_slice: int = 100) -> AsyncIterator[Env]:
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers)  # type: ignore[arg-type]
    ep = EndpointsController(ctx)
    sl = EndpointSliceController(ctx, max_endpoints_per_slice=max_per_slice)
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, ep, sl)
    finally:
        await informers.stop()
        await ep.stop()
        await sl.stop()


async def test_endpoints_follow_the_selected_pods() -> None:
    async with env() as e:
        svc = await e.fake.create("services", service(), NS)
        a = await e.fake.create("pods", pod("a", "10.0.0.2"), NS)
        b = await e.fake.create("pods", pod("b", "10.0.0.1", ready=False, node="n2"), NS)
        await e.fake.create("pods", pod("pending", None), NS)
        await e.fake.create("pods", pod("other", "10.0.0.9", labels={"app": "db"}), NS)
        await e.sync()
        ep = await e.endpoints()
        assert ep["metadata"]["labels"] == {
            "tier": "front",
            "endpoints.kubernetes.io/managed-by": "endpoint-controller",
        }
        assert ep["subsets"] == [
            {
                "addresses": [
                    {
                        "ip": "10.0.0.2",
                        "nodeName": "n1",
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": NS,
                            "name": "a",
                            "uid": a["metadata"]["uid"],
                        },
                    }
                ],
                "notReadyAddresses": [
                    {
                        "ip": "10.0.0.1",
                        "nodeName": "n2",
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": NS,
                            "name": "b",
                            "uid": b["metadata"]["uid"],
                        },
                    }
                ],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ]
        # The slice says the same, with conditions.
        (s,) = e.slices()
        assert s["addressType"] == "IPv4"
        assert s["metadata"]["generateName"] == "web-"
        assert s["metadata"]["labels"] == {
            "tier": "front",
            "kubernetes.io/service-name": "web",
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }
        assert s["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "name": "web",
                "uid": svc["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        eps = e.slice_endpoints()
        assert set(eps) == {"a", "b"}
        assert eps["a"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert eps["b"]["conditions"] == {"ready": False, "serving": False, "terminating": False}
        assert eps["b"]["addresses"] == ["10.0.0.1"] and eps["b"]["nodeName"] == "n2"

        # Nothing changed: nothing written.
        writes = len(e.fake.calls)
        await e.sync()
        assert len(e.fake.calls) == writes

        # b becomes ready; a goes away; a new pod comes.
        await e.set_ready("b", True)
        await e.fake.delete("pods", "a", NS)
        await e.fake.create("pods", pod("c", "10.0.0.3"), NS)
        await e.sync()
        (subset,) = (await e.endpoints())["subsets"]
        assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1", "10.0.0.3"]
        assert "notReadyAddresses" not in subset
        assert len(e.slices()) == 1
        eps = e.slice_endpoints()
        assert set(eps) == {"b", "c"} and eps["b"]["conditions"]["ready"]

        # A label change takes a pod out.
        await e.fake.patch("pods", "c", {"metadata": {"labels": {"app": "other"}}}, NS)
        await e.sync()
        (subset,) = (await e.endpoints())["subsets"]
        assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.1"]
        assert set(e.slice_endpoints()) == {"b"}


async def test_named_ports_headless_hostnames_and_publish_not_ready() -> None:
    async with env() as e:
        await e.fake.create(
            "services",
            service(
                clusterIP="None",
                publishNotReadyAddresses=True,
                ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}],
            ),
            NS,
        )
        named = [{"name": "web", "containerPort": 8080, "protocol": "TCP"}]
        other = [{"name": "web", "containerPort": 9090, "protocol": "TCP"}]
        await e.fake.create(
            "pods", pod("a", "10.0.0.1", ports=named, hostname="a", subdomain="web"), NS
        )
        await e.fake.create("pods", pod("b", "10.0.0.2", ready=False, ports=other), NS)
        await e.fake.create("pods", pod("c", "10.0.0.3"), NS)  # no port named web
        await e.sync()
        ep = await e.endpoints()
        assert ep["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        by_port = {s["ports"][0]["port"]: s for s in ep["subsets"]}
        assert set(by_port) == {8080, 9090}
        assert by_port[8080]["addresses"][0]["hostname"] == "a"
        assert by_port[9090]["addresses"][0]["ip"] == "10.0.0.2"  # published though not ready
        slices = e.slices()
        # As in Kubernetes, a pod without the named port gets a slice without ports.
        assert sorted([p["port"] for p in s["ports"]] for s in slices) == [[], [8080], [9090]]
        assert all(s["metadata"]["labels"]["service.kubernetes.io/headless"] == "" for s in slices)
        eps = e.slice_endpoints()
        assert eps["a"]["hostname"] == "a"
        assert eps["b"]["conditions"] == {"ready": True, "serving": False, "terminating": False}


async def test_headless_without_ports_and_terminating_pods() -> None:
    async with env() as e:
        await e.fake.create("services", service(clusterIP="None", ports=[]), NS)
        await e.fake.create("pods", pod("a", "10.0.0.1"), NS)
        await e.fake.create(
            "pods",
            {**pod("gone", "10.0.0.2"), "metadata": {"name": "gone", "labels": {"app": "web"}}},
            NS,
        )
        await e.fake.patch(
            "pods", "gone", {"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}}, NS
        )
        await e.sync()
        assert (await e.endpoints())["subsets"] == [
            {
                "addresses": [
                    {
                        "ip": "10.0.0.1",
                        "nodeName": "n1",
                        "targetRef": {
                            "kind": "Pod",
                            "namespace": NS,
                            "name": "a",
                            "uid": (await e.fake.get("pods", "a", NS))["metadata"]["uid"],
                        },
                    }
                ]
            }
        ]
        eps = e.slice_endpoints()
        assert eps["gone"]["conditions"] == {"ready": False, "serving": True, "terminating": True}
        assert e.slices()[0]["ports"] == []


async def test_selectorless_and_deleted_services() -> None:
    async with env() as e:
        await e.fake.create("services", service("manual", selector=None), NS)
        manual = {"metadata": {"name": "manual"}, "subsets": [{"addresses": [{"ip": "1.2.3.4"}]}]}
        await e.fake.create("endpoints", manual, NS)
        await e.fake.create("services", service(), NS)
        await e.fake.create("pods", pod("a"), NS)
        await e.sync("manual")
        await e.sync()
        assert (await e.endpoints("manual"))["subsets"] == manual["subsets"]
        assert e.slices("manual") == []
        assert e.slices("web")
        await e.fake.delete("services", "web", NS)
        await e.sync()
        assert e.fake.keys("endpoints") == [f"{NS}/manual"]
        assert e.slices("web") == []
        # An Endpoints left behind by a Service deleted while the controller was down.
        await e.fake.create("endpoints", {"metadata": {"name": "leftover"}}, NS)
        await e.sync("leftover")
        assert e.fake.keys("endpoints") == [f"{NS}/manual"]


async def test_slices_hold_at_most_max_endpoints_and_change_in_place() -> None:
    async with env(max_per_slice=3) as e:
        await e.fake.create("services", service(), NS)
        for i in range(7):
            await e.fake.create("pods", pod(f"p{i}", f"10.0.0.{i + 1}"), NS)
        await e.sync()
        slices = e.slices()
        assert sorted(len(s["endpoints"]) for s in slices) == [1, 3, 3]
        assert len(e.slice_endpoints()) == 7
        writes = list(e.fake.calls)
        await e.set_ready("p0", False)
        await e.sync()
        new = e.fake.calls[len(writes) :]
        assert [c[0] for c in new if c[1] == "endpointslices"] == ["update"]  # one slice only
        assert e.slice_endpoints()["p0"]["conditions"]["ready"] is False
        # Pods go: emptied slices are deleted; no pods at all leaves one placeholder.
        for i in range(7):
            await e.fake.delete("pods", f"p{i}", NS)
        await e.sync()
        (placeholder,) = e.slices()
        assert placeholder["endpoints"] == [] and placeholder["ports"] == []
        writes = len(e.fake.calls)
        await e.sync()
        assert len(e.fake.calls) == writes


async def test_slow_cache_creates_nothing_twice() -> None:
    async with env() as e:
        await e.fake.create("services", service(), NS)
        await e.fake.create("pods", pod("a"), NS)
        await e.settle()
        e.fake.hold()  # our own writes do not reach the cache
        await e.sl.reconcile(f"{NS}/web")
        assert await e.sl.reconcile(f"{NS}/web") == 1.0  # waits for the cache
        await e.ep.reconcile(f"{NS}/web")
        assert await e.ep.reconcile(f"{NS}/web") == 1.0
        assert len(e.fake.writes("create", SLICES)) == 1
        assert len(e.fake.writes("create", "endpoints")) == 1
        e.fake.release()
        await e.sync()
        assert len(e.fake.writes("create", SLICES)) == 1
        assert len(e.fake.writes("create", "endpoints")) == 1
        assert len(e.slices()) == 1
        assert e.fake.writes("update", "endpoints") == []
