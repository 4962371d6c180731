"""The scheduling framework: extension-point protocols, statuses, profiles and one cycle.

Shaped after kube-scheduler's ``framework/interface.go`` and ``framework/runtime``: a plugin
has a ``name`` and opts into an extension point (PreFilter, Filter, PostFilter, PreScore,
Score, Reserve, Bind) by implementing that point's small protocol. Plugins are built by
factories in a :data:`Registry` and enabled by a :class:`Profile`; :class:`Framework` runs
a scheduling cycle over a :class:`~skiff.scheduler.types.Snapshot`.

Everything here is synchronous and pure except ``Framework.bind`` (the Bind plugins do I/O
through an injected callable). A plugin method returns ``None`` for success, like Go's nil
``*Status``; a raised exception is turned into a ``Code.ERROR`` status.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from skiff.scheduler.types import NodeInfo, PodInfo, Snapshot

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0
DEFAULT_SCHEDULER_NAME = "default-scheduler"
NO_NODES_AVAILABLE = "no nodes available to schedule pods"

# Adaptive percentageOfNodesToScore (schedule_one.go numFeasibleNodesToFind).
_MIN_FEASIBLE_NODES_TO_FIND = 100
_MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


class Code(enum.Enum):
    """The outcome of running a plugin (``framework.Code``)."""

    SUCCESS = "Success"
    ERROR = "Error"
    """An internal error: the cycle is aborted and the pod retried with back-off."""
    UNSCHEDULABLE = "Unschedulable"
    """The pod does not fit the node now; preemption might help."""
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    """The pod can never fit the node as it is; preemption would not help."""
    WAIT = "Wait"
    """A Permit plugin holds the pod."""
    SKIP = "Skip"
    """PreFilter/PreScore: the plugin has nothing to do for this pod; Bind: not my pod."""
    PENDING = "Pending"
    """The pod waits for something outside the scheduler."""


_REJECTED = frozenset({Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE})


@dataclass(slots=True)
class Status:
    """The result of a plugin call: a code, human-readable reasons and the plugin's name."""

    code: Code = Code.SUCCESS
    reasons: list[str] = field(default_factory=list)
    plugin: str = ""
    error: BaseException | None = None

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, list(reasons), plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str = "") -> Status:
        """An ``UNSCHEDULABLE_AND_UNRESOLVABLE`` status."""
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, list(reasons), plugin)

    @classmethod
    def skip(cls, plugin: str = "") -> Status:
        return cls(Code.SKIP, [], plugin)

    @classmethod
    def as_error(cls, error: BaseException | str, plugin: str = "") -> Status:
        """An ``ERROR`` status carrying an exception (or a message)."""
        if isinstance(error, str):
            return cls(Code.ERROR, [error], plugin, RuntimeError(error))
        return cls(Code.ERROR, [str(error)], plugin, error)

    def is_success(self) -> bool:
        return self.code is Code.SUCCESS

    def is_rejected(self) -> bool:
        """Unschedulable or UnschedulableAndUnresolvable."""
        return self.code in _REJECTED

    def is_skip(self) -> bool:
        return self.code is Code.SKIP

    def message(self) -> str:
        """The reasons joined by ", " (``Status.Message``)."""
        return ", ".join(self.reasons)

    def with_plugin(self, plugin: str) -> Status:
        """This status attributed to ``plugin`` (a copy when it named another plugin)."""
        if self.plugin == plugin:
            return self
        return Status(self.code, self.reasons, plugin, self.error)


SUCCESS = Status()


def is_success(status: Status | None) -> bool:
    """Whether a plugin's return value means success (``None`` or a SUCCESS status)."""
    return status is None or status.code is Code.SUCCESS


class CycleState:
    """Per-cycle storage shared by the plugins (``framework.CycleState``).

    A mapping of plugin-chosen keys to data computed in PreFilter/PreScore and read in
    Filter/Score. ``pod_info`` holds the precomputed data of the pod being scheduled and
    ``snapshot`` the snapshot of the cycle; both are set by :meth:`Framework.schedule`.
    """

    __slots__ = ("_data", "pod_info", "skip_filter_plugins", "skip_score_plugins", "snapshot")

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self.pod_info: PodInfo | None = None
        self.snapshot: Snapshot | None = None
        """The snapshot being scheduled against (kube-scheduler's shared lister)."""
        self.skip_filter_plugins: set[str] = set()
        self.skip_score_plugins: set[str] = set()

    def read(self, key: str) -> Any:
        """The value stored under ``key``; raises ``KeyError`` if none."""
        return self._data[key]

    def write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    __getitem__ = read
    __setitem__ = write

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def clone(self) -> CycleState:
        """A copy for dry runs: values with a ``clone()`` method are cloned, others shared."""
        c = CycleState()
        c._data = {k: v.clone() if hasattr(v, "clone") else v for k, v in self._data.items()}
        c.pod_info = self.pod_info
        c.snapshot = self.snapshot
        c.skip_filter_plugins = set(self.skip_filter_plugins)
        c.skip_score_plugins = set(self.skip_score_plugins)
        return c


@dataclass(slots=True)
class PreFilterResult:
    """Nodes a PreFilter plugin restricts the cycle to; ``None`` means every node."""

    node_names: frozenset[str] | None = None

    def merge(self, other: PreFilterResult | None) -> PreFilterResult:
        if other is None or other.node_names is None:
            return self
        if self.node_names is None:
            return other
        return PreFilterResult(self.node_names & other.node_names)


@dataclass(slots=True)
class PostFilterResult:
    """What a PostFilter plugin proposes: a node to nominate and the pods to evict there."""

    nominated_node_name: str | None = None
    victims: list[PodInfo] = field(default_factory=list)


@dataclass(slots=True)
class NodeToStatus:
    """Failing statuses of the nodes that were filtered out, and the one of absent nodes.

    Absent nodes are those a PreFilter plugin excluded (or every node when PreFilter
    rejected the pod); they all share ``absent``.
    """

    statuses: dict[str, Status] = field(default_factory=dict)
    absent: Status = field(default_factory=lambda: Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE))

    def get(self, node_name: str) -> Status:
        return self.statuses.get(node_name, self.absent)

    def __len__(self) -> int:
        return len(self.statuses)


@dataclass(slots=True)
class Diagnosis:
    """Why a pod did not fit: per-node statuses and the messages of PreFilter/PostFilter."""

    node_to_status: NodeToStatus = field(default_factory=NodeToStatus)
    unschedulable_plugins: set[str] = field(default_factory=set)
    pre_filter_msg: str = ""
    post_filter_msg: str = ""


@dataclass(slots=True)
class ScheduleResult:
    """The outcome of :meth:`Framework.schedule`.

    On success ``node_name`` is set and ``assumed_pod`` is the pod as assumed onto that
    node in the snapshot (bind it, or :meth:`Framework.forget` it). On failure
    ``node_name`` is None, ``message`` is the complete FailedScheduling text (with the
    PreFilter and preemption parts) and ``diagnosis`` says which plugins rejected the pod
    on which node; ``nominated_node_name``/``victims`` carry a PostFilter (preemption)
    proposal.
    """

    status: Status
    node_name: str | None = None
    num_all_nodes: int = 0
    evaluated_nodes: int = 0
    feasible_nodes: int = 0
    message: str = ""
    diagnosis: Diagnosis | None = None
    assumed_pod: PodInfo | None = None
    nominated_node_name: str | None = None
    victims: list[PodInfo] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return self.status.code is Code.SUCCESS

    @property
    def unschedulable(self) -> bool:
        """The pod fits no node (as opposed to an internal error): retry on cluster events."""
        return self.status.code in _REJECTED

    @property
    def statuses(self) -> dict[str, Status]:
        """Node name -> the status that rejected the pod there (explicitly filtered nodes)."""
        return self.diagnosis.node_to_status.statuses if self.diagnosis is not None else {}

    @property
    def error(self) -> str | None:
        """The error message when the cycle failed with an internal error."""
        return self.message if self.status.code is Code.ERROR else None


# ---------------------------------------------------------------------------
# extension points


@runtime_checkable
class Plugin(Protocol):
    """Every plugin has a name, unique in a profile."""

    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    """Runs once per cycle before filtering; may restrict the nodes, reject or skip."""

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]: ...


@runtime_checkable
class PreFilterExtensions(Protocol):
    """Lets a PreFilter plugin update its cycle state when a dry run adds/removes a pod."""

    def add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...

    def remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    """Decides whether the pod fits one node."""

    def filter(
        self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo
    ) -> Status | None: ...


@runtime_checkable
class PostFilterPlugin(Plugin, Protocol):
    """Runs when no node fits (preemption)."""

    def post_filter(
        self,
        state: CycleState,
        pod: dict[str, Any],
        snapshot: Snapshot,
        statuses: NodeToStatus,
    ) -> tuple[PostFilterResult | None, Status | None]: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    """Runs once per cycle before scoring, with the feasible nodes; may skip."""

    def pre_score(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    """Ranks a feasible node; the score is 0-100 after the optional normalization."""

    def score(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> int: ...


@runtime_checkable
class ScoreExtensions(Protocol):
    """Rescales a Score plugin's raw scores, in place, to 0-100 (``NormalizeScore``).

    ``scores`` is aligned with the node list passed to PreScore.
    """

    def normalize_scores(
        self, state: CycleState, pod: dict[str, Any], scores: list[int]
    ) -> Status | None: ...


@runtime_checkable
class ReservePlugin(Plugin, Protocol):
    """Reserves node-side state for the chosen node; ``unreserve`` undoes it."""

    def reserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status | None: ...

    def unreserve(self, state: CycleState, pod: dict[str, Any], node_name: str) -> None: ...


@runtime_checkable
class BindPlugin(Plugin, Protocol):
    """Binds the pod to the node; returns a SKIP status to let the next Bind plugin do it."""

    async def bind(
        self, state: CycleState, pod: dict[str, Any], node_name: str
    ) -> Status | None: ...


class Handle(Protocol):
    """What plugins may call back into: the framework running them."""

    def run_filter_plugins(
        self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo
    ) -> Status | None: ...

    def run_pre_filter_extension_add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...

    def run_pre_filter_extension_remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...


PluginFactory = Callable[[Mapping[str, Any], Handle], Plugin]
"""Builds a plugin from its args (``Profile.plugin_args[name]``) and the framework handle."""

Registry = dict[str, PluginFactory]
"""Plugin name -> factory."""


class ExtensionPoint(enum.Enum):
    PRE_FILTER = "preFilter"
    FILTER = "filter"
    POST_FILTER = "postFilter"
    PRE_SCORE = "preScore"
    SCORE = "score"
    RESERVE = "reserve"
    BIND = "bind"


_POINT_PROTOCOLS: dict[ExtensionPoint, type] = {
    ExtensionPoint.PRE_FILTER: PreFilterPlugin,
    ExtensionPoint.FILTER: FilterPlugin,
    ExtensionPoint.POST_FILTER: PostFilterPlugin,
    ExtensionPoint.PRE_SCORE: PreScorePlugin,
    ExtensionPoint.SCORE: ScorePlugin,
    ExtensionPoint.RESERVE: ReservePlugin,
    ExtensionPoint.BIND: BindPlugin,
}

# kube-scheduler 1.32's default multi-point plugins (apis/config/v1/default_plugins.go),
# less the ones for volume limits and zones, images and queueing, in the same order.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "VolumeBinding",
    "PodTopologySpread",
    "InterPodAffinity",
    "DefaultPreemption",
    "NodeResourcesBalancedAllocation",
    "DefaultBinder",
)
DEFAULT_SCORE_WEIGHTS: dict[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
}


@dataclass(slots=True)
class Profile:
    """A scheduler profile (``KubeSchedulerProfile``).

    ``plugins`` are enabled, in order, at every extension point they implement (like
    ``multiPoint``), except where ``disabled[point]`` names them (or ``"*"``);
    ``enabled[point]`` adds plugins to one point only.
    """

    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    plugins: list[str] = field(default_factory=lambda: list(DEFAULT_PLUGINS))
    enabled: dict[ExtensionPoint, list[str]] = field(default_factory=dict)
    disabled: dict[ExtensionPoint, set[str]] = field(default_factory=dict)
    score_weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))
    plugin_args: dict[str, dict[str, Any]] = field(default_factory=dict)
    percentage_of_nodes_to_score: int | None = None
    """Stop filtering once this % of the nodes fit (0/None: adaptive, 50% - n/125, >= 5%)."""


def default_profile(**changes: Any) -> Profile:
    """kube-scheduler's default profile (with ``changes`` applied to its fields)."""
    return Profile(**changes)


def default_normalize_score(
    scores: list[int], *, reverse: bool, max_priority: int = MAX_NODE_SCORE
) -> None:
    """Scale scores in place so the highest becomes ``max_priority`` (reversed: the lowest).

    ``helper.DefaultNormalizeScore``; with every score 0, reverse makes them all the maximum.
    """
    highest = max(scores, default=0)
    if highest == 0:
        if reverse:
            scores[:] = [max_priority] * len(scores)
        return
    for i, s in enumerate(scores):
        s = max_priority * s // highest
        scores[i] = max_priority - s if reverse else s


# ---------------------------------------------------------------------------
# FitError message


def failure_message(
    num_nodes: int,
    statuses: Mapping[str, Status] | Iterable[Status] | NodeToStatus,
    *,
    pre_filter_msg: str = "",
    post_filter_msg: str = "",
) -> str:
    """The FailedScheduling message, as ``FitError.Error`` writes it.

    ``0/N nodes are available: <PreFilter msg>. <count reason, ... sorted>. <PostFilter msg>``;
    reasons are counted over the nodes (absent nodes of a NodeToStatus count with its
    ``absent`` status) and sorted as strings, count first.
    """
    msg = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        counts: Counter[str] = Counter()
        absent: Status | None = None
        if isinstance(statuses, NodeToStatus):
            absent = statuses.absent
            values: Iterable[Status] = statuses.statuses.values()
            explicit = len(statuses.statuses)
        elif isinstance(statuses, Mapping):
            values = statuses.values()
            explicit = len(statuses)
        else:
            values = list(statuses)
            explicit = len(values)  # type: ignore[arg-type]
        for status in values:
            for reason in status.reasons:
                counts[reason] += 1
        if absent is not None and explicit < num_nodes:
            for reason in absent.reasons:
                counts[reason] += num_nodes - explicit
        parts = sorted(f"{n} {reason}" for reason, n in counts.items())
        if parts:
            msg += " " + ", ".join(parts) + "."
    if post_filter_msg:
        msg += " " + post_filter_msg
    return msg


# ---------------------------------------------------------------------------
# the framework


class _CycleError(Exception):
    def __init__(self, status: Status) -> None:
        super().__init__(status.message())
        self.status = status


class Framework:
    """Runs the plugins of one profile (``frameworkImpl``) and one scheduling cycle."""

    def __init__(
        self,
        profile: Profile | None = None,
        registry: Registry | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        if registry is None:
            from skiff.scheduler.plugins import default_registry

            registry = default_registry()
        self.profile = profile if profile is not None else Profile()
        self._rng = rng if rng is not None else random.Random()
        self._next_start_node_index = 0
        self.plugins: dict[str, Plugin] = {}

        points: dict[ExtensionPoint, list[Plugin]] = {p: [] for p in ExtensionPoint}
        for point in ExtensionPoint:
            disabled = self.profile.disabled.get(point, set())
            names = (
                [] if "*" in disabled else [n for n in self.profile.plugins if n not in disabled]
            )
            names += [n for n in self.profile.enabled.get(point, ()) if n not in names]
            for name in names:
                plugin = self._plugin(name, registry)
                if isinstance(plugin, _POINT_PROTOCOLS[point]):
                    points[point].append(plugin)
                elif name not in self.profile.plugins:
                    raise ValueError(f"plugin {name!r} does not extend {point.value}")

        self.pre_filter_plugins: list[PreFilterPlugin] = points[ExtensionPoint.PRE_FILTER]  # type: ignore[assignment]
        self.filter_plugins: list[FilterPlugin] = points[ExtensionPoint.FILTER]  # type: ignore[assignment]
        self.post_filter_plugins: list[PostFilterPlugin] = points[ExtensionPoint.POST_FILTER]  # type: ignore[assignment]
        self.pre_score_plugins: list[PreScorePlugin] = points[ExtensionPoint.PRE_SCORE]  # type: ignore[assignment]
        self.score_plugins: list[ScorePlugin] = points[ExtensionPoint.SCORE]  # type: ignore[assignment]
        self.reserve_plugins: list[ReservePlugin] = points[ExtensionPoint.RESERVE]  # type: ignore[assignment]
        self.bind_plugins: list[BindPlugin] = points[ExtensionPoint.BIND]  # type: ignore[assignment]
        self._pre_filter_extensions = [
            p for p in self.pre_filter_plugins if isinstance(p, PreFilterExtensions)
        ]
        self._score_weights = {
            p.name: self.profile.score_weights.get(p.name) or 1 for p in self.score_plugins
        }

    def _plugin(self, name: str, registry: Registry) -> Plugin:
        plugin = self.plugins.get(name)
        if plugin is None:
            factory = registry.get(name)
            if factory is None:
                raise ValueError(f"plugin {name!r} is not in the registry")
            plugin = factory(self.profile.plugin_args.get(name, {}), self)
            self.plugins[name] = plugin
        return plugin

    @property
    def scheduler_name(self) -> str:
        return self.profile.scheduler_name

    # -- the cycle ---------------------------------------------------------

    def schedule(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> ScheduleResult:
        """Find a node for ``pod``, assume the pod there and run Reserve.

        PreFilter, Filter over the nodes (starting where the last cycle stopped, and
        stopping once enough feasible nodes are found), PostFilter when none fits, then
        PreScore/Score/normalize/weight on the feasible nodes, the best one (ties broken at
        random) and Reserve. On success the pod is assumed in ``snapshot``.
        """
        if state.pod_info is None or state.pod_info.pod is not pod:
            state.pod_info = PodInfo.of(pod)
        state.snapshot = snapshot
        num_all = len(snapshot.node_infos)
        if num_all == 0:
            status = Status.unresolvable(NO_NODES_AVAILABLE)
            return ScheduleResult(status=status, message=NO_NODES_AVAILABLE)
        try:
            feasible, diagnosis = self._find_nodes_that_fit(state, pod, snapshot)
        except _CycleError as exc:
            return ScheduleResult(status=exc.status, num_all_nodes=num_all, message=str(exc))
        evaluated = len(feasible) + len(diagnosis.node_to_status)

        if not feasible:
            result = ScheduleResult(
                status=Status(Code.UNSCHEDULABLE, plugin=_first(diagnosis.unschedulable_plugins)),
                num_all_nodes=num_all,
                evaluated_nodes=evaluated,
                diagnosis=diagnosis,
            )
            if self.post_filter_plugins:
                post, status = self.run_post_filter_plugins(
                    state, pod, snapshot, diagnosis.node_to_status
                )
                if status is not None:
                    diagnosis.post_filter_msg = status.message()
                if post is not None:
                    result.nominated_node_name = post.nominated_node_name
                    result.victims = post.victims
            result.message = failure_message(
                num_all,
                diagnosis.node_to_status,
                pre_filter_msg=diagnosis.pre_filter_msg,
                post_filter_msg=diagnosis.post_filter_msg,
            )
            result.status.reasons = [result.message]
            return result

        try:
            if len(feasible) == 1:
                host = feasible[0]
            else:
                totals = self._prioritize(state, pod, feasible)
                host = self._select_host(feasible, totals)
        except _CycleError as exc:
            return ScheduleResult(status=exc.status, num_all_nodes=num_all, message=str(exc))

        assumed = snapshot.assume_pod(state.pod_info, host.name)
        status = self.run_reserve_plugins_reserve(state, pod, host.name)
        if not is_success(status):
            assert status is not None
            self.run_reserve_plugins_unreserve(state, pod, host.name)
            snapshot.forget_pod(assumed)
            result = ScheduleResult(status=status, num_all_nodes=num_all, evaluated_nodes=evaluated)
            if status.is_rejected():
                diagnosis = Diagnosis(NodeToStatus({host.name: status}), {status.plugin})
                result.diagnosis = diagnosis
                result.message = failure_message(1, diagnosis.node_to_status)
            else:
                result.message = status.message()
            return result
        return ScheduleResult(
            status=SUCCESS,
            node_name=host.name,
            num_all_nodes=num_all,
            evaluated_nodes=evaluated,
            feasible_nodes=len(feasible),
            assumed_pod=assumed,
        )

    def _num_feasible_nodes_to_find(self, num_nodes: int) -> int:
        if num_nodes < _MIN_FEASIBLE_NODES_TO_FIND:
            return num_nodes
        percentage = self.profile.percentage_of_nodes_to_score or 0
        if percentage >= 100:
            return num_nodes
        if percentage <= 0:
            percentage = max(50 - num_nodes // 125, _MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
        return max(num_nodes * percentage // 100, _MIN_FEASIBLE_NODES_TO_FIND)

    def _find_nodes_that_fit(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[list[NodeInfo], Diagnosis]:
        diagnosis = Diagnosis()
        pre_result, status = self.run_pre_filter_plugins(state, pod, snapshot)
        if status is not None and not status.is_success():
            if not status.is_rejected():
                raise _CycleError(status)
            # Every node gets the PreFilter status; the message is PreFilter's alone.
            diagnosis.node_to_status.absent = status
            diagnosis.pre_filter_msg = status.message()
            if status.plugin:
                diagnosis.unschedulable_plugins.add(status.plugin)
            return [], diagnosis

        nominated = ((pod.get("status") or {}).get("nominatedNodeName")) or ""
        if nominated:
            info = snapshot.get(nominated)
            if info is not None and (
                pre_result is None
                or pre_result.node_names is None
                or nominated in pre_result.node_names
            ):
                if is_success(self.run_filter_plugins(state, pod, info)):
                    return [info], diagnosis

        nodes = snapshot.node_infos
        if pre_result is not None and pre_result.node_names is not None:
            nodes = [n for n in nodes if n.name in pre_result.node_names]
            plugins = sorted(state.get(_PRE_FILTER_RESTRICTED, set()))
            diagnosis.node_to_status.absent = Status.unresolvable(
                f"node(s) didn't satisfy plugin(s) [{' '.join(plugins)}]"
            )
            diagnosis.unschedulable_plugins.update(plugins)
        num_nodes = len(nodes)
        if num_nodes == 0:
            return [], diagnosis

        to_find = self._num_feasible_nodes_to_find(num_nodes)
        start = self._next_start_node_index % num_nodes
        ordered = nodes[start:] + nodes[:start] if start else nodes
        filters = [
            (p.name, p.filter)
            for p in self.filter_plugins
            if p.name not in state.skip_filter_plugins
        ]
        statuses = diagnosis.node_to_status.statuses
        unschedulable = diagnosis.unschedulable_plugins
        feasible: list[NodeInfo] = []
        processed = 0
        try:
            for info in ordered:
                processed += 1
                for name, run in filters:
                    st = run(state, pod, info)
                    if st is not None and st.code is not Code.SUCCESS:
                        if st.code not in _REJECTED:
                            raise _CycleError(
                                _wrap_error(st.with_plugin(name), f"running {name!r} filter plugin")
                            )
                        statuses[info.name] = st if st.plugin == name else st.with_plugin(name)
                        unschedulable.add(name)
                        break
                else:
                    feasible.append(info)
                    if len(feasible) >= to_find:
                        break
        except _CycleError:
            raise
        except Exception as exc:
            raise _CycleError(Status.as_error(f"running filter plugins: {exc}")) from exc
        finally:
            self._next_start_node_index = (start + processed) % num_nodes
        return feasible, diagnosis

    def _prioritize(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> list[int]:
        status = self.run_pre_score_plugins(state, pod, nodes)
        if not is_success(status):
            assert status is not None
            raise _CycleError(status)
        totals = [0] * len(nodes)
        for plugin in self.score_plugins:
            name = plugin.name
            if name in state.skip_score_plugins:
                continue
            try:
                score = plugin.score
                scores = [score(state, pod, n) for n in nodes]
                if isinstance(plugin, ScoreExtensions):
                    st = plugin.normalize_scores(state, pod, scores)
                    if not is_success(st):
                        assert st is not None
                        raise _CycleError(
                            _wrap_error(st.with_plugin(name), f"normalizing {name!r}")
                        )
            except _CycleError:
                raise
            except Exception as exc:
                raise _CycleError(
                    Status.as_error(f"running Score plugin {name!r}: {exc}", name)
                ) from exc
            if scores and (max(scores) > MAX_NODE_SCORE or min(scores) < MIN_NODE_SCORE):
                raise _CycleError(
                    Status.as_error(f"plugin {name!r} returned a score outside [0, 100]", name)
                )
            weight = self._score_weights[name]
            totals = [t + s * weight for t, s in zip(totals, scores, strict=True)]
        return totals

    def _select_host(self, nodes: list[NodeInfo], totals: list[int]) -> NodeInfo:
        best = max(totals)
        ties = [i for i, t in enumerate(totals) if t == best]
        return nodes[ties[0] if len(ties) == 1 else self._rng.choice(ties)]

    # -- extension point runners ------------------------------------------

    def run_pre_filter_plugins(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        """Run PreFilter; plugins returning SKIP have their Filter skipped this cycle."""
        result: PreFilterResult | None = None
        restricted: set[str] = set()
        rejected: Status | None = None
        for plugin in self.pre_filter_plugins:
            try:
                res, status = plugin.pre_filter(state, pod, snapshot)
            except Exception as exc:
                return None, Status.as_error(f"running PreFilter plugin {plugin.name!r}: {exc}")
            if status is not None and status.code is Code.SKIP:
                state.skip_filter_plugins.add(plugin.name)
                continue
            if not is_success(status):
                assert status is not None
                status = status.with_plugin(plugin.name)
                if status.code is Code.UNSCHEDULABLE:
                    # Keep going: the other PreFilters must run for preemption to work.
                    rejected = rejected or status
                    continue
                if status.code is not Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                    status = _wrap_error(status, f"running PreFilter plugin {plugin.name!r}")
                return None, status
            if res is not None and res.node_names is not None:
                restricted.add(plugin.name)
                result = res if result is None else result.merge(res)
                if not result.node_names:
                    names = " ".join(sorted(restricted))
                    msg = f"node(s) didn't satisfy plugin(s) [{names}] simultaneously"
                    if len(restricted) == 1:
                        msg = f"node(s) didn't satisfy plugin {plugin.name}"
                    return None, Status.unresolvable(msg, plugin=plugin.name)
        state.write(_PRE_FILTER_RESTRICTED, restricted)
        return result, rejected

    def run_filter_plugins(
        self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo
    ) -> Status | None:
        """Run every (not skipped) Filter plugin on one node; the first failure is returned."""
        for plugin in self.filter_plugins:
            if plugin.name in state.skip_filter_plugins:
                continue
            try:
                status = plugin.filter(state, pod, node_info)
            except Exception as exc:
                return Status.as_error(f"running {plugin.name!r} filter plugin: {exc}", plugin.name)
            if status is not None and status.code is not Code.SUCCESS:
                return status.with_plugin(plugin.name)
        return None

    def run_pre_filter_extension_add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        for plugin in self._pre_filter_extensions:
            if plugin.name in state.skip_filter_plugins:  # type: ignore[attr-defined]
                continue
            status = plugin.add_pod(state, pod, pod_to_add, node_info)
            if not is_success(status):
                return status
        return None

    def run_pre_filter_extension_remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None:
        for plugin in self._pre_filter_extensions:
            if plugin.name in state.skip_filter_plugins:  # type: ignore[attr-defined]
                continue
            status = plugin.remove_pod(state, pod, pod_to_remove, node_info)
            if not is_success(status):
                return status
        return None

    def run_post_filter_plugins(
        self,
        state: CycleState,
        pod: dict[str, Any],
        snapshot: Snapshot,
        statuses: NodeToStatus,
    ) -> tuple[PostFilterResult | None, Status | None]:
        """Run PostFilter until one succeeds or fails for good (``RunPostFilterPlugins``)."""
        result: PostFilterResult | None = None
        reasons: list[str] = []
        rejector = ""
        for plugin in self.post_filter_plugins:
            try:
                res, status = plugin.post_filter(state, pod, snapshot, statuses)
            except Exception as exc:
                return None, Status.as_error(f"running PostFilter plugin {plugin.name!r}: {exc}")
            if is_success(status):
                return res, status
            assert status is not None
            if status.code is Code.UNSCHEDULABLE_AND_UNRESOLVABLE:
                return res, status.with_plugin(plugin.name)
            if not status.is_rejected():
                return None, status.with_plugin(plugin.name)
            if res is not None:
                result = res
            reasons.extend(status.reasons)
            rejector = rejector or plugin.name
        return result, Status(Code.UNSCHEDULABLE, reasons, rejector)

    def run_pre_score_plugins(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> Status | None:
        """Run PreScore; plugins returning SKIP have their Score skipped this cycle."""
        for plugin in self.pre_score_plugins:
            try:
                status = plugin.pre_score(state, pod, nodes)
            except Exception as exc:
                return Status.as_error(
                    f"running PreScore plugin {plugin.name!r}: {exc}", plugin.name
                )
            if status is not None and status.code is Code.SKIP:
                state.skip_score_plugins.add(plugin.name)
            elif not is_success(status):
                assert status is not None
                return status.with_plugin(plugin.name)
        return None

    def run_score_plugins(
        self, state: CycleState, pod: dict[str, Any], nodes: list[NodeInfo]
    ) -> dict[str, list[int]]:
        """PreScore and Score every node: plugin name -> normalized (unweighted) scores."""
        status = self.run_pre_score_plugins(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message() if status else "")
        out: dict[str, list[int]] = {}
        for plugin in self.score_plugins:
            if plugin.name in state.skip_score_plugins:
                continue
            scores = [plugin.score(state, pod, n) for n in nodes]
            if isinstance(plugin, ScoreExtensions):
                plugin.normalize_scores(state, pod, scores)
            out[plugin.name] = scores
        return out

    def run_reserve_plugins_reserve(
        self, state: CycleState, pod: dict[str, Any], node_name: str
    ) -> Status | None:
        for plugin in self.reserve_plugins:
            try:
                status = plugin.reserve(state, pod, node_name)
            except Exception as exc:
                return Status.as_error(
                    f"running Reserve plugin {plugin.name!r}: {exc}", plugin.name
                )
            if not is_success(status):
                assert status is not None
                return status.with_plugin(plugin.name)
        return None

    def run_reserve_plugins_unreserve(
        self, state: CycleState, pod: dict[str, Any], node_name: str
    ) -> None:
        """Unreserve in reverse order; errors are swallowed (unreserve must not fail)."""
        for plugin in reversed(self.reserve_plugins):
            try:
                plugin.unreserve(state, pod, node_name)
            except Exception:  # best effort, like kube-scheduler: unreserve cannot fail
                continue

    async def bind(self, state: CycleState, pod: dict[str, Any], node_name: str) -> Status:
        """Run the Bind plugins until one does not SKIP (``RunBindPlugins``)."""
        if not self.bind_plugins:
            return Status.as_error("no Bind plugin is enabled")
        status: Status = Status.skip()
        for plugin in self.bind_plugins:
            try:
                result = await plugin.bind(state, pod, node_name)
            except Exception as exc:
                return Status.as_error(exc, plugin.name)
            if result is not None and result.code is Code.SKIP:
                status = result
                continue
            if is_success(result):
                return SUCCESS
            assert result is not None
            return result.with_plugin(plugin.name)
        return status

    def forget(
        self, state: CycleState, pod: dict[str, Any], node_name: str, snapshot: Snapshot
    ) -> None:
        """Undo a successful ``schedule`` whose binding failed: Unreserve, then forget the pod."""
        self.run_reserve_plugins_unreserve(state, pod, node_name)
        info = state.pod_info
        snapshot.forget_pod(info if info is not None else pod)


_PRE_FILTER_RESTRICTED = "framework/preFilterRestricted"


def _first(names: set[str]) -> str:
    return min(names) if names else ""


def _wrap_error(status: Status, context: str) -> Status:
    if status.code is Code.ERROR:
        return Status(Code.ERROR, [f"{context}: {status.message()}"], status.plugin, status.error)
    return status
