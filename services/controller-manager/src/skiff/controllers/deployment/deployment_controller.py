"""The Deployment controller (``deployment_controller.go``): informers, event handlers and
``syncDeployment``.

It watches Deployments, ReplicaSets and (for Recreate) pod deletions, and maps each
event to the Deployment concerned: the controlling one, or for an orphaned ReplicaSet
every Deployment whose selector matches it. A sync claims the ReplicaSets (adopting
matching orphans, releasing those that stopped matching), then hands one
:class:`~.sync.DeploymentSync` to the step that applies: status only while the
Deployment is being deleted, scaling while paused or when ``spec.replicas`` changed,
else the :mod:`.rolling` or :mod:`.recreate` rollout.
"""

from __future__ import annotations

from typing import ClassVar

from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, TerminalError, writable
from skiff.controller.owners import CONTROLLER_INDEX, controller_ref, resolve_controller_ref
from skiff.controller.workload import WorkloadController

from .recreate import rollout_recreate
from .rolling import rollout_rolling
from .sync import DeploymentSync
from .util import RECREATE, ROLLING_UPDATE, is_rolling_update


class DeploymentController(WorkloadController):
    """Rolls Deployments out through their ReplicaSets (see :mod:`skiff.controllers.deployment`)."""

    name: ClassVar[str] = "deployment-controller"
    owner_type: ClassVar[tuple[str, str, str]] = ("apps", "v1", "deployments")

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        self.deployments = self.watch_owners()
        self.rss = self.watch_dependents("replicasets")
        self.pods = self.watch_dependents("pods")
        self.rss.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    def _deployments_matching(self, rs: Obj) -> list[Obj]:
        return [d for d, sel in self.owners_selecting(rs) if not sel.empty]

    # -- event handlers --------------------------------------------------------------------

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            if (d := self._owner_of(rs, ref)) is not None:
                self.enqueue(d)
            return
        for d in self._deployments_matching(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old["metadata"], new["metadata"]
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            if (d := self._owner_of(old, old_ref)) is not None:
                self.enqueue(d)
        if cur_ref is not None:
            if (d := self._owner_of(new, cur_ref)) is not None:
                self.enqueue(d)
            return
        if ref_changed or om.get("labels") != nm.get("labels"):
            for d in self._deployments_matching(new):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        if (d := self._owner_of(rs, controller_ref(rs))) is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """A Recreate rollout waits for the old pods to be gone: look again."""
        ref = controller_ref(pod)
        if ref is None:
            return
        rs = resolve_controller_ref(
            self.rss, pod["metadata"].get("namespace"), ref, "ReplicaSet", "apps"
        )
        if rs is None:
            return
        d = self._owner_of(rs, controller_ref(rs))
        if d is not None and not is_rolling_update(d):
            self.enqueue(d)

    # -- reconcile -------------------------------------------------------------------------

    async def sync_owner(self, key: str, cached: Obj) -> float | None:
        d = writable(cached)
        d.setdefault("status", {})
        now = self.ctx.clock()
        raw_selector = (d.get("spec") or {}).get("selector")
        selector = self.selector(d)
        if raw_selector is not None and selector.empty:
            sync = DeploymentSync(self, d, [], {}, now)
            sync.event(
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            status = d["status"]
            if int(status.get("observedGeneration") or 0) < int(
                d["metadata"].get("generation") or 0
            ):
                status["observedGeneration"] = int(d["metadata"].get("generation") or 0)
                await sync.write_status()
            return None
        template_labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels")
        if not selector.matches(template_labels):
            raise TerminalError("spec.selector does not match the template labels")

        claimed = await self.claim(d, selector, self.rss)
        if any(controller_ref(rs) is None for rs in claimed):
            return None  # adopted just now: the adoptions' events bring the fresh objects
        rss = [writable(rs) for rs in claimed]
        # Only Recreate looks at pods (whether the old ones are gone).
        pods = self._pods_by_rs(rss) if not is_rolling_update(d) else {}
        sync = DeploymentSync(self, d, rss, pods, now)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await sync.get_all_and_sync_revision(False)
            await sync.sync_status([*old_rss, new_rs], new_rs)
            return None
        await sync.check_paused_conditions()
        if d["spec"].get("paused"):
            await sync.sync()
            return None
        if await sync.is_scaling_event():
            await sync.sync()
            return None
        strategy = (d["spec"].get("strategy") or {}).get("type", ROLLING_UPDATE)
        if strategy == RECREATE:
            return await rollout_recreate(sync)
        if strategy == ROLLING_UPDATE:
            return await rollout_rolling(sync)
        raise TerminalError(f"unexpected deployment strategy type: {strategy}")

    def _pods_by_rs(self, rss: list[Obj]) -> dict[str, list[Obj]]:
        """The cached pods of each ReplicaSet, terminating ones included."""
        out: dict[str, list[Obj]] = {}
        for rs in rss:
            uid = rs["metadata"]["uid"]
            out[uid] = self.pods.store.by_index(CONTROLLER_INDEX, f"uid:{uid}")
        return out
