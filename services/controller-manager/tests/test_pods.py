"""Pod helpers: activity, availability, the deletion order."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from skiff.controllers.pods import (
    available_at,
    deletion_order_key,
    is_active,
    is_available,
    pods_to_delete,
)


def ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Pending",
    ready: bool = False,
    ready_at: float = 0,
    created: float = 0,
    restarts: int = 0,
    cost: int | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": ts(created)}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    if deleting:
        meta["deletionTimestamp"] = ts(created + 1)
    status: dict[str, Any] = {"phase": phase}
    if ready:
        status["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": ts(ready_at)}
        ]
    status["containerStatuses"] = [{"name": "c", "restartCount": restarts}]
    spec = {"nodeName": node} if node else {}
    return {"metadata": meta, "spec": spec, "status": status}


def test_active() -> None:
    assert is_active(pod("a"))
    assert is_active(pod("a", phase="Running"))
    assert not is_active(pod("a", phase="Succeeded"))
    assert not is_active(pod("a", phase="Failed"))
    assert not is_active(pod("a", phase="Running", deleting=True))


def test_availability_honours_min_ready_seconds() -> None:
    p = pod("a", node="n", phase="Running", ready=True, ready_at=100)
    assert is_available(p, 0, 100)
    assert available_at(p, 10) == 110
    assert not is_available(p, 10, 109.9)
    assert is_available(p, 10, 110)
    assert available_at(pod("b", phase="Running"), 10) is None  # not ready


def test_deletion_order() -> None:
    ready_old = pod("ready-old", node="n1", phase="Running", ready=True, ready_at=10, created=1)
    ready_new = pod("ready-new", node="n2", phase="Running", ready=True, ready_at=10, created=5)
    ready_recent = pod("ready-recent", node="n3", phase="Running", ready=True, ready_at=50)
    not_ready = pod("not-ready", node="n4", phase="Running", created=9)
    pending = pod("pending", node="n5", phase="Pending", created=9)
    unscheduled = pod("unscheduled", created=0)
    pods = [ready_old, ready_new, not_ready, ready_recent, unscheduled, pending]
    order = [p["metadata"]["name"] for p in pods_to_delete(pods, len(pods))]
    # Unscheduled < pending < not ready < ready; among ready, ready for less time, then newer.
    assert order == [
        "unscheduled",
        "pending",
        "not-ready",
        "ready-recent",
        "ready-new",
        "ready-old",
    ]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, 2)] == ["unscheduled", "pending"]
    assert pods_to_delete(pods, 0) == []


def test_deletion_order_cost_node_rank_and_restarts() -> None:
    a = pod("a", node="n1", phase="Running", ready=True, ready_at=10, created=1, cost=10)
    b = pod("b", node="n1", phase="Running", ready=True, ready_at=10, created=1)
    c = pod("c", node="n2", phase="Running", ready=True, ready_at=10, created=1)
    d = pod("d", node="n3", phase="Running", ready=True, ready_at=10, created=1, restarts=4)
    # b shares n1 with a: it goes before c and d; a costs more to delete than anyone.
    order = [p["metadata"]["name"] for p in pods_to_delete([a, b, c, d], 4)]
    assert order == ["b", "d", "c", "a"]
    assert deletion_order_key(b, rank=2) < deletion_order_key(b, rank=1)
