"""The service load balancer against an in-memory API: LoadBalancer Services published on
the Ready nodes' addresses, only nodes with a local endpoint under
externalTrafficPolicy Local, and a later Service asking for a port another holds gets no
address until it is free."""

from __future__ import annotations

import contextlib
from typing import Any

from skiff.controller.fake import FakeApi
from skiff.controller.fake import running as running_controller
from skiff.controllers.manager import CONTROLLERS, resolve_controllers
from skiff.controllers.servicelb import ServiceLBController

NS = "default"


def node(name: str, ip: str, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    }


def lb(name: str, port: int = 80, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}], **spec},
    }


def ingress(fake: FakeApi, name: str) -> list[str]:
    svc = fake.store("services")[f"{NS}/{name}"]
    return [
        i["ip"] for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress", [])
    ]


def running() -> contextlib.AbstractAsyncContextManager[tuple[FakeApi, ServiceLBController]]:
    return running_controller(ServiceLBController)


async def drain(fake: FakeApi, c: ServiceLBController) -> None:
    for _ in range(20):
        await fake.settle(*c.informers)
        if not len(c.queue):
            return
        while len(c.queue):
            key = await c.queue.get()
            try:
                await c.reconcile(key)
            finally:
                c.queue.done(key)
    raise AssertionError("does not settle")


async def test_published_on_ready_nodes_and_follows_them() -> None:
    async with running() as (fake, c):
        await fake.create("nodes", node("n1", "192.168.1.1"))
        await fake.create("nodes", node("n2", "192.168.1.2"))
        await fake.create("nodes", node("n3", "192.168.1.3", ready=False))
        await fake.create("services", lb("web"), NS)
        await fake.create("services", {"metadata": {"name": "plain"}, "spec": {"ports": []}}, NS)
        await fake.create("services", lb("mine", 81, loadBalancerClass="example.com/lb"), NS)
        await drain(fake, c)
        assert ingress(fake, "web") == ["192.168.1.1", "192.168.1.2"]
        assert ingress(fake, "plain") == [] and ingress(fake, "mine") == []  # not ours
        await fake.delete("nodes", "n2")
        await drain(fake, c)
        assert ingress(fake, "web") == ["192.168.1.1"]


async def test_local_policy_publishes_nodes_with_a_local_endpoint() -> None:
    async with running() as (fake, c):
        await fake.create("nodes", node("n1", "192.168.1.1"))
        await fake.create("nodes", node("n2", "192.168.1.2"))
        await fake.create("services", lb("web", externalTrafficPolicy="Local"), NS)
        await fake.create(
            "endpointslices",
            {
                "metadata": {"name": "web-x", "labels": {"kubernetes.io/service-name": "web"}},
                "endpoints": [
                    {"addresses": ["10.244.1.5"], "nodeName": "n2", "conditions": {"ready": True}}
                ],
            },
            NS,
        )
        await drain(fake, c)
        assert ingress(fake, "web") == ["192.168.1.2"]


async def test_a_port_clash_leaves_the_later_service_without_address() -> None:
    async with running() as (fake, c):
        await fake.create("nodes", node("n1", "192.168.1.1"))
        await fake.create("services", lb("first"), NS)
        fake.clock = lambda: 2_000_000_000.0  # created later
        await fake.create("services", lb("second"), NS)
        await drain(fake, c)
        assert ingress(fake, "first") == ["192.168.1.1"]
        assert ingress(fake, "second") == []
        await fake.delete("services", "first", NS)
        await drain(fake, c)
        assert ingress(fake, "second") == ["192.168.1.1"]


def test_enabled_by_default() -> None:
    assert "service-lb-controller" in resolve_controllers(["*"], CONTROLLERS)
