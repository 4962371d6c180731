"""The node lifecycle controller (``node_lifecycle_controller.go``).

Health: a node is alive while its kubelet renews its Lease in ``kube-node-lease`` or
posts a new Ready heartbeat, timed on the controller's own clock; one silent for longer
than the grace period (the startup grace period when it never posted status) gets its
kubelet's conditions set to ``Unknown``. Conditions: the NoSchedule taints they call
for are kept at once; ``not-ready`` / ``unreachable`` NoExecute taints are added at the
eviction rate of the node's zone and removed as soon as the node is Ready again; the
pods of a node that stopped being ready are marked Ready=False (``MarkPodsNotReady``).
Zones: each zone's state (Normal, PartialDisruption, FullDisruption) sets its eviction
rate, and while every zone is fully disrupted no NoExecute taint is added.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.taints import (
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
)
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.ownwrites import OwnWrites

from ..pods import is_ready
from .config import LifecycleSettings
from .util import (
    NO_EXECUTE,
    NO_SCHEDULE,
    POD_NODE_INDEX,
    RateLimiter,
    condition,
    pod_node_index,
    taint_id,
    taints_of,
)

LEASES = "leases.coordination.k8s.io"
NODE_LEASE_NAMESPACE = "kube-node-lease"


CONDITION_TAINTS: dict[tuple[str, str], str] = {
    ("Ready", "False"): TAINT_NOT_READY,
    ("Ready", "Unknown"): TAINT_UNREACHABLE,
    ("MemoryPressure", "True"): TAINT_MEMORY_PRESSURE,
    ("DiskPressure", "True"): TAINT_DISK_PRESSURE,
    ("NetworkUnavailable", "True"): TAINT_NETWORK_UNAVAILABLE,
    ("PIDPressure", "True"): TAINT_PID_PRESSURE,
}
"""``nodeConditionToTaintKeyStatusMap``: the NoSchedule taint each condition state implies."""
_MANAGED_NO_SCHEDULE = frozenset(
    (key, NO_SCHEDULE) for key in (*CONDITION_TAINTS.values(), TAINT_UNSCHEDULABLE)
)
_MANAGED_NO_EXECUTE = frozenset({(TAINT_NOT_READY, NO_EXECUTE), (TAINT_UNREACHABLE, NO_EXECUTE)})
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
"""Set to Unknown when the kubelet goes silent (NetworkUnavailable is not the kubelet's)."""

EXCLUDE_DISRUPTION_LABEL = "node.kubernetes.io/exclude-disruption"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
_BETA_ZONE_LABEL = "failure-domain.beta.kubernetes.io/zone"
_BETA_REGION_LABEL = "failure-domain.beta.kubernetes.io/region"

STALE_RETRY_SECONDS = 0.5
MARK_PODS_CONCURRENCY = 16


def ready_status(node: Obj) -> str | None:
    """The node's Ready status (True, False, Unknown), None when it never posted one."""
    c = condition(node, "Ready")
    return None if c is None else (c.get("status") or "Unknown")


def zone_key(node: Obj) -> str:
    """The node's failure zone (``GetZoneKey``): region and zone, "" when unlabelled."""
    labels = node["metadata"].get("labels") or {}
    region = labels.get(REGION_LABEL) or labels.get(_BETA_REGION_LABEL) or ""
    zone = labels.get(ZONE_LABEL) or labels.get(_BETA_ZONE_LABEL) or ""
    return f"{region}:\x00:{zone}" if region or zone else ""


def _object_ref(obj: Obj, kind: str) -> Obj:
    return {"kind": kind, "apiVersion": "v1", "metadata": obj["metadata"]}


class ZoneState(StrEnum):
    NORMAL = "Normal"
    PARTIAL_DISRUPTION = "PartialDisruption"
    FULL_DISRUPTION = "FullDisruption"


def compute_zone_state(ready: Iterable[bool], unhealthy_threshold: float) -> ZoneState:
    """``ComputeZoneState``: no ready node is a full disruption; more than 2 not-ready
    nodes making ``unhealthy_threshold`` of the zone a partial one."""
    flags = list(ready)
    not_ready = sum(1 for r in flags if not r)
    if not_ready and not_ready == len(flags):
        return ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / len(flags) >= unhealthy_threshold:
        return ZoneState.PARTIAL_DISRUPTION
    return ZoneState.NORMAL


@dataclass(slots=True)
class _Health:
    """What the controller last saw of a node's heartbeats, and when (its own clock)."""

    uid: str
    probe: float
    heartbeat: str | None
    renew: str | None


class NodeLifecycleController(Controller):
    """Marks silent nodes Unknown, keeps condition taints, MarkPodsNotReady."""

    name: ClassVar[str] = "node-lifecycle-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        settings: LifecycleSettings | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.settings = settings or LifecycleSettings()
        ctx.informers.index("pods", POD_NODE_INDEX, pod_node_index)
        self.nodes = self.watch("nodes")
        self.leases = self.watch(LEASES)
        self.pods = self.watch("pods")
        self.health: dict[str, _Health] = {}
        self._acted_ready: dict[str, str | None] = {}
        """node → the Ready status whose consequences (events, pods) were last carried out."""
        self.own_writes = OwnWrites()
        """node → (resourceVersion, when) of our last write to it."""
        self._marked: dict[str, set[str]] = {}
        """node → uids of the pods marked not ready since it stopped being ready."""
        self.zone_states: dict[str, ZoneState] = {}
        self.all_disrupted = False
        self._limiters: dict[str, RateLimiter] = {}
        self._zones_dirty = True
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self.leases.add_handler(self._lease_changed, lambda _o, n: self._lease_changed(n))

    # -- event handlers ------------------------------------------------------------------

    def _node_added(self, node: Obj) -> None:
        self._zones_dirty = True
        self.enqueue(node)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if (
            ready_status(old) != ready_status(new)
            or zone_key(old) != zone_key(new)
            or (EXCLUDE_DISRUPTION_LABEL in (old["metadata"].get("labels") or {}))
            != (EXCLUDE_DISRUPTION_LABEL in (new["metadata"].get("labels") or {}))
        ):
            self._zones_dirty = True
        self.enqueue(new)

    def _node_deleted(self, node: Obj) -> None:
        self._zones_dirty = True
        self.enqueue(node)

    def _lease_changed(self, lease: Obj) -> None:
        if lease["metadata"].get("namespace") == NODE_LEASE_NAMESPACE:
            self.queue.add(lease["metadata"]["name"])

    # -- health --------------------------------------------------------------------------

    def observe(self, node: Obj, now: float) -> _Health:
        """Update (and return) when the node was last seen alive (``tryUpdateNodeHealth``)."""
        meta = node["metadata"]
        name, uid = meta["name"], meta.get("uid", "")
        ready = condition(node, "Ready")
        heartbeat = ready.get("lastHeartbeatTime") if ready is not None else None
        lease = self.leases.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime")
        h = self.health.get(name)
        if h is None or h.uid != uid:
            # First sight (or a restart): a node that never posted status is timed from
            # its creation, any other one gets a full grace period from now.
            probe = now
            if ready is None:
                probe = parse_time(meta.get("creationTimestamp")) or now
            h = self.health[name] = _Health(uid, probe, heartbeat, None)
        elif heartbeat != h.heartbeat:
            h.heartbeat = heartbeat
            h.probe = now
        if renew and renew != h.renew:
            newer = h.renew is None or (parse_time(renew) or 0) > (parse_time(h.renew) or 0)
            if newer:
                h.renew = renew
                h.probe = now
        return h

    def grace_period(self, node: Obj) -> float:
        if condition(node, "Ready") is None:
            return self.settings.startup_grace_period
        return self.settings.monitor_grace_period

    @staticmethod
    def unknown_conditions(node: Obj, now: float) -> list[Obj] | None:
        """The conditions of a silent node: the kubelet's ones Unknown (None: already so)."""
        conditions = [dict(c) for c in (node.get("status") or {}).get("conditions") or ()]
        ts = rfc3339(now)
        changed = False
        for ctype in UNKNOWN_CONDITIONS:
            c = next((c for c in conditions if c.get("type") == ctype), None)
            if c is None:
                conditions.append(
                    {
                        "type": ctype,
                        "status": "Unknown",
                        "reason": "NodeStatusNeverUpdated",
                        "message": "Kubelet never posted node status.",
                        "lastHeartbeatTime": node["metadata"].get("creationTimestamp"),
                        "lastTransitionTime": ts,
                    }
                )
                changed = True
            elif c.get("status") != "Unknown":
                c.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                    lastTransitionTime=ts,
                )
                changed = True
        return conditions if changed else None

    # -- zones ---------------------------------------------------------------------------

    def refresh_zones(self, now: float, written: Obj | None = None) -> None:
        """Recompute the zone states after a node's readiness or zone changed.

        ``handleDisruption``; ``written`` is a node just written, newer than its cached copy.
        """
        if not self._zones_dirty:
            return
        self._zones_dirty = False
        nodes = self.nodes.list()
        if written is not None:
            name = written["metadata"]["name"]
            nodes = [n for n in nodes if n["metadata"]["name"] != name] + [written]
        per_zone: dict[str, list[bool]] = defaultdict(list)
        members: dict[str, list[str]] = defaultdict(list)
        for node in nodes:
            if EXCLUDE_DISRUPTION_LABEL in (node["metadata"].get("labels") or {}):
                continue
            z = zone_key(node)
            per_zone[z].append(ready_status(node) == "True")
            members[z].append(node["metadata"]["name"])
        threshold = self.settings.unhealthy_zone_threshold
        states = {z: compute_zone_state(flags, threshold) for z, flags in per_zone.items()}
        all_disrupted = bool(states) and all(
            s == ZoneState.FULL_DISRUPTION for s in states.values()
        )
        if all_disrupted != self.all_disrupted:
            if all_disrupted:
                self.log.warning(
                    "Controller detected that all Nodes are not-Ready. "
                    "Entering master disruption mode"
                )
            else:
                self.log.info(
                    "Controller detected that some Nodes are Ready. Exiting master disruption mode"
                )
                for h in self.health.values():
                    h.probe = max(h.probe, now)  # a full grace period for everyone
            for node in nodes:
                self.enqueue(node)
        for z, state in states.items():
            if state != self.zone_states.get(z) or z not in self._limiters:
                self._limiters[z] = RateLimiter(self._zone_qps(state, len(per_zone[z])))
                if z in self.zone_states:
                    self.log.info("zone state changed", zone=z, state=str(state))
                for name in members[z]:
                    self.queue.add(name)
        for z in set(self._limiters) - set(states):
            del self._limiters[z]
        self.zone_states = states
        self.all_disrupted = all_disrupted

    def _zone_qps(self, state: ZoneState, size: int) -> float:
        if state == ZoneState.PARTIAL_DISRUPTION:
            if size > self.settings.large_cluster_threshold:
                return self.settings.secondary_eviction_rate
            return 0.0
        return self.settings.eviction_rate

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        node = self.nodes.get(key)
        now = self.ctx.clock()
        self.refresh_zones(now)
        if node is None:
            self.health.pop(key, None)
            self._acted_ready.pop(key, None)
            self._marked.pop(key, None)
            self.own_writes.forget(key)
            return None
        h = self.observe(node, now)
        if self.own_writes.pending(key, self.nodes.get):
            return STALE_RETRY_SECONDS  # the node's own event brings it back sooner
        deadline = h.probe + self.grace_period(node)
        if now > deadline:
            conditions = self.unknown_conditions(node, now)
            if conditions is not None:
                updated = await self._write_conditions(node, conditions)
                if updated is None:
                    return None
                self.log.info("node stopped posting status; marked Unknown", node=key)
                node = updated
                self.own_writes.wrote(key, updated)
                self._zones_dirty = True
                self.refresh_zones(now, written=node)
        status = ready_status(node)
        await self._ready_consequences(node, status, now)
        waits: list[float] = []
        wait = await self.sync_taints(node, status, now)
        if wait is not None:
            waits.append(wait)
        if status != "Unknown" and now <= deadline:
            waits.append(deadline - now + 0.01)
        return min(waits) if waits else None

    async def _write_conditions(self, node: Obj, conditions: list[Obj]) -> Obj | None:
        obj = writable(node)
        obj.setdefault("status", {})["conditions"] = conditions
        try:
            return await self.client.update("nodes", obj, subresource="status")
        except ApiError as e:
            if e.code == 404:
                return None
            raise  # a 409: the kubelet wrote meanwhile; retry from the fresher cache

    async def _ready_consequences(self, node: Obj, status: str | None, now: float) -> None:
        """Events and MarkPodsNotReady for a node that stopped being ready."""
        name = node["metadata"]["name"]
        before = self._acted_ready.get(name)
        if status == before:
            if status == "Unknown":
                await self.mark_pods_not_ready(node, now)  # pods bound since
            return
        if before == "True" and status != "True":
            self.events.emit(
                _object_ref(node, "Node"),
                "Normal",
                "NodeNotReady",
                f"Node {name} status is now: NodeNotReady",
            )
        self._marked.pop(name, None)  # a new episode
        if status == "Unknown" or (status == "False" and before == "True"):
            await self.mark_pods_not_ready(node, now)
        self._acted_ready[name] = status

    async def mark_pods_not_ready(self, node: Obj, now: float) -> None:
        """Set Ready=False on the ready pods of ``node`` (``MarkPodsNotReady``)."""
        name = node["metadata"]["name"]
        marked = self._marked.setdefault(name, set())
        pods = [
            p
            for p in self.pods.store.by_index(POD_NODE_INDEX, name)
            if (p.get("spec") or {}).get("nodeName") == name
            and is_ready(p)
            and p["metadata"].get("uid") not in marked  # not seen in the cache yet
        ]
        if not pods:
            return
        sem = asyncio.Semaphore(MARK_PODS_CONCURRENCY)
        ts = rfc3339(now)

        async def one(pod: Obj) -> None:
            meta = pod["metadata"]
            patch = {
                "metadata": {"uid": meta["uid"]},
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": ts}]
                },
            }
            async with sem:
                try:
                    await self.client.patch(
                        "pods",
                        meta["name"],
                        patch,
                        meta.get("namespace"),
                        type="strategic",
                        subresource="status",
                    )
                except ApiError as e:
                    if e.code in (404, 409):
                        return
                    raise
            marked.add(meta["uid"])
            self.log.info("marked pod not ready", pod=key_of(pod), node=name)
            self.events.emit(pod, "Warning", "NodeNotReady", "Node is not ready")

        results = await asyncio.gather(*(one(p) for p in pods), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    # -- taints --------------------------------------------------------------------------

    @staticmethod
    def condition_taints(node: Obj) -> set[tuple[str, str]]:
        """The NoSchedule taints the node's conditions call for (``doNoScheduleTaintingPass``)."""
        want: set[tuple[str, str]] = set()
        for c in (node.get("status") or {}).get("conditions") or ():
            key = CONDITION_TAINTS.get((c.get("type") or "", c.get("status") or ""))
            if key is not None:
                want.add((key, NO_SCHEDULE))
        if (node.get("spec") or {}).get("unschedulable"):
            want.add((TAINT_UNSCHEDULABLE, NO_SCHEDULE))
        return want

    async def sync_taints(self, node: Obj, status: str | None, now: float) -> float | None:
        """Bring the controller's taints in line; seconds until a rate-limited one is due."""
        current = taints_of(node)
        have = {taint_id(t) for t in current}
        want = self.condition_taints(node)
        wait: float | None = None
        limiter: RateLimiter | None = None
        have_ne = have & _MANAGED_NO_EXECUTE
        if status is None:
            want |= have_ne  # never posted: Kubernetes leaves NoExecute taints alone
        elif status in ("False", "Unknown") and not self.all_disrupted:
            target = (TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE, NO_EXECUTE)
            if have_ne:
                want.add(target)  # already tainted: swap at once
            else:
                limiter = self._limiters.get(zone_key(node))
                if limiter is None:
                    limiter = self._limiters[zone_key(node)] = RateLimiter(
                        self.settings.eviction_rate
                    )
                wait = limiter.reserve(now)
                if wait == 0:
                    want.add(target)
                else:
                    limiter = None
                    if wait is not None:
                        wait += 0.01
        kept = [
            t
            for t in current
            if taint_id(t) not in (_MANAGED_NO_SCHEDULE | _MANAGED_NO_EXECUTE)
            or taint_id(t) in want
        ]
        present = {taint_id(t) for t in kept}
        added = sorted(want - present)
        ts = rfc3339(now)
        taints = kept + [{"key": k, "effect": e, "timeAdded": ts} for k, e in added]
        if taints == current:
            return wait if wait else None
        removed = sorted(have - {taint_id(t) for t in taints})
        obj = writable(node)
        if taints:
            obj.setdefault("spec", {})["taints"] = taints
        else:
            obj.get("spec", {}).pop("taints", None)
        try:
            written = await self.client.update("nodes", obj)
            self.own_writes.wrote(key_of(written), written)
        except ApiError as e:
            if limiter is not None:
                limiter.refund()
            if e.code == 404:
                return None
            raise
        self.log.info(
            "node taints updated",
            node=node["metadata"]["name"],
            added=[f"{k}:{e}" for k, e in added],
            removed=[f"{k}:{e}" for k, e in removed],
        )
        return wait if wait else None
