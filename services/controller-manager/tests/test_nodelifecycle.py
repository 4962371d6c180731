"""Node lifecycle and taint eviction against an in-memory API, on a controllable clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.nodelifecycle import (
    LifecycleSettings,
    NodeLifecycleController,
    RateLimiter,
    TaintEvictionController,
    ZoneState,
    compute_zone_state,
    parse_duration,
)

LEASES = "leases.coordination.k8s.io"
NS = "ns"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"


class Clock:
    def __init__(self) -> None:
        self.t = float(int(time.time()))  # object timestamps come from the real clock

    def __call__(self) -> float:
        return self.t


def ts(t: float, micro: bool = False) -> str:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def conditions(ready: str, at: float, **extra: str) -> list[dict[str, Any]]:
    out = [
        {
            "type": "Ready",
            "status": ready,
            "reason": "KubeletReady" if ready == "True" else "KubeletNotReady",
            "lastHeartbeatTime": ts(at),
            "lastTransitionTime": ts(at),
        }
    ]
    for ctype in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        out.append(
            {
                "type": ctype,
                "status": extra.get(ctype, "False"),
                "lastHeartbeatTime": ts(at),
                "lastTransitionTime": ts(at),
            }
        )
    return out


def taint_ids(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node.get("spec", {}).get("taints") or ()}


class Env:
    def __init__(
        self,
        fake: FakeApi,
        life: NodeLifecycleController,
        evict: TaintEvictionController,
        clock: Clock,
    ) -> None:
        self.fake = fake
        self.life = life
        self.evict = evict
        self.clock = clock

    async def settle(self) -> None:
        await self.fake.settle(self.life.nodes, self.life.leases, self.life.pods)

    async def sync(self, name: str) -> float | None:
        await self.settle()
        return await self.life.reconcile(name)

    async def sync_pod(self, name: str) -> float | None:
        await self.settle()
        return await self.evict.reconcile(f"{NS}/{name}")

    async def add_node(self, name: str, ready: str = "True", **spec: Any) -> None:
        await self.fake.create(
            "nodes",
            {
                "metadata": {"name": name},
                "spec": spec,
                "status": {"conditions": conditions(ready, self.clock.t)},
            },
        )
        await self.renew(name)

    async def renew(self, name: str) -> None:
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": 40,
            "renewTime": ts(self.clock.t, True),
        }
        try:
            await self.fake.patch(LEASES, name, {"spec": spec}, "kube-node-lease")
        except Exception:
            await self.fake.create(
                LEASES, {"metadata": {"name": name}, "spec": spec}, "kube-node-lease"
            )

    async def post_status(self, name: str, ready: str = "True", **extra: str) -> None:
        await self.fake.patch(
            "nodes", name, {"status": {"conditions": conditions(ready, self.clock.t, **extra)}}
        )

    async def node(self, name: str) -> dict[str, Any]:
        return await self.fake.get("nodes", name)

    async def add_pod(
        self,
        name: str,
        node: str,
        tolerations: list[dict[str, Any]] | None = None,
        scheduled_at: float | None = None,
    ) -> None:
        at = self.clock.t if scheduled_at is None else scheduled_at
        await self.fake.create(
            "pods",
            {
                "metadata": {"name": name},
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "c", "image": "busybox"}],
                    "tolerations": tolerations or [],
                },
                "status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(at)},
                        {"type": "Ready", "status": "True", "lastTransitionTime": ts(at)},
                    ],
                },
            },
            NS,
        )

    async def events(self, reason: str) -> list[dict[str, Any]]:
        await self.life.events.flush()
        await self.evict.events.flush()
        return [e for e in self.fake.list_objects("events") if e["reason"] == reason]


@contextlib.asynccontextmanager
async def env(**settings: Any) -> AsyncIterator[Env]:
    fake = FakeApi()
    fake.graceful_pod_delete = True
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers, clock=clock)  # type: ignore[arg-type]
    s = LifecycleSettings(**settings)
    life = NodeLifecycleController(ctx, settings=s)
    evict = TaintEvictionController(ctx, settings=s)
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, life, evict, clock)
    finally:
        await informers.stop()
        await life.stop()
        await evict.stop()


# -- pure helpers ----------------------------------------------------------------------


def test_parse_duration_and_settings() -> None:
    assert parse_duration("40s") == 40
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("4") == 4
    for bad in ("", "4x", "s", "1m 2s"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    s = LifecycleSettings()
    assert (s.monitor_grace_period, s.eviction_rate, s.startup_grace_period) == (40, 0.1, 60)


def test_zone_states_and_rate_limiter() -> None:
    assert compute_zone_state([True, False], 0.55) == ZoneState.NORMAL
    assert compute_zone_state([False, False], 0.55) == ZoneState.FULL_DISRUPTION
    assert compute_zone_state([True, False, False], 0.55) == ZoneState.NORMAL  # only 2 down
    assert compute_zone_state([True, False, False, False], 0.55) == ZoneState.PARTIAL_DISRUPTION
    r = RateLimiter(0.1)
    assert r.reserve(100.0) == 0
    assert r.reserve(101.0) == pytest.approx(9.0)
    assert r.reserve(110.0) == 0
    assert RateLimiter(0).reserve(0) is None


# -- node lifecycle --------------------------------------------------------------------


async def test_silent_node_becomes_unknown_tainted_and_its_pods_not_ready() -> None:
    async with env() as e:
        await e.add_node("n0")
        await e.add_node("n1")
        await e.add_pod("p", "n0")
        wait = await e.sync("n0")
        assert wait == pytest.approx(40, abs=0.1)
        assert taint_ids(await e.node("n0")) == set()
        e.clock.t += 30
        await e.renew("n0")  # the Lease alone keeps a node alive
        await e.renew("n1")
        await e.sync("n0")
        e.clock.t += 30
        await e.renew("n1")
        await e.sync("n1")
        assert (await e.sync("n0")) == pytest.approx(10, abs=0.1)
        e.clock.t += 11
        await e.sync("n0")
        node = await e.node("n0")
        by_type = {c["type"]: c for c in node["status"]["conditions"]}
        assert by_type["Ready"]["status"] == "Unknown"
        assert by_type["Ready"]["reason"] == "NodeStatusUnknown"
        assert by_type["Ready"]["message"] == "Kubelet stopped posting node status."
        assert by_type["Ready"]["lastTransitionTime"] == ts(e.clock.t)
        assert {
            by_type[t]["status"] for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
        } == {"Unknown"}
        assert taint_ids(node) == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
        assert all(t["timeAdded"] == ts(e.clock.t) for t in node["spec"]["taints"])
        pod = await e.fake.get("pods", "p", NS)
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "False"
        assert {ev["message"] for ev in await e.events("NodeNotReady")} == {
            "Node n0 status is now: NodeNotReady",
            "Node is not ready",
        }
        writes = len(e.fake.calls)
        await e.sync("n0")
        assert len(e.fake.calls) == writes  # nothing more to do

        # The kubelet is back: Ready again, the taints go.
        await e.post_status("n0")
        await e.renew("n0")
        await e.sync("n0")
        assert taint_ids(await e.node("n0")) == set()


async def test_not_ready_pressure_and_cordoned_nodes_are_tainted() -> None:
    async with env() as e:
        await e.add_node("ok")
        await e.add_node("n", unschedulable=True)
        await e.post_status("n", "False", MemoryPressure="True")
        await e.sync("ok")
        await e.sync("n")
        assert taint_ids(await e.node("n")) == {
            (NOT_READY, "NoSchedule"),
            (NOT_READY, "NoExecute"),
            ("node.kubernetes.io/memory-pressure", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        }
        # Silent too now: the NoExecute taint is swapped at once, whatever the rate.
        e.clock.t += 41
        await e.renew("ok")
        await e.sync("ok")
        await e.sync("n")
        assert taint_ids(await e.node("n")) == {
            (UNREACHABLE, "NoSchedule"),
            (UNREACHABLE, "NoExecute"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        }
        # Someone else's taints are kept.
        node = await e.node("n")
        node["spec"]["taints"].append({"key": "dedicated", "value": "x", "effect": "NoSchedule"})
        await e.fake.update("nodes", node)
        await e.post_status("n")
        await e.renew("n")
        await e.sync("n")
        assert taint_ids(await e.node("n")) == {
            ("dedicated", "NoSchedule"),
            ("node.kubernetes.io/unschedulable", "NoSchedule"),
        }


async def test_no_execute_taints_are_rate_limited_per_zone() -> None:
    async with env(eviction_rate=0.1) as e:
        for name in ("a", "b", "c"):
            await e.add_node(name)
            await e.sync(name)  # first sight: a full grace period from now
        e.clock.t += 41
        await e.renew("c")
        await e.sync("c")
        await e.sync("a")
        assert (UNREACHABLE, "NoExecute") in taint_ids(await e.node("a"))
        wait = await e.sync("b")
        assert wait == pytest.approx(10, abs=0.1)
        assert taint_ids(await e.node("b")) == {(UNREACHABLE, "NoSchedule")}
        e.clock.t += 10
        await e.renew("c")
        await e.sync("b")
        assert (UNREACHABLE, "NoExecute") in taint_ids(await e.node("b"))


async def test_all_nodes_down_evicts_nothing() -> None:
    async with env(eviction_rate=100) as e:
        await e.add_node("a")
        await e.add_node("b")
        await e.sync("a")
        await e.sync("b")
        e.clock.t += 41
        await e.sync("a")  # b still counts as ready: a is tainted
        await e.sync("b")  # now every node is down: master disruption mode
        await e.sync("a")
        for name in ("a", "b"):
            assert taint_ids(await e.node(name)) == {(UNREACHABLE, "NoSchedule")}
        assert e.life.all_disrupted
        await e.post_status("a")
        await e.renew("a")
        await e.sync("a")
        await e.sync("b")
        assert not e.life.all_disrupted
        assert taint_ids(await e.node("b")) == {
            (UNREACHABLE, "NoSchedule"),
            (UNREACHABLE, "NoExecute"),
        }


async def test_node_that_never_posted_status_gets_the_startup_grace_period() -> None:
    async with env() as e:
        await e.add_node("ok")
        await e.fake.create("nodes", {"metadata": {"name": "mute"}})
        wait = await e.sync("mute")
        assert 50 < (wait or 0) <= 60.1
        e.clock.t += 61
        await e.renew("ok")
        await e.sync("ok")
        await e.sync("mute")
        by_type = {c["type"]: c for c in (await e.node("mute"))["status"]["conditions"]}
        assert by_type["Ready"]["status"] == "Unknown"
        assert by_type["Ready"]["reason"] == "NodeStatusNeverUpdated"
        assert by_type["Ready"]["message"] == "Kubelet never posted node status."


# -- taint eviction --------------------------------------------------------------------


def toleration(key: str, seconds: int | None) -> dict[str, Any]:
    t: dict[str, Any] = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


async def taint(e: Env, node: str, key: str = UNREACHABLE, at: float | None = None) -> None:
    n = await e.node(node)
    n["spec"]["taints"] = [{"key": key, "effect": "NoExecute", "timeAdded": ts(at or e.clock.t)}]
    await e.fake.update("nodes", n)


async def test_pods_that_do_not_tolerate_are_evicted_at_once() -> None:
    async with env() as e:
        await e.add_node("n")
        await e.add_pod("p", "n")
        await e.add_pod("forever", "n", [toleration(UNREACHABLE, None)])
        await taint(e, "n")
        assert await e.sync_pod("p") is None
        assert await e.sync_pod("forever") is None
        pod = await e.fake.get("pods", "p", NS)
        assert pod["metadata"]["deletionTimestamp"]
        target = next(c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget")
        assert target["status"] == "True"
        assert target["reason"] == "DeletionByTaintManager"
        assert target["message"] == "Taint manager: deleting due to NoExecute taint"
        assert not (await e.fake.get("pods", "forever", NS))["metadata"].get("deletionTimestamp")
        events = await e.events("TaintManagerEviction")
        assert [ev["message"] for ev in events] == [f"Marking for deletion Pod {NS}/p"]


async def test_toleration_seconds_delay_the_eviction() -> None:
    async with env() as e:
        await e.add_node("n")
        await e.add_pod("p", "n", [toleration(UNREACHABLE, 300)], scheduled_at=e.clock.t - 500)
        await taint(e, "n", at=e.clock.t - 100)
        wait = await e.sync_pod("p")
        assert wait == pytest.approx(200, abs=0.1)
        e.clock.t += 199
        assert await e.sync_pod("p") == pytest.approx(1, abs=0.1)
        e.clock.t += 1
        await e.sync_pod("p")
        assert (await e.fake.get("pods", "p", NS))["metadata"]["deletionTimestamp"]


async def test_time_counts_from_scheduling_and_removal_cancels() -> None:
    async with env() as e:
        await e.add_node("n")
        await taint(e, "n", at=e.clock.t - 1000)
        await e.add_pod("late", "n", [toleration(UNREACHABLE, 60)])  # scheduled now
        assert await e.sync_pod("late") == pytest.approx(60, abs=0.1)
        node = await e.node("n")
        node["spec"].pop("taints")
        await e.fake.update("nodes", node)
        assert await e.sync_pod("late") is None
        events = await e.events("TaintManagerEviction")
        assert [ev["message"] for ev in events] == [f"Cancelling deletion of Pod {NS}/late"]
        e.clock.t += 100
        await e.sync_pod("late")
        assert not (await e.fake.get("pods", "late", NS))["metadata"].get("deletionTimestamp")
