"""Quota evaluation shared by admission and the quota controller, and kube's canonical
quantity form."""

from __future__ import annotations

from decimal import Decimal

import pytest

from skiff.api.defaults import apply_defaults
from skiff.api.quantity import format_quantity, parse_quantity
from skiff.api.resourcequota import (
    is_integer,
    matches,
    missing_requests,
    pod_resources,
    pretty,
    resource_of,
    to_list,
    usage,
)
from skiff.api.resources import REGISTRY


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("1000m", "1"), ("1024Mi", "1Gi"), ("1.5Gi", "1536Mi"), ("1G", "1G"), ("0.5", "500m"),
     ("1000", "1k"), ("2048", "2048"), ("0", "0"), ("-2", "-2"), ("1e-10", "1n")],
)  # fmt: skip
def test_canonical_quantities(raw: str, shown: str) -> None:
    value = parse_quantity(raw)
    assert value is not None
    assert format_quantity(value, raw.endswith("i")) == shown


def container(name: str, requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return {"name": name, "image": "busybox", "resources": resources}


def test_pod_usage_sums_containers_and_takes_the_largest_init() -> None:
    pod = {
        "spec": {
            "initContainers": [container("init", {"cpu": "2"})],
            "containers": [
                container("a", {"cpu": "500m", "memory": "1Gi"}, {"memory": "1Gi"}),
                container("b", {"cpu": "250m", "nvidia.com/gpu": "1"}),
            ],
        }
    }
    assert pod_resources(pod["spec"], "requests")["cpu"] == Decimal(2)
    used = usage("", "pods", pod)
    assert to_list(used) == {
        "count/pods": "1", "cpu": "2", "limits.memory": "1Gi", "memory": "1Gi", "pods": "1",
        "requests.cpu": "2", "requests.memory": "1Gi", "requests.nvidia.com/gpu": "1",
    }  # fmt: skip
    assert usage("", "pods", {**pod, "status": {"phase": "Succeeded"}}) == {}


def test_services_claims_and_counts() -> None:
    svc = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert pretty(usage("", "services", svc)) == (
        "count/services=1,services=1,services.loadbalancers=1,services.nodeports=2"
    )
    pvc = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}
    assert (
        to_list(usage("", "persistentvolumeclaims", pvc))[
            "fast.storageclass.storage.k8s.io/requests.storage"
        ]
        == "5Gi"
    )
    assert usage("apps", "deployments", {}) == {"count/deployments.apps": 1}
    assert resource_of("count/deployments.apps") == ("apps", "deployments")
    assert resource_of("limits.cpu") == resource_of("memory") == ("", "pods")
    assert resource_of("services.nodeports") == ("", "services")
    assert resource_of("gold.storageclass.storage.k8s.io/requests.storage") == (
        "",
        "persistentvolumeclaims",
    )
    assert is_integer("pods") and is_integer("count/jobs.batch") and not is_integer("cpu")


def test_scopes() -> None:
    best_effort = {"spec": {"containers": [container("a")]}}
    bounded = {"spec": {"activeDeadlineSeconds": 30, "priorityClassName": "high",
                        "containers": [container("a", {"cpu": "1"})]}}  # fmt: skip
    q = {"spec": {"scopes": ["BestEffort"]}}
    assert matches(q, "", "pods", best_effort) and not matches(q, "", "pods", bounded)
    assert not matches(q, "", "services", {})
    q = {"spec": {"scopes": ["Terminating", "NotBestEffort"]}}
    assert matches(q, "", "pods", bounded) and not matches(q, "", "pods", best_effort)
    q = {"spec": {"scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}  # fmt: skip
    assert matches(q, "", "pods", bounded) and not matches(q, "", "pods", best_effort)
    assert matches({"spec": {}}, "", "secrets", {})


def test_missing_requests_in_kubes_words() -> None:
    pod = {"spec": {"containers": [container("a", {"cpu": "1"}), container("b")]}}
    assert missing_requests(["pods"], pod) == ""
    assert missing_requests(["cpu"], pod) == "must specify requests.cpu for: b"
    assert missing_requests(["limits.cpu", "requests.memory"], pod) == (
        "[must specify limits.cpu for: a,b, must specify requests.memory for: a,b]"
    )


def test_limit_range_defaults() -> None:
    lr = {"spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    ]}}  # fmt: skip
    apply_defaults(REGISTRY.core("limitranges"), lr)
    item = lr["spec"]["limits"][0]
    assert item["default"] == {"cpu": "2"}
    assert item["defaultRequest"] == {"cpu": "2", "memory": "64Mi"}
    assert lr["spec"]["limits"][1] == {"type": "Pod", "max": {"cpu": "4"}}
