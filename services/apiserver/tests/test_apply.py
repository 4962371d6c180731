"""Tests for server-side apply and managedFields tracking (skiff.apiserver.apply)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from skiff.api.errors import ApiError, Reason
from skiff.apiserver.apply import (
    ANCIENT_CHANGES,
    LAST_APPLIED_ANNOTATION,
    MAX_UPDATE_MANAGERS,
    FieldSet,
    fields_of,
    format_path,
    from_fields_v1,
    server_side_apply,
    to_fields_v1,
    track_update,
)

DEPLOY = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
CM = "io.k8s.api.core.v1.ConfigMap"
T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"
T2 = "2026-01-01T00:02:00Z"
T3 = "2026-01-01T00:03:00Z"


def deployment(**spec: Any) -> dict[str, Any]:
    """An applied Deployment configuration, as ``kubectl apply --server-side`` sends it."""
    containers = spec.pop("containers", [{"name": "app", "image": "nginx:1.27"}])
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers},
            },
            **spec,
        },
    }
    return body


def entries(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """managedFields entries by (manager, operation)."""
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def owned(obj: dict[str, Any], manager: str, operation: str = "Apply") -> FieldSet:
    return from_fields_v1(entries(obj)[(manager, operation)]["fieldsV1"])


def containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def apply(live: dict[str, Any] | None, cfg: dict[str, Any], manager: str = "kubectl", **kw: Any):
    kw.setdefault("force", False)
    kw.setdefault("now", T0)
    return server_side_apply(live, cfg, manager=manager, definition=DEPLOY, **kw)


def persisted(obj: dict[str, Any]) -> dict[str, Any]:
    """What the store would add on create."""
    out = copy.deepcopy(obj)
    out["metadata"].update(uid="u-1", resourceVersion="1", creationTimestamp=T0, generation=1)
    return out


# --- apply -------------------------------------------------------------------------------------


def test_create_via_apply_sets_managed_fields() -> None:
    cfg = deployment(replicas=2)
    obj = apply(None, cfg)

    assert obj["spec"]["replicas"] == 2
    assert containers(obj) == [{"name": "app", "image": "nginx:1.27"}]
    (entry,) = obj["metadata"]["managedFields"]
    assert entry == {
        "manager": "kubectl",
        "operation": "Apply",
        "apiVersion": "apps/v1",
        "time": T0,
        "fieldsType": "FieldsV1",
        "fieldsV1": {
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:containers": {
                            'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}},
                        },
                    },
                },
            },
        },
    }
    # Never owned: apiVersion, kind, name, namespace.
    fields = owned(obj, "kubectl")
    assert ("f:apiVersion",) not in fields
    assert ("f:metadata", "f:name") not in fields
    assert ("f:metadata", "f:namespace") not in fields


def test_apply_does_not_mutate_inputs() -> None:
    live = persisted(apply(None, deployment(replicas=1)))
    cfg = deployment(replicas=3)
    live_copy, cfg_copy = copy.deepcopy(live), copy.deepcopy(cfg)
    out = apply(live, cfg, now=T1)
    assert live == live_copy and cfg == cfg_copy
    out["spec"]["template"]["spec"]["containers"][0]["image"] = "changed"
    assert cfg == cfg_copy and live == live_copy


def test_reapply_with_changed_image_updates() -> None:
    live = persisted(apply(None, deployment()))
    cfg = deployment(containers=[{"name": "app", "image": "nginx:1.28"}])
    obj = apply(live, cfg, now=T1)

    assert containers(obj) == [{"name": "app", "image": "nginx:1.28"}]
    entry = entries(obj)[("kubectl", "Apply")]
    assert entry["time"] == T1
    assert len(obj["metadata"]["managedFields"]) == 1
    # System metadata comes from the live object.
    assert obj["metadata"]["uid"] == "u-1"
    assert obj["metadata"]["resourceVersion"] == "1"


def test_noop_reapply_keeps_time() -> None:
    live = persisted(apply(None, deployment()))
    obj = apply(live, deployment(), now=T1)
    assert entries(obj)[("kubectl", "Apply")]["time"] == T0
    assert {k: v for k, v in obj.items()} == live


def test_removing_field_from_config_removes_it() -> None:
    cfg = deployment(replicas=2, minReadySeconds=5)
    cfg["metadata"]["labels"]["tier"] = "frontend"
    cfg["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    live = persisted(apply(None, cfg))

    cfg2 = deployment(replicas=2)
    obj = apply(live, cfg2, now=T1)

    assert "minReadySeconds" not in obj["spec"]
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert "env" not in containers(obj)[0]
    fields = owned(obj, "kubectl")
    assert ("f:spec", "f:minReadySeconds") not in fields
    assert ("f:metadata", "f:labels", "f:tier") not in fields


def test_removed_field_stays_when_another_manager_owns_it() -> None:
    live = persisted(apply(None, deployment(replicas=2)))
    # Another applier co-owns replicas with the same value.
    live = apply(live, {**deployment(replicas=2)}, manager="other", now=T1)
    assert ("f:spec", "f:replicas") in owned(live, "other")

    obj = apply(live, deployment(), now=T2)
    assert obj["spec"]["replicas"] == 2
    assert ("f:spec", "f:replicas") not in owned(obj, "kubectl")
    assert ("f:spec", "f:replicas") in owned(obj, "other")


def test_removed_field_stays_when_an_updater_owns_it() -> None:
    live = persisted(apply(None, deployment(replicas=2)))
    edited = copy.deepcopy(live)
    edited["spec"]["replicas"] = 4
    track_update(live, edited, manager="kubectl-edit", definition=DEPLOY, now=T1)

    obj = apply(edited, deployment(), now=T2)
    assert obj["spec"]["replicas"] == 4


def test_removing_container_from_config_removes_it() -> None:
    two = [{"name": "app", "image": "a"}, {"name": "log", "image": "b"}]
    live = persisted(apply(None, deployment(containers=two)))
    obj = apply(live, deployment(containers=[{"name": "app", "image": "a"}]), now=T1)
    assert [c["name"] for c in containers(obj)] == ["app"]


def test_two_managers_own_different_containers() -> None:
    live = persisted(apply(None, deployment()))
    sidecar = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "sidecar", "image": "envoy:1"}]},
            },
        },
    }
    obj = apply(live, sidecar, manager="mesh", now=T1)
    assert [c["name"] for c in containers(obj)] == ["app", "sidecar"]

    app_key = 'k:{"name":"app"}'
    sidecar_key = 'k:{"name":"sidecar"}'
    base = ("f:spec", "f:template", "f:spec", "f:containers")
    assert (*base, app_key) in owned(obj, "kubectl")
    assert (*base, sidecar_key) not in owned(obj, "kubectl")
    assert (*base, sidecar_key, "f:image") in owned(obj, "mesh")
    assert (*base, app_key) not in owned(obj, "mesh")

    # Re-applying kubectl's config (which never mentions the sidecar) keeps it,
    # and both can change their own container without conflicts.
    cfg = deployment(containers=[{"name": "app", "image": "nginx:2"}])
    obj = apply(obj, cfg, now=T2)
    assert [c["name"] for c in containers(obj)] == ["app", "sidecar"]
    sidecar["spec"]["template"]["spec"]["containers"][0]["image"] = "envoy:2"
    obj = apply(obj, sidecar, manager="mesh", now=T3)
    assert containers(obj) == [
        {"name": "app", "image": "nginx:2"},
        {"name": "sidecar", "image": "envoy:2"},
    ]

    # The mesh manager dropping its container removes it.
    sidecar["spec"]["template"]["spec"]["containers"] = []
    obj = apply(obj, sidecar, manager="mesh", now=T3)
    assert [c["name"] for c in containers(obj)] == ["app"]


def test_conflict_with_updater_returns_409() -> None:
    # Client-side apply created it; `kubectl scale` then changed replicas with an Update.
    created = persisted(deployment(replicas=2))
    track_update(None, created, manager="kubectl-client-side-apply", definition=DEPLOY, now=T0)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    track_update(created, scaled, manager="kubectl-client-side-apply", definition=DEPLOY, now=T1)

    with pytest.raises(ApiError) as info:
        apply(scaled, deployment(replicas=3), now=T2)
    err = info.value
    assert err.code == 409
    assert err.reason == Reason.CONFLICT
    assert err.message == (
        'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
        "using apps/v1: .spec.replicas"
    )
    status = err.status()
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]


def test_same_value_is_shared_not_conflicting() -> None:
    created = persisted(deployment(replicas=2))
    track_update(None, created, manager="kubectl-create", definition=DEPLOY, now=T0)
    obj = apply(created, deployment(replicas=2), now=T1)
    assert ("f:spec", "f:replicas") in owned(obj, "kubectl")
    assert ("f:spec", "f:replicas") in owned(obj, "kubectl-create", "Update")


def test_conflict_with_scale_subresource_and_several_fields() -> None:
    live = persisted(apply(None, deployment(replicas=2, minReadySeconds=1), manager="a"))
    scaled = copy.deepcopy(live)
    scaled["spec"]["replicas"] = 9
    track_update(live, scaled, manager="kubectl", definition=DEPLOY, now=T1, subresource="scale")
    with pytest.raises(ApiError) as info:
        apply(scaled, deployment(replicas=3, minReadySeconds=2), manager="b", now=T2)
    err = info.value
    assert err.message == (
        "Apply failed with 2 conflicts: "
        'conflicts with "a":\n- .spec.minReadySeconds\n'
        'conflicts with "kubectl" with subresource "scale" using apps/v1:\n- .spec.replicas'
    )
    assert [c.field for c in err.causes] == [".spec.minReadySeconds", ".spec.replicas"]
    assert {c.reason for c in err.causes} == {"FieldManagerConflict"}


def test_conflict_inside_list_map_item() -> None:
    live = persisted(apply(None, deployment(), manager="a"))
    cfg = deployment(containers=[{"name": "app", "image": "nginx:9"}])
    with pytest.raises(ApiError) as info:
        apply(live, cfg, manager="b", now=T1)
    assert info.value.causes[0].field == '.spec.template.spec.containers[name="app"].image'


def test_force_takes_ownership() -> None:
    created = persisted(deployment(replicas=2))
    track_update(None, created, manager="kubectl-client-side-apply", definition=DEPLOY, now=T0)
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 5
    track_update(created, scaled, manager="kube-scaler", definition=DEPLOY, now=T1)
    assert owned(scaled, "kube-scaler", "Update") == FieldSet.from_paths(("f:spec", "f:replicas"))

    obj = apply(scaled, deployment(replicas=3), force=True, now=T2)
    assert obj["spec"]["replicas"] == 3
    assert ("f:spec", "f:replicas") in owned(obj, "kubectl")
    # The scaler owned nothing else, so its entry is gone.
    assert ("kube-scaler", "Update") not in entries(obj)
    assert ("f:spec", "f:replicas") not in owned(obj, "kubectl-client-side-apply", "Update")


def test_list_map_merge_of_containers_by_name() -> None:
    live = persisted(
        deployment(
            containers=[
                {"name": "init", "image": "busybox", "command": ["sh"]},
                {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]},
            ]
        )
    )
    track_update(None, live, manager="kubectl-create", definition=DEPLOY, now=T0)
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "env": [{"name": "MODE", "value": "prod"}],
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        },
                        {"name": "new", "image": "redis"},
                    ]
                }
            }
        },
    }
    obj = apply(live, cfg, manager="tuner", now=T1)
    assert containers(obj) == [
        {"name": "init", "image": "busybox", "command": ["sh"]},
        {
            "name": "app",
            "image": "nginx:1",
            "ports": [{"containerPort": 80}, {"containerPort": 8080, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "prod"}],
        },
        {"name": "new", "image": "redis"},
    ]
    base = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}')
    ports = (*base, "f:ports", 'k:{"containerPort":8080,"protocol":"TCP"}')
    assert (*ports, "f:containerPort") in owned(obj, "tuner")
    # A port without protocol is keyed with the schema default, TCP.
    created = owned(obj, "kubectl-create", "Update")
    assert (*base, "f:ports", 'k:{"containerPort":80,"protocol":"TCP"}') in created


def test_atomic_list_is_replaced() -> None:
    live = persisted(apply(None, deployment(containers=[{"name": "app", "args": ["a", "b"]}])))
    obj = apply(live, deployment(containers=[{"name": "app", "args": ["c"]}]), now=T1)
    assert containers(obj)[0]["args"] == ["c"]
    base = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"app"}')
    assert (*base, "f:args") in owned(obj, "kubectl")


def test_labels_map_merge() -> None:
    live = persisted(deployment())
    live["metadata"]["labels"] = {"app": "web", "team": "core"}
    track_update(None, live, manager="kubectl-create", definition=DEPLOY, now=T0)
    cfg = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"env": "prod"}, "annotations": {"a": "1"}},
    }
    obj = apply(live, cfg, manager="labeler", now=T1)
    assert obj["metadata"]["labels"] == {"app": "web", "team": "core", "env": "prod"}
    assert obj["metadata"]["annotations"] == {"a": "1"}
    assert owned(obj, "labeler") == from_fields_v1(
        {"f:metadata": {"f:annotations": {"f:a": {}}, "f:labels": {"f:env": {}}}}
    )

    # Dropping the label from the config removes only that label.
    cfg["metadata"]["labels"] = {}
    obj = apply(obj, cfg, manager="labeler", now=T2)
    assert obj["metadata"]["labels"] == {"app": "web", "team": "core"}


def test_set_list_items_use_value_keys() -> None:
    cfg = deployment()
    cfg["metadata"]["finalizers"] = ["example.com/a"]
    live = persisted(apply(None, cfg))
    assert ("f:metadata", "f:finalizers", 'v:"example.com/a"') in owned(live, "kubectl")

    other = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "finalizers": ["example.com/b"]},
    }
    obj = apply(live, other, manager="ctrl", now=T1)
    assert obj["metadata"]["finalizers"] == ["example.com/a", "example.com/b"]


def test_status_is_not_owned_through_main_resource() -> None:
    cfg = deployment()
    cfg["status"] = {"replicas": 7}
    obj = apply(None, cfg)
    assert "status" not in obj
    assert "f:status" not in owned(obj, "kubectl").to_fields_v1()

    # The controller writes status through the status subresource.
    live = persisted(obj)
    new = copy.deepcopy(live)
    new["status"] = {"replicas": 1, "readyReplicas": 1}
    track_update(
        live,
        new,
        manager="kube-controller-manager",
        definition=DEPLOY,
        now=T1,
        subresource="status",
    )
    entry = entries(new)[("kube-controller-manager", "Update")]
    assert entry["subresource"] == "status"
    assert entry["fieldsV1"] == {"f:status": {".": {}, "f:readyReplicas": {}, "f:replicas": {}}}
    # And a status-subresource update does not own spec, even if spec changed.
    new2 = copy.deepcopy(new)
    new2["spec"]["replicas"] = 4
    new2["status"]["replicas"] = 2
    track_update(
        new,
        new2,
        manager="kube-controller-manager",
        definition=DEPLOY,
        now=T2,
        subresource="status",
    )
    assert "f:spec" not in entries(new2)[("kube-controller-manager", "Update")]["fieldsV1"]


def test_apply_rejects_managed_fields_and_wrong_version() -> None:
    cfg = deployment()
    cfg["metadata"]["managedFields"] = []
    with pytest.raises(ApiError) as info:
        apply(None, cfg)
    assert info.value.code == 400
    assert info.value.message == "metadata.managedFields must be nil"

    cfg = deployment()
    cfg["apiVersion"] = "apps/v1beta1"
    with pytest.raises(ApiError) as info:
        apply(None, cfg)
    assert info.value.code == 400
    assert "expected: apps/v1" in info.value.message


def test_apply_ignores_system_metadata_in_config() -> None:
    live = persisted(apply(None, deployment()))
    cfg = deployment()
    cfg["metadata"].update(uid="other", resourceVersion="99", generation=7)
    obj = apply(live, cfg, now=T1)
    assert obj["metadata"]["uid"] == "u-1"
    assert obj["metadata"]["resourceVersion"] == "1"
    assert obj["metadata"]["generation"] == 1


def test_kubectl_apply_refreshes_last_applied_annotation() -> None:
    live = persisted(deployment())
    live["metadata"]["annotations"] = {LAST_APPLIED_ANNOTATION: '{"old":true}\n'}
    track_update(None, live, manager="kubectl-client-side-apply", definition=DEPLOY, now=T0)
    obj = apply(live, deployment(), now=T1)
    annotation = obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
    assert annotation.startswith('{"apiVersion":"apps/v1","kind":"Deployment"')
    assert annotation.endswith("\n")


def test_apply_unknown_kind_uses_deduced_schema() -> None:
    cr = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 3, "tags": ["x"], "nested": {"k": "v"}},
    }
    obj = server_side_apply(
        None, cr, manager="m", force=False, definition="com.example.v1.Widget", now=T0
    )
    assert owned(obj, "m").to_fields_v1() == {
        "f:metadata": {"f:labels": {"f:a": {}}},
        "f:spec": {
            ".": {},
            "f:nested": {".": {}, "f:k": {}},
            "f:size": {},
            "f:tags": {},
        },
    }


# --- track_update --------------------------------------------------------------------------------


def test_track_update_create_owns_everything() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": "u", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "args": ["sleep"]}]},
        "status": {"phase": "Pending"},
    }
    track_update(None, pod, manager="kubectl-run", definition=POD, now=T0)
    (entry,) = pod["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl-run"
    assert entry["operation"] == "Update"
    assert entry["apiVersion"] == "v1"
    assert entry["time"] == T0
    assert "subresource" not in entry
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {".": {}, "f:a": {}}},
        "f:spec": {
            "f:containers": {
                ".": {},
                'k:{"name":"c"}': {".": {}, "f:args": {}, "f:image": {}, "f:name": {}},
            }
        },
    }


def test_track_update_moves_ownership_and_merges_entries() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    track_update(None, cm, manager="creator", definition=CM, now=T0)

    edited = copy.deepcopy(cm)
    edited["data"]["a"] = "2"
    edited["data"]["b"] = "x"
    track_update(cm, edited, manager="editor", definition=CM, now=T1)
    # The creator keeps only the map itself (it created ``data``), as in Kubernetes.
    assert entries(edited)[("creator", "Update")]["fieldsV1"] == {"f:data": {}}
    assert owned(edited, "editor", "Update") == from_fields_v1({"f:data": {"f:a": {}, "f:b": {}}})

    again = copy.deepcopy(edited)
    again["data"]["c"] = "y"
    del again["data"]["b"]
    track_update(edited, again, manager="editor", definition=CM, now=T2)
    editor = entries(again)[("editor", "Update")]
    assert editor["time"] == T2
    assert editor["fieldsV1"] == {"f:data": {"f:a": {}, "f:c": {}}}
    assert len(again["metadata"]["managedFields"]) == 2

    # Removing the whole map takes it out of every entry; empty entries are dropped.
    gone = copy.deepcopy(again)
    del gone["data"]
    track_update(again, gone, manager="cleaner", definition=CM, now=T3)
    assert "managedFields" not in gone["metadata"]


def test_track_update_without_changes_keeps_entries() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    track_update(None, cm, manager="creator", definition=CM, now=T0)
    same = copy.deepcopy(cm)
    del same["metadata"]["managedFields"]  # a client that drops managedFields on PUT
    track_update(cm, same, manager="other", definition=CM, now=T1)
    assert same["metadata"]["managedFields"] == cm["metadata"]["managedFields"]


def test_track_update_reset_managed_fields() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    track_update(None, cm, manager="creator", definition=CM, now=T0)
    patched = copy.deepcopy(cm)
    patched["metadata"]["managedFields"] = [{}]
    track_update(cm, patched, manager="kubectl-patch", definition=CM, now=T1)
    assert "managedFields" not in patched["metadata"]


def test_track_update_caps_update_managers() -> None:
    cm: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    cm["data"] = {}
    track_update(None, cm, manager="m0", definition=CM, now="2026-01-01T00:00:00Z")
    for i in range(1, MAX_UPDATE_MANAGERS + 3):
        new = copy.deepcopy(cm)
        new["data"][f"k{i}"] = "v"
        track_update(cm, new, manager=f"m{i}", definition=CM, now=f"2026-01-01T00:{i:02d}:00Z")
        cm = new
    managers = [e["manager"] for e in cm["metadata"]["managedFields"]]
    assert len(managers) == MAX_UPDATE_MANAGERS
    assert ANCIENT_CHANGES in managers
    bucket = entries(cm)[(ANCIENT_CHANGES, "Update")]
    assert set(bucket["fieldsV1"]["f:data"]) >= {"f:k1", "f:k2"}


# --- field sets ---------------------------------------------------------------------------------


def test_fields_v1_round_trip() -> None:
    raw = {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {
            "f:containers": {
                'k:{"name":"app"}': {".": {}, "f:image": {}, "f:name": {}},
            },
            "f:finalizers": {'v:"a"': {}},
        },
    }
    fs = from_fields_v1(raw)
    assert to_fields_v1(fs) == raw
    assert from_fields_v1(to_fields_v1(fs)) == fs
    # Non-canonical key JSON and a lone "." are normalized.
    messy = {"f:spec": {'k:{"name": "app"}': {".": {}}}}
    assert to_fields_v1(from_fields_v1(messy)) == {"f:spec": {'k:{"name":"app"}': {}}}
    with pytest.raises(ValueError):
        from_fields_v1({"x:bad": {}})


def test_field_set_operations() -> None:
    a = FieldSet.from_paths(("f:spec", "f:replicas"), ("f:spec", "f:paused"))
    b = FieldSet.from_paths(("f:spec", "f:replicas"), ("f:metadata", "f:labels", "f:x"))
    assert (a | b).to_fields_v1() == {
        "f:metadata": {"f:labels": {"f:x": {}}},
        "f:spec": {"f:paused": {}, "f:replicas": {}},
    }
    assert (a & b) == FieldSet.from_paths(("f:spec", "f:replicas"))
    assert (a - b) == FieldSet.from_paths(("f:spec", "f:paused"))
    assert (a - a).empty() and not (a - a)

    # A member with children: difference keeps the children, recursive_difference drops them.
    item = from_fields_v1({"f:c": {'k:{"name":"x"}': {".": {}, "f:image": {}}}})
    only_item = FieldSet.from_paths(("f:c", 'k:{"name":"x"}'))
    assert (item - only_item).to_fields_v1() == {"f:c": {'k:{"name":"x"}': {"f:image": {}}}}
    assert item.recursive_difference(only_item).empty()
    assert list(item.paths()) == [
        ("f:c", 'k:{"name":"x"}'),
        ("f:c", 'k:{"name":"x"}', "f:image"),
    ]
    assert len(item) == 2


def test_format_path() -> None:
    assert format_path(("f:spec", "f:replicas")) == ".spec.replicas"
    assert (
        format_path(("f:spec", "f:ports", 'k:{"port":80,"protocol":"TCP"}', "f:name"))
        == '.spec.ports[port=80,protocol="TCP"].name'
    )
    assert format_path(("f:metadata", "f:finalizers", 'v:"a"')) == '.metadata.finalizers[="a"]'


def test_fields_of() -> None:
    cfg = deployment(replicas=1)
    cfg["metadata"]["managedFields"] = [{"manager": "x"}]
    cfg["metadata"]["resourceVersion"] = "5"
    fs = fields_of(cfg, DEPLOY)
    assert ("f:spec", "f:replicas") in fs
    assert ("f:metadata", "f:resourceVersion") not in fs
    assert "f:managedFields" not in fs.to_fields_v1().get("f:metadata", {})
    assert ("f:spec", "f:selector") in fs  # LabelSelector is an atomic struct


def test_custom_resource_status_subresource() -> None:
    cr = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w"},
        "spec": {"size": 1},
        "status": {"ready": True},
    }
    kw: dict[str, Any] = {"definition": "com.example.v1.Widget", "status_subresource": True}
    obj = server_side_apply(None, cr, manager="m", force=False, now=T0, **kw)
    assert "status" not in obj
    obj = server_side_apply(
        obj, cr, manager="ctrl", force=False, now=T1, subresource="status", **kw
    )
    assert obj["status"] == {"ready": True}
    assert entries(obj)[("ctrl", "Apply")]["fieldsV1"] == {"f:status": {".": {}, "f:ready": {}}}
    assert entries(obj)[("ctrl", "Apply")]["subresource"] == "status"
    assert "f:status" not in entries(obj)[("m", "Apply")]["fieldsV1"]


def test_malformed_input_does_not_break_tracking() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "managedFields": "garbage"},
        # No container names, a null list, a scalar where a struct belongs.
        "spec": {"containers": [{"image": "a"}, {"image": "b"}], "volumes": None, "os": "x"},
    }
    track_update(None, pod, manager="m", definition=POD, now=T0)
    assert entries(pod)[("m", "Update")]["fieldsV1"]["f:spec"]["f:os"] == {}
    new = copy.deepcopy(pod)
    new["spec"]["containers"] = "not a list"
    track_update(pod, new, manager="n", definition=POD, now=T1)
    assert entries(new)[("n", "Update")]["fieldsV1"] == {"f:spec": {"f:containers": {}}}
