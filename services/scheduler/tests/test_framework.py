"""The framework: statuses, profiles, the handle, the scheduling cycle, messages, snapshot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import pytest

from skiff.scheduler import (
    Code,
    CycleState,
    ExtensionPoint,
    Framework,
    Handle,
    NodeInfo,
    NodeToStatus,
    PodInfo,
    PreFilterResult,
    Profile,
    SharedListers,
    Snapshot,
    Status,
    failure_message,
)
from skiff.scheduler.plugins import default_registry
from skiff.scheduler.testing import DictLister, make_node, make_pod

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


def framework(**profile: Any) -> Framework:
    return Framework(Profile(**profile), rng=random.Random(0))


# ---------------------------------------------------------------------------
# statuses, cycle state, profiles


def test_status_helpers() -> None:
    st = Status.unschedulable("Insufficient cpu", "Insufficient memory", plugin="NodeResourcesFit")
    assert st.is_rejected() and not st.is_success()
    assert st.message() == "Insufficient cpu, Insufficient memory"
    assert Status.unresolvable("x").code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert Status.skip().is_skip()
    err = Status.as_error(ValueError("boom"), plugin="P")
    assert err.code is Code.ERROR and err.reasons == ["boom"] and isinstance(err.error, ValueError)
    assert st.with_plugin("NodeResourcesFit") is st
    assert st.with_plugin("Other").plugin == "Other" and st.plugin == "NodeResourcesFit"


def test_cycle_state() -> None:
    class Counter:
        def __init__(self, n: int) -> None:
            self.n = n

        def clone(self) -> Counter:
            return Counter(self.n)

    state = CycleState()
    state.write("a", Counter(1))
    state["b"] = [1]
    assert "a" in state and state.read("b") == [1] and state.get("c") is None
    with pytest.raises(KeyError):
        state.read("c")
    clone = state.clone()
    clone.read("a").n = 2
    assert state.read("a").n == 1
    assert clone.read("b") is state.read("b")


def test_default_profile_extension_points() -> None:
    fw = Framework()
    assert [p.name for p in fw.filter_plugins] == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "VolumeBinding",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert [p.name for p in fw.score_plugins] == [
        "TaintToleration",
        "NodeAffinity",
        "NodeResourcesFit",
        "PodTopologySpread",
        "NodeResourcesBalancedAllocation",
        "GPUBinPacking",
    ]
    assert [p.name for p in fw.post_filter_plugins] == ["DefaultPreemption"]
    assert [p.name for p in fw.bind_plugins] == ["DefaultBinder"]
    assert fw.scheduler_name == "default-scheduler"
    no_scores = Framework(Profile(disabled={ExtensionPoint.SCORE: {"*"}}))
    assert no_scores.score_plugins == [] and no_scores.filter_plugins
    with pytest.raises(ValueError, match="not in the registry"):
        Framework(Profile(plugins=["Nope"]))


class RecordingReserve:
    """A Reserve plugin that fails for one node and records what it saw."""

    name = "Recording"

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.fail_on = args.get("fail_on")
        self.log: list[tuple[str, str]] = []

    def reserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status | None:
        self.log.append(("reserve", node_name))
        if node_name == self.fail_on:
            return Status.unschedulable("volume not available")
        return None

    def unreserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None:
        self.log.append(("unreserve", node_name))


def test_custom_plugin_reserve_and_unreserve() -> None:
    registry = {**default_registry(), "Recording": RecordingReserve}
    snapshot = Snapshot([make_node("n1")])
    profile = Profile(
        enabled={ExtensionPoint.RESERVE: ["Recording"]},
        plugin_args={"Recording": {"fail_on": "n1"}},
    )
    fw = Framework(profile, registry)
    plugin = fw.plugins["Recording"]
    result = fw.schedule(CycleState(), make_pod("p"), snapshot)
    assert not result.success
    assert result.message == "0/1 nodes are available: 1 volume not available."
    assert plugin.log == [("reserve", "n1"), ("unreserve", "n1")]  # type: ignore[attr-defined]
    assert snapshot.get("n1").pod_infos == {}  # the assumed pod was forgotten


# ---------------------------------------------------------------------------
# FailedScheduling messages


def test_failure_message_sorts_counted_reasons() -> None:
    statuses = {
        "a": Status.unschedulable("Insufficient cpu"),
        "b": Status.unschedulable("Insufficient cpu", "Insufficient memory"),
        "c": Status.unresolvable(
            "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
        ),
    }
    assert failure_message(3, statuses) == (
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."
    )
    many = [Status.unschedulable("Too many pods")] * 10 + [
        Status.unschedulable("Insufficient cpu")
    ] * 2
    assert (
        failure_message(12, many)
        == "0/12 nodes are available: 10 Too many pods, 2 Insufficient cpu."
    )
    assert failure_message(3, {}, pre_filter_msg="pod affinity terms conflict") == (
        "0/3 nodes are available: pod affinity terms conflict."
    )
    absent = NodeToStatus(
        {"a": Status.unschedulable("Insufficient cpu")},
        Status.unresolvable("node(s) didn't satisfy plugin(s) [NodeAffinity]"),
    )
    assert failure_message(4, absent, post_filter_msg="preemption: x.") == (
        "0/4 nodes are available: 1 Insufficient cpu, 3 node(s) didn't satisfy plugin(s) "
        "[NodeAffinity]. preemption: x."
    )


def test_message_insufficient_cpu_and_control_plane_taint() -> None:
    snapshot = Snapshot(
        [
            make_node("cp", taints=[CONTROL_PLANE_TAINT]),
            make_node("w1", cpu="2"),
            make_node("w2", cpu="2"),
        ],
        [make_pod("a", cpu="1", node="w1")],
    )
    result = framework().schedule(CycleState(), make_pod("big", cpu="3"), snapshot)
    assert not result.success and result.status.code is Code.UNSCHEDULABLE
    assert result.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint "
        "{node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu. preemption: 0/3 nodes "
        "are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims "
        "found for incoming pod."
    )
    assert result.diagnosis is not None
    assert result.diagnosis.unschedulable_plugins == {"TaintToleration", "NodeResourcesFit"}
    assert result.evaluated_nodes == 3 and result.nominated_node_name == ""


def test_message_node_selector_not_ready_and_cordoned() -> None:
    snapshot = Snapshot(
        [
            make_node("a"),
            make_node("b", ready="False"),
            make_node("c", unschedulable=True),
            make_node("d", labels={"disk": "ssd"}, ready="Unknown"),
        ]
    )
    pod = make_pod("p", spec={"nodeSelector": {"disk": "ssd"}})
    # Each node reports the first failing filter: NodeUnschedulable, TaintToleration, NodeAffinity.
    assert framework().schedule(CycleState(), pod, snapshot).message == (
        "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) had "
        "untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable. "
        "preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
    )


def test_message_ports_anti_affinity_and_too_many_pods() -> None:
    anti = {
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": "web"}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    }
    snapshot = Snapshot(
        [make_node("n1"), make_node("n2"), make_node("n3", pods=1)],
        [
            make_pod("web-1", node="n1", labels={"app": "web"}),
            make_pod("proxy", node="n2", host_ports=[80]),
            make_pod("x", node="n3"),
        ],
    )
    pod = make_pod("web-2", labels={"app": "web"}, host_ports=[80], spec=anti)
    assert framework().schedule(CycleState(), pod, snapshot).message == (
        "0/3 nodes are available: 1 Too many pods, 1 node(s) didn't have free ports for the "
        "requested pod ports, 1 node(s) didn't match pod anti-affinity rules. preemption: 0/3 "
        "nodes are available: 3 No preemption victims found for incoming pod."
    )


def test_message_pre_filter_rejection_and_no_nodes() -> None:
    snapshot = Snapshot([make_node("n1"), make_node("n2")])
    conflict = {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": ["a"]},
                                {"key": "metadata.name", "operator": "In", "values": ["b"]},
                            ]
                        }
                    ]
                }
            }
        }
    }
    result = framework().schedule(CycleState(), make_pod("p", spec=conflict), snapshot)
    assert result.message == (
        "0/2 nodes are available: pod affinity terms conflict. preemption: 0/2 nodes are "
        "available: 2 Preemption is not helpful for scheduling."
    )
    assert result.diagnosis is not None and result.diagnosis.pre_filter_msg
    empty = framework().schedule(CycleState(), make_pod("p"), Snapshot())
    assert empty.message == "no nodes available to schedule pods"
    assert empty.status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


# ---------------------------------------------------------------------------
# the cycle


class Fixed:
    """A Score plugin giving fixed scores by node name (for normalization/weight tests)."""

    name = "Fixed"

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.scores: dict[str, int] = dict(args.get("scores") or {})

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int:
        return self.scores.get(node_info.name, 0)


def test_scores_weighted_and_validated() -> None:
    registry = {**default_registry(), "Fixed": Fixed}
    snapshot = Snapshot([make_node("a"), make_node("b")])
    profile = Profile(
        plugins=["NodeResourcesFit", "Fixed"],
        score_weights={"Fixed": 5},
        plugin_args={"Fixed": {"scores": {"a": 10, "b": 30}}},
    )
    fw = Framework(profile, registry, rng=random.Random(0))
    state = CycleState()
    state.pod_info = PodInfo.of(make_pod("p"))
    scores = fw.run_score_plugins(state, make_pod("p"), snapshot.node_infos)
    assert scores == {"NodeResourcesFit": [97, 97], "Fixed": [10, 30]}
    assert fw.schedule(CycleState(), make_pod("p"), snapshot).node_name == "b"
    bad = Profile(plugins=["Fixed"], plugin_args={"Fixed": {"scores": {"a": 150}}})
    result = Framework(bad, registry).schedule(CycleState(), make_pod("p"), snapshot)
    assert result.status.code is Code.ERROR and "outside [0, 100]" in result.message


def test_ties_are_broken_randomly() -> None:
    chosen = set()
    for seed in range(20):
        snapshot = Snapshot([make_node("a"), make_node("b"), make_node("c")])
        fw = Framework(rng=random.Random(seed))
        chosen.add(fw.schedule(CycleState(), make_pod("p"), snapshot).node_name)
    assert chosen == {"a", "b", "c"}


class Exploding:
    name = "Exploding"

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        pass

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        raise RuntimeError("kaboom")


def test_plugin_exception_is_an_error_status() -> None:
    registry = {**default_registry(), "Exploding": Exploding}
    fw = Framework(Profile(plugins=["Exploding"]), registry)
    result = fw.schedule(CycleState(), make_pod("p"), Snapshot([make_node("a")]))
    assert result.status.code is Code.ERROR and "kaboom" in result.message
    assert not result.success


def test_nominated_node_is_tried_first() -> None:
    snapshot = Snapshot([make_node("a"), make_node("b", cpu="8")])
    pod = make_pod("p", cpu="1")
    pod["status"]["nominatedNodeName"] = "a"
    result = framework().schedule(CycleState(), pod, snapshot)
    assert result.node_name == "a" and result.evaluated_nodes == 1


def test_large_cluster_stops_after_enough_feasible_nodes() -> None:
    snapshot = Snapshot([make_node(f"n{i}") for i in range(1000)])
    fw = framework()
    first = fw.schedule(CycleState(), make_pod("p"), snapshot)
    # Adaptive percentage: 50 - 1000/125 = 42% of the nodes.
    assert first.feasible_nodes == 420 and first.evaluated_nodes == 420
    second = fw.schedule(CycleState(), make_pod("q"), snapshot)
    assert second.feasible_nodes == 420
    assert int(second.node_name[1:]) >= 420  # the search resumed where the first stopped
    everything = framework(percentage_of_nodes_to_score=100)
    assert everything.schedule(CycleState(), make_pod("r"), snapshot).feasible_nodes == 1000


class BindingClient:
    """An API client that records ``pods/binding`` creations (and fails for node "bad")."""

    def __init__(self) -> None:
        self.bound: list[tuple[str, str]] = []

    async def create_subresource(
        self, res: str, name: str, subresource: str, body: dict[str, Any], namespace: str | None
    ) -> dict[str, Any]:
        assert (res, subresource, body["kind"], namespace) == (
            "pods",
            "binding",
            "Binding",
            "default",
        )
        node = body["target"]["name"]
        if node == "bad":
            raise ConnectionError("apiserver unavailable")
        self.bound.append((name, node))
        return body


class HandleProbe:
    """A plugin that keeps the handle its factory was given."""

    name = "Probe"

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.args = args
        self.handle = handle

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        return None


def test_plugins_get_the_handle() -> None:
    client, events, claims = object(), object(), {"default/c": {"metadata": {}}}
    listers = SharedListers(persistent_volume_claims=DictLister(claims))
    snapshot = Snapshot([make_node("n1")])
    profile = Profile(plugins=["Probe"], plugin_args={"Probe": {"weight": 1}})
    fw = Framework(
        profile,
        {"Probe": HandleProbe},
        client=client,  # type: ignore[arg-type]
        listers=listers,
        snapshot=snapshot,
        event_recorder=events,  # type: ignore[arg-type]
    )
    probe = fw.plugins["Probe"]
    assert isinstance(probe, HandleProbe) and probe.handle is fw and probe.args == {"weight": 1}
    handle = probe.handle
    assert handle.client_set() is client and handle.event_recorder() is events
    assert handle.snapshot_shared_lister() is snapshot
    assert handle.shared_listers().persistent_volume_claims.get("default/c") is not None
    assert handle.shared_listers().storage_classes is None
    other = Snapshot([make_node("n2")])
    assert fw.schedule(CycleState(), make_pod("p"), other).node_name == "n2"
    assert handle.snapshot_shared_lister() is other  # the snapshot of the last cycle
    bare = Framework(Profile(plugins=[]))
    assert bare.client_set() is None and bare.shared_listers() == SharedListers()


def test_bind_and_forget() -> None:
    client = BindingClient()
    snapshot = Snapshot([make_node("good", cpu="2")])
    fw = Framework(Profile(), client=client, rng=random.Random(0))  # type: ignore[arg-type]
    pod = make_pod("p", cpu="1")
    state = CycleState()
    result = fw.schedule(state, pod, snapshot)
    assert result.success and result.assumed_pod is not None
    assert result.assumed_pod.pod["spec"]["nodeName"] == "good"
    assert pod["spec"].get("nodeName") is None  # the caller's pod is not mutated
    assert snapshot.is_assumed(result.assumed_pod.key)
    assert asyncio.run(fw.bind(state, pod, result.node_name)).is_success()
    assert client.bound == [("p", "good")]

    failed = asyncio.run(fw.bind(state, pod, "bad"))
    assert failed.code is Code.ERROR and failed.plugin == "DefaultBinder"
    fw.forget(state, pod, "good", snapshot)
    assert snapshot.get("good").requested.milli_cpu == 0


# ---------------------------------------------------------------------------
# snapshot and NodeInfo bookkeeping


def test_snapshot_incremental_updates() -> None:
    snapshot = Snapshot([make_node("a"), make_node("b")])
    pod = make_pod(
        "p", cpu="1", memory="1Gi", node="a", owner_uid="rs", host_ports=[80], labels={"app": "x"}
    )
    snapshot.add_pod(pod)
    a = snapshot.get("a")
    assert a is not None and a.requested.milli_cpu == 1000 and a.owner_counts == {"rs": 1}
    assert a.used_ports == {("TCP", 80): {"0.0.0.0": 1}}
    assert a.label_counts == {("default", "app", "x"): 1}
    assert a.pods == [pod]

    moved = {**pod, "spec": {**pod["spec"], "nodeName": "b"}}
    snapshot.update_pod(moved)
    assert a.requested.milli_cpu == 0 and a.used_ports == {} and a.label_counts == {}
    assert snapshot.get("b").requested.milli_cpu == 1000

    done = {**moved, "status": {"phase": "Succeeded"}}
    snapshot.update_pod(done)  # terminal pods free their resources
    assert snapshot.get("b").requested.milli_cpu == 0 and snapshot.get("b").pod_infos == {}

    # A pod seen before its node is kept and counted once the node appears.
    snapshot.add_pod(make_pod("early", cpu="2", node="c"))
    assert "c" not in snapshot and len(snapshot) == 2
    snapshot.add_node(make_node("c"))
    assert snapshot.get("c").requested.milli_cpu == 2000
    assert [n.name for n in snapshot] == ["a", "b", "c"]
    snapshot.update_node(make_node("c", cpu="16"))
    assert snapshot.get("c").allocatable.milli_cpu == 16000
    assert snapshot.get("c").requested.milli_cpu == 2000
    snapshot.remove_node("a")
    assert [n.name for n in snapshot] == ["b", "c"] and snapshot.get("a") is None


def test_assumed_pod_confirmed_by_informer() -> None:
    snapshot = Snapshot([make_node("a")])
    pod = make_pod("p", cpu="1")
    info = snapshot.assume_pod(pod, "a")
    assert snapshot.is_assumed(info.key)
    bound = {**pod, "spec": {**pod["spec"], "nodeName": "a"}}
    snapshot.add_pod(bound)  # the informer sees the binding
    assert not snapshot.is_assumed(info.key)
    snapshot.forget_pod(info)  # no effect on a confirmed pod
    assert snapshot.get("a").requested.milli_cpu == 1000


def test_quantities_parsed_once_into_integers() -> None:
    node = NodeInfo.of(
        make_node(
            "n",
            cpu="3500m",
            memory="1.5Gi",
            allocatable={"nvidia.com/gpu": 2, "hugepages-2Mi": "1Gi"},
        )
    )
    assert node.allocatable.milli_cpu == 3500
    assert node.allocatable.memory == 3 * 2**29
    assert node.allocatable.scalar == {"nvidia.com/gpu": 2, "hugepages-2Mi": 2**30}
    assert node.allocatable.pods == 110
    info = PodInfo.of(make_pod("p", cpu="0.1", memory="100M", requests={"example.com/foo": "3"}))
    assert (info.requests.milli_cpu, info.requests.memory) == (100, 100_000_000)
    assert info.requests.scalar == {"example.com/foo": 3}


def test_pre_filter_result_merge() -> None:
    a = PreFilterResult(frozenset({"x", "y"}))
    assert a.merge(None) is a
    assert a.merge(PreFilterResult()) is a
    assert PreFilterResult().merge(a) is a
    assert a.merge(PreFilterResult(frozenset({"y", "z"}))).node_names == frozenset({"y"})


# ---------------------------------------------------------------------------
# a large cluster (speed is measured by bench/, not here)


def build_cluster(num_nodes: int, pods_per_node: int) -> Snapshot:
    zones = ("zone-a", "zone-b", "zone-c")
    nodes = [
        make_node(
            f"node-{i}",
            cpu="32",
            memory="128Gi",
            labels={"topology.kubernetes.io/zone": zones[i % 3]},
        )
        for i in range(num_nodes)
    ]
    pods = [
        make_pod(
            f"pod-{i}-{j}",
            cpu="100m",
            memory="256Mi",
            node=f"node-{i}",
            labels={"app": f"app-{j}"},
            owner_uid=f"rs-{j}",
        )
        for i in range(num_nodes)
        for j in range(pods_per_node)
    ]
    return Snapshot(nodes, pods)


def test_schedule_1000_nodes_spreads_and_separates() -> None:
    """1,000 nodes holding 10,000 pods: replicas spread, anti-affine pods get a node each."""
    snapshot = build_cluster(1000, 10)
    fw = Framework(rng=random.Random(0))
    pods = [
        make_pod(f"web-{k}", cpu="250m", memory="512Mi", labels={"app": "web"}, owner_uid="rs-web")
        for k in range(200)
    ]
    anti = {
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"app": "db"}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    }
    dbs = [
        make_pod(f"db-{k}", cpu="1", labels={"app": "db"}, owner_uid="sts-db", spec=anti)
        for k in range(50)
    ]

    placed = [fw.schedule(CycleState(), p, snapshot).node_name for p in pods]
    db_nodes = [fw.schedule(CycleState(), p, snapshot).node_name for p in dbs]

    assert all(placed) and len(set(db_nodes)) == len(dbs)
    assert len(set(placed)) == len(placed)  # spreading: one replica per node
