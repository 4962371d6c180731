"""The DaemonSet's revision history and rolling update (``update.go``).

Templates are recorded in ControllerRevisions named ``<ds>-<hash>``; pods carry
``controller-revision-hash: <hash>``. ``constructHistory`` finds (or creates) the
revision of the current template, merging duplicates into the newest and renumbering it
when an older template comes back; revisions no pod uses beyond
``revisionHistoryLimit`` are deleted. ``RollingUpdate`` replaces out-of-date pods while
at most ``maxUnavailable`` of the desired pods are unavailable, or with ``maxSurge``
starts the new pod beside the old one and deletes the old one once the new one is
available.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from skiff.api.errors import ApiError
from skiff.client.rest import Obj
from skiff.controller.workload import PodOwnerController

from ..history import (
    CONTROLLER_REVISION_HASH_LABEL,
    create_revision,
    equal_revision,
    new_revision,
    next_revision,
    revision_number,
    sort_revisions,
)
from ..pods import is_available
from .util import pod_hash, scaled_value, should_run


class DaemonSetUpdateMixin(PodOwnerController):
    """The history and the rolling update of
    :class:`~skiff.controllers.daemonset.daemon_controller.DaemonSetController`."""

    if TYPE_CHECKING:  # from the other part of DaemonSetController

        @staticmethod
        def node_to_pods(pods: Iterable[Obj]) -> dict[str, list[Obj]]: ...
        async def sync_nodes(
            self,
            ds: Obj,
            key: str,
            delete: list[Obj],
            create_on: list[str],
            hash_: str,
            *,
            force: Sequence[Obj] = (),
        ) -> None: ...

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
