"""The scheduler service: informers → scheduling queue → framework → binding.

Informers keep a :class:`~.types.Snapshot` of nodes and assigned pods and feed
unassigned pods (of this scheduler's name) to the :class:`~.queue.SchedulingQueue`.
One loop takes a pod at a time through the framework (synchronous, so the shared
snapshot is consistent), assumes it onto the chosen node at once, and binds it in
the background, as kube-scheduler's binding cycle does; a failed binding forgets
the assumption and retries the pod. Unschedulable pods get a ``FailedScheduling``
event and a ``PodScheduled=False`` condition, and wait in the queue for a cluster
change that could help them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from opentelemetry import trace
from prometheus_client import Counter, Gauge, Histogram

from skiff import tracing
from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.events import EventRecorder
from skiff.client.informer import Informer
from skiff.client.leaderelection import default_identity
from skiff.client.rest import ApiClient
from skiff.log import get_logger

from .framework import CycleState, Framework, Profile, SharedListers
from .queue import QueuedPod, SchedulingQueue
from .snapshot import Snapshot
from .types import PodInfo

log = get_logger(__name__)
_tracer = tracing.tracer("skiff.scheduler")

ATTEMPTS = Counter("scheduler_schedule_attempts_total", "Scheduling attempts", ["result"])
E2E = Histogram(
    "scheduler_pod_scheduling_duration_seconds",
    "From the pod entering the queue to its binding",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ALGORITHM = Histogram(
    "scheduler_scheduling_algorithm_duration_seconds",
    "Filter and score time per attempt",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
PENDING = Gauge("scheduler_pending_pods", "Pods waiting to be scheduled", ["queue"])
PREEMPTION_VICTIMS = Counter("scheduler_preemption_victims", "Pods evicted by preemption")


def _relevant_node_change(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a node update could make an unschedulable pod fit (heartbeats can't)."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    if o.get("unschedulable") != n.get("unschedulable") or o.get("taints") != n.get("taints"):
        return True
    if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
        return True
    os_, ns_ = old.get("status") or {}, new.get("status") or {}
    if os_.get("allocatable") != ns_.get("allocatable"):
        return True

    def ready(s: dict[str, Any]) -> str | None:
        return next(
            (c.get("status") for c in s.get("conditions") or () if c.get("type") == "Ready"), None
        )

    return ready(os_) != ready(ns_)


class Scheduler:
    """One scheduler; ``run()`` schedules while ``leading()`` says so."""

    def __init__(
        self,
        client: ApiClient,
        profile: Profile | None = None,
        *,
        bind_concurrency: int = 8,
    ) -> None:
        self.client = client
        profile = profile or Profile()
        self.name = profile.scheduler_name
        self.snapshot = Snapshot()
        self.queue = SchedulingQueue()
        self.pods = Informer(client, "pods")
        self.nodes = Informer(client, "nodes")
        # Claims, volumes and classes for VolumeBinding; any change may make a pod fit.
        self.claims = Informer(client, "persistentvolumeclaims")
        self.volumes = Informer(client, "persistentvolumes")
        self.classes = Informer(client, "storageclasses")
        for inf, why in (
            (self.claims, "PvcChange"),
            (self.volumes, "PvChange"),
            (self.classes, "StorageClassChange"),
        ):
            inf.add_handler(
                lambda _o, why=why: self.queue.move_all(why),
                lambda _o, _n, why=why: self.queue.move_all(why),
                lambda _o: None,
            )
        # reportingInstance names this replica (its leader-election identity), so that
        # the Scheduled events tell which of several schedulers acted.
        self.events = EventRecorder(client, self.name, instance=default_identity())
        # The plugins' Handle: the API client (DefaultBinder's pods/binding), the
        # informers' caches (VolumeBinding), the snapshot and the event recorder.
        self.framework = Framework(
            profile,
            client=client,
            listers=SharedListers(
                nodes=self.nodes,
                pods=self.pods,
                persistent_volume_claims=self.claims,
                persistent_volumes=self.volumes,
                storage_classes=self.classes,
            ),
            snapshot=self.snapshot,
            event_recorder=self.events,
        )
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self._binds: set[asyncio.Task[None]] = set()
        self._bind_slots = asyncio.Semaphore(bind_concurrency)

    # -- informer handlers (synchronous: only bookkeeping and queueing) -----------------

    def _responsible(self, pod: dict[str, Any]) -> bool:
        spec = pod.get("spec") or {}
        return (spec.get("schedulerName") or "default-scheduler") == self.name

    def _pod_added(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.snapshot.add_pod(pod)
            self.queue.delete(pod)
        elif self._responsible(pod) and not pod["metadata"].get("deletionTimestamp"):
            self.queue.add(pod)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if (new.get("spec") or {}).get("nodeName"):
            self.snapshot.update_pod(new)
            self.queue.delete(new)
            phase = (new.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and (old.get("status") or {}).get("phase") != phase:
                self.queue.move_all("AssignedPodCompleted")
        elif new["metadata"].get("deletionTimestamp"):
            self.queue.delete(new)
        elif self._responsible(new):
            self.queue.add(new)

    def _pod_deleted(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.snapshot.remove_pod(pod)
            self.queue.move_all("AssignedPodDelete")
        else:
            self.queue.delete(pod)

    def _node_added(self, node: dict[str, Any]) -> None:
        self.snapshot.add_node(node)
        self.queue.move_all("NodeAdd")

    def _node_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.snapshot.update_node(new)
        if _relevant_node_change(old, new):
            self.queue.move_all("NodeUpdate")

    def _node_deleted(self, node: dict[str, Any]) -> None:
        self.snapshot.remove_node(node["metadata"]["name"])

    # -- running ------------------------------------------------------------------------

    async def start_informers(self) -> list[asyncio.Task[None]]:
        informers = (self.nodes, self.pods, self.claims, self.volumes, self.classes)
        tasks = [asyncio.create_task(inf.run(), name=inf.name) for inf in informers]
        for inf in informers:
            await inf.wait_synced()
        return tasks

    async def schedule_loop(self) -> None:
        """Take pods from the queue until cancelled (run only while leading)."""
        log.info("scheduling", scheduler=self.name, nodes=len(self.snapshot))
        try:
            while True:
                qp = await self.queue.pop()
                self._update_gauges()
                try:
                    await self.schedule_one(qp)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduling attempt failed", pod=qp.key)
                    self.queue.failed(qp, unschedulable=False)
        finally:
            for t in list(self._binds):
                t.cancel()

    def _update_gauges(self) -> None:
        for name, n in self.queue.depth().items():
            PENDING.labels(name).set(n)

    async def schedule_one(self, qp: QueuedPod) -> None:
        pod = qp.pod
        state = CycleState()
        with _tracer.start_as_current_span(
            "schedule.attempt",
            kind=trace.SpanKind.INTERNAL,
            # Linked to the trace of the write that gave us this pod (its creation).
            links=tracing.links_to(self.pods.trace_of(qp.key)),
            attributes={"k8s.pod": qp.key, "skiff.attempt": qp.attempts + 1},
        ):
            t0 = time.perf_counter()
            result = self.framework.schedule(state, pod, self.snapshot)  # assumes on success
            ALGORITHM.observe(time.perf_counter() - t0)
            node = result.node_name
            if node is None:
                # With no node at all the pod is unschedulable too: it waits for a NodeAdd.
                unschedulable = result.unschedulable or len(self.snapshot) == 0
                ATTEMPTS.labels("unschedulable" if unschedulable else "error").inc()
                self.queue.failed(qp, unschedulable=unschedulable)
                log.info("pod unschedulable", pod=qp.key, message=result.message)
                await self._report_failure(pod, result.message)
                if result.nominated_node_name and result.victims:
                    await self._preempt(pod, result.nominated_node_name, result.victims)
                return
            self.queue.done(qp)
        task = asyncio.create_task(self._bind(qp, state, pod, node), name=f"bind-{qp.key}")
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _bind(self, qp: QueuedPod, state: CycleState, pod: dict[str, Any], node: str) -> None:
        """The binding cycle, off the scheduling loop (as kube-scheduler's goroutine)."""
        async with self._bind_slots:
            status = await self.framework.bind(state, pod, node)
        if status.is_success():
            meta = pod["metadata"]
            self.events.emit(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta['name']} to {node}",
                "Binding",
            )
            ATTEMPTS.labels("scheduled").inc()
            E2E.observe(time.monotonic() - qp.added)
            return
        self.framework.forget(state, pod, node, self.snapshot)
        ATTEMPTS.labels("error").inc()
        err = status.error
        if isinstance(err, ApiError) and (
            err.code == 404 or (err.code == 409 and "already assigned" in err.message)
        ):
            return  # gone, or bound by someone else: the informer will tell us
        log.warning("binding failed; will retry", pod=qp.key, node=node, error=status.message())
        self.queue.retry(qp)

    async def _preempt(self, pod: dict[str, Any], node: str, victims: list[PodInfo]) -> None:
        """Carry out a preemption (``prepareCandidate``): evict the victims, nominate the node.

        Each victim gets the ``DisruptionTarget`` condition and a ``Preempted`` event, then
        a graceful delete; the preemptor's ``status.nominatedNodeName`` reserves the room,
        and the victims' deletions requeue it.
        """
        meta = pod["metadata"]
        why = f"Preempted by pod {meta.get('uid')} on node {node}"
        for victim in victims:
            v = victim.pod
            vmeta = v["metadata"]
            with contextlib.suppress(ApiError):
                await self.client.patch(
                    "pods",
                    vmeta["name"],
                    {
                        "status": {
                            "conditions": [
                                {
                                    "type": "DisruptionTarget",
                                    "status": "True",
                                    "reason": "PreemptionByScheduler",
                                    "message": f"{self.name}: {why}",
                                    "lastTransitionTime": rfc3339(),
                                }
                            ]
                        }
                    },
                    vmeta.get("namespace"),
                    type="strategic",
                    subresource="status",
                )
            try:
                await self.client.delete("pods", vmeta["name"], vmeta.get("namespace"))
            except ApiError as e:
                if e.code != 404:
                    log.warning("cannot evict a preemption victim", pod=victim.key, error=e.message)
                    return
            self.events.emit(v, "Normal", "Preempted", why, "Preempting")
            PREEMPTION_VICTIMS.inc()
        with contextlib.suppress(ApiError):
            await self.client.patch(
                "pods",
                meta["name"],
                {"status": {"nominatedNodeName": node}},
                meta.get("namespace"),
                subresource="status",
            )
        log.info(
            "preempted",
            pod=f"{meta.get('namespace')}/{meta['name']}",
            node=node,
            victims=[v.key for v in victims],
        )

    async def _report_failure(self, pod: dict[str, Any], message: str) -> None:
        """FailedScheduling event (aggregated like Kubernetes') and PodScheduled=False."""
        meta = pod["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        now = rfc3339()
        with contextlib.suppress(ApiError):
            await self.client.patch(
                "pods",
                name,
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": message,
                                "lastProbeTime": None,
                                "lastTransitionTime": now,
                            }
                        ]
                    }
                },
                ns,
                type="strategic",
                subresource="status",
            )
        await self.events.record(pod, "Warning", "FailedScheduling", message, "Scheduling")
