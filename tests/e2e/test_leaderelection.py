"""Lease-based leader election against a real apiserver."""

from __future__ import annotations

import asyncio
import contextlib

from cluster import Cluster
from skiff.client.leaderelection import LeaderElector
from skiff.client.rest import ApiClient


async def _elect(client: ApiClient, ident: str, log: list[str]) -> LeaderElector:
    return LeaderElector(
        client,
        "default",
        "le-test",
        identity=ident,
        lease_duration=2,
        renew_deadline=1.5,
        retry_period=0.2,
    )


async def until(check, what: str, timeout: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    """Wait for ``check()``; returns the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not check():
        assert loop.time() - start < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return loop.time() - start


async def test_one_leader_and_handover(cluster: Cluster) -> None:
    async with ApiClient(cluster.url) as client:
        leading: list[str] = []

        def work(name: str):  # type: ignore[no-untyped-def]
            async def lead() -> None:
                leading.append(name)
                await asyncio.Event().wait()

            return lead

        a = await _elect(client, "a", leading)
        b = await _elect(client, "b", leading)
        ta = asyncio.create_task(a.run(work("a")))
        await until(lambda: a.is_leader, "a to lead")
        tb = asyncio.create_task(b.run(work("b")))
        await until(lambda: b.observed_holder == "a", "b to see a's lease")
        assert leading == ["a"] and a.is_leader and not b.is_leader
        # A clean stop releases the lease: b takes over at its next try.
        ta.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ta
        await until(lambda: b.is_leader, "b to take over", timeout=3)
        assert leading == ["a", "b"]
        lease = await client.get("leases.coordination.k8s.io", "le-test", "default")
        assert lease["spec"]["holderIdentity"] == "b"
        assert lease["spec"]["leaseTransitions"] == 1
        tb.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tb


async def test_crashed_leader_is_replaced_after_lease_duration(cluster: Cluster) -> None:
    async with ApiClient(cluster.url) as client:
        a = LeaderElector(
            client,
            "default",
            "le-crash",
            identity="a",
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )
        b = LeaderElector(
            client,
            "default",
            "le-crash",
            identity="b",
            lease_duration=2,
            renew_deadline=1.5,
            retry_period=0.2,
        )

        async def forever() -> None:
            await asyncio.Event().wait()

        async def no_release() -> None:  # a crash: the lease is left behind
            return None

        a._release = no_release  # type: ignore[method-assign]
        ta = asyncio.create_task(a.run(forever))
        await until(lambda: a.is_leader, "a to lead")
        tb = asyncio.create_task(b.run(forever))
        await until(lambda: b.observed_holder == "a", "b to see a's lease")
        assert a.is_leader and not b.is_leader
        ta.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ta
        waited = await until(lambda: b.is_leader, "b to take over")
        assert waited >= 1.0  # it waited for the 2 s lease to expire
        tb.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tb
