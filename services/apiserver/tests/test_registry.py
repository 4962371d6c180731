"""The registry: which strategy each resource gets, its subresources, and the generic
delete rules (garbage-collection finalizers, graceful deletion)."""

from __future__ import annotations

import pytest

from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver.registry import STRATEGIES, Strategy, strategy_for
from skiff.apiserver.registry.generic import before_delete, gc_finalizers
from skiff.apiserver.registry.options import DeleteOptions

NOW = "2024-01-01T00:00:00Z"


def info(group: str, version: str, plural: str) -> ResourceInfo:
    found = REGISTRY.by_path(group, version, plural)
    assert found is not None
    return found


def test_every_registered_strategy_names_a_served_resource() -> None:
    served = {(r.group, r.plural) for r in REGISTRY.resources}
    assert set(STRATEGIES) <= served


def test_resources_without_rules_get_the_default_strategy() -> None:
    review = strategy_for(info("authentication.k8s.io", "v1", "tokenreviews"))
    assert type(review) is Strategy and review.subresources == {}
    assert strategy_for(info("authentication.k8s.io", "v1", "tokenreviews")) is review


@pytest.mark.parametrize(
    ("group", "plural", "subresources"),
    [
        ("", "pods", {"status", "binding", "eviction", "ephemeralcontainers"}),
        ("", "namespaces", {"status", "finalize"}),
        ("apps", "deployments", {"status", "scale"}),
        ("", "replicationcontrollers", {"status", "scale"}),
        ("apps", "daemonsets", {"status"}),
        ("batch", "jobs", {"status"}),
        ("", "configmaps", set()),
    ],
)
def test_subresources_served_by_the_registry(group: str, plural: str, subresources: set) -> None:
    r = info(group, "v1", plural)
    handlers = strategy_for(r).subresources
    assert set(handlers) == subresources
    assert set(handlers) <= set(r.subresources)


@pytest.mark.parametrize(
    ("resource", "before", "policy", "after"),
    [
        (("apps", "v1", "replicasets"), [], None, []),
        (("apps", "v1", "replicasets"), [], "Orphan", ["orphan"]),
        (("apps", "v1", "replicasets"), ["x"], "Foreground", ["x", "foregroundDeletion"]),
        # An explicit policy replaces the other one; Background removes both.
        (("apps", "v1", "replicasets"), ["orphan"], "Foreground", ["foregroundDeletion"]),
        (("apps", "v1", "replicasets"), ["foregroundDeletion"], "Orphan", ["orphan"]),
        (("apps", "v1", "replicasets"), ["orphan", "x"], "Background", ["x"]),
        # No policy: what is there stays; else the kind's default.
        (("apps", "v1", "replicasets"), ["orphan"], None, ["orphan"]),
        (("", "v1", "replicationcontrollers"), [], None, ["orphan"]),
        (("batch", "v1", "jobs"), [], None, ["orphan"]),
        (("batch", "v1", "jobs"), [], "Background", []),
    ],
)
def test_gc_finalizers(
    resource: tuple[str, str, str], before: list[str], policy: str | None, after: list[str]
) -> None:
    assert gc_finalizers(strategy_for(info(*resource)), before, policy) == after


def _pod(node: str = "", phase: str = "Running", grace: int | None = None) -> dict:
    spec: dict = {"nodeName": node} if node else {}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"name": "p"}, "spec": spec, "status": {"phase": phase}}


@pytest.mark.parametrize(
    ("pod", "opts", "graceful", "grace"),
    [
        (_pod("n1"), DeleteOptions(), True, 30),
        (_pod("n1", grace=10), DeleteOptions(), True, 10),
        (_pod("n1", grace=0), DeleteOptions(), False, None),  # 0 is none, not unset
        (_pod("n1"), DeleteOptions(grace_period_seconds=3), True, 3),
        (_pod("n1"), DeleteOptions(grace_period_seconds=0), False, None),
        (_pod(), DeleteOptions(), False, None),  # no kubelet runs it
        (_pod("n1", phase="Succeeded"), DeleteOptions(), False, None),
    ],
)
def test_pod_graceful_deletion(
    pod: dict, opts: DeleteOptions, graceful: bool, grace: int | None
) -> None:
    assert before_delete(strategy_for(info("", "v1", "pods")), pod, opts, NOW) is graceful
    assert pod["metadata"].get("deletionGracePeriodSeconds") == grace
    assert bool(pod["metadata"].get("deletionTimestamp")) is graceful


def test_namespace_deletion_marks_it_terminating() -> None:
    ns = {"metadata": {"name": "n"}, "spec": {"finalizers": ["kubernetes"]}}
    strategy = strategy_for(info("", "v1", "namespaces"))
    assert before_delete(strategy, ns, DeleteOptions(), NOW)
    assert ns["status"]["phase"] == "Terminating"
    assert ns["metadata"]["deletionTimestamp"] == NOW
    assert strategy.pending_graceful(ns)
