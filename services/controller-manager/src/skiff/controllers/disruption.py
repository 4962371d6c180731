"""The disruption controller (kube's ``pkg/controller/disruption``): the status of every
PodDisruptionBudget, which the eviction subresource spends.

For a budget it counts the pods its selector covers (``expectedPods``), those that are
ready and neither terminating nor just evicted (``currentHealthy``), and how many must
stay (``desiredHealthy``): ``minAvailable`` as a count is that count of the pods there
are; a percentage of ``minAvailable``, and any ``maxUnavailable``, apply to the scale of
the pods' controllers (ReplicaSet, Deployment, ReplicationController, StatefulSet, or
any resource with a ``scale`` subresource), percentages rounded up.
``disruptionsAllowed`` is ``currentHealthy - desiredHealthy`` (never below 0, and 0
while no pod is expected), with the ``DisruptionAllowed`` condition. Evicted pods stay
in ``disruptedPods`` until they are terminating, or for two minutes; a sync that fails
sets ``disruptionsAllowed`` to 0 with a ``SyncFailed`` condition, so that no eviction
goes through on a budget that could not be computed.

It also resets a ``DisruptionTarget`` condition that stayed on a pod which, two minutes
later, still is not terminating (an eviction whose delete failed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from skiff.api import intstr
from skiff.api.conditions import get_condition
from skiff.api.disruption import DELETION_TIMEOUT, SYNC_FAILED, pdb_selector, set_disruption_allowed
from skiff.api.errors import ApiError
from skiff.api.pods import is_ready, is_terminal
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.discovery import custom_resources
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.owners import (
    NAMESPACE_INDEX,
    api_group,
    controller_ref,
    namespace_index,
    resolve_controller_ref,
)

from .deployment.util import replicas

STALE_POD_DISRUPTION_TIMEOUT = 120.0
"""Seconds a ``DisruptionTarget`` condition may stay on a pod that is not terminating."""
_STALE = "stale-pod:"
"""Queue keys of pods whose DisruptionTarget condition may be stale (PDB keys are
``namespace/name``)."""

PDB_KIND = {"kind": "PodDisruptionBudget", "apiVersion": "policy/v1"}
POD_KIND = {"kind": "Pod", "apiVersion": "v1"}


class SyncError(Exception):
    """Why a budget's status could not be computed (its SyncFailed message)."""


class DisruptionController(Controller):
    """Keeps every PodDisruptionBudget's status, and resets stale DisruptionTarget
    conditions."""

    name: ClassVar[str] = "disruption-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.pdbs = self.watch("poddisruptionbudgets")
        ctx.informers.index("poddisruptionbudgets", NAMESPACE_INDEX, namespace_index)
        self.pods = self.watch("pods")
        ctx.informers.index("pods", NAMESPACE_INDEX, namespace_index)
        self.owners = {
            ("", "ReplicationController"): self.watch("replicationcontrollers"),
            ("apps", "ReplicaSet"): self.watch("replicasets"),
            ("apps", "Deployment"): self.watch("deployments"),
            ("apps", "StatefulSet"): self.watch("statefulsets"),
        }
        self.pdbs.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # -- events ------------------------------------------------------------------------

    def _budgets_of(self, pod: Obj) -> list[Obj]:
        """The budgets covering ``pod``; more than one is worth a warning (``getPdbForPod``)."""
        ns = pod["metadata"].get("namespace") or ""
        labels = pod["metadata"].get("labels") or {}
        found = [
            p
            for p in self.pdbs.store.by_index(NAMESPACE_INDEX, ns)
            if pdb_selector(p).matches(labels)
        ]
        if len(found) > 1:
            self.events.emit(
                {**POD_KIND, "metadata": pod["metadata"]},
                "Warning",
                "MultiplePodDisruptionBudgets",
                f'Pod "{ns}"/"{pod["metadata"]["name"]}" matches multiple '
                f'PodDisruptionBudgets.  Chose "{found[0]["metadata"]["name"]}" arbitrarily.',
            )
        return found

    def _pod_added(self, pod: Obj) -> None:
        for pdb in self._budgets_of(pod):
            self.enqueue(pdb)
        self._check_stale(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        seen = {key_of(p) for p in self._budgets_of(new)}
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            seen |= {key_of(p) for p in self._budgets_of(old)}
        for key in seen:
            self.queue.add(key)
        self._check_stale(new)

    def _pod_deleted(self, pod: Obj) -> None:
        for pdb in self._budgets_of(pod):
            self.enqueue(pdb)

    def _check_stale(self, pod: Obj) -> None:
        wait = self._stale_wait(pod)
        if wait is not None:
            self.queue.add_after(_STALE + key_of(pod), wait)

    def _stale_wait(self, pod: Obj) -> float | None:
        """``nonTerminatingPodHasStaleDisruptionCondition``: seconds until a True
        DisruptionTarget condition on a pod that is not terminating counts as stale
        (None: it has none, or it was the kubelet's, or the pod is terminal)."""
        if pod["metadata"].get("deletionTimestamp") or is_terminal(pod):
            return None
        cond = get_condition(pod.get("status"), "DisruptionTarget")
        if cond is None or cond.get("status") != "True":
            return None
        if cond.get("reason") == "TerminationByKubelet":
            return None
        since = parse_time(cond.get("lastTransitionTime")) or 0.0
        return max(0.0, STALE_POD_DISRUPTION_TIMEOUT - (self.ctx.clock() - since))

    # -- reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(_STALE):
            return await self._sync_stale_pod(key.removeprefix(_STALE))
        pdb = self.pdbs.get(key)
        if pdb is None:
            return None
        try:
            return await self.try_sync(pdb)
        except ApiError as e:
            if e.code in (404, 409):
                raise  # a conflict is retried without failing the budget safe
            await self._fail_safe(pdb, f"{e.code}: {e.message}")
            raise
        except SyncError as e:
            self.log.info("failed to sync PDB", pdb=key, error=str(e))
            await self._fail_safe(pdb, str(e))
            return None

    async def try_sync(self, pdb: Obj) -> float | None:
        """Compute and write the budget's status; seconds until an entry of
        ``disruptedPods`` expires, when one will."""
        about = {**PDB_KIND, "metadata": pdb["metadata"]}
        ns = pdb["metadata"].get("namespace") or ""
        selector = pdb_selector(pdb)
        pods = [
            p
            for p in self.pods.store.by_index(NAMESPACE_INDEX, ns)
            if selector.matches(p["metadata"].get("labels") or {})
        ]
        if not pods:
            self.events.emit(about, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self.expected_pod_count(pdb, pods)
        except SyncError as e:
            self.events.emit(
                about,
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {e}",
            )
            raise
        if unmanaged:
            self.events.emit(
                about,
                "Warning",
                "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{_go_selector((pdb.get('spec') or {}).get('selector'))}) were found to be "
                "unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                "which may result in undefined behavior. To account for these pods please set "
                '".spec.minAvailable" field of the PDB to an integer value.',
            )
        now = self.ctx.clock()
        disrupted, recheck = self._disrupted_pods(pdb, pods, now)
        healthy = sum(
            1
            for p in pods
            if not p["metadata"].get("deletionTimestamp") and p["metadata"]["name"] not in disrupted
            and is_ready(p)
        )  # fmt: skip
        await self._write_status(pdb, healthy, desired, expected, disrupted)
        return None if recheck is None else max(0.0, recheck - now)

    async def expected_pod_count(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        """``getExpectedPodCount``: (expectedPods, desiredHealthy, unmanaged pod names)."""
        spec = pdb.get("spec") or {}
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            expected, unmanaged = await self._expected_scale(pods)
            desired = max(0, expected - _scaled(max_unavailable, expected))
            return expected, desired, unmanaged
        if isinstance(min_available, int):
            return len(pods), min_available, []
        if isinstance(min_available, str):
            expected, unmanaged = await self._expected_scale(pods)
            return expected, _scaled(min_available, expected), unmanaged
        return 0, 0, []

    async def _expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """``getExpectedScale``: the summed scale of the pods' controllers, and the pods
        with none."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            found = await self._controller_scale(ref, pod["metadata"].get("namespace") or "")
            if found is None:
                raise SyncError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            uid, scale = found
            scales[uid] = scale
        return sum(scales.values()), unmanaged

    async def _controller_scale(self, ref: Obj, ns: str) -> tuple[str, int] | None:
        """(uid, replicas) of the controller ``ref`` names (kube's finders, in order)."""
        group, kind = api_group(ref.get("apiVersion") or ""), ref.get("kind") or ""
        owner = self._cached_owner(ref, ns)
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            if owner is None:
                return None
            parent = controller_ref(owner)
            if parent is None or parent.get("kind") != "Deployment":
                return owner["metadata"]["uid"], replicas(owner)
            # The Deployment's scale counts, not its ReplicaSet's.
            deployment = self._cached_owner(parent, ns)
            if deployment is None:
                return None
            return deployment["metadata"]["uid"], replicas(deployment)
        if (group, kind) in self.owners:
            return None if owner is None else (owner["metadata"]["uid"], replicas(owner))
        return await self._scale_of(group, ref, ns)

    def _cached_owner(self, ref: Obj, ns: str) -> Obj | None:
        """The cached controller ``ref`` names (its uid checked), for the kinds watched
        here (ReplicaSets also in the old ``extensions`` group)."""
        group, kind = api_group(ref.get("apiVersion") or ""), ref.get("kind") or ""
        informer = self.owners.get(("apps" if group == "extensions" else group, kind))
        if informer is None:
            return None
        return resolve_controller_ref(informer, ns, ref, kind, group)

    async def _scale_of(self, group: str, ref: Obj, ns: str) -> tuple[str, int] | None:
        """``getScaleController``: any resource's ``scale`` subresource."""
        info = await self._resource_of(group, ref)
        if info is None:
            return None
        if "scale" not in info.subresources:
            raise SyncError(f"{info.qualified} does not implement the scale subresource")
        try:
            scale = await self.client.get(info, ref.get("name", ""), ns, subresource="scale")
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if scale["metadata"].get("uid") != ref.get("uid"):
            return None
        return ref["uid"], int((scale.get("spec") or {}).get("replicas") or 0)

    async def _resource_of(self, group: str, ref: Obj) -> ResourceInfo | None:
        """The resource of the owner's kind: built in, or served by a CRD now."""
        version = (ref.get("apiVersion") or "").rpartition("/")[2]
        kind = ref.get("kind") or ""
        builtin = REGISTRY.by_gvk(group, version, kind)
        if builtin is not None:
            return builtin
        candidates = [i for i in await custom_resources(self.client) if i.group == group]
        for info in candidates:
            if info.kind == kind and info.version == version:
                return info
        return next((i for i in candidates if i.kind == kind), None)

    def _disrupted_pods(
        self, pdb: Obj, pods: Iterable[Obj], now: float
    ) -> tuple[dict, float | None]:
        """``buildDisruptedPodMap``: the entries of ``disruptedPods`` still to wait for,
        and when the first of them expires. An entry whose pod is terminating or gone is
        done; one older than two minutes is dropped (the delete never happened)."""
        listed = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: float | None = None
        for pod in pods:
            name = pod["metadata"]["name"]
            if pod["metadata"].get("deletionTimestamp") or name not in listed:
                continue
            expires = (parse_time(listed[name]) or 0.0) + DELETION_TIMEOUT
            if expires < now:
                self.events.emit(
                    {**POD_KIND, "metadata": pod["metadata"]},
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {pdb['metadata'].get('namespace')}/"
                    f"{pdb['metadata']['name']} to be deleted but it wasn't",
                )
                continue
            kept[name] = listed[name]
            recheck = expires if recheck is None else min(recheck, expires)
        return kept, recheck

    async def _write_status(
        self, pdb: Obj, healthy: int, desired: int, expected: int, disrupted: dict[str, str]
    ) -> None:
        """``updatePdbStatus``: written only when something changed."""
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        generation = int(pdb["metadata"].get("generation") or 0)
        old = pdb.get("status") or {}
        status: dict[str, Any] = {
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
        }
        if disrupted:
            status["disruptedPods"] = disrupted
        if generation:
            status["observedGeneration"] = generation
        if old.get("conditions"):
            status["conditions"] = [dict(c) for c in old["conditions"]]
        set_disruption_allowed(status, rfc3339(self.ctx.clock()))
        if status == old:
            return
        new = writable(pdb)
        new["status"] = status
        await self.client.update(
            "poddisruptionbudgets", new, pdb["metadata"].get("namespace"), subresource="status"
        )

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        """``failSafe``: no disruption allowed while the budget cannot be computed."""
        new = writable(pdb)
        status = new.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        set_disruption_allowed(status, rfc3339(self.ctx.clock()), reason=SYNC_FAILED,
                               message=message)  # fmt: skip
        if status == pdb.get("status"):
            return
        await self.client.update(
            "poddisruptionbudgets", new, pdb["metadata"].get("namespace"), subresource="status"
        )

    async def _sync_stale_pod(self, key: str) -> float | None:
        """``syncStalePodDisruption``: DisruptionTarget back to False on a pod the
        eviction never deleted."""
        pod = self.pods.get(key)
        if pod is None:
            return None
        wait = self._stale_wait(pod)
        if wait is None:
            return None
        if wait > 0:
            return wait
        new = writable(pod)
        # As UpdatePodCondition: the condition replaced, its reason and message gone.
        new["status"]["conditions"] = [
            {"type": "DisruptionTarget", "status": "False",
             "lastProbeTime": None, "lastTransitionTime": rfc3339(self.ctx.clock())}
            if c.get("type") == "DisruptionTarget" else c
            for c in new["status"]["conditions"]
        ]  # fmt: skip
        try:
            await self.client.update(
                "pods", new, pod["metadata"].get("namespace"), subresource="status"
            )
        except ApiError as e:
            if e.code != 404:
                raise
        self.log.info("reset stale DisruptionTarget condition to False", pod=key)
        return None


def _scaled(value: Any, total: int) -> int:
    try:
        return intstr.scaled_value(value, total, True)
    except ValueError as e:
        raise SyncError(str(e)) from e


def _go_selector(selector: Any) -> str:
    """The selector as the UnmanagedPods event prints it (the generated ``String()`` of
    ``*metav1.LabelSelector``)."""
    if selector is None:
        return "nil"
    labels = "".join(f"{k}: {v}," for k, v in sorted((selector.get("matchLabels") or {}).items()))
    exprs = "".join(
        f"LabelSelectorRequirement{{Key:{e.get('key', '')},Operator:{e.get('operator', '')},"
        f"Values:[{' '.join(e.get('values') or ())}],}},"
        for e in selector.get("matchExpressions") or ()
    )
    return (
        f"&LabelSelector{{MatchLabels:map[string]string{{{labels}}},"
        f"MatchExpressions:[]LabelSelectorRequirement{{{exprs}}},}}"
    )
