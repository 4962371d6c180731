"""The RollingUpdate strategy (``rolling.go``).

The new ReplicaSet is scaled up as far as ``maxSurge`` allows, counting each
ReplicaSet as ``max(spec, status)`` replicas; old ones are scaled down as far as
``maxUnavailable`` allows, counting each one's available pods as ``min(spec,
available)`` and shrinking unhealthy old ReplicaSets first. The plans are pure
functions; :func:`rollout_rolling` carries them out for one :class:`DeploymentSync`.
"""

from __future__ import annotations

from collections.abc import Sequence

from skiff.client.rest import Obj

from .progress import deployment_complete, sync_rollout_status
from .sync import DeploymentSync
from .util import (
    active,
    available_count,
    by_creation,
    max_unavailable,
    new_rs_new_replicas,
    replicas,
    status_int,
)

# -- plans -------------------------------------------------------------------------------


def old_scale_down_room(d: Obj, all_rss: Sequence[Obj], new_rs: Obj) -> int:
    """How many old replicas may go (``maxScaledDown`` of ``reconcileOldReplicaSets``)."""
    all_pods = sum(replicas(rs) for rs in all_rss)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - available_count(new_rs)
    return all_pods - min_available - new_unavailable


def unhealthy_cleanup_plan(old_rss: Sequence[Obj], max_cleanup: int) -> list[tuple[Obj, int]]:
    """Old ReplicaSets to shrink by their unavailable replicas, oldest first.

    At most ``max_cleanup`` replicas in all (``cleanupUnhealthyReplicas``). Returns
    (ReplicaSet, new size) pairs.
    """
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= max_cleanup:
            break
        size = replicas(rs)
        avail = status_int(rs, "availableReplicas")
        if size == 0 or size <= avail:
            continue
        count = min(max_cleanup - total, size - avail)
        plan.append((rs, size - count))
        total += count
    return plan


def rolling_scale_down_plan(
    d: Obj, all_rss: Sequence[Obj], old_rss: Sequence[Obj]
) -> list[tuple[Obj, int]]:
    """Old ReplicaSets to shrink so availability stays at least ``replicas - maxUnavailable``.

    Oldest first (``scaleDownOldReplicaSetsForRollingUpdate``). Returns (ReplicaSet,
    new size) pairs.
    """
    min_available = replicas(d) - max_unavailable(d)
    available = sum(available_count(rs) for rs in all_rss)
    if available <= min_available:
        return []
    room = available - min_available
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= room:
            break
        size = replicas(rs)
        if size == 0:
            continue
        count = min(size, room - total)
        plan.append((rs, size - count))
        total += count
    return plan


# -- the rollout -------------------------------------------------------------------------


async def rollout_rolling(s: DeploymentSync) -> float | None:
    """One step of a rolling update (``rolloutRolling``); when to look again, if ever."""
    new_rs, old_rss = await s.get_all_and_sync_revision(True)
    assert new_rs is not None
    all_rss = [*old_rss, new_rs]
    if await reconcile_new_replica_set(s, all_rss, new_rs):
        return await sync_rollout_status(s, all_rss, new_rs)
    if await reconcile_old_replica_sets(s, all_rss, active(old_rss), new_rs):
        return await sync_rollout_status(s, all_rss, new_rs)
    if deployment_complete(s.d, s.d.get("status") or {}):
        await s.cleanup(old_rss)
    return await sync_rollout_status(s, all_rss, new_rs)


async def reconcile_new_replica_set(s: DeploymentSync, all_rss: list[Obj], new_rs: Obj) -> bool:
    """Scale the new ReplicaSet up as far as maxSurge allows (down if above replicas)."""
    want = replicas(s.d)
    size = replicas(new_rs)
    if size == want:
        return False
    if size > want:
        return await s.scale_rs(new_rs, want)
    return await s.scale_rs(new_rs, new_rs_new_replicas(s.d, all_rss, new_rs))


async def reconcile_old_replica_sets(
    s: DeploymentSync, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj
) -> bool:
    """Scale old ReplicaSets down as far as maxUnavailable allows, unhealthy ones first."""
    if sum(replicas(rs) for rs in old_rss) == 0:
        return False
    room = old_scale_down_room(s.d, all_rss, new_rs)
    if room <= 0:
        return False
    scaled = 0
    for rs, size in unhealthy_cleanup_plan(old_rss, room):
        before = replicas(rs)
        await s.scale_rs(rs, size)
        scaled += before - size
    for rs, size in rolling_scale_down_plan(s.d, [*old_rss, new_rs], old_rss):
        before = replicas(rs)
        await s.scale_rs(rs, size)
        scaled += before - size
    return scaled > 0
