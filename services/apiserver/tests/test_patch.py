"""JSON merge patch, JSON patch and strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.errors import ApiError, Reason
from skiff.api.patch import MAX_JSON_PATCH_OPERATIONS, json_patch, merge_patch
from skiff.apiserver.strategicpatch import PatchMeta, patch_meta, strategic_merge_patch

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "x"},
            "finalizers": ["a.example.com/one", "b.example.com/two"],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "busybox:1.35",
                            "args": ["sleep", "3600"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        },
                        {"name": "sidecar", "image": "nginx:1.25"},
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "tolerations": [{"key": "k1", "operator": "Exists"}],
                },
            },
        },
    }


def smp(original: dict[str, Any], patch: dict[str, Any], definition: str = DEPLOYMENT) -> dict:
    """Apply a strategic merge patch, checking that neither input is touched."""
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    result = strategic_merge_patch(original, patch, definition)
    assert original == before
    assert patch == patch_before
    return result


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def pod_spec_patch(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": spec}}}


# --- JSON merge patch ---


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        # RFC 7386 appendix A.
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ({"a": "foo"}, {"a": {"b": None}}, {"a": {}}),
    ],
)
def test_merge_patch_rfc7386(original: dict, patch: dict, expected: dict) -> None:
    before = copy.deepcopy(original), copy.deepcopy(patch)
    assert merge_patch(original, patch) == expected
    assert (original, patch) == before


def test_merge_patch_result_does_not_alias_inputs() -> None:
    original = {"metadata": {"labels": {"a": "1"}}}
    patch = {"spec": {"list": [{"x": 1}]}}
    result = merge_patch(original, patch)
    result["metadata"]["labels"]["b"] = "2"
    result["spec"]["list"][0]["x"] = 2
    assert original == {"metadata": {"labels": {"a": "1"}}}
    assert patch == {"spec": {"list": [{"x": 1}]}}


def test_merge_patch_replaces_lists_and_scales() -> None:
    obj = deployment()
    result = merge_patch(obj, {"spec": {"replicas": 5}, "metadata": {"labels": {"tier": None}}})
    assert result["spec"]["replicas"] == 5
    assert result["metadata"]["labels"] == {"app": "web"}
    result = merge_patch(obj, pod_spec_patch({"containers": [{"name": "only"}]}))
    assert containers(result) == [{"name": "only"}]


def test_merge_patch_rejects_non_object() -> None:
    with pytest.raises(ApiError) as info:
        merge_patch({}, [1, 2])  # type: ignore[arg-type]
    assert info.value.code == 400
    assert "expected a JSON object, got array" in info.value.message


# --- JSON patch ---


def test_json_patch_operations() -> None:
    obj = deployment()
    result = json_patch(
        obj,
        [
            {"op": "test", "path": "/spec/replicas", "value": 2},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels/new", "value": "yes"},
            {"op": "remove", "path": "/metadata/annotations"},
            {"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "c"}},
            {"op": "copy", "from": "/metadata/name", "path": "/metadata/generateName"},
            {"op": "move", "from": "/metadata/labels/tier", "path": "/metadata/labels/layer"},
        ],
    )
    assert result["spec"]["replicas"] == 3
    assert result["metadata"]["labels"] == {"app": "web", "new": "yes", "layer": "front"}
    assert "annotations" not in result["metadata"]
    assert [c["name"] for c in containers(result)] == ["app", "sidecar", "c"]
    assert result["metadata"]["generateName"] == "web"
    assert obj == deployment()


def test_json_patch_does_not_alias_patch_values() -> None:
    ops = [
        {"op": "add", "path": "/spec", "value": {"a": {"b": 1}}},
        {"op": "add", "path": "/spec/a/c", "value": 2},
    ]
    snapshot = copy.deepcopy(ops)
    result = json_patch({}, ops)
    assert result == {"spec": {"a": {"b": 1, "c": 2}}}
    assert ops == snapshot


@pytest.mark.parametrize(
    ("ops", "detail"),
    [
        (
            [{"op": "test", "path": "/spec/replicas", "value": 9}],
            "operation 0 (test /spec/replicas): test failed",
        ),
        (
            [
                {"op": "replace", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/missing/x", "value": 1},
            ],
            "operation 1 (replace /spec/missing/x) does not apply: member 'missing' not found",
        ),
        (
            [{"op": "remove", "path": "/metadata/nope"}],
            "operation 0 (remove /metadata/nope) does not apply",
        ),
        ([{"op": "frobnicate", "path": "/a"}], "invalid operation: Unknown operation 'frobnicate'"),
        ([{"op": "add", "path": "/a"}], "invalid operation: The operation does not contain"),
        ([{"path": "/a"}], "invalid operation: Operation does not contain 'op' member"),
        ([{"op": "replace", "path": "", "value": [1]}], "must be a JSON object, got array"),
    ],
)
def test_json_patch_failures_are_422(ops: list, detail: str) -> None:
    with pytest.raises(ApiError) as info:
        json_patch(deployment(), ops)
    err = info.value
    assert err.code == 422
    assert err.reason == Reason.INVALID
    assert err.message.startswith(
        "the server rejected our request due to an error in our request: "
    )
    assert detail in err.message
    assert "'replicas': 2" not in err.message  # the document is not dumped into the message
    assert err.status()["details"]["causes"][0]["reason"] == "UnexpectedServerResponse"


@pytest.mark.parametrize("ops", [{"op": "add"}, ["add"], "[]", None])
def test_json_patch_not_a_list_of_objects_is_400(ops: Any) -> None:
    with pytest.raises(ApiError) as info:
        json_patch({}, ops)
    assert info.value.code == 400


def test_json_patch_too_many_operations() -> None:
    ops = [{"op": "test", "path": "/a", "value": 1}] * (MAX_JSON_PATCH_OPERATIONS + 1)
    with pytest.raises(ApiError) as info:
        json_patch({"a": 1}, ops)
    assert info.value.code == 413
    assert "maximum operations in a JSON patch is 10000, got 10001" in info.value.message


# --- strategic merge patch: what kubectl sends ---


def test_kubectl_apply_second_apply_changes_image() -> None:
    obj = deployment()
    patch = {
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": '{"kind":"x"}\n'}
        },
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                    "containers": [{"image": "busybox:1.36", "name": "app"}],
                }
            }
        },
    }
    result = smp(obj, patch)
    expected = deployment()
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] = (
        '{"kind":"x"}\n'
    )
    containers(expected)[0]["image"] = "busybox:1.36"
    assert result == expected


def test_kubectl_apply_removes_container_and_field() -> None:
    patch = pod_spec_patch(
        {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"$patch": "delete", "name": "sidecar"}, {"name": "app", "args": None}],
        }
    )
    result = smp(deployment(), patch)
    assert [c["name"] for c in containers(result)] == ["app"]
    assert "args" not in containers(result)[0]
    assert containers(result)[0]["image"] == "busybox:1.35"


def test_kubectl_set_image() -> None:
    patch = pod_spec_patch({"containers": [{"image": "nginx:1.27", "name": "sidecar"}]})
    result = smp(deployment(), patch)
    assert [(c["name"], c["image"]) for c in containers(result)] == [
        ("app", "busybox:1.35"),
        ("sidecar", "nginx:1.27"),
    ]


def test_kubectl_rollout_restart_and_pause() -> None:
    restart = {
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}
                }
            }
        }
    }
    result = smp(deployment(), restart)
    assert result["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"},
        "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
    }
    assert smp(deployment(), {"spec": {"paused": True}})["spec"]["paused"] is True


def test_kubectl_label_and_annotate() -> None:
    patch = {"metadata": {"labels": {"tier": None, "env": "prod"}, "annotations": {"n": "1"}}}
    result = smp(deployment(), patch)
    assert result["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert result["metadata"]["annotations"] == {"note": "x", "n": "1"}


def test_kubectl_scale_on_scale_subresource() -> None:
    scale = {"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}}
    result = smp(scale, {"spec": {"replicas": 4}}, "io.k8s.api.autoscaling.v1.Scale")
    assert result == {"kind": "Scale", "spec": {"replicas": 4}, "status": {"replicas": 1}}


# --- strategic merge patch: lists ---


def test_merge_containers_by_name() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {"name": "app", "image": "busybox:1.36"},
                {"name": "extra", "image": "redis:7"},
                {"name": "sidecar", "$patch": "delete"},
            ]
        }
    )
    result = smp(deployment(), patch)
    by_name = {c["name"]: c for c in containers(result)}
    assert set(by_name) == {"app", "extra"}
    assert by_name["app"]["image"] == "busybox:1.36"
    assert by_name["app"]["args"] == ["sleep", "3600"]  # untouched fields are kept
    assert by_name["extra"] == {"name": "extra", "image": "redis:7"}


def test_new_list_items_come_first_without_set_element_order() -> None:
    # Kubernetes' normalizeElementOrder puts items the live list lacks before it.
    result = smp(deployment(), pod_spec_patch({"containers": [{"name": "new", "image": "x"}]}))
    assert [c["name"] for c in containers(result)] == ["new", "app", "sidecar"]


def test_set_element_order_reorders_and_places_new_items() -> None:
    patch = pod_spec_patch(
        {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "new"}, {"name": "app"}],
            "containers": [{"name": "new", "image": "x"}],
        }
    )
    result = smp(deployment(), patch)
    assert [c["name"] for c in containers(result)] == ["sidecar", "new", "app"]


def test_set_element_order_only_reorders() -> None:
    patch = pod_spec_patch({"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}]})
    result = smp(deployment(), patch)
    assert [c["name"] for c in containers(result)] == ["sidecar", "app"]
    assert containers(result)[1] == containers(deployment())[0]


def test_set_element_order_unmentioned_items_keep_relative_order() -> None:
    obj = {"metadata": {"finalizers": ["a", "b", "c", "d"]}}
    patch = {"metadata": {"$setElementOrder/finalizers": ["d", "b"]}}
    result = smp(obj, patch, POD)
    # normalizeElementOrder: "d, b" as ordered; a and c keep their order and are slotted in
    # before the ordered items that come later in the live list.
    assert result["metadata"]["finalizers"] == ["a", "c", "d", "b"]


def test_set_element_order_for_list_absent_in_original() -> None:
    patch = {
        "spec": {
            "$setElementOrder/volumes": [{"name": "b"}, {"name": "a"}],
            "volumes": [
                {"name": "b", "emptyDir": {}},
                {"name": "a", "emptyDir": {}},
                {"name": "gone", "$patch": "delete"},
            ],
        }
    }
    result = smp({"spec": {"containers": []}}, patch, POD)
    assert result["spec"]["volumes"] == [
        {"name": "b", "emptyDir": {}},
        {"name": "a", "emptyDir": {}},
    ]


def test_set_element_order_mismatch_is_400() -> None:
    patch = pod_spec_patch(
        {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [{"name": "sidecar", "image": "x"}],
        }
    )
    with pytest.raises(ApiError) as info:
        smp(deployment(), patch)
    assert info.value.code == 400
    assert "doesn't match $setElementOrder list" in info.value.message


def test_env_merges_by_name() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "B", "value": "22"},
                        {"name": "C", "value": "3"},
                        {"name": "A", "$patch": "delete"},
                    ],
                }
            ]
        }
    )
    env = containers(smp(deployment(), patch))[0]["env"]
    assert sorted(env, key=lambda e: e["name"]) == [
        {"name": "B", "value": "22"},
        {"name": "C", "value": "3"},
    ]


def test_env_value_from_replaces_value_with_null() -> None:
    patch = pod_spec_patch(
        {
            "containers": [
                {
                    "name": "app",
                    "env": [
                        {"name": "A", "value": None, "valueFrom": {"fieldRef": {"fieldPath": "x"}}}
                    ],
                }
            ]
        }
    )
    env = containers(smp(deployment(), patch))[0]["env"]
    assert env[0] == {"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}


def test_ports_merge_by_container_port() -> None:
    patch = pod_spec_patch(
        {"containers": [{"name": "app", "ports": [{"containerPort": 80, "name": "http"}]}]}
    )
    ports = containers(smp(deployment(), patch))[0]["ports"]
    assert ports == [{"containerPort": 80, "protocol": "TCP", "name": "http"}]


def test_lists_without_strategy_are_replaced() -> None:
    patch = pod_spec_patch(
        {
            "containers": [{"name": "app", "args": ["echo", "hi"]}],
            "tolerations": [{"key": "k2", "operator": "Exists"}],
        }
    )
    result = smp(deployment(), patch)
    assert containers(result)[0]["args"] == ["echo", "hi"]
    assert result["spec"]["template"]["spec"]["tolerations"] == [
        {"key": "k2", "operator": "Exists"}
    ]


def test_finalizers_primitive_merge_is_a_union() -> None:
    patch = {"metadata": {"finalizers": ["b.example.com/two", "c.example.com/three"]}}
    result = smp(deployment(), patch)
    assert result["metadata"]["finalizers"] == [
        "a.example.com/one",
        "b.example.com/two",
        "c.example.com/three",
    ]


def test_delete_from_primitive_list() -> None:
    patch = {
        "metadata": {
            "$deleteFromPrimitiveList/finalizers": ["a.example.com/one", "zzz"],
            "finalizers": ["c.example.com/three"],
        }
    }
    result = smp(deployment(), patch)
    assert sorted(result["metadata"]["finalizers"]) == ["b.example.com/two", "c.example.com/three"]
    # Deleting from a list that does not exist does not create it.
    only_delete = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}
    assert smp({"metadata": {}}, only_delete) == {"metadata": {}}


def test_kubectl_apply_primitive_list_with_order_and_deletions() -> None:
    obj = {"metadata": {"finalizers": ["a", "b", "c"]}}
    patch = {
        "metadata": {
            "$setElementOrder/finalizers": ["c", "d", "a"],
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "finalizers": ["d"],
        }
    }
    assert smp(obj, patch, POD)["metadata"]["finalizers"] == ["c", "d", "a"]


def test_list_replace_directive() -> None:
    patch = pod_spec_patch({"containers": [{"name": "solo", "image": "x"}, {"$patch": "replace"}]})
    assert containers(smp(deployment(), patch)) == [{"name": "solo", "image": "x"}]


def test_owner_references_merge_by_uid_and_conditions_by_type() -> None:
    obj = {
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a", "kind": "ReplicaSet"}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    }
    patch = {
        "metadata": {"ownerReferences": [{"uid": "2", "name": "b", "kind": "ReplicaSet"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }
    result = smp(obj, patch, POD)
    assert [o["uid"] for o in result["metadata"]["ownerReferences"]] == ["2", "1"]
    assert result["status"]["conditions"] == [{"type": "Ready", "status": "True"}]


# --- strategic merge patch: maps and directives ---


def test_null_deletes_keys() -> None:
    patch = {"metadata": {"annotations": None}, "spec": {"strategy": {"rollingUpdate": None}}}
    result = smp(deployment(), patch)
    assert "annotations" not in result["metadata"]
    assert result["spec"]["strategy"] == {"type": "RollingUpdate"}
    # Nulls for absent keys vanish instead of being stored.
    assert smp({}, {"spec": {"paused": None, "minReadySeconds": 1}}) == {
        "spec": {"minReadySeconds": 1}
    }


def test_retain_keys_on_deployment_strategy() -> None:
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = smp(deployment(), patch)
    assert result["spec"]["strategy"] == {"type": "Recreate"}


def test_retain_keys_on_volume_source() -> None:
    patch = pod_spec_patch(
        {
            "volumes": [
                {"name": "data", "$retainKeys": ["configMap", "name"], "configMap": {"name": "c"}}
            ]
        }
    )
    volumes = smp(deployment(), patch)["spec"]["template"]["spec"]["volumes"]
    assert volumes == [{"name": "data", "configMap": {"name": "c"}}]


def test_retain_keys_errors() -> None:
    with pytest.raises(ApiError) as info:
        smp(deployment(), {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}})
    assert info.value.code == 422
    assert "patch content doesn't match retainKeys list" in info.value.message
    with pytest.raises(ApiError) as info:
        smp(deployment(), {"spec": {"strategy": {"$retainKeys": "type"}}})
    assert info.value.code == 400
    assert info.value.message == "invalid patch format of retainKeys"


def test_map_replace_and_delete_directives() -> None:
    patch = {"metadata": {"labels": {"$patch": "replace", "only": "this"}}}
    assert smp(deployment(), patch)["metadata"]["labels"] == {"only": "this"}
    patch = {"spec": {"strategy": {"$patch": "delete"}}}
    assert smp(deployment(), patch)["spec"]["strategy"] == {}
    patch = {"metadata": {"labels": {"$patch": "merge", "x": "y"}}}
    assert smp(deployment(), patch)["metadata"]["labels"] == {
        "app": "web",
        "tier": "front",
        "x": "y",
    }


def test_patch_values_for_absent_fields_are_cleaned() -> None:
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "initContainers": [{"name": "init", "image": "x", "args": None}],
                    "nodeSelector": {"$patch": "delete"},
                    "affinity": {"nodeAffinity": None},
                }
            }
        }
    }
    spec = smp({"spec": {"template": {"spec": {}}}}, patch)["spec"]["template"]["spec"]
    assert spec == {"initContainers": [{"name": "init", "image": "x"}], "affinity": {}}


def test_maps_merge_keywise_and_scalars_replace() -> None:
    obj = {"spec": {"nodeSelector": {"a": "1", "b": "2"}, "hostname": "x"}}
    patch = {"spec": {"nodeSelector": {"b": None, "c": "3"}, "hostname": "y"}}
    assert smp(obj, patch, POD) == {"spec": {"nodeSelector": {"a": "1", "c": "3"}, "hostname": "y"}}


def test_type_change_takes_patch_value() -> None:
    obj = {"spec": {"replicas": 1, "strategy": "weird"}}
    patch = {"spec": {"replicas": "2", "strategy": {"type": "Recreate"}}}
    assert smp(obj, patch) == {"spec": {"replicas": "2", "strategy": {"type": "Recreate"}}}


def test_result_does_not_alias_patch() -> None:
    patch = pod_spec_patch({"containers": [{"name": "new", "env": [{"name": "X"}]}]})
    result = strategic_merge_patch(deployment(), patch, DEPLOYMENT)
    containers(result)[0]["env"][0]["name"] = "changed"
    assert patch == pod_spec_patch({"containers": [{"name": "new", "env": [{"name": "X"}]}]})


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        (pod_spec_patch({"containers": [{"image": "x"}]}), 400, "does not contain declared merge"),
        (
            pod_spec_patch({"containers": [{"name": "app", "$patch": "bogus"}]}),
            400,
            "unknown patch type: bogus",
        ),
        ({"metadata": {"labels": {"$patch": "bogus"}}}, 400, "unknown patch type: bogus in map"),
        ({"metadata": {"finalizers": [["x"]]}}, 422, "lists of lists are not supported"),
        ({"metadata": {"finalizers": [1]}}, 400, "list element types are not identical"),
        (
            {"metadata": {"$deleteFromPrimitiveList/finalizers": "x"}},
            400,
            "invalid patch format of primitive list",
        ),
        (
            {"metadata": {"$setElementOrder/finalizers": "x"}},
            400,
            "invalid patch format of setElementOrder list",
        ),
    ],
)
def test_strategic_merge_patch_errors(patch: dict, code: int, message: str) -> None:
    with pytest.raises(ApiError) as info:
        smp(deployment(), patch)
    assert info.value.code == code
    assert message in info.value.message


def test_unknown_definition_is_415() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch({}, {}, "com.example.v1.Widget")
    assert info.value.code == 415
    assert info.value.reason == Reason.UNSUPPORTED_MEDIA_TYPE


def test_non_object_patch_is_400() -> None:
    with pytest.raises(ApiError) as info:
        strategic_merge_patch({}, ["x"], DEPLOYMENT)  # type: ignore[arg-type]
    assert info.value.code == 400


# --- schema metadata ---


@pytest.mark.parametrize(
    ("definition", "path", "strategies", "merge_key"),
    [
        (DEPLOYMENT, "spec.template.spec.containers", ("merge",), "name"),
        (DEPLOYMENT, ("spec", "template", "spec", "containers", "env"), ("merge",), "name"),
        (DEPLOYMENT, "spec.template.spec.containers.ports", ("merge",), "containerPort"),
        (DEPLOYMENT, "spec.template.spec.volumes", ("merge", "retainKeys"), "name"),
        (DEPLOYMENT, "spec.template.spec.tolerations", (), ""),
        (DEPLOYMENT, "spec.template.spec.containers.args", (), ""),
        (DEPLOYMENT, "spec.strategy", ("retainKeys",), ""),
        (DEPLOYMENT, "metadata.finalizers", ("merge",), ""),
        (DEPLOYMENT, "metadata.ownerReferences", ("merge",), "uid"),
        (DEPLOYMENT, "status.conditions", ("merge",), "type"),
        ("io.k8s.api.core.v1.Service", "spec.ports", ("merge",), "port"),
        ("io.k8s.api.policy.v1.PodDisruptionBudget", "spec.selector", ("replace",), ""),
        (DEPLOYMENT, "metadata.labels.anything", (), ""),
        (DEPLOYMENT, "no.such.field", (), ""),
    ],
)
def test_patch_meta(
    definition: str, path: Any, strategies: tuple[str, ...], merge_key: str
) -> None:
    meta = patch_meta(definition, path)
    assert isinstance(meta, PatchMeta)
    assert meta.strategies == strategies
    assert meta.merge_key == merge_key


def test_patch_meta_strategy_helpers() -> None:
    volumes = patch_meta(DEPLOYMENT, "spec.template.spec.volumes")
    assert volumes.strategy == "merge" and volumes.retain_keys
    strategy = patch_meta(DEPLOYMENT, "spec.strategy")
    assert strategy.strategy == "" and strategy.retain_keys
    assert strategy.schema is not None and "rollingUpdate" in strategy.schema["properties"]
