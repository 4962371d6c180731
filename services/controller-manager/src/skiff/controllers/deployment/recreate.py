"""The Recreate strategy (``recreate.go``).

Every old ReplicaSet is scaled to 0 first; the new one is created and scaled up only
once no pod of an old one is left running (terminating pods included), so old and new
pods never run side by side. The pods come from the controller's cache, by ReplicaSet.
"""

from __future__ import annotations

from skiff.client.rest import Obj

from .progress import deployment_complete, sync_rollout_status
from .sync import DeploymentSync
from .util import active, replicas, status_int


async def rollout_recreate(s: DeploymentSync) -> float | None:
    """One step of a Recreate rollout (``rolloutRecreate``); when to look again, if ever."""
    new_rs, old_rss = await s.get_all_and_sync_revision(False)
    all_rss = [*old_rss, new_rs]
    scaled = False
    for rs in active(old_rss):
        scaled = await s.scale_rs(rs, 0) or scaled
    if scaled:
        return await sync_rollout_status(s, all_rss, new_rs)
    if old_pods_running(s, new_rs, old_rss):
        return await sync_rollout_status(s, all_rss, new_rs)
    if new_rs is None:
        new_rs, old_rss = await s.get_all_and_sync_revision(True)
        all_rss = [*old_rss, new_rs]
    assert new_rs is not None
    await s.scale_rs(new_rs, replicas(s.d))
    if deployment_complete(s.d, s.d.get("status") or {}):
        await s.cleanup(old_rss)
    return await sync_rollout_status(s, all_rss, new_rs)


def old_pods_running(s: DeploymentSync, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
    """Any pod of an old ReplicaSet not Succeeded or Failed, terminating ones included."""
    if sum(status_int(rs, "replicas") for rs in old_rss) > 0:
        return True
    new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
    for uid, pods in s.pods.items():
        if uid == new_uid:
            continue
        for pod in pods:
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
    return False
