"""Version conversion: HorizontalPodAutoscalers between autoscaling/v1 and v2 (kube's
round-trip annotations), and the store serving one resource in two versions (reads,
lists, watches, writes, patches and status in the request's version; etcd holds v2)."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from memstore import MemoryStore, running

from skiff.api.resources import REGISTRY
from skiff.apiserver.conversion import autoscaling, convert
from skiff.apiserver.storage.codec import decode
from skiff.apiserver.store import PATCH_MERGE, DeleteOptions, ListOptions
from skiff.apiserver.store import WriteOptions as Opts
from skiff.apiserver.watchcache import Event

V1 = REGISTRY.by_path("autoscaling", "v1", "horizontalpodautoscalers")
V2 = REGISTRY.by_path("autoscaling", "v2", "horizontalpodautoscalers")
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
CPU_50 = {
    "type": "Resource",
    "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}},
}
PODS = {
    "type": "Pods",
    "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}},
}


def v1(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", **meta},
        "spec": {"scaleTargetRef": REF, "maxReplicas": 5, **spec},
    }


def v2(spec: dict[str, Any], status: dict[str, Any] | None = None, **meta: Any) -> dict[str, Any]:
    out = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", **meta},
        "spec": {"scaleTargetRef": REF, "maxReplicas": 5, **spec},
    }
    if status is not None:
        out["status"] = status
    return out


def test_the_storage_version_is_v2() -> None:
    assert REGISTRY.storage_for(V1) is V2
    assert REGISTRY.storage_for(V2) is V2
    assert REGISTRY.by_key("/registry/autoscaling/horizontalpodautoscalers/default/web") is V2


def test_a_v1_cpu_target_is_one_utilization_metric() -> None:
    out = convert(v1({"minReplicas": 2, "targetCPUUtilizationPercentage": 50}), V2)
    assert out["apiVersion"] == "autoscaling/v2"
    assert out["spec"] == {
        "scaleTargetRef": REF,
        "minReplicas": 2,
        "maxReplicas": 5,
        "metrics": [CPU_50],
    }
    assert out["status"] == {"desiredReplicas": 0}


def test_a_v1_object_without_a_target_gets_kubes_implicit_80_percent() -> None:
    out = convert(v1({}), V2)
    assert out["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]


def test_v2_metrics_v1_cannot_hold_travel_in_annotations_and_come_back() -> None:
    behavior = {
        "scaleDown": {
            "stabilizationWindowSeconds": 60,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": 30}],
        }
    }
    conditions = [
        {
            "type": "AbleToScale",
            "status": "True",
            "reason": "ReadyForNewScale",
            "lastTransitionTime": "2026-12-07T00:00:00Z",
            "message": "ok",
        }
    ]
    current = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "current": {"averageValue": "250m", "averageUtilization": 25},
            },
        }
    ]
    obj = v2(
        {"minReplicas": 1, "metrics": [PODS, CPU_50], "behavior": behavior},
        {
            "currentReplicas": 2,
            "desiredReplicas": 3,
            "currentMetrics": current,
            "conditions": conditions,
        },
        annotations={"keep": "me"},
    )
    old = copy.deepcopy(obj)
    got = convert(obj, V1)
    assert obj == old  # the input is not changed
    assert got["spec"] == {
        "scaleTargetRef": REF,
        "minReplicas": 1,
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 50,
    }
    assert got["status"] == {
        "currentReplicas": 2,
        "desiredReplicas": 3,
        "currentCPUUtilizationPercentage": 25,
    }
    notes = got["metadata"]["annotations"]
    assert notes["keep"] == "me"
    # v1's own (v2beta1-shaped) metric types, as Go's encoder writes them.
    assert notes[autoscaling.METRICS] == (
        '[{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"1k"}}]'
    )
    assert json.loads(notes[autoscaling.CURRENT_METRICS]) == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "currentAverageUtilization": 25,
                "currentAverageValue": "250m",
            },
        }
    ]
    # The internal type's encoding: Go's field names, nil as null.
    assert notes[autoscaling.BEHAVIOR] == (
        '{"ScaleUp":null,"ScaleDown":{"StabilizationWindowSeconds":60,"SelectPolicy":"Min",'
        '"Policies":[{"Type":"Pods","Value":1,"PeriodSeconds":30}]}}'
    )
    assert json.loads(notes[autoscaling.CONDITIONS]) == conditions
    back = convert(got, V2)
    # The other metrics first, then the CPU target, as kube puts them back together.
    assert back["spec"]["metrics"] == [PODS, CPU_50]
    assert back["spec"]["behavior"] == behavior
    assert back["status"]["currentMetrics"] == current
    assert back["status"]["conditions"] == conditions
    assert back["metadata"]["annotations"] == {"keep": "me"}


def test_every_metric_source_survives_a_trip_through_v1() -> None:
    metrics = [
        {
            "type": "Object",
            "object": {
                "describedObject": {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "Ingress",
                    "name": "main",
                },
                "target": {"type": "Value", "value": "10k"},
                "metric": {"name": "requests", "selector": {"matchLabels": {"a": "b"}}},
            },
        },
        {
            "type": "External",
            "external": {
                "metric": {"name": "queue"},
                "target": {"type": "AverageValue", "averageValue": "30"},
            },
        },
        {
            "type": "ContainerResource",
            "containerResource": {
                "name": "memory",
                "container": "app",
                "target": {"type": "AverageValue", "averageValue": "100Mi"},
            },
        },
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "AverageValue", "averageValue": "1Gi"},
            },
        },
    ]
    obj = v2({"minReplicas": 1, "metrics": metrics})
    assert convert(convert(obj, V1), V2)["spec"]["metrics"] == metrics


def test_the_behavior_annotation_is_read_as_go_reads_it() -> None:
    # Field names match without regard to case; a malformed annotation is ignored.
    obj = v1({}, annotations={autoscaling.BEHAVIOR: '{"scaleUp":{"selectPolicy":"Disabled"}}'})
    assert convert(obj, V2)["spec"]["behavior"] == {"scaleUp": {"selectPolicy": "Disabled"}}
    for bad in ('{"ScaleUp":{"Policies":"x"}}', "not json", '{"ScaleUp":null}', "[]"):
        obj = v1({}, annotations={autoscaling.BEHAVIOR: bad, "other": "x"})
        out = convert(obj, V2)
        assert "behavior" not in out["spec"], bad
        assert out["metadata"]["annotations"] == {"other": "x"}


def test_malformed_metric_annotations_are_ignored_and_dropped() -> None:
    obj = v1(
        {"targetCPUUtilizationPercentage": 50},
        annotations={autoscaling.METRICS: "{", autoscaling.CURRENT_METRICS: '"x"'},
    )
    out = convert(obj, V2)
    assert out["spec"]["metrics"] == [CPU_50]
    assert "annotations" not in out["metadata"]


def test_round_trip_annotations_are_not_kept_on_v2_objects() -> None:
    stale = {autoscaling.METRICS: "[]", autoscaling.CONDITIONS: "[]"}
    out = convert(v2({"metrics": [CPU_50]}, annotations=stale), V1)
    assert "annotations" not in out["metadata"]


# -- the store, in both versions ------------------------------------------------------


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


async def stored(env: MemoryStore) -> dict[str, Any]:
    kv = await env.backend.get(V2.etcd_key("default", "web"))
    assert kv is not None
    return decode(kv.value, kv.mod_revision)


async def test_a_v1_create_is_stored_as_v2_and_read_in_either(env: MemoryStore) -> None:
    created = await env.store.create(
        V1, "default", v1({"targetCPUUtilizationPercentage": 70}), Opts(field_manager="kubectl")
    )
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"]["targetCPUUtilizationPercentage"] == 70
    assert created["spec"]["minReplicas"] == 1
    raw = await stored(env)
    assert raw["apiVersion"] == "autoscaling/v2"
    assert raw["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    # Field ownership is recorded in the version the client wrote.
    assert raw["metadata"]["managedFields"][0]["apiVersion"] == "autoscaling/v1"
    got = await env.store.get(V2, "default", "web")
    assert got["apiVersion"] == "autoscaling/v2"
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert (await env.store.get(V1, "default", "web"))["spec"] == created["spec"]
    await env.settle()
    for info in (V1, V2):
        listed = await env.store.list(info, "default", ListOptions())
        assert [o["apiVersion"] for o in listed.items] == [info.api_version]
        paged = await env.store.list(info, "default", ListOptions(limit=1))
        assert [o["apiVersion"] for o in paged.items] == [info.api_version]


async def test_a_v1_update_keeps_what_only_v2_holds(env: MemoryStore) -> None:
    behavior = {"scaleUp": {"selectPolicy": "Disabled"}}
    await env.store.create(
        V2, "default", v2({"metrics": [PODS, CPU_50], "behavior": behavior}), Opts()
    )
    old = await env.store.get(V1, "default", "web")
    old["spec"]["maxReplicas"] = 9
    updated = await env.store.update(V1, "default", "web", old, Opts())
    assert updated["spec"]["maxReplicas"] == 9
    now = await env.store.get(V2, "default", "web")
    assert now["spec"]["metrics"] == [PODS, CPU_50]
    assert now["spec"]["behavior"]["scaleUp"]["selectPolicy"] == "Disabled"
    assert now["spec"]["behavior"]["scaleDown"]["policies"]  # defaulted in v2
    assert "annotations" not in now["metadata"]
    # A merge patch written against v1 applies to the v1 form.
    patched = await env.store.patch(
        V1,
        "default",
        "web",
        PATCH_MERGE,
        {"spec": {"targetCPUUtilizationPercentage": 60}},
        Opts(),
    )
    assert patched["spec"]["targetCPUUtilizationPercentage"] == 60
    now = await env.store.get(V2, "default", "web")
    assert now["spec"]["metrics"][1]["resource"]["target"]["averageUtilization"] == 60


async def test_status_written_through_v1_reaches_v2(env: MemoryStore) -> None:
    await env.store.create(V2, "default", v2({}), Opts())
    obj = await env.store.get(V1, "default", "web")
    obj["status"] = {
        "currentReplicas": 2,
        "desiredReplicas": 4,
        "currentCPUUtilizationPercentage": 90,
    }
    await env.store.update(V1, "default", "web", obj, Opts(), subresource="status")
    now = await env.store.get(V2, "default", "web")
    assert now["status"]["desiredReplicas"] == 4
    assert now["status"]["currentMetrics"][0]["resource"]["current"] == {"averageUtilization": 90}


async def test_watches_see_events_in_their_own_version(env: MemoryStore) -> None:
    await env.settle()
    lines: dict[str, list[dict[str, Any]]] = {}
    watches = []
    for info in (V1, V2):
        seen = lines.setdefault(info.version, [])

        def render(e: Event, seen: list[dict[str, Any]] = seen) -> bytes:
            seen.append(e.obj)
            return e.json_line()

        w, _, _ = await env.store.watch(
            info, "default", ListOptions(), render=render, render_key=("json",)
        )
        watches.append((info, w))
    await env.store.create(V1, "default", v1({"targetCPUUtilizationPercentage": 40}), Opts())
    for _, w in watches:
        items = await asyncio.wait_for(w.next(2), 3)
        assert items
    assert lines["v1"][0]["apiVersion"] == "autoscaling/v1"
    assert lines["v1"][0]["spec"]["targetCPUUtilizationPercentage"] == 40
    assert lines["v2"][0]["apiVersion"] == "autoscaling/v2"
    assert orjson.loads(watches[0][1].group.items[0])["object"]["apiVersion"] == "autoscaling/v1"
    for info, w in watches:
        env.store.unwatch(info, w)


async def test_deletes_answer_in_the_request_version(env: MemoryStore) -> None:
    await env.store.create(V2, "default", v2({}), Opts())
    gone, now = await env.store.delete(V1, "default", "web", DeleteOptions())
    assert now and gone["apiVersion"] == "autoscaling/v1"
