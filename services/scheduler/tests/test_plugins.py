"""The default plugins, one extension point at a time, and through a full cycle."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from skiff.scheduler import (
    Code,
    CycleState,
    Framework,
    Handle,
    NodeInfo,
    PodInfo,
    Profile,
    SharedListers,
    Snapshot,
    Status,
)
from skiff.scheduler.plugins import (
    DefaultBinder,
    GPUBinPacking,
    InterPodAffinity,
    NodeAffinity,
    NodeName,
    NodePorts,
    NodeResourcesBalancedAllocation,
    NodeResourcesFit,
    NodeUnschedulable,
    PodTopologySpread,
    TaintToleration,
    VolumeBinding,
)
from skiff.scheduler.testing import DictLister, make_node, make_pod


def run_filter(
    plugin_cls: type,
    pod: dict[str, Any],
    node: dict[str, Any] | NodeInfo,
    snapshot: Snapshot | None = None,
    args: dict[str, Any] | None = None,
    handle: Handle | None = None,
) -> Status | None:
    """PreFilter (if any; SKIP means the filter passes) then Filter on one node."""
    plugin = plugin_cls(args or {}, handle)
    info = node if isinstance(node, NodeInfo) else None
    if snapshot is None:
        snapshot = Snapshot([node] if isinstance(node, dict) else [])
    if info is None:
        assert isinstance(node, dict)
        info = snapshot.get(node["metadata"]["name"])
    assert info is not None
    state = CycleState()
    state.pod_info = PodInfo.of(pod)
    state.snapshot = snapshot
    if hasattr(plugin, "pre_filter"):
        _, status = plugin.pre_filter(state, pod, snapshot)
        if status is not None and status.code is Code.SKIP:
            return None
        if status is not None and not status.is_success():
            return status
    return plugin.filter(state, pod, info)


def reasons(status: Status | None) -> list[str]:
    return [] if status is None else status.reasons


def code(status: Status | None) -> Code:
    return Code.SUCCESS if status is None else status.code


def scores(
    plugin_cls: type, pod: dict[str, Any], snapshot: Snapshot, args: dict | None = None
) -> dict[str, int]:
    """PreScore, Score and normalize over every node of the snapshot."""
    plugin = plugin_cls(args or {}, None)
    state = CycleState()
    state.pod_info = PodInfo.of(pod)
    state.snapshot = snapshot
    nodes = list(snapshot.node_infos)
    status = plugin.pre_score(state, pod, nodes)
    if status is not None and status.code is Code.SKIP:
        return {}
    result = [plugin.score(state, pod, n) for n in nodes]
    if hasattr(plugin, "normalize_scores"):
        plugin.normalize_scores(state, pod, result)
    return {n.name: s for n, s in zip(nodes, result, strict=True)}


def schedule(snapshot: Snapshot, pod: dict[str, Any], **profile: Any) -> Any:
    return Framework(Profile(**profile), rng=random.Random(0)).schedule(CycleState(), pod, snapshot)


# ---------------------------------------------------------------------------
# NodeUnschedulable, readiness, NodeName


def test_node_unschedulable() -> None:
    cordoned = make_node("n1", unschedulable=True)
    st = run_filter(NodeUnschedulable, make_pod("p"), cordoned)
    assert code(st) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert reasons(st) == ["node(s) were unschedulable"]
    assert run_filter(NodeUnschedulable, make_pod("p"), make_node("n2")) is None
    tolerant = make_pod(
        "ds",
        spec={
            "tolerations": [
                {
                    "key": "node.kubernetes.io/unschedulable",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ]
        },
    )
    assert run_filter(NodeUnschedulable, tolerant, cordoned) is None
    everything = make_pod("all", spec={"tolerations": [{"operator": "Exists"}]})
    assert run_filter(NodeUnschedulable, everything, cordoned) is None


@pytest.mark.parametrize(
    ("ready", "taint"),
    [
        ("False", "node.kubernetes.io/not-ready"),
        (None, "node.kubernetes.io/not-ready"),
        ("Unknown", "node.kubernetes.io/unreachable"),
    ],
)
def test_not_ready_node_is_tainted(ready: str | None, taint: str) -> None:
    node = make_node("n1", ready=ready)
    st = run_filter(TaintToleration, make_pod("p"), node)
    assert reasons(st) == [f"node(s) had untolerated taint {{{taint}: }}"]
    tolerant = make_pod("p", spec={"tolerations": [{"key": taint, "operator": "Exists"}]})
    assert run_filter(TaintToleration, tolerant, node) is None
    # The default NoExecute tolerations of every pod do not tolerate NoSchedule.
    default = make_pod(
        "p",
        spec={
            "tolerations": [
                {
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                }
            ]
        },
    )
    assert run_filter(TaintToleration, default, node) is not None


def test_not_ready_taint_not_duplicated() -> None:
    node = make_node(
        "n1",
        ready="False",
        taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}],
    )
    info = NodeInfo.of(node)
    assert [t.key for t in info.taints] == ["node.kubernetes.io/not-ready"]
    assert info.hard_taints[0].effect == "NoExecute"


def test_node_name() -> None:
    pod = make_pod("p", spec={"nodeName": "n1"})
    assert run_filter(NodeName, pod, make_node("n1")) is None
    st = run_filter(NodeName, pod, make_node("n2"))
    assert reasons(st) == ["node(s) didn't match the requested node name"]
    assert code(st) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert run_filter(NodeName, make_pod("q"), make_node("n2")) is None


# ---------------------------------------------------------------------------
# NodeAffinity


def affinity_pod(*terms: dict[str, Any], selector: dict[str, str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if terms:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    if selector:
        spec["nodeSelector"] = selector
    return make_pod("p", spec=spec)


def expr(key: str, op: str, *values: str) -> dict[str, Any]:
    e: dict[str, Any] = {"key": key, "operator": op}
    if values:
        e["values"] = list(values)
    return e


NODE_LABELS = {"disk": "ssd", "gpus": "4", "zone": "a"}


@pytest.mark.parametrize(
    ("expression", "fits"),
    [
        (expr("disk", "In", "ssd", "nvme"), True),
        (expr("disk", "In", "hdd"), False),
        (expr("missing", "In", "x"), False),
        (expr("disk", "NotIn", "hdd"), True),
        (expr("disk", "NotIn", "ssd"), False),
        (expr("missing", "NotIn", "x"), True),
        (expr("disk", "Exists"), True),
        (expr("missing", "Exists"), False),
        (expr("missing", "DoesNotExist"), True),
        (expr("disk", "DoesNotExist"), False),
        (expr("gpus", "Gt", "3"), True),
        (expr("gpus", "Gt", "4"), False),
        (expr("gpus", "Lt", "5"), True),
        (expr("gpus", "Lt", "4"), False),
        (expr("disk", "Gt", "1"), False),  # label value is not an integer
        (expr("gpus", "Gt", "x"), False),  # invalid requirement: the term matches nothing
        (expr("missing", "Lt", "10"), False),
    ],
)
def test_node_affinity_operators(expression: dict[str, Any], fits: bool) -> None:
    node = make_node("n1", labels=NODE_LABELS)
    st = run_filter(NodeAffinity, affinity_pod({"matchExpressions": [expression]}), node)
    if fits:
        assert st is None
    else:
        assert reasons(st) == ["node(s) didn't match Pod's node affinity/selector"]
        assert code(st) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE


def test_node_affinity_terms_or_expressions_and() -> None:
    node = make_node("n1", labels=NODE_LABELS)
    both = {"matchExpressions": [expr("disk", "In", "ssd"), expr("zone", "In", "b")]}
    assert run_filter(NodeAffinity, affinity_pod(both), node) is not None
    other = {"matchExpressions": [expr("zone", "In", "a")]}
    assert run_filter(NodeAffinity, affinity_pod(both, other), node) is None
    assert run_filter(NodeAffinity, affinity_pod({}), node) is not None  # empty term


def test_node_selector_and_affinity_both_apply() -> None:
    node = make_node("n1", labels=NODE_LABELS)
    assert run_filter(NodeAffinity, affinity_pod(selector={"disk": "ssd"}), node) is None
    assert run_filter(NodeAffinity, affinity_pod(selector={"disk": "hdd"}), node) is not None
    term = {"matchExpressions": [expr("zone", "In", "a")]}
    assert run_filter(NodeAffinity, affinity_pod(term, selector={"disk": "hdd"}), node) is not None
    assert run_filter(NodeAffinity, make_pod("no-constraints"), node) is None


def test_node_affinity_match_fields_restricts_nodes() -> None:
    snapshot = Snapshot([make_node(f"n{i}") for i in range(3)])
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
    pod = affinity_pod(term)
    result = schedule(snapshot, pod)
    assert result.node_name == "n1"
    assert result.evaluated_nodes == 1
    # The other nodes are absent from the cycle and reported as such.
    full = make_node("n1", pods=0)
    snapshot.update_node(full)
    result = schedule(snapshot, affinity_pod(term))
    assert result.message == (
        "0/3 nodes are available: 1 Too many pods, 2 node(s) didn't satisfy plugin(s) "
        "[NodeAffinity]. preemption: 0/3 nodes are available: 1 No preemption victims found "
        "for incoming pod, 2 Preemption is not helpful for scheduling."
    )
    not_in = {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n0"]}]}
    assert run_filter(NodeAffinity, affinity_pod(not_in), make_node("n0")) is not None
    assert run_filter(NodeAffinity, affinity_pod(not_in), make_node("n2")) is None


def test_node_affinity_preferred_score() -> None:
    snapshot = Snapshot(
        [
            make_node("both", labels={"disk": "ssd", "zone": "a"}),
            make_node("ssd", labels={"disk": "ssd"}),
            make_node("none"),
        ]
    )
    pod = make_pod(
        "p",
        spec={
            "affinity": {
                "nodeAffinity": {
                    "preferredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "weight": 30,
                            "preference": {"matchExpressions": [expr("disk", "In", "ssd")]},
                        },
                        {
                            "weight": 10,
                            "preference": {"matchExpressions": [expr("zone", "In", "a")]},
                        },
                    ]
                }
            }
        },
    )
    assert scores(NodeAffinity, pod, snapshot) == {"both": 100, "ssd": 75, "none": 0}
    assert scores(NodeAffinity, make_pod("q"), snapshot) == {}  # skipped
    assert schedule(snapshot, pod).node_name == "both"


# ---------------------------------------------------------------------------
# TaintToleration


def taint(key: str, effect: str, value: str = "") -> dict[str, str]:
    t = {"key": key, "effect": effect}
    if value:
        t["value"] = value
    return t


def tol(**kw: str) -> dict[str, Any]:
    return make_pod("p", spec={"tolerations": [kw]})


@pytest.mark.parametrize("effect", ["NoSchedule", "NoExecute"])
def test_taint_filter(effect: str) -> None:
    node = make_node("n1", taints=[taint("dedicated", effect, "gpu")])
    st = run_filter(TaintToleration, make_pod("p"), node)
    assert reasons(st) == ["node(s) had untolerated taint {dedicated: gpu}"]
    assert code(st) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert (
        run_filter(TaintToleration, tol(key="dedicated", operator="Equal", value="gpu"), node)
        is None
    )
    assert (
        run_filter(TaintToleration, tol(key="dedicated", value="gpu", effect=effect), node) is None
    )
    assert run_filter(TaintToleration, tol(key="dedicated", operator="Exists"), node) is None
    assert run_filter(TaintToleration, tol(operator="Exists"), node) is None  # tolerates all
    assert run_filter(TaintToleration, tol(key="dedicated", value="cpu"), node) is not None
    assert run_filter(TaintToleration, tol(key="other", operator="Exists"), node) is not None
    other = "NoExecute" if effect == "NoSchedule" else "NoSchedule"
    assert run_filter(TaintToleration, tol(key="dedicated", operator="Exists", effect=other), node)


def test_taint_filter_reports_first_untolerated() -> None:
    node = make_node("n1", taints=[taint("a", "NoSchedule", "1"), taint("b", "NoExecute")])
    st = run_filter(TaintToleration, tol(key="a", operator="Exists"), node)
    assert reasons(st) == ["node(s) had untolerated taint {b: }"]


def test_prefer_no_schedule_only_scores() -> None:
    snapshot = Snapshot(
        [
            make_node("clean"),
            make_node("one", taints=[taint("a", "PreferNoSchedule")]),
            make_node(
                "two", taints=[taint("a", "PreferNoSchedule"), taint("b", "PreferNoSchedule")]
            ),
        ]
    )
    pod = make_pod("p")
    assert run_filter(TaintToleration, pod, snapshot.get("two").node, snapshot) is None
    assert scores(TaintToleration, pod, snapshot) == {"clean": 100, "one": 50, "two": 0}
    tolerant = make_pod(
        "p",
        spec={"tolerations": [{"key": "a", "operator": "Exists", "effect": "PreferNoSchedule"}]},
    )
    assert scores(TaintToleration, tolerant, snapshot) == {"clean": 100, "one": 100, "two": 0}
    assert schedule(snapshot, pod).node_name == "clean"


# ---------------------------------------------------------------------------
# NodeResourcesFit


def test_fit_cpu_memory_storage() -> None:
    node = make_node("n1", cpu="2", memory="4Gi", allocatable={"ephemeral-storage": "10Gi"})
    bound = make_pod("a", cpu="1500m", memory="3Gi", node="n1")
    snapshot = Snapshot([node], [bound])
    fit = lambda pod: run_filter(NodeResourcesFit, pod, node, snapshot)  # noqa: E731
    assert fit(make_pod("p", cpu="500m", memory="1Gi")) is None
    st = fit(make_pod("p", cpu="501m"))
    assert reasons(st) == ["Insufficient cpu"] and code(st) is Code.UNSCHEDULABLE
    assert reasons(fit(make_pod("p", cpu="1", memory="2Gi"))) == [
        "Insufficient cpu",
        "Insufficient memory",
    ]
    assert reasons(fit(make_pod("p", requests={"ephemeral-storage": "11Gi"}))) == [
        "Insufficient ephemeral-storage"
    ]
    assert fit(make_pod("p", requests={"ephemeral-storage": "10Gi"})) is None


def test_fit_pod_count() -> None:
    node = make_node("n1", pods=2)
    snapshot = Snapshot([node], [make_pod("a", node="n1")])
    assert run_filter(NodeResourcesFit, make_pod("p"), node, snapshot) is None
    snapshot.add_pod(make_pod("b", node="n1"))
    assert reasons(run_filter(NodeResourcesFit, make_pod("p", cpu="10"), node, snapshot)) == [
        "Too many pods",
        "Insufficient cpu",
    ]


def test_fit_gpu_counts_bound_and_assumed_pods() -> None:
    gpu = make_node("gpu", allocatable={"nvidia.com/gpu": "4"})
    plain = make_node("plain")
    snapshot = Snapshot([gpu, plain], [make_pod("a", node="gpu", requests={"nvidia.com/gpu": 2})])
    want = lambda n: make_pod("p", requests={"nvidia.com/gpu": str(n)})  # noqa: E731
    assert reasons(run_filter(NodeResourcesFit, want(1), plain, snapshot)) == [
        "Insufficient nvidia.com/gpu"
    ]
    assert run_filter(NodeResourcesFit, want(2), gpu, snapshot) is None
    assert run_filter(NodeResourcesFit, want(3), gpu, snapshot) is not None
    assumed = snapshot.assume_pod(want(1), "gpu")
    assert snapshot.get("gpu").requested.scalar == {"nvidia.com/gpu": 3}
    assert reasons(run_filter(NodeResourcesFit, want(2), gpu, snapshot)) == [
        "Insufficient nvidia.com/gpu"
    ]
    snapshot.forget_pod(assumed)
    assert run_filter(NodeResourcesFit, want(2), gpu, snapshot) is None

    # Through the framework: two 2-GPU pods fill the node, the third does not fit.
    framework = Framework(rng=random.Random(0))
    assert framework.schedule(CycleState(), want(2), snapshot).node_name == "gpu"
    result = framework.schedule(CycleState(), want(2), snapshot)
    assert not result.success
    assert result.message.startswith(
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption:"
    )
    assert snapshot.get("gpu").requested.scalar == {"nvidia.com/gpu": 4}


def test_gpu_bin_packing() -> None:
    nodes = [
        make_node("busy-gpu", allocatable={"nvidia.com/gpu": "4"}),
        make_node("idle-gpu", allocatable={"nvidia.com/gpu": "4"}),
        make_node("mig", allocatable={"nvidia.com/mig-1g.10gb": "7"}),
        make_node("cpu"),
    ]
    snapshot = Snapshot(nodes, [make_pod("a", node="busy-gpu", requests={"nvidia.com/gpu": 2})])
    gpu_pod = make_pod("g", requests={"nvidia.com/gpu": "1"})
    plain = make_pod("p", cpu="100m")
    # A GPU pod packs onto the GPUs in use; the idle node stays whole.
    assert scores(GPUBinPacking, gpu_pod, snapshot) == {
        "busy-gpu": 75, "idle-gpu": 25, "mig": 14, "cpu": 0}  # fmt: skip
    assert schedule(snapshot, gpu_pod).node_name == "busy-gpu"
    # A pod without GPUs keeps off GPU nodes, the idle one most of all (busy-gpu now has
    # 3 of 4 in use, the pod just scheduled assumed there).
    assert scores(GPUBinPacking, plain, snapshot) == {
        "busy-gpu": 37, "idle-gpu": 0, "mig": 0, "cpu": 100}  # fmt: skip
    # Only the named resources count.
    only = {"resources": ["nvidia.com/gpu"]}
    assert scores(GPUBinPacking, plain, snapshot, only)["mig"] == 100
    with pytest.raises(ValueError, match="resources must be a list"):
        GPUBinPacking({"resources": "nvidia.com/gpu"}, None)


def test_pod_requests_init_containers_sidecars_overhead() -> None:
    pod = make_pod(
        "p",
        cpu="100m",
        memory="100Mi",
        spec={
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},
                {
                    "name": "sidecar",
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "200m"}},
                },
            ],
            "overhead": {"cpu": "10m", "memory": "1Mi"},
        },
    )
    info = PodInfo.of(pod)
    # max(100m + 200m sidecar, 1 init) + 10m overhead; memory max(100Mi, 50Mi) + 1Mi.
    assert info.requests.milli_cpu == 1010
    assert info.requests.memory == 101 * 2**20
    empty = PodInfo.of(make_pod("e"))
    assert (empty.requests.milli_cpu, empty.non_zero_cpu, empty.non_zero_memory) == (
        0,
        100,
        200 * 2**20,
    )


def test_least_allocated_prefers_emptier_node() -> None:
    snapshot = Snapshot(
        [make_node("busy"), make_node("empty")],
        [make_pod("a", cpu="3", memory="6Gi", node="busy")],
    )
    pod = make_pod("p", cpu="1", memory="2Gi")
    assert scores(NodeResourcesFit, pod, snapshot) == {"busy": 0, "empty": 75}
    most = {"scoringStrategy": {"type": "MostAllocated"}}
    assert scores(NodeResourcesFit, pod, snapshot, most) == {"busy": 100, "empty": 25}
    assert schedule(snapshot, pod).node_name == "empty"


def test_balanced_allocation() -> None:
    snapshot = Snapshot(
        [make_node("cpu-heavy"), make_node("balanced")],
        [
            make_pod("a", cpu="2", node="cpu-heavy"),
            make_pod("b", cpu="1", memory="2Gi", node="balanced"),
        ],
    )
    pod = make_pod("p", cpu="1", memory="2Gi")
    # cpu-heavy: cpu 3/4, memory 2/8 -> std 0.25; balanced: 2/4 vs 4/8 -> std 0.
    assert scores(NodeResourcesBalancedAllocation, pod, snapshot) == {
        "cpu-heavy": 75,
        "balanced": 100,
    }
    assert scores(NodeResourcesBalancedAllocation, make_pod("be"), snapshot) == {}  # skipped


# ---------------------------------------------------------------------------
# NodePorts


@pytest.mark.parametrize(
    ("existing", "wanted", "conflict"),
    [
        (8080, 8080, True),
        (8080, 8081, False),
        (("", "UDP", 53), ("", "TCP", 53), False),
        (("10.0.0.1", "TCP", 80), ("10.0.0.2", "TCP", 80), False),
        (("10.0.0.1", "TCP", 80), ("10.0.0.1", "TCP", 80), True),
        (("10.0.0.1", "TCP", 80), ("0.0.0.0", "TCP", 80), True),
        (("0.0.0.0", "TCP", 80), ("10.0.0.1", "TCP", 80), True),
        (80, ("10.0.0.1", "TCP", 80), True),
    ],
)
def test_node_ports(existing: Any, wanted: Any, conflict: bool) -> None:
    node = make_node("n1")
    snapshot = Snapshot([node], [make_pod("a", node="n1", host_ports=[existing])])
    st = run_filter(NodePorts, make_pod("p", host_ports=[wanted]), node, snapshot)
    if conflict:
        assert reasons(st) == ["node(s) didn't have free ports for the requested pod ports"]
        assert code(st) is Code.UNSCHEDULABLE
    else:
        assert st is None


def test_node_ports_freed_when_pod_removed() -> None:
    node = make_node("n1")
    bound = make_pod("a", node="n1", host_ports=[80])
    snapshot = Snapshot([node], [bound])
    assert run_filter(NodePorts, make_pod("p", host_ports=[80]), node, snapshot) is not None
    snapshot.remove_pod(bound)
    assert run_filter(NodePorts, make_pod("p", host_ports=[80]), node, snapshot) is None
    assert snapshot.get("n1").used_ports == {}


# ---------------------------------------------------------------------------
# InterPodAffinity


def anti(
    labels: dict[str, str], key: str = "kubernetes.io/hostname", **term: Any
) -> dict[str, Any]:
    return {
        "affinity": {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **term}
                ]
            }
        }
    }


def test_anti_affinity_incoming_pod() -> None:
    nodes = [make_node("n1"), make_node("n2")]
    snapshot = Snapshot(nodes, [make_pod("web-1", node="n1", labels={"app": "web"})])
    pod = make_pod("web-2", labels={"app": "web"}, spec=anti({"app": "web"}))
    st = run_filter(InterPodAffinity, pod, nodes[0], snapshot)
    assert reasons(st) == ["node(s) didn't match pod anti-affinity rules"]
    assert code(st) is Code.UNSCHEDULABLE
    assert run_filter(InterPodAffinity, pod, nodes[1], snapshot) is None
    # Another namespace's pods do not count unless the term names it.
    other = make_pod("x", namespace="other", labels={"app": "web"}, spec=anti({"app": "web"}))
    assert run_filter(InterPodAffinity, other, nodes[0], snapshot) is None
    listed = make_pod("x", namespace="other", spec=anti({"app": "web"}, namespaces=["default"]))
    assert run_filter(InterPodAffinity, listed, nodes[0], snapshot) is not None
    all_ns = make_pod("x", namespace="other", spec=anti({"app": "web"}, namespaceSelector={}))
    assert run_filter(InterPodAffinity, all_ns, nodes[0], snapshot) is not None
    assert schedule(snapshot, pod).node_name == "n2"


def test_anti_affinity_existing_pod_symmetry() -> None:
    nodes = [make_node("n1"), make_node("n2")]
    loner = make_pod("db", node="n1", labels={"app": "db"}, spec=anti({"app": "web"}))
    snapshot = Snapshot(nodes, [loner])
    web = make_pod("web", labels={"app": "web"})
    st = run_filter(InterPodAffinity, web, nodes[0], snapshot)
    assert reasons(st) == ["node(s) didn't satisfy existing pods anti-affinity rules"]
    assert run_filter(InterPodAffinity, web, nodes[1], snapshot) is None
    assert (
        run_filter(InterPodAffinity, make_pod("api", labels={"app": "api"}), nodes[0], snapshot)
        is None
    )
    assert schedule(snapshot, web).node_name == "n2"
    snapshot.remove_pod(loner)
    assert run_filter(InterPodAffinity, web, nodes[0], snapshot) is None


def test_anti_affinity_zone_topology() -> None:
    nodes = [
        make_node("a1", labels={"zone": "a"}),
        make_node("a2", labels={"zone": "a"}),
        make_node("b1", labels={"zone": "b"}),
    ]
    snapshot = Snapshot(nodes, [make_pod("web-1", node="a1", labels={"app": "web"})])
    pod = make_pod("web-2", labels={"app": "web"}, spec=anti({"app": "web"}, key="zone"))
    assert run_filter(InterPodAffinity, pod, nodes[1], snapshot) is not None
    assert run_filter(InterPodAffinity, pod, nodes[2], snapshot) is None


def test_required_pod_affinity() -> None:
    nodes = [make_node("n1", labels={"zone": "a"}), make_node("n2", labels={"zone": "b"})]
    term = {
        "affinity": {
            "podAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}
                ]
            }
        }
    }
    snapshot = Snapshot(nodes, [make_pod("cache", node="n2", labels={"app": "cache"})])
    pod = make_pod("web", labels={"app": "web"}, spec=term)
    st = run_filter(InterPodAffinity, pod, nodes[0], snapshot)
    assert reasons(st) == ["node(s) didn't match pod affinity rules"]
    assert code(st) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert run_filter(InterPodAffinity, pod, nodes[1], snapshot) is None
    # The first pod of a self-affine group may go anywhere.
    first = make_pod("cache-0", labels={"app": "cache"}, spec=term)
    empty = Snapshot(nodes)
    assert run_filter(InterPodAffinity, first, nodes[0], empty) is None


# ---------------------------------------------------------------------------
# PodTopologySpread


def test_spreading_prefers_node_without_sibling() -> None:
    snapshot = Snapshot(
        [make_node("n1"), make_node("n2"), make_node("n3")],
        [
            make_pod("web-1", node="n1", owner_uid="rs-1", labels={"app": "web"}),
            make_pod("web-2", node="n2", owner_uid="rs-1", labels={"app": "web"}),
            make_pod("other", node="n3", owner_uid="rs-2"),
        ],
    )
    pod = make_pod("web-3", owner_uid="rs-1", labels={"app": "web"})
    # raw: count x ln(3 nodes + 2) + (maxSkew 3 - 1) -> 4, 4, 2; normalized 100 x (4 + 2 - s) // 4
    assert scores(PodTopologySpread, pod, snapshot) == {"n1": 50, "n2": 50, "n3": 100}
    assert schedule(snapshot, pod).node_name == "n3"
    # A pod without a controller gets no system-default spreading.
    assert scores(PodTopologySpread, make_pod("lone"), snapshot) == {}


def test_spreading_places_replicas_one_per_node() -> None:
    snapshot = Snapshot([make_node(f"n{i}") for i in range(4)])
    framework = Framework(rng=random.Random(0))
    placed = [
        framework.schedule(
            CycleState(), make_pod(f"w{i}", cpu="100m", owner_uid="rs"), snapshot
        ).node_name
        for i in range(4)
    ]
    assert sorted(placed) == ["n0", "n1", "n2", "n3"]


def test_topology_spread_do_not_schedule() -> None:
    nodes = [
        make_node("a1", labels={"zone": "a"}),
        make_node("b1", labels={"zone": "b"}),
        make_node("nolabel"),
    ]
    snapshot = Snapshot(nodes, [make_pod("w1", node="a1", labels={"app": "w"})])
    constraint = {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "w"}},
    }
    pod = make_pod("w2", labels={"app": "w"}, spec={"topologySpreadConstraints": [constraint]})
    st = run_filter(PodTopologySpread, pod, nodes[0], snapshot)
    assert reasons(st) == ["node(s) didn't match pod topology spread constraints"]
    assert run_filter(PodTopologySpread, pod, nodes[1], snapshot) is None
    st = run_filter(PodTopologySpread, pod, nodes[2], snapshot)
    assert reasons(st) == [
        "node(s) didn't match pod topology spread constraints (missing required label)"
    ]
    assert schedule(snapshot, pod).node_name == "b1"


# ---------------------------------------------------------------------------
# DefaultPreemption, DefaultBinder


def test_preemption_proposes_lowest_priority_victims() -> None:
    snapshot = Snapshot(
        [make_node("n1", cpu="2"), make_node("n2", cpu="2")],
        [
            make_pod("low", cpu="1500m", node="n1", priority=1),
            make_pod("mid", cpu="1500m", node="n2", priority=5),
        ],
    )
    pod = make_pod("p", cpu="1", priority=10)
    result = schedule(snapshot, pod)
    assert not result.success
    assert result.nominated_node_name == "n1"
    assert [v.name for v in result.victims] == ["low"]
    assert result.message == "0/2 nodes are available: 2 Insufficient cpu."
    never = make_pod("p", cpu="1", priority=10, spec={"preemptionPolicy": "Never"})
    assert schedule(snapshot, never).message == (
        "0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to "
        "preemptionPolicy=Never."
    )


def test_nominated_pod_waits_for_terminating_victims() -> None:
    going = make_pod("low", cpu="1500m", node="n1", priority=1)
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    snapshot = Snapshot([make_node("n1", cpu="2")], [going])
    pod = make_pod("p", cpu="1", priority=10)
    pod["status"] = {"nominatedNodeName": "n1"}
    result = schedule(snapshot, pod)
    assert not result.victims
    assert result.message.endswith(
        "preemption: not eligible due to a terminating pod on the nominated node."
    )


def test_default_binder_posts_binding_through_the_handle() -> None:
    calls: list[tuple[str, str, str, dict[str, Any], str | None]] = []

    class Client:
        async def create_subresource(
            self, res: str, name: str, sub: str, body: dict[str, Any], ns: str | None = None
        ) -> dict[str, Any]:
            calls.append((res, name, sub, body, ns))
            return body

    handle = Framework(Profile(plugins=[]), client=Client())  # type: ignore[arg-type]
    pod = make_pod("p", uid="u1")
    assert asyncio.run(DefaultBinder({}, handle).bind(CycleState(), pod, "n1")) is None
    assert calls == [
        (
            "pods",
            "p",
            "binding",
            {
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
                "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
            },
            "default",
        )
    ]
    no_client = Framework(Profile(plugins=[]))
    missing = asyncio.run(DefaultBinder({}, no_client).bind(CycleState(), pod, "n1"))
    assert missing is not None and missing.code is Code.ERROR


# VolumeBinding: claims must exist; bound local volumes pull their pods to their node.
CLAIMS: dict[str, dict[str, Any]] = {
    "default/local-bound": {"metadata": {}, "spec": {"volumeName": "pv-n1"}},
    "default/plain-bound": {"metadata": {}, "spec": {"volumeName": "pv-any"}},
    "default/waiting": {"metadata": {}, "spec": {"storageClassName": "standard"}},
    "default/immediate": {"metadata": {}, "spec": {"storageClassName": "fast"}},
    "default/going": {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "spec": {}},
}
HOST = "kubernetes.io/hostname"
VOLUMES = {
    "pv-n1": {
        "spec": {
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": HOST, "operator": "In", "values": ["n1"]}]}
                    ]
                }
            }
        }
    },
    "pv-any": {"spec": {}},
}
CLASSES = {
    "standard": {"volumeBindingMode": "WaitForFirstConsumer"},
    "fast": {"volumeBindingMode": "Immediate"},
}
HANDLE = Framework(
    Profile(plugins=[]),
    listers=SharedListers(
        persistent_volume_claims=DictLister(CLAIMS),
        persistent_volumes=DictLister(VOLUMES),
        storage_classes=DictLister(CLASSES),
    ),
)


def pod_with(*claims: str) -> dict[str, Any]:
    pod = make_pod("p")
    pod["spec"]["volumes"] = [
        {"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims
    ]
    return pod


def test_bound_local_volume_only_fits_its_node() -> None:
    n1 = make_node("n1", labels={HOST: "n1"})
    n2 = make_node("n2", labels={HOST: "n2"})
    pod = pod_with("local-bound", "plain-bound")
    assert run_filter(VolumeBinding, pod, n1, handle=HANDLE) is None
    status = run_filter(VolumeBinding, pod, n2, handle=HANDLE)
    assert code(status) is Code.UNSCHEDULABLE
    assert reasons(status) == ["node(s) had volume node affinity conflict"]


def test_unbound_claims() -> None:
    node = make_node("n1", labels={HOST: "n1"})
    assert run_filter(VolumeBinding, pod_with("waiting"), node, handle=HANDLE) is None
    status = run_filter(VolumeBinding, pod_with("immediate"), node, handle=HANDLE)
    assert code(status) is Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert reasons(status) == ["pod has unbound immediate PersistentVolumeClaims"]


def test_missing_or_deleted_claims() -> None:
    node = make_node("n1")
    status = run_filter(VolumeBinding, pod_with("nope"), node, handle=HANDLE)
    assert reasons(status) == ['persistentvolumeclaim "nope" not found']
    status = run_filter(VolumeBinding, pod_with("going"), node, handle=HANDLE)
    assert reasons(status) == ['persistentvolumeclaim "going" is being deleted']


def test_pods_without_claims_or_lookups_are_skipped() -> None:
    node = make_node("n1")
    assert run_filter(VolumeBinding, make_pod("p"), node, handle=HANDLE) is None
    assert run_filter(VolumeBinding, pod_with("nope"), node) is None
    no_listers = Framework(Profile(plugins=[]))
    assert run_filter(VolumeBinding, pod_with("nope"), node, handle=no_listers) is None
