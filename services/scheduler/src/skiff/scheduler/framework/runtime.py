"""The scheduling framework's runtime (kube's ``framework/runtime/framework.go``).

Owns the :class:`Framework`: it builds the plugins a :class:`~.profile.Profile` names from
a :data:`~.interface.Registry`, passing itself as their :class:`~.interface.Handle` (with
the API client, listers, snapshot and event recorder it was given), keeps the enabled
plugins per extension point and runs them: one scheduling cycle over a
:class:`~skiff.scheduler.types.Snapshot` (PreFilter, Filter over the nodes, stopping at
kube-scheduler's adaptive percentage, PostFilter when none fits, PreScore/Score, score
normalisation and weighting, host selection, Reserve), then Bind, or Unreserve and
forget.

Everything is synchronous and runs the plugins one after another (no parallelizer), except
:meth:`Framework.bind` (the Bind plugins do I/O through the handle's API client).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from skiff.scheduler.framework.interface import (
    MAX_NODE_SCORE,
    MIN_NODE_SCORE,
    REJECTED_CODES,
    SUCCESS,
    BindPlugin,
    Code,
    CycleState,
    Diagnosis,
    ExtensionPoint,
    FilterPlugin,
    NodeScoreList,
    NodeToStatus,
    Plugin,
    PostFilterPlugin,
    PostFilterResult,
    PreFilterExtensions,
    PreFilterPlugin,
    PreFilterResult,
    PreScorePlugin,
    Registry,
    ReservePlugin,
    ScheduleResult,
    ScoreExtensions,
    ScorePlugin,
    SharedListers,
    Status,
    failure_message,
    is_success,
)
from skiff.scheduler.framework.profile import Profile
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo, PodInfo

if TYPE_CHECKING:
    from skiff.client.events import EventRecorder
    from skiff.client.rest import ApiClient

NO_NODES_AVAILABLE = "no nodes available to schedule pods"

# Adaptive percentageOfNodesToScore (schedule_one.go numFeasibleNodesToFind).
_MIN_FEASIBLE_NODES_TO_FIND = 100
_MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5


# ---------------------------------------------------------------------------
# the plugins of a profile


_POINT_PROTOCOLS: dict[ExtensionPoint, type] = {
    ExtensionPoint.PRE_FILTER: PreFilterPlugin,
    ExtensionPoint.FILTER: FilterPlugin,
    ExtensionPoint.POST_FILTER: PostFilterPlugin,
    ExtensionPoint.PRE_SCORE: PreScorePlugin,
    ExtensionPoint.SCORE: ScorePlugin,
    ExtensionPoint.RESERVE: ReservePlugin,
    ExtensionPoint.BIND: BindPlugin,
}

# ---------------------------------------------------------------------------
# the framework


class _CycleError(Exception):
    def __init__(self, status: Status) -> None:
        super().__init__(status.message())
        self.status = status


class Framework:
    """Runs the plugins of one profile and one scheduling cycle (``frameworkImpl``).

    It is also the plugins' :class:`~.interface.Handle`.
    """

    def __init__(
        self,
        profile: Profile | None = None,
        registry: Registry | None = None,
        *,
        rng: random.Random | None = None,
        client: ApiClient | None = None,
        listers: SharedListers | None = None,
        snapshot: Snapshot | None = None,
        event_recorder: EventRecorder | None = None,
    ) -> None:
        """Build the profile's plugins; ``client``, ``listers``, ``snapshot`` and
        ``event_recorder`` are what the plugins get through the :class:`Handle`
        (kube's ``WithClientSet``, ``WithInformerFactory``, ``WithSnapshotSharedLister``,
        ``WithEventRecorder``)."""
        if registry is None:
            from skiff.scheduler.plugins import default_registry

            registry = default_registry()
        self.profile = profile if profile is not None else Profile()
        self._rng = rng if rng is not None else random.Random()
        self._next_start_node_index = 0
        self._client = client
        self._listers = listers if listers is not None else SharedListers()
        self._snapshot = snapshot
        self._event_recorder = event_recorder
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

    # -- the Handle given to plugins ---------------------------------------

    def client_set(self) -> ApiClient | None:
        return self._client

    def shared_listers(self) -> SharedListers:
        return self._listers

    def snapshot_shared_lister(self) -> Snapshot | None:
        """The snapshot of the running (or last) cycle, else the one given at construction."""
        return self._snapshot

    def event_recorder(self) -> EventRecorder | None:
        return self._event_recorder

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
        state.snapshot = self._snapshot = snapshot
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
                        if st.code not in REJECTED_CODES:
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
        """PreScore, Score, normalize and weight: each node's total score."""
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
    ) -> dict[str, NodeScoreList]:
        """PreScore and Score every node: plugin name -> normalized (unweighted) scores."""
        status = self.run_pre_score_plugins(state, pod, nodes)
        if not is_success(status):
            raise RuntimeError(status.message() if status else "")
        out: dict[str, NodeScoreList] = {}
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
