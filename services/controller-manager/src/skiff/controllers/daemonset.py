"""The DaemonSet controller (``pkg/controller/daemon``).

A DaemonSet runs one pod on every node its pods may run on: the template's
nodeSelector and required node affinity must match the node, and every NoSchedule or
NoExecute taint must be tolerated. Daemon pods get the tolerations Kubernetes gives
them (not-ready and unreachable NoExecute, the node-pressure and unschedulable
NoSchedule taints, network-unavailable for hostNetwork pods), so node problems do not
evict them. A pod is pinned to its node with a required node affinity on the node's
``metadata.name`` (``matchFields``) and the scheduler binds it, as Kubernetes does.

Nodes joining get a pod at once (node events requeue every DaemonSet); pods on nodes
that stop matching are deleted, and so are pods bound to nodes that no longer exist
(force-deleted: no kubelet is left to finish them). Failed daemon pods are deleted
with a per-node back-off and replaced.

Templates are recorded in ControllerRevisions named ``<ds>-<hash>``; pods carry
``controller-revision-hash: <hash>``. ``RollingUpdate`` replaces out-of-date pods while
at most ``maxUnavailable`` of the desired pods are unavailable, or with ``maxSurge``
starts the new pod beside the old one and deletes the old one once the new one is
available; ``OnDelete`` only updates pods that are deleted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from skiff.api.errors import ApiError
from skiff.api.taints import tolerates
from skiff.api.timestamps import parse_time
from skiff.client.informer import copy_object, key_of
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, TerminalError
from skiff.controller.workload import PodOwnerController

from .history import (
    CONTROLLER_REVISION_HASH_LABEL,
    create_revision,
    equal_revision,
    new_revision,
    next_revision,
    revision_number,
    sort_revisions,
)
from .pods import is_available, is_ready

BURST_REPLICAS = 250
"""At most this many daemon pods are created or deleted in one sync (``BurstReplicas``)."""
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
FAILED_BACKOFF_INITIAL = 1.0
FAILED_BACKOFF_MAX = 900.0

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"


# -- node eligibility ----------------------------------------------------------------------


def daemon_tolerations(spec: Obj) -> list[Obj]:
    """The tolerations every daemon pod gets (``AddOrUpdateDaemonPodTolerations``)."""
    wanted = [
        (TAINT_NOT_READY, NO_EXECUTE),
        (TAINT_UNREACHABLE, NO_EXECUTE),
        (TAINT_DISK_PRESSURE, NO_SCHEDULE),
        (TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
        (TAINT_PID_PRESSURE, NO_SCHEDULE),
        (TAINT_UNSCHEDULABLE, NO_SCHEDULE),
    ]
    if spec.get("hostNetwork"):
        wanted.append((TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE))
    return [{"key": k, "operator": "Exists", "effect": e} for k, e in wanted]


def add_daemon_tolerations(spec: Obj) -> None:
    """Add the daemon tolerations to a pod spec, replacing same key/effect Exists ones."""
    tolerations = list(spec.get("tolerations") or ())
    for t in daemon_tolerations(spec):
        same = [
            i
            for i, have in enumerate(tolerations)
            if have.get("key") == t["key"]
            and have.get("effect") == t["effect"]
            and have.get("operator", "Equal") == "Exists"
        ]
        if same:
            tolerations[same[0]] = t
        else:
            tolerations.append(t)
    spec["tolerations"] = tolerations


def _int(text: Any) -> int | None:
    if isinstance(text, str) and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    return None


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = expr.get("key") or "", expr.get("operator")
    values = list(expr.get("values") or ())
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and len(values) == 1:
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    exprs = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not exprs and not fields:
        return False  # an empty term matches no node
    if not all(_expression_matches(e, labels) for e in exprs):
        return False
    for f in fields:
        values = list(f.get("values") or ())
        got = name if f.get("key") == "metadata.name" else None
        if f.get("operator") == "In":
            ok = got is not None and got in values
        elif f.get("operator") == "NotIn":
            ok = got is None or got not in values
        else:
            ok = False
        if not ok:
            return False
    return True


def node_affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    """The nodeSelector and the required node affinity of ``pod_spec`` accept ``node``."""
    meta = node["metadata"]
    labels = meta.get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    terms = required.get("nodeSelectorTerms") or ()
    return any(_term_matches(t, labels, meta["name"]) for t in terms)


def should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod, should keep running one): ``NodeShouldRunDaemonPod``.

    A node that only has an untolerated NoSchedule taint keeps its pod but gets no new
    one; an untolerated NoExecute taint, a nodeName or affinity mismatch removes it.
    """
    spec = copy_object(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    add_daemon_tolerations(spec)
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False, False
    if not node_affinity_matches(spec, node):
        return False, False
    tolerations = spec.get("tolerations") or ()
    untolerated = [
        t
        for t in (node.get("spec") or {}).get("taints") or ()
        if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE)
        and not any(tolerates(tol, t) for tol in tolerations)
    ]
    if untolerated:
        return False, not any(t.get("effect") == NO_EXECUTE for t in untolerated)
    return True, True


def pin_to_node(spec: Obj, node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: require ``metadata.name`` = the node."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = spec.setdefault("affinity", {}) or {}
    spec["affinity"] = affinity
    node_affinity = affinity.setdefault("nodeAffinity", {}) or {}
    affinity["nodeAffinity"] = node_affinity
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, or its ``metadata.name`` affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            values = f.get("values") or ()
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(values) == 1:
                return values[0]
    return None


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int, or a percentage of ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError as e:
            raise TerminalError(f"invalid value for IntOrString: {value!r}") from e
        raw = pct * total / 100
        return math.ceil(raw) if round_up else math.floor(raw)
    if isinstance(value, str):
        number = _int(value)
        if number is None:
            raise TerminalError(f"invalid value for IntOrString: {value!r}")
        return number
    return int(value or 0)


def _by_creation_and_phase(pod: Obj) -> tuple[int, float, str]:
    """``podByCreationTimestampAndPhase``: scheduled first, then oldest, then by name."""
    meta = pod["metadata"]
    scheduled = 0 if (pod.get("spec") or {}).get("nodeName") else 1
    return scheduled, parse_time(meta.get("creationTimestamp")) or 0.0, meta.get("name", "")


def pod_hash(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


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


class DaemonSetController(PodOwnerController):
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

    # -- history -------------------------------------------------------------------------

    async def _sync_history(
        self, ds: Obj, revisions: list[Obj], pods: list[Obj]
    ) -> tuple[Obj, list[Obj], int]:
        """(current revision, the others, collision count): ``constructHistory``.

        Duplicates of the current template are merged into the newest (their pods
        relabelled first); a current revision older than another is renumbered.
        """
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        template = ((ds.get("spec") or {}).get("template")) or {}
        revision = next_revision(revisions)
        wanted = new_revision(ds, api_version=self.api_version, kind=self.kind, revision=revision)
        ordered = sort_revisions(revisions)
        matching = [r for r in ordered if equal_revision(r, wanted)]
        old = [r for r in ordered if not equal_revision(r, wanted)]
        max_revision = max((revision_number(r) for r in ordered), default=0)
        if not matching:
            current, collisions = await create_revision(
                self.client,
                ds,
                wanted,
                collisions,
                hash_of=template,
                hash_label=CONTROLLER_REVISION_HASH_LABEL,
            )
            return current, old, collisions
        current = matching[-1]
        for dup in matching[:-1]:
            await self._merge_duplicate(ds, pods, dup, current)
        meta = current["metadata"]
        patch: Obj = {}
        if not (meta.get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL):
            h = meta["name"].rsplit("-", 1)[-1]
            patch["metadata"] = {"labels": {CONTROLLER_REVISION_HASH_LABEL: h}}
        if revision_number(current) < max_revision:
            patch["revision"] = max_revision + 1
        if patch:
            current = await self.client.patch(
                "controllerrevisions", meta["name"], patch, meta.get("namespace")
            )
        return current, old, collisions

    async def _merge_duplicate(self, ds: Obj, pods: list[Obj], dup: Obj, keep: Obj) -> None:
        """``dedupCurHistories``: relabel the duplicate's pods, then delete it."""
        dup_hash = (dup["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
        keep_hash = (keep["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL)
        for pod in pods:
            if dup_hash and pod_hash(pod) == dup_hash and keep_hash:
                meta = pod["metadata"]
                labels = {CONTROLLER_REVISION_HASH_LABEL: keep_hash}
                await self.client.patch(
                    "pods", meta["name"], {"metadata": {"labels": labels}}, meta["namespace"]
                )
        meta = dup["metadata"]
        try:
            await self.client.delete("controllerrevisions", meta["name"], meta.get("namespace"))
        except ApiError as e:
            if e.code != 404:
                raise

    async def _cleanup_history(
        self, ds: Obj, pods: list[Obj], current: Obj, old: list[Obj]
    ) -> None:
        """Delete the oldest unused revisions beyond ``revisionHistoryLimit``."""
        limit = int((ds.get("spec") or {}).get("revisionHistoryLimit", 10) or 0)
        to_kill = len(old) - limit
        if to_kill <= 0:
            return
        live = {pod_hash(p) for p in pods}
        live.add((current["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, ""))
        for r in sort_revisions(old):
            if to_kill <= 0:
                break
            if (r["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL) in live:
                continue
            meta = r["metadata"]
            try:
                await self.client.delete("controllerrevisions", meta["name"], meta.get("namespace"))
            except ApiError as e:
                if e.code != 404:
                    raise
            to_kill -= 1

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

    # -- rolling update ------------------------------------------------------------------

    def _desired_counts(
        self, ds: Obj, nodes: list[Obj], by_node: dict[str, list[Obj]]
    ) -> tuple[int, int, int]:
        """(desired pods, maxSurge, maxUnavailable): ``updatedDesiredNodeCounts``.

        Nodes that should run a pod and have none are added to ``by_node``.
        """
        desired = 0
        for node in nodes:
            if should_run(node, ds)[0]:
                desired += 1
                by_node.setdefault(node["metadata"]["name"], [])
        rolling = (((ds.get("spec") or {}).get("updateStrategy")) or {}).get("rollingUpdate") or {}
        max_unavailable = scaled_value(rolling.get("maxUnavailable", 1), desired, round_up=True)
        max_surge = scaled_value(rolling.get("maxSurge", 0), desired, round_up=True)
        if desired > 0 and max_unavailable == 0 and max_surge == 0:
            max_unavailable = 1  # an impossible configuration: the default
        return desired, max_surge, max_unavailable

    @staticmethod
    def _updated_pods_on_node(pods: list[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
        """(new pod, old pod, whether there is at most one of each): ``findUpdatedPodsOnNode``."""
        new = old = None
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp"):
                continue
            if pod_hash(pod) == hash_:
                if new is not None:
                    return None, None, False
                new = pod
            else:
                if old is not None:
                    return None, None, False
                old = pod
        return new, old, True

    async def rolling_update(
        self, ds: Obj, key: str, nodes: list[Obj], pods: list[Obj], hash_: str
    ) -> None:
        """Replace out-of-date pods within maxUnavailable / maxSurge (``rollingUpdate``)."""
        by_node = self.node_to_pods(pods)
        desired, max_surge, max_unavailable = self._desired_counts(ds, nodes, by_node)
        min_ready = int((ds.get("spec") or {}).get("minReadySeconds") or 0)
        now = self.ctx.clock()
        nodes_by_name = {n["metadata"]["name"]: n for n in nodes}
        if max_surge == 0:
            victims = self._max_unavailable_victims(by_node, hash_, max_unavailable, min_ready, now)
            if victims:
                self.log.info("rolling update", key=key, delete=len(victims), hash=hash_)
            await self.sync_nodes(ds, key, victims, [], hash_)
            return

        old_to_delete, create_on = self._max_surge_plan(
            ds, nodes_by_name, by_node, hash_, desired, max_surge, min_ready, now
        )
        if old_to_delete or create_on:
            self.log.info(
                "rolling update", key=key, delete=len(old_to_delete), surge=len(create_on)
            )
        await self.sync_nodes(ds, key, old_to_delete, create_on, hash_)

    def _max_unavailable_victims(
        self,
        by_node: Mapping[str, list[Obj]],
        hash_: str,
        max_unavailable: int,
        min_ready: int,
        now: float,
    ) -> list[Obj]:
        """The maxSurge=0 pass: old pods to delete, at most maxUnavailable at a time.

        A node with neither pod, both, or several of one kind counts as unavailable (the
        manage loop acts there), as does one whose new pod is not yet available. Unavailable
        old pods are always replaced; available ones only within the budget left.
        """
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for node_name in sorted(by_node):
            new, old, ok = self._updated_pods_on_node(by_node[node_name], hash_)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # the manage loop creates or deletes here
            elif new is not None:
                if not is_available(new, min_ready, now):
                    unavailable += 1
            elif old is not None:
                if not is_available(old, min_ready, now):
                    replace.append(old)
                elif unavailable < max_unavailable:
                    candidates.append(old)
        remaining = min(max(max_unavailable - unavailable, 0), len(candidates))
        return replace + candidates[:remaining]

    def _max_surge_plan(
        self,
        ds: Obj,
        nodes_by_name: Mapping[str, Obj],
        by_node: Mapping[str, list[Obj]],
        hash_: str,
        desired: int,
        max_surge: int,
        min_ready: int,
        now: float,
    ) -> tuple[list[Obj], list[str]]:
        """The maxSurge>0 pass: (old pods to delete, nodes to surge a new pod onto).

        An old pod goes once its node's new pod is available, or at once when it is
        unavailable and its node no longer runs the set; an unavailable old pod gets a
        new pod beside it regardless of the surge budget, an available one within it.
        Available old pods on nodes that no longer run the set are deleted only while
        more than ``desired`` pods stay available.
        """
        old_to_delete: list[Obj] = []
        should_not_run: list[Obj] = []
        candidate_nodes: list[str] = []
        allowed_nodes: list[str] = []
        surged = available = 0
        for node_name in sorted(by_node):
            new, old, ok = self._updated_pods_on_node(by_node[node_name], hash_)
            if not ok:
                surged += 1
                continue
            if old is not None:
                available += is_available(old, min_ready, now)
            elif new is not None:
                available += is_available(new, min_ready, now)
            if old is None:
                continue  # the manage loop handles it
            node = nodes_by_name.get(node_name)
            runs = node is not None and should_run(node, ds)[0]
            if new is None:
                if not is_available(old, min_ready, now):
                    if not runs:
                        old_to_delete.append(old)
                    else:
                        allowed_nodes.append(node_name)
                elif not runs:
                    should_not_run.append(old)
                elif surged < max_surge:
                    candidate_nodes.append(node_name)
            elif not is_available(new, min_ready, now):
                surged += 1
            else:
                old_to_delete.append(old)
        deletable = min(max(available - desired, 0), len(should_not_run))
        old_to_delete.extend(should_not_run[:deletable])
        remaining = min(max(max_surge - surged, 0), len(candidate_nodes))
        return old_to_delete, allowed_nodes + candidate_nodes[:remaining]

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
            p for p in pods if not (p["metadata"].get("deletionTimestamp") and _terminal(p))
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
