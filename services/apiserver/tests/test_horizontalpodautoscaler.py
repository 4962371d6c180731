"""HorizontalPodAutoscalers: kube's validation in its words, v2's defaults, the strategy's
status rules, and ``kubectl get``'s TARGETS column."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.printers import table_for
from skiff.apiserver.printers.autoscaling import format_metrics
from skiff.apiserver.registry.autoscaling.horizontalpodautoscaler import validate_spec
from skiff.apiserver.store import WriteOptions as Opts

V1 = REGISTRY.by_path("autoscaling", "v1", "horizontalpodautoscalers")
V2 = REGISTRY.by_path("autoscaling", "v2", "horizontalpodautoscalers")
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}


def resource(name: str, **target: Any) -> dict[str, Any]:
    return {"type": "Resource", "resource": {"name": name, "target": target}}


def spec(**kw: Any) -> dict[str, Any]:
    return {
        "scaleTargetRef": REF,
        "minReplicas": 1,
        "maxReplicas": 5,
        "metrics": [resource("cpu", type="Utilization", averageUtilization=50)],
        **kw,
    }


def causes(s: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in validate_spec(s)]


def test_a_valid_spec_passes() -> None:
    assert causes(spec()) == []


@pytest.mark.parametrize(
    ("kw", "want"),
    [
        (
            {"maxReplicas": 0},
            [
                ("spec.maxReplicas", "Invalid value: 0: must be greater than 0"),
                (
                    "spec.maxReplicas",
                    "Invalid value: 0: must be greater than or equal to `minReplicas`",
                ),
            ],
        ),
        (
            {"minReplicas": 0},
            [
                ("spec.minReplicas", "Invalid value: 0: must be greater than or equal to 1"),
                (
                    "spec.metrics",
                    "Forbidden: must specify at least one Object or External metric "
                    "to support scaling to zero replicas",
                ),
            ],
        ),
        (
            {"scaleTargetRef": {"kind": "a/b"}},
            [
                ("spec.scaleTargetRef.kind", "Invalid value: \"a/b\": may not contain '/'"),
                ("spec.scaleTargetRef.name", "Required value"),
            ],
        ),
        (
            {"metrics": [resource("cpu", type="Utilization", averageUtilization=0)]},
            [
                (
                    "spec.metrics[0].resource.target.averageUtilization",
                    "Invalid value: 0: must be greater than 0",
                ),
            ],
        ),
        (
            {"metrics": [resource("cpu", type="Utilization")]},
            [
                (
                    "spec.metrics[0].resource.target.averageUtilization",
                    "Required value: must set either a target raw value or a target utilization",
                ),
            ],
        ),
        (
            {
                "metrics": [
                    resource("memory", type="Bogus", averageValue="-1Mi", averageUtilization=5)
                ]
            },
            [
                (
                    "spec.metrics[0].resource.target.type",
                    'Invalid value: "Bogus": must be either Utilization, Value, or AverageValue',
                ),
                (
                    "spec.metrics[0].resource.target.averageValue",
                    'Invalid value: "-1Mi": must be positive',
                ),
                (
                    "spec.metrics[0].resource.target.averageValue",
                    "Forbidden: may not set both a target raw value and a target utilization",
                ),
            ],
        ),
        # kube reports an unknown type twice (the set check and the switch's default).
        (
            {"metrics": [{"type": ""}]},
            [
                ("spec.metrics[0].type", "Required value: must specify a metric source type"),
                (
                    "spec.metrics[0].type",
                    'Unsupported value: "": supported values: '
                    '"ContainerResource", "External", "Object", "Pods", '
                    '"Resource"',
                ),
                (
                    "spec.metrics[0].type",
                    'Unsupported value: "": supported values: '
                    '"ContainerResource", "External", "Object", "Pods", '
                    '"Resource"',
                ),
            ],
        ),
        (
            {
                "metrics": [
                    {
                        "type": "Pods",
                        "pods": {
                            "metric": {"name": "qps"},
                            "target": {"type": "AverageValue", "averageValue": "1"},
                        },
                        "resource": {"name": "cpu"},
                    }
                ]
            },
            [
                (
                    "spec.metrics[0].resource",
                    "Forbidden: must populate the given metric source only",
                ),
            ],
        ),
        (
            {
                "metrics": [
                    {
                        "type": "External",
                        "external": {
                            "metric": {"name": ""},
                            "target": {"type": "Value", "value": "1", "averageValue": "2"},
                        },
                    }
                ]
            },
            [
                (
                    "spec.metrics[0].external.metric.name",
                    "Required value: must specify a metric name",
                ),
                (
                    "spec.metrics[0].external.target.value",
                    "Forbidden: may not set both a target value for metric and a per-pod target",
                ),
            ],
        ),
        (
            {
                "metrics": [
                    {
                        "type": "ContainerResource",
                        "containerResource": {
                            "name": "gpu",
                            "container": "App",
                            "target": {"type": "AverageValue", "averageValue": "1"},
                        },
                    }
                ]
            },
            [
                (
                    "spec.metrics[0].containerResource.name",
                    'Invalid value: "gpu": must be a standard resource type or fully qualified',
                ),
                (
                    "spec.metrics[0].containerResource.name",
                    'Invalid value: "gpu": must be a standard resource for containers',
                ),
                (
                    "spec.metrics[0].containerResource.container",
                    'Invalid value: "App": a lowercase RFC 1123 label must consist of lower case '
                    "alphanumeric characters or '-', and must start and end with an alphanumeric "
                    "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                ),
            ],
        ),
        (
            {
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindowSeconds": 3601,
                        "selectPolicy": "All",
                        "policies": [{"type": "Nodes", "value": 0, "periodSeconds": 1801}],
                    },
                    "scaleDown": {"policies": []},
                }
            },
            [
                (
                    "spec.behavior.scaleUp.stabilizationWindowSeconds",
                    "Invalid value: 3601: must be less than or equal to 3600",
                ),
                (
                    "spec.behavior.scaleUp.selectPolicy",
                    'Unsupported value: "All": supported values: "Disabled", "Max", "Min"',
                ),
                (
                    "spec.behavior.scaleUp.policies[0].type",
                    'Unsupported value: "Nodes": supported values: "Percent", "Pods"',
                ),
                (
                    "spec.behavior.scaleUp.policies[0].value",
                    "Invalid value: 0: must be greater than zero",
                ),
                (
                    "spec.behavior.scaleUp.policies[0].periodSeconds",
                    "Invalid value: 1801: must be less than or equal to 1800",
                ),
                (
                    "spec.behavior.scaleDown.policies",
                    "Required value: must specify at least one Policy",
                ),
            ],
        ),
    ],
)
def test_bad_specs_get_kubernetes_messages(kw: dict[str, Any], want: list[tuple[str, str]]) -> None:
    assert causes(spec(**kw)) == want


NOW = datetime(2026, 12, 7, tzinfo=UTC)


def test_targets_show_each_metric_as_current_over_target() -> None:
    specs = [
        resource("cpu", type="Utilization", averageUtilization=80),
        resource("memory", type="AverageValue", averageValue="1024Mi"),
        {
            "type": "External",
            "external": {
                "metric": {"name": "q"},
                "target": {"type": "AverageValue", "averageValue": "30"},
            },
        },
    ]
    assert format_metrics(specs, []) == ("cpu: <unknown>/80%, memory: <unknown>/1Gi + 1 more...")
    statuses = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageUtilization": 12, "averageValue": "120m"},
            },
        }
    ]
    assert format_metrics(specs[:1], statuses) == "cpu: 12%/80%"
    assert format_metrics(specs[2:], [{}, {}]) == "<unknown>/30 (avg)"
    assert format_metrics([], []) == "<none>"


def test_the_printer_reads_either_version() -> None:
    meta = {"name": "web", "creationTimestamp": "2026-12-06T23:00:00Z"}
    obj = {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {"scaleTargetRef": REF, "maxReplicas": 4, "targetCPUUtilizationPercentage": 60},
        "status": {"currentReplicas": 2, "desiredReplicas": 2},
    }
    table = table_for(V1, [obj], now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"]
    assert table["rows"][0]["cells"] == [
        "web",
        "Deployment/web",
        "cpu: <unknown>/60%",
        "<unset>",
        4,
        2,
        "60m",
    ]


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


def hpa(version: str, s: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"autoscaling/{version}",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": s,
        **extra,
    }


async def test_a_create_gets_v2_defaults_and_an_empty_status(env: MemoryStore) -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 30}}
    body = hpa(
        "v2",
        {"scaleTargetRef": REF, "maxReplicas": 3, "behavior": behavior},
        status={"currentReplicas": 9},
    )
    created = await env.store.create(V2, "default", body, Opts())
    s = created["spec"]
    assert s["minReplicas"] == 1
    assert s["metrics"] == [resource("cpu", type="Utilization", averageUtilization=80)]
    assert s["behavior"]["scaleUp"] == {
        "stabilizationWindowSeconds": 0,
        "selectPolicy": "Max",
        "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15},
        ],
    }
    assert s["behavior"]["scaleDown"] == {
        "stabilizationWindowSeconds": 30,
        "selectPolicy": "Max",
        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
    }
    assert created["status"] == {"desiredReplicas": 0}


async def test_v1_errors_name_the_v2_fields_as_kube_does(env: MemoryStore) -> None:
    body = hpa("v1", {"scaleTargetRef": REF, "maxReplicas": 3, "targetCPUUtilizationPercentage": 0})
    with pytest.raises(ApiError) as e:
        await env.store.create(V1, "default", body, Opts())
    assert e.value.code == 422
    assert e.value.message == (
        'HorizontalPodAutoscaler.autoscaling "web" is invalid: '
        "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be "
        "greater than 0"
    )


async def test_status_is_written_only_through_status(env: MemoryStore) -> None:
    await env.store.create(
        V2, "default", hpa("v2", {"scaleTargetRef": REF, "maxReplicas": 3}), Opts()
    )
    obj = await env.store.get(V2, "default", "web")
    obj["status"] = {"currentReplicas": 3, "desiredReplicas": 3}
    obj["spec"]["maxReplicas"] = 4
    kept = await env.store.update(V2, "default", "web", obj, Opts())
    assert kept["status"] == {"desiredReplicas": 0} and kept["spec"]["maxReplicas"] == 4
    obj = await env.store.get(V2, "default", "web")
    obj["status"] = {"currentReplicas": 3, "desiredReplicas": -1}
    with pytest.raises(ApiError) as e:
        await env.store.update(V2, "default", "web", obj, Opts(), subresource="status")
    assert "status.desiredReplicas: Invalid value: -1: must be greater than or equal to 0" in (
        e.value.message
    )
