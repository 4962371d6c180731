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

from skiff.api.selectors import LabelSelector
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, TerminalError, writable
from skiff.controller.owners import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    ControllerRefManager,
    SelectorCache,
    controller_index,
    controller_ref,
    namespace_index,
    owned_and_orphans,
    owners_selecting,
    resolve_controller_ref,
)

from .recreate import rollout_recreate
from .rolling import rollout_rolling
from .sync import DeploymentSync
from .util import RECREATE, ROLLING_UPDATE, is_rolling_update


class DeploymentController(Controller):
    """Rolls Deployments out through their ReplicaSets (see :mod:`skiff.controllers.deployment`)."""

    name: ClassVar[str] = "deployment-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        ctx.informers.index("deployments", NAMESPACE_INDEX, namespace_index)
        ctx.informers.index("replicasets", CONTROLLER_INDEX, controller_index)
        ctx.informers.index("pods", CONTROLLER_INDEX, controller_index)
        self.deployments = self.watch("deployments")
        self.rss = self.watch("replicasets")
        self.pods = self.watch("pods")
        self._selectors = SelectorCache()
        self.deployments.add_handler(
            self.enqueue, self._deployment_updated, self._deployment_deleted
        )
        self.rss.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- selectors -------------------------------------------------------------------------

    def selector(self, d: Obj) -> LabelSelector:
        """The Deployment's parsed selector (cached per uid); TerminalError when invalid."""
        return self._selectors.get(d)

    def _deployments_matching(self, rs: Obj) -> list[Obj]:
        matching = owners_selecting(self.deployments, rs, self.selector)
        return [d for d, sel in matching if not sel.empty]

    def _owner_of(self, rs: Obj, ref: Obj | None) -> Obj | None:
        if ref is None:
            return None
        return resolve_controller_ref(
            self.deployments, rs["metadata"].get("namespace"), ref, "Deployment", "apps"
        )

    # -- event handlers --------------------------------------------------------------------

    def _deployment_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._deployment_deleted(old)
        self.enqueue(new)

    def _deployment_deleted(self, d: Obj) -> None:
        self._selectors.pop(d["metadata"].get("uid", ""), None)
        self.enqueue(d)

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

    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.get(key)
        if cached is None:
            return None
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

        claimed = await self._claim(d, selector)
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

    async def _claim(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """The ReplicaSets this Deployment controls, after adoption and release."""
        refs = ControllerRefManager(
            self.client,
            d,
            selector,
            owner_resource="deployments",
            owner_api_version="apps/v1",
            owner_kind="Deployment",
            resource="replicasets",
        )
        return await refs.claim(owned_and_orphans(self.rss, d))

    def _pods_by_rs(self, rss: list[Obj]) -> dict[str, list[Obj]]:
        """The cached pods of each ReplicaSet, terminating ones included."""
        out: dict[str, list[Obj]] = {}
        for rs in rss:
            uid = rs["metadata"]["uid"]
            out[uid] = self.pods.store.by_index(CONTROLLER_INDEX, f"uid:{uid}")
        return out
