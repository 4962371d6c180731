"""The DaemonSet controller against an in-memory API (informers running for real)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.daemonset import (
    DaemonSetController,
    node_affinity_matches,
    scaled_value,
    should_run,
    target_node,
)
from skiff.controllers.history import CONTROLLER_REVISION_HASH_LABEL

NS = "ns"


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2025, 1, 1, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.t


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def daemon_set(name: str, *, image: str = "agent", pod_spec: Any = None, **spec: Any) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": image}], **(pod_spec or {})},
            },
            **spec,
        },
    }


def node(name: str, labels: dict[str, str] | None = None, taints: Any = None) -> dict:
    obj: dict[str, Any] = {"metadata": {"name": name, "labels": labels or {}}, "spec": {}}
    if taints:
        obj["spec"]["taints"] = taints
    return obj


class Env:
    def __init__(self, fake: FakeApi, controller: DaemonSetController, clock: Clock) -> None:
        self.fake = fake
        self.c = controller
        self.clock = clock

    async def sync(self, name: str) -> float | None:
        await self.fake.settle(self.c.sets, self.c.pods, self.c.nodes, self.c.revisions)
        return await self.c.reconcile(f"{NS}/{name}")

    def pods(self) -> list[dict[str, Any]]:
        return self.fake.list_objects("pods", NS)

    def by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.pods():
            out.setdefault(target_node(p) or "", []).append(p["metadata"]["name"])
        return out

    async def get(self, name: str) -> dict[str, Any]:
        return await self.fake.get("daemonsets", name, NS)

    async def schedule_all(self, *, ready: bool = True) -> None:
        """What the scheduler and kubelets do: bind to the target node, Running and Ready."""
        for p in self.pods():
            if (p.get("status") or {}).get("phase") == "Running":
                continue
            status = {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "lastTransitionTime": ts(self.clock.t),
                    }
                ],
            }
            patch = {"spec": {"nodeName": target_node(p)}, "status": status}
            await self.fake.patch("pods", p["metadata"]["name"], patch, NS)

    async def converge(self, name: str, rounds: int = 20) -> None:
        for _ in range(rounds):
            before = len(self.fake.calls)
            await self.sync(name)
            await self.schedule_all()
            await self.sync(name)
            if len(self.fake.calls) == before:
                return
        raise AssertionError("the daemon set does not converge")


@contextlib.asynccontextmanager
async def env(*nodes: dict[str, Any]) -> AsyncIterator[Env]:
    fake = FakeApi()
    for n in nodes:
        await fake.create("nodes", n)
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    ctx = ControllerContext(fake, informers, clock=clock)  # type: ignore[arg-type]
    controller = DaemonSetController(ctx)
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, controller, clock)
    finally:
        await informers.stop()
        await controller.stop()


def test_node_eligibility() -> None:
    n = node("n1", {"disk": "ssd", "zone": "a", "cores": "8"})
    assert node_affinity_matches({"nodeSelector": {"disk": "ssd"}}, n)
    assert not node_affinity_matches({"nodeSelector": {"disk": "hdd"}}, n)

    def required(*terms: Any) -> dict:
        return {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": list(terms)
                    }
                }
            }
        }

    zone_b = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}
    big = {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}
    named = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    assert not node_affinity_matches(required(zone_b), n)
    assert node_affinity_matches(required(zone_b, big), n)  # terms are ORed
    assert node_affinity_matches(required(named), n)
    assert not node_affinity_matches(required({}), n)  # an empty term matches nothing

    taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}

    ds = daemon_set("d")
    assert should_run(node("a", taints=[taint]), ds) == (False, True)
    noexec = {**taint, "effect": "NoExecute"}
    assert should_run(node("a", taints=[noexec]), ds) == (False, False)
    # Daemon pods tolerate node problems.
    for key in ("not-ready", "unreachable"):
        t = {"key": f"node.kubernetes.io/{key}", "effect": "NoExecute"}
        assert should_run(node("a", taints=[t]), ds) == (True, True)
    cordoned = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
    assert should_run(node("a", taints=[cordoned]), ds) == (True, True)
    net = {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}
    assert should_run(node("a", taints=[net]), ds) == (False, True)
    host = daemon_set("h", pod_spec={"hostNetwork": True})
    assert should_run(node("a", taints=[net]), host) == (True, True)

    assert scaled_value("25%", 10, round_up=True) == 3
    assert scaled_value("25%", 10, round_up=False) == 2
    assert scaled_value(2, 10, round_up=True) == 2


async def test_one_pod_per_eligible_node() -> None:
    nodes = [node("n1", {"role": "edge"}), node("n2", {"role": "edge"}), node("n3")]
    async with env(*nodes) as e:
        ds = await e.fake.create(
            "daemonsets", daemon_set("agent", pod_spec={"nodeSelector": {"role": "edge"}}), NS
        )
        await e.sync("agent")
        assert {k: len(v) for k, v in e.by_node().items()} == {"n1": 1, "n2": 1}
        pod = e.pods()[0]
        spec = pod["spec"]
        assert "nodeName" not in spec  # the scheduler binds it
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchFields"][0]["key"] == "metadata.name"
        keys = {(t["key"], t["effect"]) for t in spec["tolerations"]}
        assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
        assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
        assert len(keys) == 6
        labels = pod["metadata"]["labels"]
        assert labels["app"] == "agent" and labels[CONTROLLER_REVISION_HASH_LABEL]
        assert pod["metadata"]["ownerReferences"][0]["uid"] == ds["metadata"]["uid"]
        assert pod["metadata"]["name"].startswith("agent-")
        await e.sync("agent")
        assert len(e.pods()) == 2  # expectations met, nothing more
        status = (await e.get("agent"))["status"]
        assert status["desiredNumberScheduled"] == 2 and status["currentNumberScheduled"] == 2
        assert status["numberReady"] == 0 and status["numberUnavailable"] == 2
        await e.schedule_all()
        await e.sync("agent")
        status = (await e.get("agent"))["status"]
        assert status["numberReady"] == 2 and status["numberAvailable"] == 2
        assert status["updatedNumberScheduled"] == 2 and status["numberMisscheduled"] == 0
        assert status["observedGeneration"] == 1

        # A node joins; a node stops matching (its pod goes); a node is deleted.
        await e.fake.create("nodes", node("n4", {"role": "edge"}))
        await e.fake.patch("nodes", "n2", {"metadata": {"labels": {"role": None}}})
        await e.sync("agent")
        assert sorted(e.by_node()) == ["n1", "n4"]
        await e.fake.delete("nodes", "n1")
        await e.sync("agent")
        assert sorted(e.by_node()) == ["n4"]
        forced = [c for c in e.fake.calls if c[0] == "delete" and c[1] == "pods"]
        assert len(forced) == 2


async def test_taints_and_tolerations() -> None:
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    async with env(node("n1"), node("n2", taints=[gpu])) as e:
        await e.fake.create("daemonsets", daemon_set("agent"), NS)
        await e.converge("agent")
        assert sorted(e.by_node()) == ["n1"]
        # NoExecute: the running pod goes.
        evict = {"key": "maintenance", "effect": "NoExecute"}
        await e.fake.patch("nodes", "n1", {"spec": {"taints": [evict]}})
        await e.sync("agent")
        assert e.by_node() == {}
        # A toleration lets it on the tainted node.
        tol = {"key": "dedicated", "operator": "Exists"}
        template = (await e.get("agent"))["spec"]["template"]
        template["spec"]["tolerations"] = [tol]
        await e.fake.patch("daemonsets", "agent", {"spec": {"template": template}}, NS)
        await e.converge("agent")
        assert sorted(e.by_node()) == ["n2"]


async def test_rolling_update_respects_max_unavailable() -> None:
    nodes = [node(f"n{i}") for i in range(4)]
    async with env(*nodes) as e:
        await e.fake.create("daemonsets", daemon_set("agent"), NS)
        await e.converge("agent")
        old_hash = e.pods()[0]["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL]
        template = (await e.get("agent"))["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "agent:2"
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}
        await e.fake.patch(
            "daemonsets", "agent", {"spec": {"template": template, "updateStrategy": strategy}}, NS
        )
        seen_unavailable = []
        for _ in range(20):
            await e.sync("agent")
            pods = e.pods()
            ready = [
                p
                for p in pods
                if (p.get("status") or {}).get("phase") == "Running"
                and not p["metadata"].get("deletionTimestamp")
            ]
            seen_unavailable.append(4 - len(ready))
            await e.schedule_all()
            hashes = {p["metadata"]["labels"][CONTROLLER_REVISION_HASH_LABEL] for p in e.pods()}
            if len(e.pods()) == 4 and old_hash not in hashes:
                break
        assert max(seen_unavailable) == 2
        assert len(e.pods()) == 4
        await e.sync("agent")
        status = (await e.get("agent"))["status"]
        assert status["updatedNumberScheduled"] == 4 and status["numberAvailable"] == 4
        revisions = e.fake.list_objects("controllerrevisions", NS)
        assert sorted(r["revision"] for r in revisions) == [1, 2]


async def test_rolling_update_with_max_surge() -> None:
    async with env(node("n1"), node("n2")) as e:
        strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
        await e.fake.create("daemonsets", daemon_set("agent", updateStrategy=strategy), NS)
        await e.converge("agent")
        template = (await e.get("agent"))["spec"]["template"]
        template["spec"]["containers"][0]["image"] = "agent:2"
        await e.fake.patch("daemonsets", "agent", {"spec": {"template": template}}, NS)
        await e.sync("agent")
        counts = {n: len(p) for n, p in e.by_node().items()}
        assert sorted(counts.values()) == [1, 2]  # one new pod beside its old one
        await e.sync("agent")
        assert len(e.pods()) == 3  # the new pod is not available yet: no more surge
        for _ in range(20):
            await e.schedule_all()
            await e.sync("agent")
            pods = e.pods()
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            assert len(running) >= 2  # maxUnavailable 0: never fewer than two available
            assert len(pods) <= 3  # maxSurge 1
            assert all(len(p) <= 2 for p in e.by_node().values())
            if {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:2"}:
                break
        await e.converge("agent")
        assert {len(p) for p in e.by_node().values()} == {1}
        assert {p["spec"]["containers"][0]["image"] for p in e.pods()} == {"agent:2"}


async def test_failed_pod_is_replaced_with_backoff() -> None:
    async with env(node("n1")) as e:
        await e.fake.create("daemonsets", daemon_set("agent"), NS)
        await e.converge("agent")
        name = e.pods()[0]["metadata"]["name"]
        await e.fake.patch("pods", name, {"status": {"phase": "Failed"}}, NS)
        await e.sync("agent")
        assert name not in {p["metadata"]["name"] for p in e.pods()}
        await e.sync("agent")
        assert len(e.pods()) == 1
        name = e.pods()[0]["metadata"]["name"]
        await e.fake.patch("pods", name, {"status": {"phase": "Failed"}}, NS)
        requeue = await e.sync("agent")
        assert requeue is not None and 0 < requeue <= 2  # backing off
        assert [p["metadata"]["name"] for p in e.pods()] == [name]
        e.clock.t += 2
        await e.sync("agent")
        assert e.pods() == []


async def test_slow_cache_creates_no_duplicates() -> None:
    async with env(node("n1"), node("n2")) as e:
        await e.fake.create("daemonsets", daemon_set("agent"), NS)
        await e.fake.settle(e.c.sets, e.c.nodes)
        e.fake.hold()
        await e.c.reconcile(f"{NS}/agent")
        await e.c.reconcile(f"{NS}/agent")
        assert len(e.fake.writes("create", "pods")) == 2
        e.fake.release()
        await e.sync("agent")
        assert len(e.fake.writes("create", "pods")) == 2


async def test_a_restarted_controller_creates_nothing_twice() -> None:
    async with env(node("n1"), node("n2")) as e:
        await e.fake.create("daemonsets", daemon_set("agent"), NS)
        await e.sync("agent")
        assert len(e.fake.writes("create", "pods")) == 2
        # A new leader: fresh caches and expectations, the same API.
        informers = SharedInformers(e.fake)  # type: ignore[arg-type]
        ctx = ControllerContext(e.fake, informers, clock=e.clock)  # type: ignore[arg-type]
        again = DaemonSetController(ctx)
        informers.start()
        try:
            await informers.wait_synced(timeout=5)
            await e.fake.settle(again.sets, again.pods, again.nodes, again.revisions)
            await again.reconcile(f"{NS}/agent")
            assert len(e.fake.writes("create", "pods")) == 2
            assert len(e.fake.writes("create", "controllerrevisions")) == 1
        finally:
            await informers.stop()
            await again.stop()
