"""The controller manager against a real apiserver, scheduler and hollow nodes.

Every pod event in the test namespace is watched (an informer in the test) so that
the number of active pods of a ReplicaSet is checked at every observed moment, not
only at the end.
"""

from __future__ import annotations

import asyncio
import signal
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import Managers, PodTracker, until

from cluster import Cluster, free_port
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "controllers"


@pytest.fixture(scope="module")
def cc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "controllers")


@pytest.fixture(scope="module")
async def hollow(cc: Cluster) -> AsyncIterator[HollowEnv]:
    async with hollow_env(
        cc,
        NS,
        nodes=5,
        prefix="cm-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        watch=[lambda client: PodTracker(client, NS)],
    ) as env:
        yield env


@pytest.fixture(scope="module")
def env(hollow: HollowEnv) -> tuple[ApiClient, PodTracker]:
    return hollow.client, hollow.watchers[0]


@pytest.fixture(scope="module")
def managers(hollow: HollowEnv) -> Managers:
    return hollow.managers


@pytest.fixture(scope="module")
def health_port(managers: Managers) -> int:
    port = free_port()
    managers.start(port=port)
    return port


def replica_set(name: str, replicas: int, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ]
                },
            },
            **spec,
        },
    }


def status_is(client: ApiClient, res: str, name: str, **want: int) -> Callable[[], Any]:
    async def check() -> dict[str, Any] | None:
        obj = await client.get(res, name, NS)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        if all(status.get(k, 0) == v for k, v in want.items()):
            return obj
        return None

    return check


async def test_health_metrics_and_lease(
    env: tuple[ApiClient, PodTracker], health_port: int
) -> None:
    client, _ = env

    def get(path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port}{path}", timeout=2) as r:
            return r.read().decode()

    await until(lambda: _quiet(get, "/healthz") == "ok", what="/healthz")
    lease = await until(
        lambda: _lease(client), what="the kube-system/kube-controller-manager Lease"
    )
    assert lease["spec"]["holderIdentity"]
    metrics = await asyncio.to_thread(get, "/metrics")
    assert 'leader_election_master_status{name="kube-controller-manager"} 1.0' in metrics
    # kube-controller-manager's per-controller health: one check per running controller.
    verbose = await until(
        lambda: (out := _quiet(get, "/healthz?verbose")) and "replicaset-controller" in out
        and out, what="/healthz?verbose with the controllers",
    )  # fmt: skip
    lines = verbose.splitlines()
    assert lines[:2] == ["[+]ping ok", "[+]leaderElection ok"]
    assert "[+]replicaset-controller ok" in lines and lines[-1] == "healthz check passed"
    assert await asyncio.to_thread(get, "/healthz/replicaset-controller") == "ok"


def _quiet(fn: Callable[[str], str], arg: str) -> str | None:
    try:
        return fn(arg)
    except OSError:
        return None


async def _lease(client: ApiClient) -> dict[str, Any] | None:
    try:
        lease = await client.get(
            "leases.coordination.k8s.io", "kube-controller-manager", "kube-system"
        )
    except Exception:
        return None
    return lease if (lease.get("spec") or {}).get("holderIdentity") else None


async def test_scale_up_and_down(env: tuple[ApiClient, PodTracker], health_port: int) -> None:
    client, tracker = env
    rs = await client.create("replicasets", replica_set("web", 10, {"app": "web"}), NS)
    uid = rs["metadata"]["uid"]
    await until(
        status_is(
            client,
            "replicasets",
            "web",
            replicas=10,
            fullyLabeledReplicas=10,
            readyReplicas=10,
            availableReplicas=10,
        ),
        what="10 available replicas",
    )
    assert len(tracker.active[uid]) == 10
    assert tracker.max_active[uid] == 10
    assert len(tracker.created[uid]) == 10
    pods = (await client.list("pods", NS, label_selector="app=web"))["items"]
    assert len(pods) == 10
    for p in pods:
        assert p["metadata"]["name"].startswith("web-")
        ref = p["metadata"]["ownerReferences"][0]
        assert ref["uid"] == uid and ref["controller"] and ref["blockOwnerDeletion"]
        assert p["spec"]["nodeName"].startswith("cm-")
    assert len({p["spec"]["nodeName"] for p in pods}) > 1

    await client.patch("replicasets", "web", {"spec": {"replicas": 3}}, NS, subresource="scale")
    await until(
        status_is(client, "replicasets", "web", replicas=3, readyReplicas=3, availableReplicas=3),
        what="3 replicas",
    )
    await until(lambda: len(tracker.active[uid]) == 3, what="3 active pods")
    await until(lambda: len(_items(tracker, "app=web")) == 3, what="the deleted pods to be gone")
    tracker.reset_max(uid)
    await asyncio.sleep(1.0)
    assert len(tracker.active[uid]) == 3 and tracker.max_active[uid] == 3
    assert len(tracker.created[uid]) == 10  # scaling down created nothing

    async def events(reason: str) -> list[dict[str, Any]]:
        sel = f"involvedObject.name=web,reason={reason}"
        return (await client.list("events", NS, field_selector=sel))["items"]

    created = await until(lambda: events("SuccessfulCreate"), what="SuccessfulCreate events")
    assert created[0]["involvedObject"]["kind"] == "ReplicaSet"
    assert created[0]["message"].startswith("Created pod: web-")
    await until(lambda: events("SuccessfulDelete"), what="SuccessfulDelete events")


def _items(tracker: PodTracker, selector: str) -> list[dict[str, Any]]:
    key, _, value = selector.partition("=")
    return [
        p for p in tracker.informer.list() if (p["metadata"].get("labels") or {}).get(key) == value
    ]


async def test_deleted_pod_is_replaced(env: tuple[ApiClient, PodTracker], health_port: int) -> None:
    client, tracker = env
    rs = await client.create("replicasets", replica_set("replace", 3, {"app": "replace"}), NS)
    uid = rs["metadata"]["uid"]
    await until(
        status_is(client, "replicasets", "replace", replicas=3, readyReplicas=3),
        what="3 ready replicas",
    )
    before = set(tracker.active[uid])
    assert len(before) == 3
    victim = next(p for p in tracker.informer.list() if p["metadata"]["uid"] in before)
    await client.delete("pods", victim["metadata"]["name"], NS)
    await until(
        lambda: len(tracker.active[uid]) == 3 and tracker.active[uid] != before,
        what="a replacement pod",
    )
    await until(
        status_is(client, "replicasets", "replace", replicas=3, readyReplicas=3),
        what="3 ready replicas again",
    )
    assert len(tracker.created[uid]) == 4
    assert tracker.max_active[uid] == 3


async def test_adoption_and_release(env: tuple[ApiClient, PodTracker], health_port: int) -> None:
    client, tracker = env
    template = replica_set("adopt", 3, {"app": "adopt"})["spec"]["template"]
    for i in range(2):
        await client.create(
            "pods", {**template, "metadata": {"name": f"orphan-{i}", **template["metadata"]}}, NS
        )
    rs = await client.create("replicasets", replica_set("adopt", 3, {"app": "adopt"}), NS)
    uid = rs["metadata"]["uid"]
    await until(
        status_is(client, "replicasets", "adopt", replicas=3, readyReplicas=3),
        what="3 replicas with 2 adopted",
    )
    for i in range(2):
        pod = await client.get("pods", f"orphan-{i}", NS)
        refs = pod["metadata"]["ownerReferences"]
        assert [(r["uid"], r["controller"]) for r in refs] == [(uid, True)]
    assert len(tracker.created[uid]) == 1  # one created, two adopted

    await client.patch("pods", "orphan-0", {"metadata": {"labels": {"app": "released"}}}, NS)

    async def released() -> bool:
        pod = await client.get("pods", "orphan-0", NS)
        return not pod["metadata"].get("ownerReferences")

    await until(released, what="orphan-0 released")
    # The status said 3 ready before the release too: wait for the replacement itself.
    await until(lambda: len(tracker.created[uid]) >= 2, what="a replacement for the released pod")
    await until(
        status_is(client, "replicasets", "adopt", replicas=3, readyReplicas=3),
        what="3 ready replicas again",
    )
    assert len(tracker.created[uid]) == 2
    assert "orphan-0" not in {
        p["metadata"]["name"]
        for p in tracker.informer.list()
        if p["metadata"]["uid"] in tracker.active[uid]
    }
    assert (await client.get("pods", "orphan-0", NS))["status"]["phase"] == "Running"


async def test_min_ready_seconds(env: tuple[ApiClient, PodTracker], health_port: int) -> None:
    client, _ = env
    await client.create(
        "replicasets", replica_set("slow", 2, {"app": "slow"}, minReadySeconds=3), NS
    )
    ready = await until(
        status_is(client, "replicasets", "slow", replicas=2, readyReplicas=2),
        what="2 ready replicas",
    )
    assert "availableReplicas" not in ready["status"]  # zero is left out, as in Kubernetes
    await until(
        status_is(client, "replicasets", "slow", readyReplicas=2, availableReplicas=2),
        timeout=6,
        what="2 available replicas after minReadySeconds",
    )


async def test_replication_controller(env: tuple[ApiClient, PodTracker], health_port: int) -> None:
    client, tracker = env
    rs = replica_set("legacy", 2, {"app": "legacy"})
    rc = await client.create(
        "replicationcontrollers",
        {
            "metadata": {"name": "legacy"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "legacy"},
                "template": rs["spec"]["template"],
            },
        },
        NS,
    )
    await until(
        status_is(
            client,
            "replicationcontrollers",
            "legacy",
            replicas=2,
            readyReplicas=2,
            availableReplicas=2,
            fullyLabeledReplicas=2,
        ),
        what="2 ready RC replicas",
    )
    uid = rc["metadata"]["uid"]
    assert len(tracker.created[uid]) == 2
    pods = _items(tracker, "app=legacy")
    assert {r["kind"] for p in pods for r in p["metadata"]["ownerReferences"]} == {
        "ReplicationController"
    }


async def test_restart_mid_scale_up_creates_no_extra_pods(
    env: tuple[ApiClient, PodTracker], cc: Cluster, managers: Managers, health_port: int
) -> None:
    client, tracker = env
    rs = await client.create("replicasets", replica_set("big", 30, {"app": "big"}), NS)
    uid = rs["metadata"]["uid"]
    async with asyncio.timeout(10):  # kill as soon as the slow start is under way
        while len(tracker.created[uid]) < 2:
            await asyncio.sleep(0.002)
    managers.procs[-1].kill(signal.SIGKILL)
    at_kill = len(tracker.created[uid])
    await asyncio.sleep(0.5)  # requests the dead process had in flight land now or never
    managers.start()
    await until(
        status_is(
            client, "replicasets", "big", replicas=30, readyReplicas=30, availableReplicas=30
        ),
        timeout=30,
        what="30 ready replicas after the restart",
    )
    await asyncio.sleep(1.0)
    assert len(tracker.created[uid]) == 30, f"{at_kill} pods existed at the kill"
    assert len(tracker.active[uid]) == 30
    assert tracker.max_active[uid] == 30
