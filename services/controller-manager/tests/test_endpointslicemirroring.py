"""The EndpointSlice mirroring controller against the in-memory API (informers real):
Endpoints of a selectorless Service mirrored per address family and ports, kept in step,
and removed when the Service gets a selector, is gone, or asks not to be mirrored."""

from __future__ import annotations

import contextlib
from typing import Any

from skiff.client.rest import Obj
from skiff.controller.fake import FakeApi, running
from skiff.controllers.endpointslice import SLICES
from skiff.controllers.endpointslicemirroring import (
    CONTROLLER_NAME,
    MAX_ENDPOINTS_PER_SUBSET,
    EndpointSliceMirroringController,
)
from skiff.controllers.manager import CONTROLLERS, SERVICE_ACCOUNTS, resolve_controllers


def env() -> contextlib.AbstractAsyncContextManager[
    tuple[FakeApi, EndpointSliceMirroringController]
]:
    return running(EndpointSliceMirroringController)


def service(selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"ports": [{"port": 5432}]}
    if selector is not None:
        spec["selector"] = selector
    return {"metadata": {"name": "db"}, "spec": spec}


def endpoints(*subsets: Obj, **meta: Any) -> Obj:
    return {"metadata": {"name": "db", **meta}, "subsets": list(subsets)}


SUBSET = {
    "addresses": [{"ip": "192.168.1.10", "nodeName": "n1"}, {"ip": "fd00::1"}],
    "notReadyAddresses": [{"ip": "192.168.1.11", "hostname": "b"}, {"ip": "not-an-ip"}],
    "ports": [{"name": "pg", "port": 5432}],
}


async def sync(fake: FakeApi, c: EndpointSliceMirroringController) -> list[Obj]:
    await fake.settle(*c.informers)
    await c.reconcile("ns/db")
    await fake.settle(*c.informers)
    return sorted(fake.list_objects(SLICES, "ns"), key=lambda s: s["addressType"])


def test_registered_as_kubernetes_names_it() -> None:
    assert resolve_controllers(["endpointslicemirroring"]) == ["endpointslice-mirroring-controller"]
    assert CONTROLLERS["endpointslice-mirroring-controller"].enabled_by_default
    assert SERVICE_ACCOUNTS["endpointslice-mirroring-controller"] == (
        "endpointslicemirroring-controller"
    )


async def test_endpoints_of_a_selectorless_service_are_mirrored() -> None:
    async with env() as (fake, c):
        await fake.create("services", service(), "ns")
        annotations = {"team": "data", "kubectl.kubernetes.io/last-applied-configuration": "{}"}
        ep = await fake.create(
            "endpoints", endpoints(SUBSET, labels={"tier": "db"}, annotations=annotations), "ns"
        )
        v4, v6 = await sync(fake, c)
        assert v4["metadata"]["generateName"] == "db-"
        assert v4["metadata"]["labels"] == {
            "tier": "db", "kubernetes.io/service-name": "db",
            "endpointslice.kubernetes.io/managed-by": CONTROLLER_NAME}  # fmt: skip
        assert v4["metadata"]["annotations"] == {"team": "data"}
        [owner] = v4["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"], owner["controller"]) == (
            "Endpoints", ep["metadata"]["uid"], True)  # fmt: skip
        assert v4["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
        assert v4["endpoints"] == [
            {"addresses": ["192.168.1.10"], "conditions": {"ready": True}, "nodeName": "n1"},
            {"addresses": ["192.168.1.11"], "conditions": {"ready": False}, "hostname": "b"},
        ]
        assert v6["endpoints"] == [{"addresses": ["fd00::1"], "conditions": {"ready": True}}]

        changed = await fake.get("endpoints", "db", "ns")
        changed["subsets"][0]["addresses"] = [{"ip": "192.168.1.12"}]
        await fake.update("endpoints", changed, "ns")
        [v4_after] = await sync(fake, c)  # the IPv6 slice is gone
        assert v4_after["metadata"]["name"] == v4["metadata"]["name"]  # updated in place
        assert [e["addresses"] for e in v4_after["endpoints"]] == [
            ["192.168.1.12"], ["192.168.1.11"]]  # fmt: skip


async def test_large_subsets_are_split_and_capped() -> None:
    async with env() as (fake, c):
        await fake.create("services", service(), "ns")
        many = [{"ip": f"10.1.{i // 250}.{i % 250}"} for i in range(MAX_ENDPOINTS_PER_SUBSET + 5)]
        await fake.create("endpoints", endpoints({"addresses": many, "ports": [{"port": 1}]}), "ns")
        [only] = await sync(fake, c)
        assert len(only["endpoints"]) == MAX_ENDPOINTS_PER_SUBSET


async def test_nothing_is_mirrored_for_selectors_missing_services_or_skip_mirror() -> None:
    async with env() as (fake, c):
        await fake.create("endpoints", endpoints(SUBSET), "ns")
        assert await sync(fake, c) == []  # no Service
        await fake.create("services", service(), "ns")
        assert len(await sync(fake, c)) == 2
        svc = await fake.get("services", "db", "ns")
        svc["spec"]["selector"] = {"app": "db"}
        await fake.update("services", svc, "ns")
        assert await sync(fake, c) == []  # the endpointslice controller's now
        svc = await fake.get("services", "db", "ns")
        del svc["spec"]["selector"]
        await fake.update("services", svc, "ns")
        assert len(await sync(fake, c)) == 2
        ep = await fake.get("endpoints", "db", "ns")
        ep["metadata"]["labels"] = {"endpointslice.kubernetes.io/skip-mirror": "true"}
        await fake.update("endpoints", ep, "ns")
        assert await sync(fake, c) == []
