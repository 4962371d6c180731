"""The Deployment controller: its pure rules, and its syncs against an in-memory API.

The ReplicaSet controller does not run here: a small model stands in for it (pods
per ReplicaSet, how many are available, and the status it publishes), so that each
step of a rollout can be checked, including when the ReplicaSet controller lags.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.controller.controller import ControllerContext, TerminalError
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.deployment import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
    DeploymentController,
    calculate_status,
    cleanup_candidates,
    compute_hash,
    deployment_timed_out,
    equal_ignore_hash,
    find_active_or_latest,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    proportional_sizes,
    resolve_fenceposts,
    rolling_scale_down_plan,
    scaled_value,
    set_new_replica_set_annotations,
    unhealthy_cleanup_plan,
)

NS = "ns"
T0 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


def template(labels: dict[str, str], image: str = "busybox:1") -> dict[str, Any]:
    return {
        "metadata": {"labels": dict(labels)},
        "spec": {"containers": [{"name": "c", "image": image}]},
    }


def deployment(
    name: str = "web",
    replicas: int = 10,
    *,
    surge: int | str = 2,
    unavailable: int | str = 1,
    strategy: str = "RollingUpdate",
    image: str = "busybox:1",
    **spec: Any,
) -> dict[str, Any]:
    labels = {"app": name}
    strat: dict[str, Any] = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "generation": 1, "uid": "d-uid"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": template(labels, image),
            "strategy": strat,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            **spec,
        },
    }


def rs(
    name: str,
    replicas: int,
    *,
    available: int | None = None,
    created: float = T0,
    annotations: dict[str, str] | None = None,
    status_replicas: int | None = None,
) -> dict[str, Any]:
    avail = replicas if available is None else available
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": ts(created),
            "annotations": dict(annotations or {}),
            "generation": 1,
        },
        "spec": {"replicas": replicas, "template": template({"app": "x"})},
        "status": {
            "replicas": replicas if status_replicas is None else status_replicas,
            "availableReplicas": avail,
            "readyReplicas": avail,
            "observedGeneration": 1,
        },
    }


# -- pure rules ----------------------------------------------------------------------------


def test_scaled_values_round_as_kubernetes() -> None:
    assert scaled_value(3, 10, True) == 3
    assert scaled_value("25%", 10, True) == 3  # 2.5 up
    assert scaled_value("25%", 10, False) == 2  # 2.5 down
    assert scaled_value("0%", 10, True) == 0
    assert scaled_value(None, 10, True) == 0
    with pytest.raises(ValueError, match="not a percentage"):
        scaled_value("3", 10, True)
    with pytest.raises(ValueError):
        scaled_value("x%", 10, True)
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts(2, 1, 10) == (2, 1)
    assert resolve_fenceposts(0, 0, 10) == (0, 1)  # both zero: one may be unavailable
    assert resolve_fenceposts("10%", "10%", 3) == (1, 0)
    assert resolve_fenceposts("1%", "1%", 3) == (1, 0)
    assert resolve_fenceposts(0, "10%", 3) == (0, 1)  # 0.3 rounds to 0, then 1


def test_surge_and_unavailable_of_a_deployment() -> None:
    d = deployment(replicas=10, surge="25%", unavailable="25%")
    assert (max_surge(d), max_unavailable(d)) == (3, 2)
    d = deployment(replicas=2, surge=0, unavailable=5)
    assert max_unavailable(d) == 2  # never more than replicas
    d = deployment(replicas=0)
    assert max_unavailable(d) == 0
    d = deployment(strategy="Recreate")
    assert (max_surge(d), max_unavailable(d)) == (0, 0)
    bad = deployment(surge="lots")
    with pytest.raises(TerminalError, match="not a percentage"):
        max_surge(bad)


def test_hash_is_stable_short_and_alphanumeric() -> None:
    t = template({"app": "web"})
    h = compute_hash(t)
    assert h == compute_hash(template({"app": "web"}))
    assert 1 <= len(h) <= 10 and h.isalnum() and not set(h) & set("aeiou013")
    assert compute_hash(template({"app": "web"}, "busybox:2")) != h
    assert compute_hash(t, 0) != h and compute_hash(t, 1) != compute_hash(t, 0)
    # Nulls and empties (as a Go client writes them) do not change the hash.
    noisy = {**t, "metadata": {**t["metadata"], "creationTimestamp": None, "annotations": {}}}
    assert compute_hash(noisy) == h


def test_equal_ignore_hash() -> None:
    a = template({"app": "web"})
    b = template({"app": "web", POD_TEMPLATE_HASH: "abc"})
    assert equal_ignore_hash(a, b)
    b["metadata"]["creationTimestamp"] = None
    b["spec"]["containers"][0]["resources"] = {}
    assert equal_ignore_hash(a, b)
    assert not equal_ignore_hash(a, template({"app": "web"}, "busybox:2"))
    assert not equal_ignore_hash(a, template({"app": "web", "x": "y"}))


def test_revision_annotations() -> None:
    d = deployment(replicas=4, surge=1)
    d["metadata"]["annotations"] = {
        "kubernetes.io/change-cause": "v2",
        REVISION: "7",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    new = {"metadata": {"name": "web-new"}, "spec": {"replicas": 0}}
    assert set_new_replica_set_annotations(d, new, 3, exists=False)
    assert new["metadata"]["annotations"] == {
        "kubernetes.io/change-cause": "v2",
        REVISION: "3",
        DESIRED_REPLICAS: "4",
        MAX_REPLICAS: "5",
    }
    assert not set_new_replica_set_annotations(d, new, 3, exists=True)  # nothing new
    # A rollback: the old ReplicaSet moves to the top and remembers its revisions.
    old = {"metadata": {"name": "web-old", "annotations": {REVISION: "1"}}}
    assert set_new_replica_set_annotations(d, old, 4, exists=True)
    assert old["metadata"]["annotations"][REVISION] == "4"
    assert old["metadata"]["annotations"][REVISION_HISTORY] == "1"
    set_new_replica_set_annotations(d, old, 6, exists=True)
    assert old["metadata"]["annotations"][REVISION_HISTORY] == "1,4"
    assert DESIRED_REPLICAS not in old["metadata"]["annotations"]  # scaling sets these
    # A higher revision is never lowered.
    assert not set_new_replica_set_annotations(d, old, 2, exists=True)
    assert old["metadata"]["annotations"][REVISION] == "6"


def test_new_replica_set_size() -> None:
    d = deployment(replicas=10, surge=2, unavailable=1)
    old, new = rs("old", 10), rs("new", 0)
    assert new_rs_new_replicas(d, [old, new], new) == 2
    old["spec"]["replicas"] = 9
    new["spec"]["replicas"] = 2
    # The old ReplicaSet still runs 10 pods: no more surge until they are gone.
    assert new_rs_new_replicas(d, [old, new], new) == 2
    old["status"]["replicas"] = 9
    assert new_rs_new_replicas(d, [old, new], new) == 3
    old["spec"]["replicas"] = old["status"]["replicas"] = 0
    assert new_rs_new_replicas(d, [old, new], new) == 10  # never above replicas
    recreate = deployment(replicas=5, strategy="Recreate")
    assert new_rs_new_replicas(recreate, [rs("o", 5), rs("n", 0)], rs("n", 0)) == 5


def test_rolling_scale_down_steps() -> None:
    d = deployment(replicas=10, surge=2, unavailable=1)
    old, new = rs("old", 10, created=T0), rs("new", 2, available=0, created=T0 + 1)
    assert rolling_scale_down_plan(d, [old, new], [old]) == [(old, 9)]
    # Availability counts what the old set keeps: a scale-down not yet carried out counts.
    old["spec"]["replicas"] = 9
    assert rolling_scale_down_plan(d, [old, new], [old]) == []
    new["status"]["availableReplicas"] = 2
    assert rolling_scale_down_plan(d, [old, new], [old]) == [(old, 7)]
    # Oldest first across several old sets.
    older = rs("older", 3, created=T0 - 10)
    plan = rolling_scale_down_plan(d, [older, old, new], [old, older])
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("older", 0), ("old", 7)]


def test_unhealthy_replicas_go_first() -> None:
    a = rs("a", 5, available=2, created=T0)
    b = rs("b", 4, available=0, created=T0 + 1)
    c = rs("c", 3, created=T0 + 2)
    plan = unhealthy_cleanup_plan([c, b, a], 4)
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("a", 2), ("b", 3)]
    assert unhealthy_cleanup_plan([c], 4) == []


def test_proportional_scaling() -> None:
    d = deployment(replicas=20, surge="25%", unavailable="25%")
    d["status"] = {"replicas": 13}
    ann = {MAX_REPLICAS: "13", DESIRED_REPLICAS: "10"}
    old = rs("old", 8, created=T0, annotations=ann)
    new = rs("new", 5, available=0, created=T0 + 1, annotations=ann)
    plan, op = proportional_sizes(d, [old, new])
    assert op == "up"
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("old", 15), ("new", 10)]
    # Back down to 10: 25 spread over the same proportion.
    d2 = deployment(replicas=10, surge="25%", unavailable="25%")
    ann2 = {MAX_REPLICAS: "25", DESIRED_REPLICAS: "20"}
    old2 = rs("old", 15, created=T0, annotations=ann2)
    new2 = rs("new", 10, created=T0 + 1, annotations=ann2)
    plan, op = proportional_sizes(d2, [old2, new2])
    assert op == "down"
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("old", 8), ("new", 5)]
    # Equal sizes: scaling up favours the newer, down the older.
    d3 = deployment(replicas=5, surge=0, unavailable=1)
    ann3 = {MAX_REPLICAS: "4"}
    a = rs("a", 2, created=T0, annotations=ann3)
    b = rs("b", 2, created=T0 + 1, annotations=ann3)
    plan, _ = proportional_sizes(d3, [a, b])
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("b", 3), ("a", 2)]
    d4 = deployment(replicas=3, surge=0, unavailable=1)
    plan, _ = proportional_sizes(d4, [a, b])
    assert [(r["metadata"]["name"], n) for r, n in plan] == [("a", 1), ("b", 2)]
    # Scaling to zero empties them all.
    plan, _ = proportional_sizes(deployment(replicas=0), [a, b])
    assert sorted(n for _, n in plan) == [0, 0]


def test_active_or_latest() -> None:
    a, b = rs("a", 0, created=T0), rs("b", 0, created=T0 + 1)
    assert find_active_or_latest(None, [a, b]) is b
    n = rs("n", 0, created=T0 + 2)
    assert find_active_or_latest(n, [a, b]) is n
    a["spec"]["replicas"] = 3
    assert find_active_or_latest(n, [a, b]) is a
    n["spec"]["replicas"] = 1
    assert find_active_or_latest(n, [a, b]) is None


def test_history_cleanup_candidates() -> None:
    d = deployment(revisionHistoryLimit=1)
    r1 = rs("r1", 0, annotations={REVISION: "1"})
    r2 = rs("r2", 0, annotations={REVISION: "2"})
    r3 = rs("r3", 0, annotations={REVISION: "3"}, status_replicas=1)  # pods still there
    assert cleanup_candidates(d, [r2, r1]) == [r1]
    assert cleanup_candidates(d, [r3, r2, r1]) == [r1, r2]  # the newest one stays
    d["spec"]["revisionHistoryLimit"] = 0
    r2["metadata"]["generation"] = 2  # its status has not caught up yet
    assert cleanup_candidates(d, [r3, r2, r1]) == [r1]  # r3 still has pods
    del d["spec"]["revisionHistoryLimit"]
    assert cleanup_candidates(d, [r3, r2, r1]) == []


def test_status_and_conditions() -> None:
    d = deployment(replicas=10, surge=2, unavailable=1)
    d["metadata"]["generation"] = 3
    old = rs("old", 2, available=2)
    new = rs("new", 9, available=7)
    status = calculate_status([old, new], new, d, T0)
    conds = status.pop("conditions")
    assert status == {
        "observedGeneration": 3,
        "replicas": 11,
        "updatedReplicas": 9,
        "readyReplicas": 9,
        "availableReplicas": 9,
        "unavailableReplicas": 2,
    }
    assert [(c["type"], c["status"], c["reason"]) for c in conds] == [
        ("Available", "True", "MinimumReplicasAvailable")
    ]
    new["status"]["availableReplicas"] = 6
    conds = calculate_status([old, new], new, d, T0)["conditions"]
    assert (conds[0]["status"], conds[0]["reason"]) == ("False", "MinimumReplicasUnavailable")
    assert conds[0]["message"] == "Deployment does not have minimum availability."
    # Zero counts are left out, as omitempty leaves them out.
    assert "replicas" not in calculate_status([rs("x", 0)], None, d, T0)


def test_progress_deadline() -> None:
    d = deployment(progressDeadlineSeconds=5)
    status = {
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "lastUpdateTime": ts(T0),
            }
        ]
    }
    assert not deployment_timed_out(d, status, T0 + 5)
    assert deployment_timed_out(d, status, T0 + 6)
    status["conditions"][0]["reason"] = "NewReplicaSetAvailable"
    assert not deployment_timed_out(d, status, T0 + 60)
    d["spec"]["progressDeadlineSeconds"] = 2**31 - 1
    status["conditions"][0]["reason"] = "ReplicaSetUpdated"
    assert not deployment_timed_out(d, status, T0 + 10**6)


# -- syncs against the in-memory API -------------------------------------------------------


class Env:
    """A Deployment controller over a fake API, and a model of the ReplicaSet controller."""

    def __init__(self, fake: FakeApi, c: DeploymentController, clock: Clock) -> None:
        self.fake = fake
        self.c = c
        self.clock = clock
        self.pods: dict[str, list[int]] = {}
        """Per ReplicaSet: [pods running (not terminating), pods available]."""

    async def sync(self, name: str = "web") -> float | None:
        await self.fake.settle(self.c.deployments, self.c.rss, self.c.pods)
        return await self.c.reconcile(f"{NS}/{name}")

    async def get(self, name: str = "web") -> dict[str, Any]:
        return await self.fake.get("deployments", name, NS)

    def rss(self) -> list[dict[str, Any]]:
        return sorted(
            self.fake.list_objects("replicasets", NS),
            key=lambda r: (r["metadata"]["creationTimestamp"], r["metadata"]["name"]),
        )

    def sizes(self) -> list[int]:
        return [r["spec"]["replicas"] for r in self.rss()]

    async def patch(self, patch: dict[str, Any], name: str = "web") -> None:
        await self.fake.patch("deployments", name, patch, NS)

    # -- the model of the ReplicaSet controller and the kubelet ------------------------

    def act(self, name: str, ready: bool = True) -> None:
        """The ReplicaSet controller makes the pods match spec.replicas (unready first to go)."""
        want = next(r for r in self.rss() if r["metadata"]["name"] == name)["spec"]["replicas"]
        pods = self.pods.setdefault(name, [0, 0])
        pods[0] = want
        pods[1] = min(pods[1], want)
        if ready:
            pods[1] = pods[0]

    def ready(self, name: str) -> None:
        pods = self.pods.setdefault(name, [0, 0])
        pods[1] = pods[0]

    async def publish(self, name: str) -> None:
        """The ReplicaSet controller writes what it sees into status."""
        cur = await self.fake.get("replicasets", name, NS)
        running, avail = self.pods.setdefault(name, [0, 0])
        cur["status"] = {
            "replicas": running,
            "readyReplicas": avail,
            "availableReplicas": avail,
            "observedGeneration": cur["metadata"]["generation"],
        }
        await self.fake.update("replicasets", cur, subresource="status")

    async def run_all(self) -> None:
        for r in self.rss():
            self.act(r["metadata"]["name"])
            await self.publish(r["metadata"]["name"])

    async def converge(self, name: str = "web", steps: int = 60) -> None:
        """Sync and run every ReplicaSet until nothing changes any more."""
        for _ in range(steps):
            before = len(self.fake.calls)
            await self.sync(name)
            await self.run_all()
            await self.sync(name)
            if len(self.fake.calls) == before + len(self.rss()) and self.settled():
                return
        raise AssertionError(f"no convergence: {self.sizes()}")

    def settled(self) -> bool:
        return all(
            self.pods.get(r["metadata"]["name"], [0, 0])[0] == r["spec"]["replicas"]
            for r in self.rss()
        )

    def running(self) -> int:
        return sum(p[0] for p in self.pods.values())

    def available(self) -> int:
        return sum(p[1] for p in self.pods.values())

    async def events(self, reason: str | None = None) -> list[str]:
        await self.c.events.flush()
        return [
            e["message"]
            for e in self.fake.list_objects("events", NS)
            if reason is None or e["reason"] == reason
        ]


@contextlib.asynccontextmanager
async def env(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    clock = Clock()
    fake = FakeApi(clock=clock)
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = DeploymentController(ControllerContext(fake, informers, clock=clock))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, c, clock)
    finally:
        await informers.stop()
        await c.stop()


async def create(e: Env, d: dict[str, Any]) -> dict[str, Any]:
    d = {**d, "metadata": {"name": d["metadata"]["name"]}}
    return await e.fake.create("deployments", d, NS)


async def test_creates_the_new_replica_set(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        d = await create(e, deployment(replicas=3))
        await e.sync()
        [r] = e.rss()
        h = compute_hash(d["spec"]["template"])
        assert r["metadata"]["name"] == f"web-{h}"
        assert r["metadata"]["labels"] == {"app": "web", POD_TEMPLATE_HASH: h}
        assert r["spec"]["selector"] == {"matchLabels": {"app": "web", POD_TEMPLATE_HASH: h}}
        assert r["spec"]["template"]["metadata"]["labels"] == r["metadata"]["labels"]
        assert r["spec"]["replicas"] == 3
        assert r["metadata"]["annotations"] == {
            REVISION: "1",
            DESIRED_REPLICAS: "3",
            MAX_REPLICAS: "5",
        }
        ref = r["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "Deployment",
            "web",
            d["metadata"]["uid"],
            True,
        )
        got = await e.get()
        assert got["metadata"]["annotations"][REVISION] == "1"
        prog = {c["type"]: c for c in got["status"]["conditions"]}["Progressing"]
        assert (prog["status"], prog["reason"]) == ("True", "NewReplicaSetCreated")
        assert prog["message"] == f'Created new replica set "web-{h}"'
        assert await e.events("ScalingReplicaSet") == [f"Scaled up replica set web-{h} from 0 to 3"]

        await e.converge()
        got = await e.get()
        status = got["status"]
        assert status["observedGeneration"] == 1
        assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (
            3,
            3,
            3,
        )
        assert "unavailableReplicas" not in status
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert (
            conds["Progressing"]["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
        )
        # Level-triggered: another sync writes nothing.
        before = len(e.fake.calls)
        await e.sync()
        assert len(e.fake.calls) == before


async def test_rolling_update_steps_within_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=10, surge=2, unavailable=1))
        await e.converge()
        first = e.rss()[0]["metadata"]["name"]
        e.clock.t += 10
        await e.patch({"spec": {"template": template({"app": "web"}, "busybox:2")}})
        await e.sync()
        old, new = e.rss()
        assert old["metadata"]["name"] == first
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (9, 2)
        assert new["metadata"]["annotations"][REVISION] == "2"
        assert (await e.get())["metadata"]["annotations"][REVISION] == "2"
        rounds = 0
        while e.sizes() != [0, 10] or not e.settled():
            rounds += 1
            assert rounds < 30
            await e.run_all()
            assert e.running() <= 12 and e.available() >= 9
            await e.sync()
        await e.sync()
        messages = await e.events("ScalingReplicaSet")
        assert f"Scaled down replica set {first} from 10 to 9" in messages
        assert f"Scaled up replica set {new['metadata']['name']} from 0 to 2" in messages
        status = (await e.get())["status"]
        assert (status["replicas"], status["updatedReplicas"]) == (10, 10)
        assert {c["type"]: c["reason"] for c in status["conditions"]} == {
            "Available": "MinimumReplicasAvailable",
            "Progressing": "NewReplicaSetAvailable",
        }


@pytest.mark.parametrize("seed", range(6))
async def test_bounds_hold_when_replica_sets_lag(
    monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """Random interleavings of syncs, ReplicaSet work, readiness and status writes."""
    rnd = random.Random(seed)
    surge, unavailable = rnd.choice([(2, 1), ("25%", "25%"), (0, 1), (3, 0), ("50%", "10%")])
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=10, surge=surge, unavailable=unavailable))
        await e.converge()
        d = await e.get()
        most = 10 + max_surge(d)
        least = 10 - max_unavailable(d)
        for version in (2, 3, 2):
            e.clock.t += 1
            image = f"busybox:{version}"
            await e.patch({"spec": {"template": template({"app": "web"}, image)}})
            for _ in range(2000):
                await e.sync()
                names = [r["metadata"]["name"] for r in e.rss()]
                for _ in range(rnd.randint(0, 3)):
                    name = rnd.choice(names)
                    action = rnd.random()
                    if action < 0.4:
                        e.act(name, ready=False)
                    elif action < 0.7:
                        e.ready(name)
                    else:
                        await e.publish(name)
                    assert e.running() <= most, e.pods
                    assert e.available() >= least, e.pods
                status = (await e.get())["status"]
                if status.get("updatedReplicas") == 10 == status.get("availableReplicas") and (
                    status.get("replicas") == 10
                ):
                    break
            else:
                raise AssertionError(f"rollout to {image} did not finish: {e.pods}")
            e.pods = {k: v for k, v in e.pods.items() if v[0]}
        # The third rollout went back to the template of revision 2: its set was reused.
        assert len(e.rss()) == 3
        revisions = sorted(int(r["metadata"]["annotations"][REVISION]) for r in e.rss())
        assert revisions == [1, 3, 4]
        reused = next(r for r in e.rss() if r["metadata"]["annotations"][REVISION] == "4")
        assert reused["metadata"]["annotations"][REVISION_HISTORY] == "2"


async def test_rollback_reuses_the_old_replica_set(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=3))
        await e.converge()
        v1 = e.rss()[0]
        e.clock.t += 1
        await e.patch({"spec": {"template": template({"app": "web"}, "busybox:2")}})
        await e.converge()
        assert e.sizes() == [0, 3]
        e.clock.t += 1
        # What kubectl rollout undo sends: the old template without its hash label (with a
        # Go client's null creationTimestamp), and the old set's annotations.
        old_template = v1["spec"]["template"]
        old_template["metadata"]["labels"].pop(POD_TEMPLATE_HASH)
        old_template["metadata"]["creationTimestamp"] = None
        await e.fake.patch(
            "deployments",
            "web",
            [
                {"op": "replace", "path": "/spec/template", "value": old_template},
                {"op": "replace", "path": "/metadata/annotations", "value": {REVISION: "2"}},
            ],
            NS,
            type="json",
        )
        await e.converge()
        assert len(e.rss()) == 2
        back = next(r for r in e.rss() if r["metadata"]["name"] == v1["metadata"]["name"])
        assert back["spec"]["replicas"] == 3
        assert back["metadata"]["annotations"][REVISION] == "3"
        assert back["metadata"]["annotations"][REVISION_HISTORY] == "1"
        assert (await e.get())["metadata"]["annotations"][REVISION] == "3"


async def test_recreate_waits_for_old_pods(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=3, strategy="Recreate"))
        await e.converge()
        [old] = e.rss()
        # A pod of the old set, as the pod informer sees it.
        pod = await e.fake.create(
            "pods",
            {
                "metadata": {
                    "name": "old-pod",
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": old["metadata"]["name"],
                            "uid": old["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "status": {"phase": "Running"},
            },
            NS,
        )
        e.clock.t += 1
        await e.patch({"spec": {"template": template({"app": "web"}, "busybox:2")}})
        await e.sync()
        assert e.sizes() == [0]  # scaled down; no new set yet
        await e.sync()
        assert len(e.rss()) == 1  # status still shows the old pods
        e.act(old["metadata"]["name"])
        await e.publish(old["metadata"]["name"])
        await e.sync()
        assert len(e.rss()) == 1  # a pod of the old set is still there (terminating)
        await e.fake.delete("pods", pod["metadata"]["name"], NS)
        await e.fake.settle(e.c.pods)
        assert e.c.queue._dirty  # the pod's deletion queued the Deployment
        await e.sync()
        assert e.sizes() == [0, 3]
        messages = await e.events("ScalingReplicaSet")
        assert messages[-2:] == [
            f"Scaled down replica set {old['metadata']['name']} from 3 to 0",
            f"Scaled up replica set {e.rss()[1]['metadata']['name']} from 0 to 3",
        ]


async def test_pause_scales_without_rolling_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=4))
        await e.converge()
        await e.patch({"spec": {"paused": True}})
        await e.sync()
        cond = {c["type"]: c for c in (await e.get())["status"]["conditions"]}["Progressing"]
        assert (cond["status"], cond["reason"], cond["message"]) == (
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused",
        )
        await e.patch({"spec": {"template": template({"app": "web"}, "busybox:2"), "replicas": 6}})
        await e.converge()
        assert e.sizes() == [6]  # scaled, not rolled out
        status = (await e.get())["status"]
        assert status["observedGeneration"] == (await e.get())["metadata"]["generation"]
        e.clock.t += 1
        await e.patch({"spec": {"paused": False}})
        await e.sync()
        conds = {c["type"]: c for c in (await e.get())["status"]["conditions"]}
        # Resumed, then the rollout went on at once with a new ReplicaSet.
        assert conds["Progressing"]["reason"] == "NewReplicaSetCreated"
        await e.converge()
        assert e.sizes() == [0, 6]


async def test_scaling_mid_rollout_is_proportional(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=10, surge="25%", unavailable="25%"))
        await e.converge()
        e.clock.t += 1
        await e.patch({"spec": {"template": template({"app": "web"}, "busybox:bad")}})
        # The new pods never become available.
        for _ in range(5):
            await e.sync()
            old, new = e.rss()
            e.act(old["metadata"]["name"])
            e.act(new["metadata"]["name"], ready=False)
            await e.publish(old["metadata"]["name"])
            await e.publish(new["metadata"]["name"])
        assert e.sizes() == [8, 5]
        await e.patch({"spec": {"replicas": 20}})
        await e.sync()
        assert e.sizes() == [15, 10]
        for r in e.rss():
            assert r["metadata"]["annotations"][DESIRED_REPLICAS] == "20"
            assert r["metadata"]["annotations"][MAX_REPLICAS] == "25"
        messages = await e.events("ScalingReplicaSet")
        assert messages[-2:] == [
            f"Scaled up replica set {old['metadata']['name']} from 8 to 15",
            f"Scaled up replica set {new['metadata']['name']} from 5 to 10",
        ]


async def test_progress_deadline_exceeded(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=2, progressDeadlineSeconds=5))
        await e.sync()
        [r] = e.rss()
        e.act(r["metadata"]["name"], ready=False)
        await e.publish(r["metadata"]["name"])
        await e.sync()  # pods appeared: progress
        e.clock.t += 2
        after = await e.sync()
        assert after is not None and 3 <= after <= 5  # look again when the deadline passes
        e.clock.t += 4
        await e.sync()
        status = (await e.get())["status"]
        conds = {c["type"]: c for c in status["conditions"]}
        assert (conds["Progressing"]["status"], conds["Progressing"]["reason"]) == (
            "False",
            "ProgressDeadlineExceeded",
        )
        assert conds["Progressing"]["message"] == (
            f'ReplicaSet "{r["metadata"]["name"]}" has timed out progressing.'
        )
        assert (conds["Available"]["status"], conds["Available"]["reason"]) == (
            "False",
            "MinimumReplicasUnavailable",
        )
        # Pausing does not hide a reported lack of progress.
        await e.patch({"spec": {"paused": True}})
        await e.sync()
        conds = {c["type"]: c for c in (await e.get())["status"]["conditions"]}
        assert conds["Progressing"]["reason"] == "ProgressDeadlineExceeded"


async def test_revision_history_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        await create(e, deployment(replicas=2, revisionHistoryLimit=1))
        await e.converge()
        for version in range(2, 5):
            e.clock.t += 1
            await e.patch({"spec": {"template": template({"app": "web"}, f"busybox:{version}")}})
            await e.converge()
        revisions = [r["metadata"]["annotations"][REVISION] for r in e.rss()]
        assert revisions == ["3", "4"]
        assert e.sizes() == [0, 2]


async def test_adopts_orphans_and_bumps_collision_count(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        d = deployment(replicas=2)
        h = compute_hash(d["spec"]["template"])
        # A foreign set holding the name the new set would take, with another template.
        await e.fake.create(
            "replicasets",
            {
                "metadata": {"name": f"web-{h}", "labels": {"other": "x"}},
                "spec": {"replicas": 0, "template": template({"other": "x"})},
            },
            NS,
        )
        # An orphan matching the selector, with the Deployment's template: adopted and used.
        orphan_t = template({"app": "web", POD_TEMPLATE_HASH: "zzz"})
        await e.fake.create(
            "replicasets",
            {
                "metadata": {"name": "web-orphan", "labels": orphan_t["metadata"]["labels"]},
                "spec": {"replicas": 1, "template": orphan_t},
            },
            NS,
        )
        created = await create(e, d)
        await e.sync()
        orphan = await e.fake.get("replicasets", "web-orphan", NS)
        assert orphan["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        await e.converge()
        assert orphan["metadata"]["name"] in [r["metadata"]["name"] for r in e.rss()]
        assert (await e.fake.get("replicasets", "web-orphan", NS))["spec"]["replicas"] == 2

        # Another template whose hash name is taken by a foreign set: collisionCount goes up.
        await e.fake.delete("replicasets", f"web-{h}", NS)
        d2 = deployment(replicas=2, image="busybox:2")
        h2 = compute_hash(d2["spec"]["template"])
        await e.fake.create(
            "replicasets",
            {
                "metadata": {"name": f"web-{h2}", "labels": {"other": "x"}},
                "spec": {"replicas": 0, "template": template({"other": "x"})},
            },
            NS,
        )
        await e.patch({"spec": {"template": d2["spec"]["template"]}})
        with pytest.raises(ApiError, match="already exists"):
            await e.sync()
        assert (await e.get())["status"]["collisionCount"] == 1
        await e.sync()
        h3 = compute_hash(d2["spec"]["template"], 1)
        assert f"web-{h3}" in [r["metadata"]["name"] for r in e.rss()]


async def test_selector_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    async with env(monkeypatch) as e:
        d = deployment(name="all")
        d["spec"]["selector"] = {}
        await create(e, d)
        assert await e.sync("all") is None
        assert e.rss() == []
        assert await e.events("SelectingAll") == [
            "This deployment is selecting all pods. A non-empty selector is required."
        ]
        assert (await e.get("all"))["status"]["observedGeneration"] == 1
        bad = deployment(name="bad")
        bad["spec"]["selector"] = {"matchLabels": {"app": "other"}}
        await create(e, bad)
        with pytest.raises(TerminalError, match="does not match"):
            await e.sync("bad")
        assert await e.sync("gone") is None
