"""The DaemonSet controller against a real apiserver, scheduler and hollow nodes.

Nodes join (a second set of hollow nodes) and leave (that set stopped and its Node
objects deleted) while a watch in the test records the daemon pods; a rolling update
is checked at every observed moment against maxUnavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from clusterenv import hollow_env, started_cluster
from cmenv import until

from cluster import Cluster
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import HollowNodes, NodeShape

NS = "daemons"
HASH = "controller-revision-hash"


def _ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


class DaemonPods:
    """The pods of the namespace by DaemonSet name, and the fewest ready seen per set."""

    def __init__(self, client: ApiClient) -> None:
        self.informer = Informer(client, "pods", NS)
        self.min_ready: dict[str, int] = {}
        self.watching: set[str] = set()
        self.informer.add_handler(
            lambda p: self._check(), lambda _o, _n: self._check(), lambda p: self._check()
        )

    def of(self, ds: str, *, live: bool = True) -> list[dict[str, Any]]:
        out = []
        for p in self.informer.list():
            if (p["metadata"].get("labels") or {}).get("app") != ds:
                continue
            if live and p["metadata"].get("deletionTimestamp"):
                continue
            out.append(p)
        return out

    def by_node(self, ds: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.of(ds):
            out.setdefault(p["spec"].get("nodeName") or "", []).append(p["metadata"]["name"])
        return out

    def watch_ready(self, ds: str) -> None:
        self.watching.add(ds)
        self.min_ready[ds] = sum(_ready(p) for p in self.of(ds))

    def _check(self) -> None:
        for ds in self.watching:
            ready = sum(_ready(p) for p in self.of(ds))
            self.min_ready[ds] = min(self.min_ready[ds], ready)


@pytest.fixture(scope="module")
def dc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "daemonsets")


@pytest.fixture(scope="module")
async def env(dc: Cluster) -> AsyncIterator[tuple[ApiClient, DaemonPods]]:
    async with hollow_env(
        dc,
        NS,
        nodes=3,
        prefix="ds-a-",
        shape=NodeShape(cpu="4", memory="8Gi"),
        manager=("--controllers=daemonset",),
        watch=[DaemonPods],
    ) as env:
        yield env.client, env.watchers[0]


async def _node_count(client: ApiClient, prefix: str, want: int) -> bool:
    items = (await client.list("nodes"))["items"]
    return len([n for n in items if n["metadata"]["name"].startswith(prefix)]) == want


def daemon_set(name: str, **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "agent",
                            "image": "busybox",
                            "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}},
                        }
                    ],
                    **pod_spec,
                },
            },
        },
    }


def status_is(client: ApiClient, name: str, **want: int) -> Callable[[], Any]:
    async def check() -> dict[str, Any] | None:
        obj = await client.get("daemonsets", name, NS)
        status = obj.get("status") or {}
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj if all(status.get(k, 0) == v for k, v in want.items()) else None

    return check


def one_ready_pod_on(pods: DaemonPods, ds: str, nodes: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        by_node = pods.by_node(ds)
        if sorted(by_node) != sorted(nodes) or any(len(v) != 1 for v in by_node.values()):
            return False
        return all(_ready(p) for p in pods.of(ds))

    return check


async def test_follows_nodes_joining_and_leaving(env: tuple[ApiClient, DaemonPods]) -> None:
    client, pods = env
    a_nodes = [f"ds-a-{i}" for i in range(3)]
    await client.create("daemonsets", daemon_set("agent"), NS)
    await until(one_ready_pod_on(pods, "agent", a_nodes), timeout=20, what="a pod per node")
    pod = pods.of("agent")[0]
    terms = pod["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    field = terms["nodeSelectorTerms"][0]["matchFields"][0]
    assert field["key"] == "metadata.name" and field["values"] == [pod["spec"]["nodeName"]]
    tolerations = {(t["key"], t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unreachable", "NoExecute") in tolerations
    await until(
        status_is(
            client,
            "agent",
            desiredNumberScheduled=3,
            currentNumberScheduled=3,
            numberReady=3,
            numberAvailable=3,
            updatedNumberScheduled=3,
            numberMisscheduled=0,
            numberUnavailable=0,
        ),
        what="the status counts",
    )

    # Two nodes join: each gets a pod within seconds.
    extra = HollowNodes(client, 2, prefix="ds-b-", shape=NodeShape(cpu="4", memory="8Gi"))
    task = asyncio.create_task(extra.run(), name="more-hollow-nodes")
    try:
        b_nodes = [f"ds-b-{i}" for i in range(2)]
        await until(lambda: _node_count(client, "ds-b-", 2), what="2 more nodes")
        loop = asyncio.get_running_loop()
        joined = loop.time()
        await until(
            one_ready_pod_on(pods, "agent", a_nodes + b_nodes),
            timeout=15,
            what="a pod on each new node",
        )
        assert loop.time() - joined < 10
        await until(status_is(client, "agent", desiredNumberScheduled=5, numberReady=5))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # They leave: their pods go (nothing is left to finish them but the controller).
    for name in extra.names:
        await client.delete("nodes", name)
    await until(one_ready_pod_on(pods, "agent", a_nodes), timeout=15, what="pods of gone nodes")
    await until(lambda: len(pods.of("agent", live=False)) == 3, what="the pods fully deleted")
    await until(status_is(client, "agent", desiredNumberScheduled=3, numberReady=3))


async def test_node_selector_restricts(env: tuple[ApiClient, DaemonPods]) -> None:
    client, pods = env
    await client.patch("nodes", "ds-a-1", {"metadata": {"labels": {"ds-test": "yes"}}})
    await client.create("daemonsets", daemon_set("picky", nodeSelector={"ds-test": "yes"}), NS)
    await until(one_ready_pod_on(pods, "picky", ["ds-a-1"]), what="a pod on the labelled node")
    await until(status_is(client, "picky", desiredNumberScheduled=1, numberReady=1))
    await client.patch("nodes", "ds-a-2", {"metadata": {"labels": {"ds-test": "yes"}}})
    await client.patch("nodes", "ds-a-1", {"metadata": {"labels": {"ds-test": None}}})
    await until(one_ready_pod_on(pods, "picky", ["ds-a-2"]), what="the pod moved with the label")


async def test_rolling_update_respects_max_unavailable(
    env: tuple[ApiClient, DaemonPods],
) -> None:
    client, pods = env
    a_nodes = [f"ds-a-{i}" for i in range(3)]
    await client.create("daemonsets", daemon_set("rolling"), NS)
    await until(one_ready_pod_on(pods, "rolling", a_nodes), timeout=20, what="a pod per node")
    old = {p["metadata"]["labels"][HASH] for p in pods.of("rolling")}
    assert len(old) == 1
    pods.watch_ready("rolling")
    ds = await client.get("daemonsets", "rolling", NS)
    template = ds["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "busybox:1.37"
    await client.patch("daemonsets", "rolling", {"spec": {"template": template}}, NS)

    def updated() -> bool:
        live = pods.of("rolling")
        hashes = {p["metadata"]["labels"][HASH] for p in live}
        return one_ready_pod_on(pods, "rolling", a_nodes)() and not hashes & old

    await until(updated, timeout=30, what="every pod updated")
    assert pods.min_ready["rolling"] >= 2  # maxUnavailable 1 of 3, at every event
    done = await until(
        status_is(client, "rolling", updatedNumberScheduled=3, numberAvailable=3),
        what="the updated status",
    )
    assert done["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
    revisions = [
        r
        for r in (await client.list("controllerrevisions", NS))["items"]
        if r["metadata"]["name"].startswith("rolling-")
    ]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
