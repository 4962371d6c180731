"""OwnedPodEvents: the pod event handlers the ReplicaSet, DaemonSet and StatefulSet
controllers share (kube-controller-manager's addPod/updatePod/deletePod)."""

from __future__ import annotations

import copy
from typing import Any

from skiff.api.pods import is_ready
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.client.workqueue import WorkQueue
from skiff.controller.expectations import Expectations
from skiff.controller.owners import OwnedPodEvents, resolve_controller_ref

NS = "ns"


class Owners:
    """A tiny stand-in for an owner informer: owners by key."""

    def __init__(self, owners: list[Obj]) -> None:
        self.by_key = {key_of(o): o for o in owners}

    def get(self, key: str) -> Obj | None:
        return self.by_key.get(key)


class FakeController(OwnedPodEvents):
    """What a controller gives the mixin: a work queue, expectations, owner lookups."""

    def __init__(self, *owners: Obj, shared_expectations: bool = False) -> None:
        self.queue: WorkQueue[str] = WorkQueue("test")
        self.creations = Expectations()
        self.deletions = self.creations if shared_expectations else Expectations()
        self.owners = Owners(list(owners))
        self.later: list[tuple[str, float]] = []

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.later.append((key_of(obj), delay))

    def _owner_of(self, obj: Obj, ref: Obj | None) -> Obj | None:
        if ref is None:
            return None
        ns = obj["metadata"].get("namespace")
        owners: Any = self.owners  # resolve_controller_ref only calls get(key)
        return resolve_controller_ref(owners, ns, ref, "ReplicaSet", "apps")

    def _sets_for_orphan(self, pod: Obj) -> list[Obj]:
        labels = pod["metadata"].get("labels") or {}
        return [
            o
            for o in self.owners.by_key.values()
            if o["metadata"]["namespace"] == pod["metadata"].get("namespace")
            and all(labels.get(k) == v for k, v in o["spec"]["selector"].items())
        ]

    async def queued(self) -> set[str]:
        """Drain the queue: the keys that were added."""
        keys = set()
        while len(self.queue):
            key = await self.queue.get()
            self.queue.done(key)
            keys.add(key)
        return keys


def owner(name: str, selector: dict[str, str], **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {"selector": selector, **spec},
    }


def ref_to(o: Obj) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "name": o["metadata"]["name"],
        "uid": o["metadata"]["uid"],
        "controller": True,
    }


def pod(name: str, labels: dict[str, str], by: Obj | None = None, rv: str = "1") -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": NS,
        "uid": f"uid-{name}",
        "labels": labels,
        "resourceVersion": rv,
    }
    if by is not None:
        meta["ownerReferences"] = [ref_to(by)]
    return {"metadata": meta, "status": {"phase": "Pending"}}


def changed(p: Obj, **meta: Any) -> Obj:
    """A newer version of ``p`` (resourceVersion bumped) with ``meta`` set."""
    new = copy.deepcopy(p)
    new["metadata"].update(meta, resourceVersion=str(int(p["metadata"]["resourceVersion"]) + 1))
    return new


def ready(p: Obj, status: str = "True") -> Obj:
    new = changed(p)
    new["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": status}]}
    return new


A, B = owner("a", {"app": "web"}), owner("b", {"app": "web"})
C = owner("c", {"app": "db"})
KA, KB, KC = f"{NS}/a", f"{NS}/b", f"{NS}/c"
TERMINATING = "2025-01-01T00:00:00Z"


async def test_added_owned_pod_is_a_creation_of_its_owner() -> None:
    c = FakeController(A, B)
    c.creations.expect_creations(KA, 1)
    c._pod_added(pod("p", {"app": "web"}, by=A))
    assert c.creations.satisfied(KA)
    assert await c.queued() == {KA}  # the owner only, not every matching set


async def test_added_orphan_enqueues_matching_owners_without_a_creation() -> None:
    c = FakeController(A, B, C)
    c.creations.expect_creations(KA, 1)
    c._pod_added(pod("p", {"app": "web"}))
    assert c.creations.pending(KA) == (1, 0)  # nobody waits for an orphan
    assert await c.queued() == {KA, KB}


async def test_added_terminating_pod_is_a_deletion_not_a_creation() -> None:
    c = FakeController(A)
    c.creations.expect_creations(KA, 1)
    c.deletions.expect_deletions(KA, [f"{NS}/p"])
    p = pod("p", {"app": "web"}, by=A)
    p["metadata"]["deletionTimestamp"] = TERMINATING
    c._pod_added(p)  # a relist after a restart
    assert c.creations.pending(KA) == (1, 0)
    assert c.deletions.satisfied(KA)
    assert await c.queued() == {KA}


async def test_resync_with_the_same_resource_version_does_nothing() -> None:
    c = FakeController(A)
    p = pod("p", {"app": "web"}, by=A)
    c._pod_updated(p, copy.deepcopy(p))
    same_version = ready(p)
    same_version["metadata"] = p["metadata"]  # a relist may replay an old version
    c._pod_updated(p, same_version)
    assert await c.queued() == set() and c.later == []


async def test_graceful_deletion_is_observed_at_once_and_stops_there() -> None:
    c = FakeController(A, B, C)
    c.deletions.expect_deletions(KA, [f"{NS}/p"])
    old = pod("p", {"app": "web"}, by=A)
    new = changed(old, deletionTimestamp=TERMINATING)
    c._pod_updated(old, new)
    assert c.deletions.satisfied(KA)
    assert await c.queued() == {KA}
    # Terminating and once more updated: the pod key counts once.
    c._pod_updated(new, changed(new))
    c._pod_deleted(changed(new))
    assert c.deletions.pending(KA) == (0, 0)
    assert await c.queued() == {KA}
    # A terminating orphan is never offered for adoption, even if its labels changed.
    orphan = pod("o", {"app": "web"})
    c._pod_updated(orphan, changed(orphan, labels={"app": "db"}, deletionTimestamp=TERMINATING))
    assert await c.queued() == set()


async def test_graceful_deletion_with_new_labels_tells_the_old_controller_too() -> None:
    c = FakeController(A, B)
    c.deletions.expect_deletions(KA, [f"{NS}/p"])
    c.deletions.expect_deletions(KB, [f"{NS}/p"])
    old = pod("p", {"app": "web"}, by=A)
    new = changed(old, labels={"app": "other"}, deletionTimestamp=TERMINATING)
    new["metadata"]["ownerReferences"] = [ref_to(B)]
    c._pod_updated(old, new)
    assert c.deletions.satisfied(KA) and c.deletions.satisfied(KB)
    assert await c.queued() == {KA, KB}
    # Same labels: only the current controller hears of it (as Kubernetes).
    c2 = FakeController(A, B)
    c2._pod_updated(old, changed(new, labels={"app": "web"}))
    assert await c2.queued() == {KB}


async def test_controller_ref_change_enqueues_the_old_and_the_new_owner() -> None:
    c = FakeController(A, B, C)
    old = pod("p", {"app": "web"}, by=A)
    new = changed(old)
    new["metadata"]["ownerReferences"] = [ref_to(B)]
    c._pod_updated(old, new)
    assert await c.queued() == {KA, KB}
    # Released (no controller any more): the old owner and every set that may adopt it.
    released = changed(old, ownerReferences=[])
    c._pod_updated(old, released)
    assert await c.queued() == {KA, KB}
    # Adopted: the old state was an orphan, only the new owner is woken.
    c._pod_updated(released, changed(released, ownerReferences=[ref_to(C)]))
    assert await c.queued() == {KC}


async def test_owned_pod_update_enqueues_its_owner_only() -> None:
    c = FakeController(A, B, C)
    old = pod("p", {"app": "web"}, by=A)
    c._pod_updated(old, changed(old, labels={"app": "db"}))  # released by A's sync
    assert await c.queued() == {KA}
    unknown = pod("q", {"app": "web"}, by=owner("gone", {"app": "web"}))
    c._pod_updated(unknown, changed(unknown))
    assert await c.queued() == set()


async def test_orphan_update_enqueues_matching_owners_only_when_labels_changed() -> None:
    c = FakeController(A, B, C)
    old = pod("o", {"app": "web"})
    c._pod_updated(old, ready(old))  # a status change: nothing to adopt anew
    assert await c.queued() == set()
    c._pod_updated(old, changed(old, labels={"app": "db"}))
    assert await c.queued() == {KC}
    c._pod_updated(pod("o", {}), changed(pod("o", {}), labels=None))  # {} and None alike
    assert await c.queued() == set()


async def test_pod_turning_ready_requeues_its_owner_after_min_ready_seconds() -> None:
    slow = owner("slow", {"app": "web"}, minReadySeconds=10)
    c = FakeController(slow, A)
    p = pod("p", {"app": "web"}, by=slow)
    r = ready(p)
    c._pod_updated(p, r)
    assert c.later == [(f"{NS}/slow", 11.0)]
    assert await c.queued() == {f"{NS}/slow"}  # and now, for readyReplicas
    c.later.clear()
    c._pod_updated(r, ready(r))  # ready before: no new availability to wait for
    c._pod_updated(r, ready(r, "False"))  # no longer ready
    c._pod_updated(pod("q", {}, by=A), ready(pod("q", {}, by=A)))  # minReadySeconds 0
    assert c.later == []
    assert is_ready(r) and not is_ready(p) and not is_ready(ready(p, "False"))


async def test_deleted_pod_is_observed_by_its_owner_and_orphans_by_nobody() -> None:
    c = FakeController(A, B)
    c.deletions.expect_deletions(KA, [f"{NS}/p", f"{NS}/q"])
    c._pod_deleted(pod("p", {"app": "web"}, by=A))
    assert c.deletions.pending(KA) == (0, 1)
    assert await c.queued() == {KA}
    c._pod_deleted(pod("o", {"app": "web"}))  # no controller cares about orphans
    assert await c.queued() == set()


async def test_one_expectations_may_serve_creations_and_deletions() -> None:
    # The ReplicaSet's: a sync either creates or deletes.
    c = FakeController(A, shared_expectations=True)
    c.creations.expect_creations(KA, 1)
    c._pod_added(pod("p", {"app": "web"}, by=A))
    assert c.deletions.satisfied(KA)
    c.deletions.expect_deletions(KA, [f"{NS}/p"])
    c._pod_deleted(pod("p", {"app": "web"}, by=A))
    assert c.creations.satisfied(KA)
    # The DaemonSet's and StatefulSet's: two, each fed by its own events.
    c2 = FakeController(A)
    c2.creations.expect_creations(KA, 1)
    c2.deletions.expect_deletions(KA, [f"{NS}/p"])
    c2._pod_added(pod("q", {"app": "web"}, by=A))
    assert c2.creations.satisfied(KA) and not c2.deletions.satisfied(KA)
