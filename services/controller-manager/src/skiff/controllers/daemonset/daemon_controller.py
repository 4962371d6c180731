"""The DaemonSet controller (``daemon_controller.go``): informers, event handlers, the
sync, placing pods on nodes, and the status.

Node events requeue every DaemonSet when what decides placement changed (labels, taints,
``unschedulable``, conditions; heartbeats do not). A sync claims the ControllerRevisions
and the pods, records the template (:mod:`.update`) and, once the cache shows its own
earlier creations and deletions, runs ``manage``: a pod for each node that should run one
and has none, surplus and misplaced pods deleted, pods bound to nodes that are gone
force-deleted, failed pods deleted (and so replaced) after a per-node back-off; then,
under ``RollingUpdate``, the update and the history clean-up (:mod:`.update`); last the
status. Pods are created and deleted in bursts of at most ``burst_replicas``. Whether a
node should run a daemon pod is :func:`.util.should_run`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from skiff.api.errors import ApiError
from skiff.api.pods import is_terminal
from skiff.api.timestamps import parse_time
from skiff.client.informer import copy_object, key_of
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext
from skiff.controller.workload import PodOwnerController

from ..history import CONTROLLER_REVISION_HASH_LABEL
from ..pods import is_available, is_ready
from .update import DaemonSetUpdateMixin
from .util import add_daemon_tolerations, pin_to_node, pod_hash, should_run, target_node

BURST_REPLICAS = 250
"""At most this many daemon pods are created or deleted in one sync (``BurstReplicas``)."""
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
FAILED_BACKOFF_INITIAL = 1.0
FAILED_BACKOFF_MAX = 900.0


def _by_creation_and_phase(pod: Obj) -> tuple[int, float, str]:
    """``podByCreationTimestampAndPhase``: scheduled first, then oldest, then by name."""
    meta = pod["metadata"]
    scheduled = 0 if (pod.get("spec") or {}).get("nodeName") else 1
    return scheduled, parse_time(meta.get("creationTimestamp")) or 0.0, meta.get("name", "")


def _node_relevant(node: Obj) -> tuple[Any, ...]:
    """What of a node decides where daemon pods run (heartbeats excluded)."""
    spec = node.get("spec") or {}
    conditions = tuple(
        (c.get("type"), c.get("status")) for c in (node.get("status") or {}).get("conditions") or ()
    )
    return (
        node["metadata"].get("labels"),
        spec.get("taints"),
        spec.get("unschedulable"),
        conditions,
    )


# -- the controller ------------------------------------------------------------------------


class DaemonSetController(DaemonSetUpdateMixin, PodOwnerController):
    """Keeps one pod of every DaemonSet on each node that should run it."""

    name: ClassVar[str] = "daemonset-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("apps", "v1", "daemonsets")

    def __init__(
        self, ctx: ControllerContext, *, workers: int = 2, burst_replicas: int = BURST_REPLICAS
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.burst_replicas = burst_replicas
        self._failed_backoff: dict[tuple[str, str], tuple[float, float]] = {}
        """(DaemonSet uid, node) → (current delay, time the back-off ends)."""
        self.nodes = self.watch("nodes")
        self.revisions = self.watch_revisions()
        self.nodes.add_handler(
            lambda _n: self._enqueue_all(), self._node_updated, lambda _n: self._enqueue_all()
        )

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        return [ds for ds, sel in self.owners_selecting(pod) if not sel.empty]

    # -- event handlers ------------------------------------------------------------------

    def _enqueue_all(self) -> None:
        for key in self.sets.store.keys():
            self.queue.add(key)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _node_relevant(old) != _node_relevant(new):
            self._enqueue_all()

    def _owner_deleted(self, ds: Obj) -> None:
        super()._owner_deleted(ds)
        uid = ds["metadata"].get("uid", "")
        for k in [k for k in self._failed_backoff if k[0] == uid]:
            del self._failed_backoff[k]

    # -- reconcile -----------------------------------------------------------------------

    async def sync_owner(self, key: str, ds: Obj) -> float | None:
        selector = self.selector(ds)
        if selector.empty:
            self.events.emit(
                self.about(ds),
                "Warning",
                "SelectingAll",
                "This daemon set is selecting all pods. A non-empty selector is required.",
            )
            return None
        if ds["metadata"].get("deletionTimestamp"):
            return None
        nodes = self.nodes.list()
        revisions = await self.claim(ds, selector, self.revisions)
        pods = await self.claim(ds, selector, self.pods)
        current, old, collisions = await self._sync_history(ds, revisions, pods)
        hash_ = (current["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
        synced = self.satisfied(key)
        requeue: float | None = None
        if synced:
            requeue = await self.manage(ds, key, nodes, pods, hash_)
            strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
            rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
            if rolling and self.satisfied(key):
                # The cache may have seen what manage did: look again.
                pods = await self.claim(ds, selector, self.pods)
                await self.rolling_update(ds, key, nodes, pods, hash_)
            await self._cleanup_history(ds, pods, current, old)
        now = self.ctx.clock()
        status = self.calculate_status(ds, nodes, pods, hash_, collisions, now, synced)
        await self.update_status(ds, status)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        if min_ready > 0 and status["numberReady"] != status["numberAvailable"]:
            requeue = min(requeue, float(min_ready)) if requeue is not None else float(min_ready)
        return requeue

    # -- pods per node -------------------------------------------------------------------

    @staticmethod
    def node_to_pods(pods: Iterable[Obj]) -> dict[str, list[Obj]]:
        """The daemon pods by the node they are for (``getNodesToDaemonPods``)."""
        out: dict[str, list[Obj]] = {}
        for p in pods:
            node = target_node(p)
            if node is not None:
                out.setdefault(node, []).append(p)
        return out

    async def manage(
        self, ds: Obj, key: str, nodes: list[Obj], pods: list[Obj], hash_: str
    ) -> float | None:
        """Create missing daemon pods, delete surplus and misplaced ones (``manage``).

        Returns seconds until a failed pod's back-off ends (None: nothing waits).
        """
        by_node = self.node_to_pods(pods)
        names = {n["metadata"]["name"] for n in nodes}
        surge = self._max_surge_allowed(ds)
        now = self.ctx.clock()
        create_on: list[str] = []
        delete: list[Obj] = []
        force: list[Obj] = []
        waits: list[float] = []
        for node in nodes:
            name = node["metadata"]["name"]
            need, victims, wait = self._pods_should_be_on_node(
                ds, node, by_node.get(name, []), hash_, surge, now
            )
            if need:
                create_on.append(name)
            delete.extend(victims)
            if wait is not None:
                waits.append(wait)
        for node_name, node_pods in by_node.items():
            if node_name in names:
                continue
            for p in node_pods:
                if not (p.get("spec") or {}).get("nodeName"):
                    if not p["metadata"].get("deletionTimestamp"):
                        delete.append(p)  # pending for a node that is gone
                elif await self._node_gone(node_name):
                    force.append(p)  # no kubelet is left to finish its deletion
        await self.sync_nodes(ds, key, delete, create_on, hash_, force=force)
        return min(waits) if waits else None

    async def _node_gone(self, name: str) -> bool:
        """Whether the API (not only the cache) no longer has the node."""
        try:
            await self.client.get("nodes", name)
        except ApiError as e:
            if e.code == 404:
                return True
            raise
        return False

    def _pods_should_be_on_node(
        self, ds: Obj, node: Obj, pods: list[Obj], hash_: str, surge: bool, now: float
    ) -> tuple[bool, list[Obj], float | None]:
        """(create one here, pods to delete, back-off wait): ``podsShouldBeOnNode``."""
        run, keep = should_run(node, ds)
        node_name = node["metadata"]["name"]
        if run and not pods:
            return True, [], None
        victims: list[Obj] = []
        wait: float | None = None
        if not keep:
            victims = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            return False, victims, None
        running: list[Obj] = []
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                remaining = self._failed_backoff_remaining(ds, node_name, now)
                if remaining > 0:
                    wait = remaining if wait is None else min(wait, remaining)
                    continue
                self._failed_backoff_next(ds, node_name, now)
                self.events.emit(
                    self.about(ds),
                    "Warning",
                    "FailedDaemonPod",
                    f"Found failed daemon pod {key_of(pod)} on node {node_name}, "
                    "will try to kill it",
                )
                victims.append(pod)
            elif phase == "Succeeded":
                victims.append(pod)  # a daemon pod should run for ever
            else:
                running.append(pod)
        running.sort(key=_by_creation_and_phase)
        if not surge:
            victims.extend(running[1:])  # keep the oldest
            return False, victims, wait
        # With maxSurge an old and a new pod may share the node while the new one starts.
        oldest_new = oldest_old = None
        for pod in running:
            if pod_hash(pod) == hash_:
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            victims.append(pod)
        if oldest_new is not None and oldest_old is not None:
            min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
            if not is_ready(oldest_old) or is_available(oldest_new, min_ready, now):
                victims.append(oldest_old)
        return False, victims, wait

    def _failed_backoff_remaining(self, ds: Obj, node: str, now: float) -> float:
        entry = self._failed_backoff.get((ds["metadata"]["uid"], node))
        return 0.0 if entry is None else max(entry[1] - now, 0.0)

    def _failed_backoff_next(self, ds: Obj, node: str, now: float) -> None:
        k = (ds["metadata"]["uid"], node)
        prev = self._failed_backoff.get(k)
        delay = FAILED_BACKOFF_INITIAL if prev is None else min(prev[0] * 2, FAILED_BACKOFF_MAX)
        self._failed_backoff[k] = (delay, now + delay)

    def _max_surge_allowed(self, ds: Obj) -> bool:
        """``AllowsSurge``: a RollingUpdate whose maxSurge is not zero."""
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return False
        surge = (strategy.get("rollingUpdate") or {}).get("maxSurge")
        return surge not in (None, 0, "0", "0%")

    def pod_template(self, ds: Obj, hash_: str) -> Obj:
        """The template of new daemon pods: the daemon tolerations and the hash label."""
        template = copy_object(((ds.get("spec") or {}).get("template")) or {})
        spec = template.setdefault("spec", {})
        add_daemon_tolerations(spec)
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        generation = (ds["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
        if generation:
            labels[TEMPLATE_GENERATION_LABEL] = generation
        if hash_:
            labels[CONTROLLER_REVISION_HASH_LABEL] = hash_
        return template

    async def sync_nodes(
        self,
        ds: Obj,
        key: str,
        delete: list[Obj],
        create_on: list[str],
        hash_: str,
        *,
        force: Sequence[Obj] = (),
    ) -> None:
        """Create pods on ``create_on`` and delete ``delete`` (``syncNodes``), in bursts;
        pods in ``force`` are deleted at once (no kubelet is left to finish them)."""
        create_on = create_on[: self.burst_replicas]
        victims = [*delete, *force][: self.burst_replicas]
        if not create_on and not victims:
            return
        forced = {key_of(p) for p in force}
        template = self.pod_template(ds, hash_)
        about = self.about(ds)
        pending = list(create_on)

        async def create_one() -> None:
            pinned = copy_object(template)
            pin_to_node(pinned["spec"], pending.pop(0))
            await self.pod_control.create_pod(about, pinned)

        async def delete_one(pod: Obj) -> bool:
            grace = 0 if key_of(pod) in forced else None
            return await self.pod_control.delete_pod(about, pod, grace_period_seconds=grace)

        self.log.info("syncing nodes", key=key, create=len(create_on), delete=len(victims))
        error: BaseException | None = None
        if create_on:
            _, error = await self.pod_control.create_pods(
                self.creations, key, len(create_on), create_one
            )
        if victims:
            results = await self.pod_control.delete_pods(
                about, victims, self.deletions, key, delete=delete_one
            )
            error = error or next((r for r in results if r is not None), None)
        if error is not None:
            raise error

    # -- status --------------------------------------------------------------------------

    def calculate_status(
        self,
        ds: Obj,
        nodes: list[Obj],
        pods: list[Obj],
        hash_: str,
        collisions: int,
        now: float,
        synced: bool,
    ) -> Obj:
        """The status the cached nodes and pods give ``ds`` (``updateDaemonSetStatus``)."""
        by_node = self.node_to_pods(
            p for p in pods if not (p["metadata"].get("deletionTimestamp") and is_terminal(p))
        )
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        desired = current = misscheduled = ready = available = updated = 0
        for node in nodes:
            run, _ = should_run(node, ds)
            daemon_pods = by_node.get(node["metadata"]["name"]) or []
            if not run:
                misscheduled += bool(daemon_pods)
                continue
            desired += 1
            if not daemon_pods:
                continue
            current += 1
            pod = min(daemon_pods, key=_by_creation_and_phase)
            if is_ready(pod):
                ready += 1
                available += is_available(pod, min_ready, now)
            updated += pod_hash(pod) == hash_
        status: Obj = dict(ds.get("status") or {})
        status.update(
            desiredNumberScheduled=desired,
            currentNumberScheduled=current,
            numberMisscheduled=misscheduled,
            numberReady=ready,
            updatedNumberScheduled=updated,
            numberAvailable=available,
            numberUnavailable=desired - available,
        )
        if synced:
            status["observedGeneration"] = int(ds["metadata"].get("generation") or 0)
        if collisions or "collisionCount" in status:
            status["collisionCount"] = collisions
        return status
