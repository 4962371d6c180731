"""Hollow nodes against an in-memory API: registration, heartbeats, and the kubelet
controller that starts and finishes the pods bound to them."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator, Callable
from typing import Any

from skiff.api.errors import ApiError, Reason, unavailable
from skiff.api.timestamps import rfc3339
from skiff.client.nodelease import LEASE_NS, LEASES
from skiff.controller.fake import FakeApi
from skiff.hollownode.nodes import HollowNodes

NS = "ns"


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``pred()`` to hold, failing after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.005)


def pod(name: str, node: str = "hollow-1") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


def stored(fake: FakeApi, name: str) -> dict[str, Any] | None:
    return fake.store("pods").get(f"{NS}/{name}")


def phase(fake: FakeApi, name: str) -> str | None:
    p = stored(fake, name)
    return None if p is None else (p.get("status") or {}).get("phase")


@contextlib.asynccontextmanager
async def hollow(fake: FakeApi, count: int = 2, **kw: Any) -> AsyncIterator[HollowNodes]:
    nodes = HollowNodes(fake, count, **kw)  # type: ignore[arg-type]
    task = asyncio.create_task(nodes.run(), name="hollow-nodes")
    try:
        await until(lambda: nodes.pods.has_synced() or task.done())
        assert not task.done(), task
        yield nodes
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def fail_once(
    fake: FakeApi, verb: str, error: ApiError, when: Callable[..., bool] = lambda *a, **k: True
) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Make the next ``verb`` call for which ``when(*args, **kw)`` holds raise ``error``;
    every matching call is recorded (args, kwargs)."""
    real = getattr(fake, verb)
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    async def wrapper(*args: Any, **kw: Any) -> Any:
        if when(*args, **kw):
            calls.append((args, kw))
            if len(calls) == 1:
                raise error
        return await real(*args, **kw)

    setattr(fake, verb, wrapper)
    return calls


async def test_registers_nodes_and_renews_leases() -> None:
    fake = FakeApi()
    # The first node create fails as a lost connection would: registration retries it.
    creates = fail_once(
        fake,
        "create",
        unavailable("POST /api/v1/nodes: ConnectError"),
        lambda res, *a, **k: res == "nodes",
    )
    renewals = fail_once(
        fake,
        "update",
        ApiError(500, Reason.INTERNAL_ERROR, "injected"),
        lambda res, *a, **k: res == LEASES,
    )
    async with hollow(fake, 3, lease_period=0.02) as nodes:
        assert sorted(n["metadata"]["name"] for n in fake.list_objects("nodes")) == nodes.names
        assert len(creates) == 4  # one retried
        node = fake.store("nodes")["hollow-2"]
        assert node["metadata"]["labels"]["skiff.io/hollow-node"] == "true"
        assert node["spec"]["podCIDR"] == "10.192.2.0/24"
        lease = fake.store(LEASES)[f"{LEASE_NS}/hollow-2"]
        first = lease["spec"]["renewTime"]
        # A failed renewal (the injected 500) does not end the heartbeats.
        await until(
            lambda: fake.store(LEASES)[f"{LEASE_NS}/hollow-2"]["spec"]["renewTime"] != first
        )
        assert len(renewals) > 1


async def test_bound_pod_becomes_running() -> None:
    fake = FakeApi()
    async with hollow(fake) as nodes:
        await fake.create("pods", pod("web"), NS)
        await fake.create("pods", pod("elsewhere", node="real-node"), NS)
        await fake.create("pods", {**pod("unbound"), "spec": {"containers": []}}, NS)
        await until(lambda: phase(fake, "web") == "Running")
        status = stored(fake, "web")["status"]  # type: ignore[index]
        assert status["hostIP"] == "198.18.0.2"
        assert ipaddress.ip_address(status["podIP"]) in ipaddress.ip_network("10.192.1.0/24")
        assert status["podIPs"] == [{"ip": status["podIP"]}]
        conditions = {c["type"]: c["status"] for c in status["conditions"]}
        assert conditions["Ready"] == "True" and conditions["ContainersReady"] == "True"
        (c,) = status["containerStatuses"]
        assert c["ready"] is True and "running" in c["state"]
        # The cache catches up with the Running status: nothing more is written.
        await fake.settle(nodes.pods)
        assert await nodes.kubelet.reconcile(f"{NS}/web") is None
        assert fake.writes("patch/status", "pods") == [f"{NS}/web"]
        assert phase(fake, "elsewhere") is None and phase(fake, "unbound") is None


async def test_status_is_written_once_while_the_cache_lags() -> None:
    fake = FakeApi()
    async with hollow(fake) as nodes:
        real = fake.patch

        async def patch_then_hold(*args: Any, **kw: Any) -> Any:
            fake.hold()  # the Running status is written but not yet in the cache
            return await real(*args, **kw)

        fake.patch = patch_then_hold  # type: ignore[method-assign]
        await fake.create("pods", pod("web"), NS)
        await until(lambda: phase(fake, "web") == "Running")
        # Reconciled again (another event of the pod) before its own write came back.
        assert await nodes.kubelet.reconcile(f"{NS}/web") is None
        assert fake.writes("patch/status", "pods") == [f"{NS}/web"]
        fake.release()
        await fake.settle(nodes.pods)
        assert await nodes.kubelet.reconcile(f"{NS}/web") is None
        assert fake.writes("patch/status", "pods") == [f"{NS}/web"]


async def test_terminating_pod_is_finished() -> None:
    fake = FakeApi()
    async with hollow(fake) as nodes:
        deletes = fail_once(
            fake, "delete", unavailable("DELETE: ConnectError"), lambda res, *a, **k: res == "pods"
        )
        created = await fake.create("pods", pod("web"), NS)
        await until(lambda: phase(fake, "web") == "Running")
        # What the apiserver does on a graceful delete: the kubelet must confirm it.
        await fake.patch(
            "pods",
            "web",
            {"metadata": {"deletionTimestamp": rfc3339(), "deletionGracePeriodSeconds": 30}},
            NS,
        )
        await until(lambda: stored(fake, "web") is None)
        assert len(deletes) == 2  # the failed one was retried
        for _args, kw in deletes:
            assert kw["grace_period_seconds"] == 0
            assert kw["preconditions"] == {"uid": created["metadata"]["uid"]}
        await until(lambda: not nodes.pods.list())


async def test_transient_status_failure_is_retried() -> None:
    fake = FakeApi()
    async with hollow(fake) as nodes:
        patches = fail_once(
            fake,
            "patch",
            ApiError(500, Reason.INTERNAL_ERROR, "injected"),
            lambda res, *a, subresource="", **k: res == "pods" and subresource == "status",
        )
        await fake.create("pods", pod("web"), NS)
        await until(lambda: phase(fake, "web") == "Running")
        assert len(patches) == 2  # the failed one, then the retry
        assert nodes.kubelet.queue.num_requeues(f"{NS}/web") == 0  # forgotten on success
