"""The node lifecycle and taint eviction controllers.

``node-lifecycle-controller`` (``pkg/controller/nodelifecycle``) watches every Node and
its Lease in ``kube-node-lease``. A node is alive while its kubelet renews the Lease
or posts a new Ready heartbeat; the controller notes *its own* clock when it sees
either change, so clock skew between machines does not matter and a restarted
controller gives every node a fresh grace period. A node silent for longer than
the grace period gets Ready, MemoryPressure, DiskPressure and PIDPressure set to
``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status.").

From the node's conditions it keeps the taints Kubernetes keeps:

- ``NoSchedule`` taints for conditions (``not-ready`` for Ready=False, ``unreachable``
  for Ready=Unknown, ``memory-pressure``, ``disk-pressure``, ``pid-pressure``,
  ``network-unavailable``) and ``unschedulable`` for a cordoned node, added and
  removed at once;
- ``node.kubernetes.io/not-ready:NoExecute`` or ``unreachable:NoExecute``, added at
  ``--node-eviction-rate`` nodes per second per zone (0.1: one node every 10 s),
  slowed to ``--secondary-node-eviction-rate`` when more than 55 % of a large zone is
  unhealthy (stopped in a small one), and never added while every node of every zone is
  not ready (the controller is then more likely cut off than the nodes); removed as soon
  as the node is Ready again.

Pods on a node that became unreachable are marked Ready=False (``MarkPodsNotReady``),
so Services stop sending them traffic.

``taint-eviction-controller`` (``pkg/controller/tainteviction``) deletes the pods on a
node with ``NoExecute`` taints they do not tolerate at once, and those that tolerate
them for ``tolerationSeconds`` when that time is up (counted from the taint's
``timeAdded``, or from when the pod was scheduled if later), after marking them with
a ``DisruptionTarget`` condition (``DeletionByTaintManager``). Owners such as
ReplicaSets then replace them elsewhere.

Settings are a :class:`LifecycleSettings`, which the controller manager fills from its
flags (``--node-monitor-grace-period`` 40s, ``--node-startup-grace-period`` 60s,
``--node-eviction-rate`` 0.1, ``--secondary-node-eviction-rate`` 0.01,
``--large-cluster-size-threshold`` 50, ``--unhealthy-zone-threshold`` 0.55,
``--skiff-pod-eviction-qps`` 20; see ``__main__``).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.taints import tolerates
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.ownwrites import OwnWrites

from .pods import is_ready

LEASES = "leases.coordination.k8s.io"
NODE_LEASE_NAMESPACE = "kube-node-lease"
POD_NODE_INDEX = "spec.nodeName"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

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

DISRUPTION_TARGET = "DisruptionTarget"
STALE_RETRY_SECONDS = 0.5
MARK_PODS_CONCURRENCY = 16


# -- settings --------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``40s``, ``1m30s``, ``500ms``) or a plain number of seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


@dataclass(frozen=True, slots=True)
class LifecycleSettings:
    """kube-controller-manager's node lifecycle flags (``NodeLifecycleControllerConfiguration``)."""

    monitor_grace_period: float = 40.0
    startup_grace_period: float = 60.0
    eviction_rate: float = 0.1
    secondary_eviction_rate: float = 0.01
    large_cluster_threshold: int = 50
    unhealthy_zone_threshold: float = 0.55
    pod_eviction_qps: float = 20.0
    pod_eviction_burst: int = 100


# -- helpers ---------------------------------------------------------------------------


def condition(obj: Obj, ctype: str) -> Obj | None:
    """The status condition of type ``ctype``, if any."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def ready_status(node: Obj) -> str | None:
    """The node's Ready status (True, False, Unknown), None when it never posted one."""
    c = condition(node, "Ready")
    return None if c is None else (c.get("status") or "Unknown")


def pod_node_index(pod: Obj) -> list[str]:
    """Index function for :data:`POD_NODE_INDEX`: the node a pod is bound to."""
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def zone_key(node: Obj) -> str:
    """The node's failure zone (``GetZoneKey``): region and zone, "" when unlabelled."""
    labels = node["metadata"].get("labels") or {}
    region = labels.get(REGION_LABEL) or labels.get(_BETA_REGION_LABEL) or ""
    zone = labels.get(ZONE_LABEL) or labels.get(_BETA_ZONE_LABEL) or ""
    return f"{region}:\x00:{zone}" if region or zone else ""


def taints_of(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or ())


def no_execute_taints(node: Obj) -> list[Obj]:
    return [t for t in taints_of(node) if t.get("effect") == NO_EXECUTE]


def _taint_id(t: Obj) -> tuple[str, str]:
    return (t.get("key") or "", t.get("effect") or "")


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
class RateLimiter:
    """A token bucket on the controller's clock (``flowcontrol.NewTokenBucketRateLimiter``)."""

    qps: float
    burst: int = 1
    tokens: float = field(default=-1.0)
    last: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def reserve(self, now: float) -> float | None:
        """0 when a token was taken; else seconds until one is due (None: never)."""
        if self.qps <= 0:
            return None
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.qps

    def refund(self) -> None:
        """Give back a token whose action failed."""
        self.tokens = min(float(self.burst), self.tokens + 1)


# -- node lifecycle --------------------------------------------------------------------


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
        have = {_taint_id(t) for t in current}
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
            if _taint_id(t) not in (_MANAGED_NO_SCHEDULE | _MANAGED_NO_EXECUTE)
            or _taint_id(t) in want
        ]
        present = {_taint_id(t) for t in kept}
        added = sorted(want - present)
        ts = rfc3339(now)
        taints = kept + [{"key": k, "effect": e, "timeAdded": ts} for k, e in added]
        if taints == current:
            return wait if wait else None
        removed = sorted(have - {_taint_id(t) for t in taints})
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


# -- taint eviction --------------------------------------------------------------------


class TaintEvictionController(Controller):
    """Deletes pods from nodes whose NoExecute taints they do not (or no longer) tolerate."""

    name: ClassVar[str] = "taint-eviction-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 8,
        settings: LifecycleSettings | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.settings = settings or LifecycleSettings()
        ctx.informers.index("pods", POD_NODE_INDEX, pod_node_index)
        self.pods = self.watch("pods")
        self.nodes = self.watch("nodes")
        self.scheduled: dict[str, float] = {}
        """pod key → when its eviction is due (for the cancellation event)."""
        self._first_seen: dict[tuple[str, str, str], float] = {}
        """(node, taint key, effect) → when a taint without timeAdded was first seen."""
        self.limiter = RateLimiter(self.settings.pod_eviction_qps, self.settings.pod_eviction_burst)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)

    # -- event handlers ------------------------------------------------------------------

    def _tainted(self, node_name: str | None) -> bool:
        if not node_name:
            return False
        node = self.nodes.get(node_name)
        return node is not None and bool(no_execute_taints(node))

    def _pod_added(self, pod: Obj) -> None:
        if self._tainted((pod.get("spec") or {}).get("nodeName")):
            self.enqueue(pod)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        key = key_of(new)
        ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
        if new["metadata"].get("deletionTimestamp") and key in self.scheduled:
            self.scheduled.pop(key, None)
            return
        if ospec.get("nodeName") == nspec.get("nodeName") and ospec.get("tolerations") == nspec.get(
            "tolerations"
        ):
            return
        if key in self.scheduled or self._tainted(nspec.get("nodeName")):
            self.enqueue(new)

    def _pod_deleted(self, pod: Obj) -> None:
        self.scheduled.pop(key_of(pod), None)

    def _enqueue_pods_on(self, node_name: str) -> None:
        for pod in self.pods.store.by_index(POD_NODE_INDEX, node_name):
            self.enqueue(pod)

    def _node_added(self, node: Obj) -> None:
        if no_execute_taints(node):
            self._enqueue_pods_on(node["metadata"]["name"])

    def _node_updated(self, old: Obj, new: Obj) -> None:
        before, after = no_execute_taints(old), no_execute_taints(new)
        if before == after:
            return
        name = new["metadata"]["name"]
        still = {_taint_id(t) for t in after}
        for k in [k for k in self._first_seen if k[0] == name and (k[1], k[2]) not in still]:
            del self._first_seen[k]
        self._enqueue_pods_on(name)

    def _node_deleted(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for k in [k for k in self._first_seen if k[0] == name]:
            del self._first_seen[k]

    # -- decisions -----------------------------------------------------------------------

    def taint_start(self, node: Obj, taint: Obj, now: float) -> float:
        """When the node got ``taint``: its timeAdded, else when this controller first saw it."""
        added = parse_time(taint.get("timeAdded"))
        if added is not None:
            return added
        k = (node["metadata"]["name"], *_taint_id(taint))
        return self._first_seen.setdefault(k, now)

    def eviction_time(self, pod: Obj, node: Obj, now: float) -> float | None:
        """When the pod must go: ``-inf`` at once, None never (it tolerates the taints for ever).

        Each taint is tolerated by the first toleration matching it; a finite
        ``tolerationSeconds`` counts from the taint's start, or from the pod's
        scheduling if that came later.
        """
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        scheduled = condition(pod, "PodScheduled")
        bound = parse_time((scheduled or {}).get("lastTransitionTime")) or parse_time(
            pod["metadata"].get("creationTimestamp")
        )
        due = math.inf
        for taint in no_execute_taints(node):
            tol = next((t for t in tolerations if tolerates(t, taint)), None)
            if tol is None:
                return -math.inf
            seconds = tol.get("tolerationSeconds")
            if seconds is None:
                continue
            if int(seconds) <= 0:
                return -math.inf
            start = self.taint_start(node, taint, now)
            if bound is not None:
                start = max(start, bound)
            due = min(due, start + int(seconds))
        return None if due == math.inf else due

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        pod = self.pods.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self.scheduled.pop(key, None)
            return None
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.get(node_name) if node_name else None
        if node is None or not no_execute_taints(node):
            self._cancel(pod)
            return None
        now = self.ctx.clock()
        due = self.eviction_time(pod, node, now)
        if due is None:
            self._cancel(pod)
            return None
        if due > now:
            self.scheduled[key] = due
            return due - now + 0.01
        wait = self.limiter.reserve(now)
        if wait is None or wait > 0:
            return wait if wait is not None else 1.0
        await self.evict(pod, now)
        return None

    def _cancel(self, pod: Obj) -> None:
        key = key_of(pod)
        if self.scheduled.pop(key, None) is not None:
            self.events.emit(
                pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}"
            )

    async def evict(self, pod: Obj, now: float) -> None:
        """Mark the pod a disruption target, then delete it (``addConditionAndDeletePod``)."""
        meta = pod["metadata"]
        ns, name = split_key(key_of(pod))
        key = key_of(pod)
        self.events.emit(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}")
        target = condition(pod, DISRUPTION_TARGET)
        try:
            if target is None or target.get("status") != "True":
                await self.client.patch(
                    "pods",
                    name,
                    {
                        "metadata": {"uid": meta["uid"]},
                        "status": {
                            "conditions": [
                                {
                                    "type": DISRUPTION_TARGET,
                                    "status": "True",
                                    "reason": "DeletionByTaintManager",
                                    "message": "Taint manager: deleting due to NoExecute taint",
                                    "lastTransitionTime": rfc3339(now),
                                }
                            ]
                        },
                    },
                    ns,
                    type="strategic",
                    subresource="status",
                )
            await self.client.delete("pods", name, ns, preconditions={"uid": meta["uid"]})
        except ApiError as e:
            if e.code in (404, 409):
                self.scheduled.pop(key, None)
                return  # gone, or a namesake
            raise
        self.scheduled.pop(key, None)
        self.log.info("evicted pod", pod=key, node=(pod.get("spec") or {}).get("nodeName"))
