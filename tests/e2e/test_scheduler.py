"""The scheduler against a real apiserver, with hollow nodes as the cluster's nodes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from clusterenv import HollowEnv, NodeGroup, hollow_env, hollow_nodes, started_cluster

from cluster import Cluster
from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import NodeShape

NS = "sched"


@pytest.fixture(scope="module")
def sc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "sched")


@pytest.fixture(scope="module")
async def hollow(sc: Cluster) -> AsyncIterator[HollowEnv]:
    groups = [
        NodeGroup(2, "small-", NodeShape(cpu="2", memory="4Gi")),
        NodeGroup(1, "gpu-", NodeShape(cpu="8", gpus=2, labels={"accelerator": "nvidia"})),
        NodeGroup(
            1,
            "infra-",
            NodeShape(
                cpu="8",
                labels={"role": "infra"},
                taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}],
            ),
        ),
    ]
    async with hollow_env(sc, NS, nodes=groups) as env:
        yield env


@pytest.fixture(scope="module")
def client(hollow: HollowEnv) -> ApiClient:
    return hollow.client


@pytest.fixture(scope="module")
def nodes(hollow: HollowEnv) -> None:
    """The hollow nodes and the scheduler run (in ``hollow``)."""


def pod(name: str, *, cpu: str = "100m", gpus: int = 0, **spec: Any) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": cpu}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "resources": resources,
                    **spec.pop("container", {}),
                }
            ],
            **spec,
        },
    }


async def node_of(client: ApiClient, name: str, timeout: float = 15) -> str | None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        p = await client.get("pods", name, NS)
        if (p.get("spec") or {}).get("nodeName"):
            return p["spec"]["nodeName"]
        await asyncio.sleep(0.1)
    return None


async def failed_scheduling(client: ApiClient, name: str, timeout: float = 10) -> str:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        events = await client.list(
            "events", NS, field_selector=(f"involvedObject.name={name},reason=FailedScheduling")
        )
        if events["items"]:
            return events["items"][0]["message"]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no FailedScheduling event for {name}")


async def test_resources_and_selectors(client: ApiClient, nodes: None) -> None:
    await client.create("pods", pod("any"), NS)
    assert (await node_of(client, "any") or "").startswith(("small-", "gpu-"))
    await client.create("pods", pod("big", cpu="6"), NS)  # fits only the 8-cpu gpu node
    assert await node_of(client, "big") == "gpu-0"
    await client.create("pods", pod("sel", nodeSelector={"accelerator": "nvidia"}), NS)
    assert await node_of(client, "sel") == "gpu-0"
    bound = await client.get("pods", "sel", NS)
    cond = {c["type"]: c["status"] for c in bound["status"]["conditions"]}
    assert cond["PodScheduled"] == "True"


async def test_gpus_counted(client: ApiClient, nodes: None) -> None:
    await client.create("pods", pod("gpu-a", gpus=2), NS)
    assert await node_of(client, "gpu-a") == "gpu-0"
    await client.create("pods", pod("gpu-b", gpus=1), NS)
    message = await failed_scheduling(client, "gpu-b")
    assert message.startswith("0/4 nodes are available:")
    assert "Insufficient nvidia.com/gpu" in message
    assert "1 node(s) had untolerated taint {dedicated: infra}" in message
    assert await node_of(client, "gpu-b", timeout=1) is None
    # Freeing the GPUs lets the waiting pod in, without polling.
    await client.delete("pods", "gpu-a", NS, grace_period_seconds=0)
    assert await node_of(client, "gpu-b") == "gpu-0"


async def test_taints_and_tolerations(client: ApiClient, nodes: None) -> None:
    infra = {"nodeSelector": {"role": "infra"}}
    await client.create("pods", pod("intolerant", **infra), NS)
    message = await failed_scheduling(client, "intolerant")
    assert "untolerated taint {dedicated: infra}" in message
    await client.create(
        "pods",
        pod(
            "tolerant",
            tolerations=[
                {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
            ],
            **infra,
        ),
        NS,
    )
    assert await node_of(client, "tolerant") == "infra-0"


async def test_host_ports(client: ApiClient, nodes: None) -> None:
    port = {
        "container": {"ports": [{"containerPort": 80, "hostPort": 8080}]},
        "nodeSelector": {"accelerator": "nvidia"},
    }
    await client.create("pods", pod("port-a", **port), NS)
    assert await node_of(client, "port-a") == "gpu-0"
    await client.create("pods", pod("port-b", **port), NS)
    message = await failed_scheduling(client, "port-b")
    assert "1 node(s) didn't have free ports for the requested pod ports" in message


async def test_pending_until_a_node_fits(client: ApiClient, sc: Cluster, nodes: None) -> None:
    await client.create("pods", pod("huge", cpu="32"), NS)
    message = await failed_scheduling(client, "huge")
    assert "Insufficient cpu" in message
    out = await asyncio.to_thread(
        subprocess.run,
        ["kubectl", "--kubeconfig", str(sc.kubeconfig()), "-n", NS, "describe", "pod", "huge"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "FailedScheduling" in out.stdout and "Insufficient cpu" in out.stdout, out.stdout
    async with hollow_nodes(client, 1, "huge-", NodeShape(cpu="64", memory="256Gi")):
        assert await node_of(client, "huge") == "huge-0"


async def scheduled_by(client: ApiClient, names: list[str]) -> set[str]:
    """The reportingInstance of the Scheduled events of these pods (once all have one)."""
    wanted = set(names)
    loop = asyncio.get_running_loop()
    end = loop.time() + 30
    while True:
        events = (await client.list("events", NS))["items"]
        found = {
            e["involvedObject"]["name"]: e.get("reportingInstance")
            for e in events
            if e.get("reason") == "Scheduled" and e["involvedObject"]["name"] in wanted
        }
        if len(found) == len(wanted):
            return set(found.values())
        assert loop.time() < end, f"no Scheduled event for {sorted(wanted - set(found))[:5]}"
        await asyncio.sleep(0.2)


async def test_leader_failover_without_double_binding(
    client: ApiClient, sc: Cluster, nodes: None
) -> None:
    sc.start_scheduler()  # a second one: only the leader acts
    await asyncio.sleep(1)
    names = [f"load-{i}" for i in range(150)]

    async def create(n: str) -> None:
        await client.create("pods", pod(n, cpu="1m"), NS)

    await asyncio.gather(*(create(n) for n in names[:75]))
    lease = await client.get("leases.coordination.k8s.io", "kube-scheduler", "kube-system")
    holder = lease["spec"]["holderIdentity"]
    for n in names[:75]:
        assert await node_of(client, n, timeout=30), f"{n} was never bound"
    # Only the leader acted: every pod's Scheduled event names it as the reporter.
    assert await scheduled_by(client, names[:75]) == {holder}
    pid = int(holder.rsplit("_", 1)[1])
    leader = next(p for p in sc.schedulers if p.popen and p.popen.pid == pid)
    leader.kill(signal.SIGKILL)
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    await asyncio.gather(*(create(n) for n in names[75:]))
    while True:
        lease = await client.get("leases.coordination.k8s.io", "kube-scheduler", "kube-system")
        if lease["spec"]["holderIdentity"] not in ("", holder):
            break
        assert loop.time() - killed_at < 15, "no new leader within 15 s"
        await asyncio.sleep(0.2)
    for n in names:
        assert await node_of(client, n, timeout=30), f"{n} was never bound"
    assert await scheduled_by(client, names[75:]) == {lease["spec"]["holderIdentity"]}
    # A pod bound twice would have two bindings accepted; the API refuses the second (409),
    # and every pod carries exactly one node.
    with pytest.raises(ApiError) as e:
        await client.create_subresource(
            "pods", names[0], "binding", {"target": {"name": "small-0"}}, NS
        )
    assert e.value.code == 409


async def test_preemption_evicts_lower_priority_pods(client: ApiClient, nodes: None) -> None:
    for name, value in (("bulk", 10), ("vip", 1000)):
        await client.create("priorityclasses", {"metadata": {"name": name}, "value": value})
    pin = {"nodeSelector": {"kubernetes.io/hostname": "small-1"}}
    await client.create("pods", pod("filler", cpu="1500m", priorityClassName="bulk", **pin), NS)
    assert await node_of(client, "filler") == "small-1"
    filler = await client.get("pods", "filler", NS)
    await client.create("pods", pod("urgent", cpu="1500m", priorityClassName="vip", **pin), NS)
    # The scheduler evicts the lower-priority pod and the preemptor takes its place.
    assert await node_of(client, "urgent", timeout=30) == "small-1"
    with pytest.raises(ApiError) as gone:
        await client.get("pods", "filler", NS)
    assert gone.value.code == 404
    events = await client.list(
        "events", NS, field_selector="involvedObject.name=filler,reason=Preempted"
    )
    assert events["items"], "no Preempted event"
    urgent = await client.get("pods", "urgent", NS)
    assert events["items"][0]["message"] == (
        f"Preempted by pod {urgent['metadata']['uid']} on node small-1"
    )
    assert filler["metadata"]["uid"] != urgent["metadata"]["uid"]
