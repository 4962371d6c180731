"""The taint eviction controller (kube's ``pkg/controller/tainteviction``, once the node
lifecycle controller's NoExecute taint manager).

It deletes the pods on a node with ``NoExecute`` taints they do not tolerate at once,
and those that tolerate them for ``tolerationSeconds`` when that time is up (counted
from the taint's ``timeAdded``, or from when the pod was scheduled if later), after
marking them with a ``DisruptionTarget`` condition (``DeletionByTaintManager``);
evictions are paced by ``--skiff-pod-eviction-qps``. A pod whose taints are gone, or
that now tolerates them, has its pending eviction cancelled.
"""

from __future__ import annotations

import math
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.taints import tolerates
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

from .config import LifecycleSettings
from .util import (
    POD_NODE_INDEX,
    RateLimiter,
    condition,
    no_execute_taints,
    pod_node_index,
    taint_id,
)

DISRUPTION_TARGET = "DisruptionTarget"


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
        still = {taint_id(t) for t in after}
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
        k = (node["metadata"]["name"], *taint_id(taint))
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
