"""The plugin interfaces of the scheduling framework (kube's ``framework/interface.go``).

Owns what a plugin is written against: :class:`Status` and its :class:`Code`,
:class:`CycleState`, the PreFilter/PostFilter results, the per-node statuses of a failed
cycle (:class:`NodeToStatus`, :class:`Diagnosis`, :func:`failure_message`) and the
:class:`ScheduleResult` of a cycle, one ``typing.Protocol`` per extension point
(PreFilter, Filter, PostFilter, PreScore, Score and its normalize step, Reserve, Bind),
the :class:`Handle` a plugin gets from the framework (API client, listers, snapshot,
event recorder, the plugins runner) and the :data:`PluginFactory`/:data:`Registry`
types. Nothing here runs plugins: that is :mod:`skiff.scheduler.framework.runtime`.

A plugin method returns ``None`` for success, like Go's nil ``*Status``; the runtime turns
a raised exception into a ``Code.ERROR`` status.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo, PodInfo

if TYPE_CHECKING:
    from skiff.client.events import EventRecorder
    from skiff.client.rest import ApiClient

MAX_NODE_SCORE = 100
MIN_NODE_SCORE = 0


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


REJECTED_CODES = frozenset({Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE})
"""The codes of a status that rejects the pod (as opposed to success, skip or error)."""


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
        return self.code in REJECTED_CODES

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
        return self.status.code in REJECTED_CODES

    @property
    def statuses(self) -> dict[str, Status]:
        """Node name -> the status that rejected the pod there (explicitly filtered nodes)."""
        return self.diagnosis.node_to_status.statuses if self.diagnosis is not None else {}

    @property
    def error(self) -> str | None:
        """The error message when the cycle failed with an internal error."""
        return self.message if self.status.code is Code.ERROR else None


NodeScoreList = list[int]
"""One Score plugin's scores for the nodes of a cycle, aligned with the node list passed
to PreScore (kube's ``NodeScoreList``, without the names)."""


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
        self, state: CycleState, pod: dict[str, Any], scores: NodeScoreList
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


# ---------------------------------------------------------------------------
# what plugins get from the framework


class Lister(Protocol):
    """Read access to one kind of cached API object (client-go's lister; an ``Informer``).

    Keys are ``"namespace/name"`` for namespaced objects and ``"name"`` for others.
    """

    def get(self, key: str) -> dict[str, Any] | None: ...

    def list(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class SharedListers:
    """The informer caches a plugin may read (kube's ``SharedInformerFactory`` listers).

    A lister the scheduler does not keep is ``None``.
    """

    nodes: Lister | None = None
    pods: Lister | None = None
    persistent_volume_claims: Lister | None = None
    persistent_volumes: Lister | None = None
    storage_classes: Lister | None = None


class PluginsRunner(Protocol):
    """Lets a plugin run other plugins of its profile (preemption's dry runs)."""

    def run_filter_plugins(
        self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo
    ) -> Status | None: ...

    def run_pre_filter_extension_add_pod(
        self, state: CycleState, pod: PodInfo, pod_to_add: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...

    def run_pre_filter_extension_remove_pod(
        self, state: CycleState, pod: PodInfo, pod_to_remove: PodInfo, node_info: NodeInfo
    ) -> Status | None: ...


class Handle(PluginsRunner, Protocol):
    """What a plugin gets from the framework that builds it (kube's ``framework.Handle``).

    The API client, the listers and the event recorder are the scheduler's; each is
    ``None`` where the framework was built without one (unit tests).
    """

    def client_set(self) -> ApiClient | None:
        """The API client, for plugins that write (binding)."""
        ...

    def shared_listers(self) -> SharedListers:
        """The informers' caches of nodes, pods, claims, volumes and classes."""
        ...

    def snapshot_shared_lister(self) -> Snapshot | None:
        """The snapshot of nodes and assigned pods the framework schedules against."""
        ...

    def event_recorder(self) -> EventRecorder | None:
        """The scheduler's event recorder."""
        ...


PluginFactory = Callable[[Mapping[str, Any], Handle], Plugin]
"""Builds a plugin from its args (``Profile.plugin_args[name]``: configuration values only)
and the framework's :class:`Handle` (``PluginFactory = func(args, handle)``)."""

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


# ---------------------------------------------------------------------------
# helpers for plugins: score normalisation, the FitError message


def default_normalize_score(
    scores: NodeScoreList, *, reverse: bool, max_priority: int = MAX_NODE_SCORE
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
