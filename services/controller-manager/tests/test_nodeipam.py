"""The node IPAM range allocator against an in-memory API (informers running for real)."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.nodeipam import (
    CidrSet,
    CidrSetFullError,
    NodeIpamController,
    NodeIpamSettings,
    parse_cluster_cidrs,
)


def node(name: str, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    if spec:
        obj["spec"] = spec  # the apiserver stores no empty spec
    return obj


def test_cidr_set_allocates_round_robin_and_never_twice() -> None:
    s = CidrSet(ipaddress.ip_network("10.0.0.0/22"), 24)
    assert s.size == 4
    got = [str(s.allocate_next()) for _ in range(4)]
    assert got == ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
    with pytest.raises(CidrSetFullError):
        s.allocate_next()
    s.release(ipaddress.ip_network("10.0.1.0/24"))
    assert str(s.allocate_next()) == "10.0.1.0/24"
    assert not s.occupy(ipaddress.ip_network("192.168.0.0/24"))  # not ours
    assert not s.contains(ipaddress.ip_network("fd00::/64"))


def test_cidr_set_occupy_skips_used_ranges() -> None:
    s = CidrSet(ipaddress.ip_network("10.0.0.0/22"), 24)
    assert s.occupy(ipaddress.ip_network("10.0.0.0/23"))  # covers two node ranges
    assert s.used == 2
    assert str(s.allocate_next()) == "10.0.2.0/24"
    s.release(ipaddress.ip_network("10.0.0.0/23"))
    assert s.used == 1


def test_cidr_set_rejects_bad_masks() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        CidrSet(ipaddress.ip_network("10.0.0.0/16"), 8)
    with pytest.raises(ValueError, match="at most 16 bits"):
        CidrSet(ipaddress.ip_network("10.0.0.0/8"), 28)


def test_settings() -> None:
    (v4,) = NodeIpamSettings().cidr_sets()
    assert (str(v4.cluster), v4.mask) == ("10.244.0.0/16", 24)
    (v4,) = NodeIpamSettings(cluster_cidr="10.1.0.0/20", node_cidr_mask_size=26).cidr_sets()
    assert (str(v4.cluster), v4.mask, v4.size) == ("10.1.0.0/20", 26, 64)
    v4, v6 = parse_cluster_cidrs("10.1.0.0/16,fd00:10::/56")
    assert (v4.mask, v6.mask) == (24, 64)
    v4, v6 = parse_cluster_cidrs("10.1.0.0/16,fd00:10::/56", mask_size_ipv4=20, mask_size_ipv6=60)
    assert (v4.mask, v6.mask) == (20, 60)
    for bad in ("10.1.0.0/33", "10.1.0.1/16", "10.0.0.0/16,10.1.0.0/16", "nope"):
        with pytest.raises(ValueError, match="--cluster-cidr"):
            parse_cluster_cidrs(bad)
    with pytest.raises(ValueError, match="single-stack"):
        parse_cluster_cidrs("10.1.0.0/16,fd00:10::/56", mask_size=24)
    with pytest.raises(ValueError, match="does not fit"):
        parse_cluster_cidrs("10.1.0.0/16", mask_size=8)


class Env:
    def __init__(self, fake: FakeApi, controller: NodeIpamController) -> None:
        self.fake = fake
        self.c = controller

    async def sync(self, name: str) -> float | None:
        await self.fake.settle(self.c.nodes)
        return await self.c.reconcile(name)

    async def cidrs(self, name: str) -> tuple[str | None, list[str] | None]:
        spec = (await self.fake.get("nodes", name)).get("spec") or {}
        return spec.get("podCIDR"), spec.get("podCIDRs")


@contextlib.asynccontextmanager
async def env(
    cluster: str = "10.244.0.0/16", mask: int = 24, fake: FakeApi | None = None
) -> AsyncIterator[Env]:
    fake = fake or FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    sets = [CidrSet(ipaddress.ip_network(cluster), mask)]
    controller = NodeIpamController(ControllerContext(fake, informers), cidr_sets=sets)  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controller)
    finally:
        await informers.stop()
        await controller.stop()


async def test_new_nodes_get_distinct_ranges() -> None:
    async with env() as e:
        for i in range(3):
            await e.fake.create("nodes", node(f"n{i}"))
        for i in range(3):
            await e.sync(f"n{i}")
        got = [await e.cidrs(f"n{i}") for i in range(3)]
        assert got == [
            ("10.244.0.0/24", ["10.244.0.0/24"]),
            ("10.244.1.0/24", ["10.244.1.0/24"]),
            ("10.244.2.0/24", ["10.244.2.0/24"]),
        ]
        writes = len(e.fake.writes("patch", "nodes"))
        for i in range(3):
            await e.sync(f"n{i}")
        assert len(e.fake.writes("patch", "nodes")) == writes  # level-triggered: done


async def test_existing_ranges_survive_a_restart() -> None:
    fake = FakeApi()
    await fake.create("nodes", node("old-0", podCIDR="10.244.0.0/24", podCIDRs=["10.244.0.0/24"]))
    await fake.create("nodes", node("old-1", podCIDR="10.244.1.0/24"))
    await fake.create("nodes", node("elsewhere", podCIDR="10.192.0.0/24"))
    await fake.create("nodes", node("new"))
    async with env(fake=fake) as e:
        await e.sync("new")
        assert await e.cidrs("new") == ("10.244.2.0/24", ["10.244.2.0/24"])
        await e.sync("elsewhere")
        assert await e.cidrs("elsewhere") == ("10.192.0.0/24", None)  # outside: left alone


async def test_deleted_node_frees_its_range() -> None:
    async with env(cluster="10.0.0.0/23", mask=24) as e:
        for name in ("a", "b", "c"):
            await e.fake.create("nodes", node(name))
        await e.sync("a")
        await e.sync("b")
        assert await e.sync("c") == 30.0  # full: waits for a range
        assert (await e.cidrs("c"))[0] is None
        await e.c.events.flush()
        events = e.fake.list_objects("events")
        assert [ev["reason"] for ev in events] == ["CIDRNotAvailable"]
        assert events[0]["message"] == "Node c status is now: CIDRNotAvailable"
        await e.fake.delete("nodes", "a")
        await e.sync("c")
        assert await e.cidrs("c") == ("10.0.0.0/24", ["10.0.0.0/24"])


async def test_stale_cache_conflict_keeps_the_same_range() -> None:
    async with env() as e:
        await e.fake.create("nodes", node("n"))
        await e.fake.settle(e.c.nodes)
        e.fake.hold()
        await e.fake.patch("nodes", "n", {"metadata": {"labels": {"x": "y"}}})
        with pytest.raises(ApiError) as err:
            await e.c.reconcile("n")  # the cached resourceVersion is stale: the test fails
        assert err.value.code == 409
        e.fake.release()
        await e.sync("n")
        assert await e.cidrs("n") == ("10.244.0.0/24", ["10.244.0.0/24"])
        assert e.c.cidr_sets[0].used == 1
