"""The pod garbage collector (kube's ``pkg/controller/podgc``), every 20 seconds:

- terminated pods (``Succeeded``/``Failed``) beyond ``--terminated-pod-gc-threshold``
  (12,500) are deleted, evicted ones first, then the oldest;
- pods on a node that is out of service (NotReady with the
  ``node.kubernetes.io/out-of-service`` taint) and already terminating are deleted now;
- pods bound to a node that no longer exists — the node missing from the cache, then,
  after a quarantine of 40 seconds, from the API too — are marked ``Failed`` with the
  ``DisruptionTarget`` condition (``DeletionByPodGC``) and force-deleted, since no kubelet
  will ever confirm their end;
- terminating pods never scheduled are force-deleted.

A force delete is a delete with a grace period of 0, the uid as precondition.
"""

from __future__ import annotations

from typing import ClassVar

from skiff.api.conditions import new_condition
from skiff.api.errors import ApiError
from skiff.api.pods import is_terminal
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.podcontrol import force_delete_pod

GC_CHECK_PERIOD = 20.0
QUARANTINE_SECONDS = 40.0
TERMINATED_POD_GC_THRESHOLD = 12_500
OUT_OF_SERVICE_TAINT = "node.kubernetes.io/out-of-service"
_KEY = "gc"


def _not_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") != "True"
    return True


def _out_of_service(node: Obj) -> bool:
    return any(
        t.get("key") == OUT_OF_SERVICE_TAINT for t in (node.get("spec") or {}).get("taints") or ()
    )


def _age_order(pod: Obj) -> tuple[bool, float, str]:
    """Evicted pods first, then by creation (kube's ``byEvictionAndCreationTimestamp``)."""
    evicted = (pod.get("status") or {}).get("reason") == "Evicted"
    created = parse_time(pod["metadata"].get("creationTimestamp")) or 0.0
    return (not evicted, created, pod["metadata"].get("name") or "")


class PodGCController(Controller):
    """Deletes the pods no one else will: terminated ones beyond the threshold, those of
    nodes that are gone or out of service, and unscheduled terminating ones."""

    name: ClassVar[str] = "pod-garbage-collector-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 1,
        terminated_pod_gc_threshold: int = TERMINATED_POD_GC_THRESHOLD,
        quarantine: float = QUARANTINE_SECONDS,
    ) -> None:
        super().__init__(ctx, workers=1)
        self.threshold = terminated_pod_gc_threshold
        self.quarantine = quarantine
        self.pods = self.watch("pods")
        self.nodes = self.watch("nodes")
        self._missing_since: dict[str, float] = {}
        """Node name → when a pod's node was first found missing from the cache."""
        self.queue.add(_KEY)

    async def reconcile(self, key: str) -> float | None:
        await self.gc()
        return GC_CHECK_PERIOD

    async def gc(self) -> None:
        """One pass (kube's ``gc``)."""
        pods = self.pods.list()
        nodes = {n["metadata"]["name"]: n for n in self.nodes.list()}
        if self.threshold > 0:
            await self._gc_terminated(pods)
        await self._gc_out_of_service(pods, nodes)
        await self._gc_orphaned(pods, nodes)
        await self._gc_unscheduled_terminating(pods)

    async def _gc_terminated(self, pods: list[Obj]) -> None:
        terminated = [p for p in pods if is_terminal(p)]
        excess = len(terminated) - self.threshold
        if excess <= 0:
            return
        self.log.info("garbage collecting terminated pods", count=excess, threshold=self.threshold)
        for pod in sorted(terminated, key=_age_order)[:excess]:
            await self._fail_and_delete(pod, None)

    async def _gc_out_of_service(self, pods: list[Obj], nodes: dict[str, Obj]) -> None:
        down = {n for n, node in nodes.items() if _not_ready(node) and _out_of_service(node)}
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in down and pod["metadata"].get("deletionTimestamp"):
                self.log.info("deleting a terminating pod of an out-of-service node",
                              pod=_name(pod), node=node)  # fmt: skip
                await self._fail_and_delete(pod, _condition("node is out of service"))

    async def _gc_orphaned(self, pods: list[Obj], nodes: dict[str, Obj]) -> None:
        now = self.ctx.clock()
        missing = {
            n for p in pods if (n := (p.get("spec") or {}).get("nodeName")) and n not in nodes
        }
        for name in list(self._missing_since):
            if name not in missing:
                del self._missing_since[name]
        deleted: set[str] = set()
        for name in missing:
            since = self._missing_since.setdefault(name, now)
            if now - since < self.quarantine:
                continue
            try:
                await self.client.get("nodes", name)
            except ApiError as e:
                if e.code == 404:
                    deleted.add(name)
                    continue
                raise
            self._missing_since.pop(name, None)  # back: the cache was behind
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node in deleted:
                self.log.info("found an orphaned pod assigned to a node that is gone, deleting",
                              pod=_name(pod), node=node)  # fmt: skip
                await self._fail_and_delete(pod, _condition("node no longer exists"))

    async def _gc_unscheduled_terminating(self, pods: list[Obj]) -> None:
        for pod in pods:
            if pod["metadata"].get("deletionTimestamp") and not (pod.get("spec") or {}).get(
                "nodeName"
            ):
                self.log.info("force deleting an unscheduled terminating pod", pod=_name(pod))
                await self._fail_and_delete(pod, None)

    async def _fail_and_delete(self, pod: Obj, condition: Obj | None) -> None:
        """kube's ``markFailedAndDeletePodWithCondition``: a pod not yet terminal is
        marked Failed (with ``condition``), then deleted with no grace period."""
        meta = pod["metadata"]
        try:
            if not is_terminal(pod):
                patch: Obj = {"status": {"phase": "Failed"}}
                if condition is not None:
                    kept = [
                        c
                        for c in (pod.get("status") or {}).get("conditions") or ()
                        if c.get("type") != condition["type"]
                    ]
                    patch["status"]["conditions"] = [*kept, condition]
                await self.client.patch(
                    "pods", meta["name"], patch, meta.get("namespace"), subresource="status"
                )
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        await force_delete_pod(self.client, pod)


def _condition(detail: str) -> Obj:
    return new_condition(
        "DisruptionTarget", "True", "DeletionByPodGC", f"PodGC: {detail}", rfc3339()
    )


def _name(pod: Obj) -> str:
    return f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
