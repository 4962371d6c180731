"""Pod helpers shared by the workload controllers (``k8s.io/kubernetes/pkg/controller``).

Activity, readiness and availability of a pod, and the order in which a controller
deletes surplus pods. The pod a controller creates from its template, and creating and
deleting pods, are :mod:`skiff.controller.podcontrol`'s.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from skiff.api.pods import is_ready, ready_condition
from skiff.api.timestamps import parse_time
from skiff.client.rest import Obj

DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: Obj) -> bool:
    """Counts toward replicas: not Succeeded or Failed, and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def ready_since(pod: Obj) -> float | None:
    """When the pod last became Ready (None when it is not ready)."""
    c = ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    return parse_time(c.get("lastTransitionTime"))


def available_at(pod: Obj, min_ready_seconds: int) -> float | None:
    """When a ready pod is (or becomes) available: ready for ``min_ready_seconds``.

    None when it is not ready; ``-inf`` when it counts as available at once.
    """
    if not is_ready(pod):
        return None
    if min_ready_seconds <= 0:
        return -math.inf
    since = ready_since(pod)
    if since is None:
        return -math.inf  # ready without a transition time: as Kubernetes, trust it
    return since + min_ready_seconds


def next_availability(pods: Iterable[Obj], min_ready_seconds: int, now: float) -> float | None:
    """Seconds until (just after) the next ready pod passes ``min_ready_seconds``: when its
    owner is to look again (None: no pod waits for that)."""
    if min_ready_seconds <= 0:
        return None
    waits = [
        at - now
        for p in pods
        if (at := available_at(p, min_ready_seconds)) is not None and at > now
    ]
    return min(waits) + 0.05 if waits else None


def is_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Ready for at least ``min_ready_seconds`` at ``now`` (``IsPodAvailable``)."""
    at = available_at(pod, min_ready_seconds)
    return at is not None and at <= now


def _deletion_cost(pod: Obj) -> int:
    raw = ((pod["metadata"].get("annotations") or {}).get(DELETION_COST)) or "0"
    try:
        return int(raw)
    except ValueError:
        return 0


def _max_restarts(pod: Obj) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return max((int(s.get("restartCount") or 0) for s in statuses), default=0)


def deletion_order_key(pod: Obj, rank: int = 0) -> tuple[float | int | str, ...]:
    """Sort key putting the pods to delete first, as ``ActivePodsWithRanks`` orders them.

    Unscheduled before scheduled; Pending before Unknown before Running; not ready
    before ready; lower ``pod-deletion-cost`` first; pods sharing a node with more of
    their siblings (higher ``rank``) first; ready for a shorter time first; more
    container restarts first; newer first. The name breaks ties so the order is stable.
    """
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    ready = is_ready(pod)
    since = (ready_since(pod) or 0.0) if ready else 0.0
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDER.get(status.get("phase") or "", 0),
        1 if ready else 0,
        _deletion_cost(pod),
        -rank,
        -since,
        -_max_restarts(pod),
        -(created if created is not None else math.inf),
        pod["metadata"].get("name", ""),
    )


def node_ranks(pods: Sequence[Obj], related: Iterable[Obj]) -> list[int]:
    """For each pod, how many active ``related`` pods share its node (0 when unscheduled)."""
    per_node = Counter((p.get("spec") or {}).get("nodeName") for p in related if is_active(p))
    out = []
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName")
        out.append(per_node[node] if node else 0)
    return out


def pods_to_delete(
    pods: Sequence[Obj], count: int, related: Iterable[Obj] | None = None
) -> list[Obj]:
    """The ``count`` pods to delete first (``related`` pods, default ``pods``, set ranks)."""
    if count <= 0:
        return []
    ranks = node_ranks(pods, pods if related is None else related)
    order = sorted(range(len(pods)), key=lambda i: deletion_order_key(pods[i], ranks[i]))
    return [pods[i] for i in order[:count]]
