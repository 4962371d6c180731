"""Node lifecycle, taint eviction, node IPAM and the pod garbage collector against a real
apiserver, scheduler and hollow nodes, with a controller manager running them (and the
ReplicaSet controller).

Hollow nodes renew their Leases every second here and the grace period is 5 s, so a
node that stops heartbeating is noticed within seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from clusterenv import HollowEnv, hollow_env, started_cluster
from cmenv import Managers, until

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import HollowNodes, NodeShape

NS = "lifecycle"
GRACE = 5.0
TOLERATION_SECONDS = 2
UNREACHABLE = "node.kubernetes.io/unreachable"
CONTROLLERS = (
    "--controllers=node-lifecycle-controller,taint-eviction-controller,"
    "node-ipam-controller,replicaset-controller,pod-garbage-collector-controller"
)
SETTINGS = {
    "SKIFF_NODE_MONITOR_GRACE_PERIOD": f"{GRACE:g}s",
    "SKIFF_NODE_EVICTION_RATE": "10",
    "SKIFF_CLUSTER_CIDR": "10.244.0.0/16",
}
SHAPE = NodeShape(cpu="4", memory="8Gi")


def start_manager(managers: Managers) -> None:
    managers.start(CONTROLLERS, env=SETTINGS)


@pytest.fixture(scope="module")
def lc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "lifecycle")


@pytest.fixture(scope="module")
async def hollow(lc: Cluster) -> AsyncIterator[HollowEnv]:
    async with hollow_env(
        lc,
        NS,
        nodes=3,
        prefix="nl-",
        shape=SHAPE,
        lease_period=1.0,
        manager=(CONTROLLERS,),
        manager_env=SETTINGS,
    ) as env:
        yield env


@pytest.fixture(scope="module")
def client(hollow: HollowEnv) -> ApiClient:
    return hollow.client


@pytest.fixture(scope="module")
def managers(hollow: HollowEnv) -> Managers:
    return hollow.managers


def replica_set(name: str, replicas: int, prefer: str) -> dict[str, Any]:
    """Pods that prefer node ``prefer`` and tolerate its loss for only 2 s."""
    labels = {"app": name}
    return {
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
                    ],
                    "tolerations": [
                        {
                            "key": key,
                            "operator": "Exists",
                            "effect": "NoExecute",
                            "tolerationSeconds": TOLERATION_SECONDS,
                        }
                        for key in (UNREACHABLE, "node.kubernetes.io/not-ready")
                    ],
                    "affinity": {
                        "nodeAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "preference": {
                                        "matchExpressions": [
                                            {
                                                "key": "kubernetes.io/hostname",
                                                "operator": "In",
                                                "values": [prefer],
                                            }
                                        ]
                                    },
                                }
                            ]
                        }
                    },
                },
            },
        },
    }


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == ctype), {}
    )


def taints(node: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in (node.get("spec") or {}).get("taints") or ()}


async def pods(client: ApiClient, selector: str) -> list[dict[str, Any]]:
    return (await client.list("pods", NS, label_selector=selector))["items"]


async def test_unreachable_node_pods_are_replaced_elsewhere(client: ApiClient) -> None:
    flaky = HollowNodes(client, 1, prefix="nl-flaky-", shape=SHAPE, lease_period=1.0)
    name = flaky.names[0]
    task = asyncio.create_task(flaky.run(), name="flaky-node")
    try:
        await until(lambda: _ready(client, name), timeout=20, what="the flaky node Ready")
        await client.create("replicasets", replica_set("evict", 4, name), NS)

        async def running() -> list[dict[str, Any]] | None:
            items = await pods(client, "app=evict")
            ok = len(items) == 4 and all(
                condition(p, "Ready").get("status") == "True" for p in items
            )
            return items if ok else None

        first = await until(running, timeout=30, what="4 ready pods")
        doomed = {p["metadata"]["name"] for p in first if p["spec"]["nodeName"] == name}
        assert doomed, f"no pod landed on {name}: {[p['spec']['nodeName'] for p in first]}"
        node = await client.get("nodes", name)
        assert not taints(node) and condition(node, "Ready")["status"] == "True"
    finally:
        task.cancel()  # the kubelet dies: no more Lease renewals, nobody runs its pods
        await asyncio.gather(task, return_exceptions=True)

    async def unreachable() -> dict[str, Any] | None:
        node = await client.get("nodes", name)
        want = {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
        return node if want <= taints(node) else None

    node = await until(unreachable, timeout=GRACE + 20, what="the unreachable taints")
    ready = condition(node, "Ready")
    assert ready["status"] == "Unknown"
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert condition(node, "MemoryPressure")["status"] == "Unknown"

    # Its pods are marked not ready, then evicted 2 s later (they stay Terminating:
    # nobody is left on the node to finish them), and replaced on the other nodes.
    async def evicted() -> list[dict[str, Any]] | None:
        items = [p for p in await pods(client, "app=evict") if p["metadata"]["name"] in doomed]
        ok = len(items) == len(doomed) and all(
            p["metadata"].get("deletionTimestamp") for p in items
        )
        return items if ok else None

    for p in await until(evicted, timeout=20, what="the pods of the lost node evicted"):
        target = condition(p, "DisruptionTarget")
        assert target["status"] == "True" and target["reason"] == "DeletionByTaintManager"
        assert condition(p, "Ready")["status"] == "False"

    async def replaced() -> list[dict[str, Any]] | None:
        items = [
            p for p in await pods(client, "app=evict") if not p["metadata"].get("deletionTimestamp")
        ]
        ok = len(items) == 4 and all(
            p["spec"].get("nodeName", name) != name
            and condition(p, "Ready").get("status") == "True"
            for p in items
        )
        return items if ok else None

    await until(replaced, timeout=30, what="4 ready replacements on the other nodes")

    async def events(reason: str) -> list[str]:
        items = (await client.list("events", NS, field_selector=f"reason={reason}"))["items"]
        return [e["message"] for e in items]

    marked = await until(lambda: events("TaintManagerEviction"), what="eviction events")
    assert {f"Marking for deletion Pod {NS}/{n}" for n in doomed} <= set(marked)
    assert await until(lambda: events("NodeNotReady"), what="NodeNotReady events on the pods")

    # The node comes back: Ready again, the taints go, its leftover pods are finished.
    back = HollowNodes(client, 1, prefix="nl-flaky-", shape=SHAPE, lease_period=1.0)
    task = asyncio.create_task(back.run(), name="flaky-node-back")
    try:

        async def healed() -> bool:
            node = await client.get("nodes", name)
            return condition(node, "Ready").get("status") == "True" and not taints(node)

        await until(healed, timeout=20, what="the node Ready without taints")

        async def finished() -> bool:
            left = {p["metadata"]["name"] for p in await pods(client, "app=evict")}
            return not (left & doomed)

        await until(finished, timeout=20, what="the evicted pods gone")
        # Healthy again: nothing more is evicted.
        await asyncio.sleep(GRACE / 2)
        items = await pods(client, "app=evict")
        assert len(items) == 4 and not any(p["metadata"].get("deletionTimestamp") for p in items)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.delete("replicasets", "evict", NS)


async def _ready(client: ApiClient, name: str) -> bool:
    try:
        node = await client.get("nodes", name)
    except ApiError:
        return False
    return condition(node, "Ready").get("status") == "True"


async def test_new_nodes_get_distinct_pod_cidrs(
    client: ApiClient, lc: Cluster, managers: Managers
) -> None:
    cluster_cidr = ipaddress.ip_network(SETTINGS["SKIFF_CLUSTER_CIDR"])

    async def create(name: str) -> None:
        await client.create("nodes", {"metadata": {"name": name, "labels": {"test": "ipam"}}})

    async def all_cidrs() -> dict[str, str]:
        nodes = (await client.list("nodes"))["items"]
        return {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR", "") for n in nodes}

    async def assigned(*names: str) -> dict[str, str] | None:
        cidrs = await all_cidrs()
        return cidrs if all(cidrs.get(n) for n in names) else None

    names = [f"ipam-{i}" for i in range(3)]
    for n in names:
        await create(n)
    cidrs = await until(lambda: assigned(*names), timeout=15, what="pod CIDRs")
    ours = [cidrs[n] for n in names]
    assert len(set(ours)) == 3
    for c in ours:
        net = ipaddress.ip_network(c)
        assert net.prefixlen == 24 and net.subnet_of(cluster_cidr)
    node = await client.get("nodes", names[0])
    assert node["spec"]["podCIDRs"] == [node["spec"]["podCIDR"]]
    # The hollow nodes' own ranges (outside the cluster CIDR) are left alone.
    assert all(not c.startswith("10.244.") for n, c in cidrs.items() if n.startswith("nl-"))

    await client.delete("nodes", names[0])
    await create("ipam-3")
    cidrs = await until(lambda: assigned("ipam-3"), timeout=15, what="a CIDR for ipam-3")
    assert cidrs["ipam-3"] not in {cidrs[n] for n in names[1:]}

    # A restarted controller manager rebuilds its allocations from the nodes first.
    managers.procs[-1].kill(signal.SIGKILL)
    start_manager(managers)
    await create("ipam-4")
    cidrs = await until(lambda: assigned("ipam-4"), timeout=20, what="a CIDR after a restart")
    taken = [c for n, c in cidrs.items() if n.startswith("ipam-")]
    assert len(taken) == len(set(taken)) == 4
    for n in ("ipam-1", "ipam-2", "ipam-3", "ipam-4"):
        await client.delete("nodes", n)


async def test_pods_of_a_deleted_node_are_force_deleted(client: ApiClient) -> None:
    """The issue's finding: pods stayed Terminating after ``kubectl delete node``; the pod
    garbage collector force-deletes them once the node has been gone for its quarantine
    (40 s, checked every 20 s), marked Failed with kube's DisruptionTarget condition."""
    await client.create("nodes", {"metadata": {"name": "podgc-node"}})
    for name in ("orphan-1", "orphan-2"):
        body = {"metadata": {"name": name},
                "spec": {"nodeName": "podgc-node",
                         "containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
        await client.create("pods", body, NS)
        await client.delete("pods", name, NS)  # Terminating: no kubelet will confirm it
    await client.delete("nodes", "podgc-node")
    seen: dict[str, Any] = {}

    async def gone() -> bool:
        names = {p["metadata"]["name"]: p for p in (await client.list("pods", NS))["items"]}
        for n in ("orphan-1", "orphan-2"):
            if n in names:
                seen[n] = names[n]
        return not ({"orphan-1", "orphan-2"} & set(names))

    await until(gone, timeout=90, what="the orphaned pods force-deleted")
    last = seen["orphan-1"]
    assert last["metadata"].get("deletionTimestamp")
