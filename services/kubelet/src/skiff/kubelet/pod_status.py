"""Pod status, as kube's status manager and ``generateAPIPodStatus``: container statuses
(state, lastState, restartCount, image IDs, ready/started from the probes), the phase as
the kubelet's ``getPhase``, conditions with transition times, pod and host IPs, the report
to the API when something changed, and the final deletion (grace period 0) that confirms
a pod's containers are gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import rfc3339
from skiff.client.rest import ApiClient
from skiff.cri.client import pb

from .pod_context import PodContext
from .probes import READINESS, STARTUP, ProbeManager
from .static import CONFIG_HASH


def _cri_time(ns: int) -> str | None:
    """``metav1.Time`` of a CRI timestamp (nanoseconds; 0 is unset)."""
    return rfc3339(ns / 1e9) if ns else None


class PodStatusMixin:
    """What the API is told about a pod."""

    # Set up by Kubelet.__init__.
    client: ApiClient
    node_ip: str
    probes: ProbeManager

    if TYPE_CHECKING:  # from the other parts of Kubelet

        async def _status(self, ctx: PodContext, c: pb.Container) -> pb.ContainerStatus: ...

    async def _container_status(
        self, ctx: PodContext, spec: dict[str, Any], *, init: bool
    ) -> dict[str, Any]:
        name = spec["name"]
        history = ctx.history.get(name) or []
        out: dict[str, Any] = {
            "name": name,
            "image": spec["image"],
            "imageID": "",
            "ready": False,
            "started": False,
            "restartCount": 0,
        }
        latest = history[0] if history else None

        async def terminated(c: pb.Container) -> dict[str, Any]:
            st = await self._status(ctx, c)
            term: dict[str, Any] = {
                "exitCode": st.exit_code,
                "reason": st.reason or ("Completed" if st.exit_code == 0 else "Error"),
                "startedAt": _cri_time(st.started_at),
                "finishedAt": _cri_time(st.finished_at),
                "containerID": f"containerd://{c.id}",
            }
            if st.message:
                term["message"] = st.message
            return term

        if latest is not None and latest.state != pb.CONTAINER_CREATED:
            st = await self._status(ctx, latest)
            out["restartCount"] = int(latest.metadata.attempt)
            out["imageID"] = st.image_ref
            out["containerID"] = f"containerd://{latest.id}"
        if name in ctx.waiting:
            reason, message = ctx.waiting[name]
            out["state"] = {"waiting": {"reason": reason, "message": message}}
            if latest is not None and latest.state == pb.CONTAINER_EXITED:
                out["lastState"] = {"terminated": await terminated(latest)}
            return out
        if latest is None or latest.state == pb.CONTAINER_CREATED:
            reason = "ContainerCreating"
            if not init and ctx.pod["spec"].get("initContainers") and not ctx.init_done:
                reason = "PodInitializing"
            out["state"] = {"waiting": {"reason": reason}}
            return out
        previous = history[1] if len(history) > 1 else None
        if previous is not None and previous.state == pb.CONTAINER_EXITED:
            out["lastState"] = {"terminated": await terminated(previous)}
        if latest.state == pb.CONTAINER_RUNNING:
            st = await self._status(ctx, latest)
            out["state"] = {"running": {"startedAt": _cri_time(st.started_at)}}
            startup = self.probes.result(latest.id, STARTUP)
            readiness = self.probes.result(latest.id, READINESS)
            out["started"] = startup is None or bool(startup.ok)
            if init:
                out["ready"] = False
            elif "readinessProbe" in spec:
                out["ready"] = bool(out["started"] and readiness is not None and readiness.ok)
            else:
                out["ready"] = out["started"]
        else:
            out["state"] = {"terminated": await terminated(latest)}
            out["ready"] = init and out["state"]["terminated"]["exitCode"] == 0
        return out

    def _phase(self, ctx: PodContext, statuses: list[dict[str, Any]]) -> str:
        """As the kubelet's getPhase."""
        if ctx.init_failed:
            return "Failed"
        if not ctx.init_done:
            return "Pending"
        policy = ctx.pod["spec"].get("restartPolicy") or "Always"
        running = waiting = stopped = succeeded = failed = 0
        for s in statuses:
            state = s.get("state") or {}
            if "running" in state:
                running += 1
            elif "terminated" in state:
                stopped += 1
                if state["terminated"]["exitCode"] == 0:
                    succeeded += 1
                else:
                    failed += 1
            elif "terminated" in (s.get("lastState") or {}):
                stopped += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if stopped:
            if policy == "Always":
                return "Running"
            if policy == "OnFailure":
                return "Succeeded" if stopped == succeeded else "Running"
            return "Failed" if failed else "Succeeded"
        return "Pending"

    async def _report(self, ctx: PodContext) -> None:
        pod = ctx.pod
        spec = pod["spec"]
        old = pod.get("status") or {}
        init_statuses = [
            await self._container_status(ctx, c, init=True)
            for c in spec.get("initContainers") or []
        ]
        statuses = [
            await self._container_status(ctx, c, init=False) for c in spec.get("containers") or []
        ]
        phase = self._phase(ctx, statuses)
        containers_ready = bool(statuses) and all(s["ready"] for s in statuses)
        reasons: dict[str, tuple[str, str]] = {}
        if not ctx.init_done:
            pending = [s["name"] for s in init_statuses if not s["ready"]]
            reasons["Initialized"] = (
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending)}]",
            )
        if not containers_ready:
            unready = [s["name"] for s in statuses if not s["ready"]]
            msg = f"containers with unready status: [{' '.join(unready)}]"
            reasons["ContainersReady"] = ("ContainersNotReady", msg)
            reasons["Ready"] = ("ContainersNotReady", msg)
        if phase in ("Succeeded", "Failed"):
            reasons["ContainersReady"] = reasons["Ready"] = ("PodCompleted", "")
        truth = {
            "PodScheduled": True,
            "Initialized": ctx.init_done or phase == "Succeeded",
            "ContainersReady": containers_ready and phase not in ("Succeeded", "Failed"),
            "Ready": containers_ready and phase not in ("Succeeded", "Failed"),
        }
        if phase == "Succeeded":
            reasons.pop("Initialized", None)
        old_conditions = {c.get("type"): c for c in old.get("conditions") or []}
        now = rfc3339()
        conditions = []
        for ctype, ok in truth.items():
            value = "True" if ok else "False"
            prev = old_conditions.get(ctype) or {}
            cond: dict[str, Any] = {
                "type": ctype,
                "status": value,
                "lastProbeTime": None,
                "lastTransitionTime": prev.get("lastTransitionTime")
                if prev.get("status") == value
                else now,
            }
            if not ok and ctype in reasons:
                cond["reason"], message = reasons[ctype]
                if message:
                    cond["message"] = message
            conditions.append(cond)
        status: dict[str, Any] = {
            "phase": phase,
            "hostIP": self.node_ip,
            "hostIPs": [{"ip": self.node_ip}],
            "podIP": ctx.pod_ip or None,
            "podIPs": [{"ip": ctx.pod_ip}] if ctx.pod_ip else None,
            "startTime": old.get("startTime") or now,
            "conditions": conditions,
            "containerStatuses": statuses,
        }
        if init_statuses:
            status["initContainerStatuses"] = init_statuses
        ephemeral = [
            {**await self._container_status(ctx, c, init=False), "ready": False}
            for c in spec.get("ephemeralContainers") or []
        ]
        if ephemeral:
            status["ephemeralContainerStatuses"] = ephemeral
        if all(old.get(k) == v for k, v in status.items()):
            return
        meta = pod["metadata"]
        try:
            await self.client.patch(
                "pods",
                meta["name"],
                {"status": status},
                meta["namespace"],
                type="merge",
                subresource="status",
            )
        except ApiError as e:
            if e.code not in (404, 503) or CONFIG_HASH not in (meta.get("annotations") or {}):
                raise
            # A static pod whose mirror is not (yet) in the API, or whose API does not
            # answer yet: nothing to report to (the mirror's creation syncs it again).

    async def _confirm_deletion(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete(
                "pods",
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                preconditions={"uid": meta["uid"]},
            )
        except ApiError as e:
            if e.code not in (404, 409):
                raise
