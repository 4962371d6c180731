"""The generic store on the in-memory backend, with a watch cache fed from the backend's own
watch (no etcd, no NATS): create, update, status, delete, Services' allocations and the
registry's subresources."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.apiserver import allocators
from skiff.apiserver.storage.memory import MemoryBackend
from skiff.apiserver.store import PATCH_JSON, PATCH_MERGE, DeleteOptions, ListOptions, Store
from skiff.apiserver.store import WriteOptions as Opts
from skiff.apiserver.watchcache import WatchCache


def info(group: str, plural: str) -> ResourceInfo:
    found = REGISTRY.by_path(group, "v1", plural)
    assert found is not None
    return found


NAMESPACES = info("", "namespaces")
CONFIGMAPS = info("", "configmaps")
PODS = info("", "pods")
NODES = info("", "nodes")
SERVICES = info("", "services")
DEPLOYMENTS = info("apps", "deployments")
DAEMONSETS = info("apps", "daemonsets")
CRONJOBS = info("batch", "cronjobs")


class Env:
    def __init__(self, backend: MemoryBackend, cache: WatchCache, store: Store) -> None:
        self.backend = backend
        self.cache = cache
        self.store = store

    async def settle(self) -> None:
        """Wait until the watch cache has every write (admission reads it)."""
        assert await self.cache.wait_for(await self.backend.current_revision(), 2)


async def _env(admission_plugins: list[str] | None = None) -> tuple[Env, asyncio.Task[None]]:
    backend = MemoryBackend()
    cache = WatchCache(backend, None)
    feed = asyncio.create_task(cache.follow(backend))
    await cache.ready.wait()
    store = Store(backend, cache, admission_plugins=admission_plugins)
    return Env(backend, cache, store), feed


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e, feed = await _env()
    await e.store.create(NAMESPACES, None, {"metadata": {"name": "ns"}}, Opts())
    await e.settle()
    yield e
    feed.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await feed


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }


def _deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


async def _invalid(coro: Any) -> list[str]:
    """The field paths of a 422."""
    with pytest.raises(ApiError) as e:
        await coro
    assert e.value.code == 422, e.value.message
    return [c.field for c in e.value.causes]


# -- create ------------------------------------------------------------------------------


async def test_create_sets_server_fields_and_defaults(env: Env) -> None:
    s = env.store
    cm = await s.create(
        CONFIGMAPS, "ns", {"metadata": {"generateName": "gen-"}}, Opts(field_manager="me")
    )
    meta = cm["metadata"]
    assert meta["name"].startswith("gen-") and len(meta["name"]) == len("gen-") + 5
    assert meta["uid"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert meta["namespace"] == "ns" and int(meta["resourceVersion"]) > 0
    assert meta["managedFields"][0]["manager"] == "me"
    assert cm["apiVersion"] == "v1" and cm["kind"] == "ConfigMap"
    got = await s.get(CONFIGMAPS, "ns", meta["name"])
    assert got["metadata"]["uid"] == meta["uid"]
    dep = await s.create(DEPLOYMENTS, "ns", {**_deployment("d"), "status": {"replicas": 9}}, Opts())
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dep["spec"]["revisionHistoryLimit"] == 10
    assert "replicas" not in dep.get("status", {})  # status is not the client's to set
    pod = await s.create(PODS, "ns", _pod("p"), Opts())
    assert pod["spec"]["serviceAccountName"] == "default"
    assert pod["spec"]["priority"] == 0  # Priority admission
    assert pod["status"]["phase"] == "Pending"
    node = await s.create(
        NODES, None, {"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "2"}}}, Opts()
    )
    assert node["status"]["capacity"] == {"cpu": "2"}  # nodes report their status on create


async def test_create_refuses_invalid_objects_with_field_paths(env: Env) -> None:
    s = env.store
    assert await _invalid(s.create(CONFIGMAPS, "ns", {"metadata": {"name": "Bad_Name"}}, Opts()))
    assert await _invalid(s.create(PODS, "ns", {"metadata": {"name": "p"}}, Opts())) == [
        "spec.containers"
    ]
    dep = _deployment("d")
    dep["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    dep["spec"]["replicas"] = -1
    assert await _invalid(s.create(DEPLOYMENTS, "ns", dep, Opts())) == [
        "spec.template.metadata.labels",
        "spec.replicas",
    ]
    cj = {
        "metadata": {"name": "cj"},
        "spec": {
            "schedule": "not a schedule",
            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
        },
    }
    assert await _invalid(s.create(CRONJOBS, "ns", cj, Opts())) == [
        "spec.schedule",
        "spec.jobTemplate.spec.template.spec.containers",
        "spec.jobTemplate.spec.template.spec.restartPolicy",  # Jobs want OnFailure or Never
    ]
    cm = {"metadata": {"name": "keys"}, "data": {"bad key": "x"}}
    assert await _invalid(s.create(CONFIGMAPS, "ns", cm, Opts())) == ["data[bad key]"]
    with pytest.raises(ApiError) as e:
        await s.create(CONFIGMAPS, "ns", {"metadata": {"name": "x"}, "nope": 1}, Opts())
    assert e.value.code == 400 and 'unknown field "nope"' in e.value.message


async def test_create_conflicts_and_dry_run(env: Env) -> None:
    s = env.store
    await s.create(CONFIGMAPS, "ns", {"metadata": {"name": "dup"}}, Opts())
    with pytest.raises(ApiError) as e:
        await s.create(CONFIGMAPS, "ns", {"metadata": {"name": "dup"}}, Opts())
    assert e.value.code == 409 and e.value.reason == "AlreadyExists"
    await s.create(CONFIGMAPS, "ns", {"metadata": {"name": "dry"}}, Opts(dry_run=True))
    with pytest.raises(ApiError) as e:
        await s.get(CONFIGMAPS, "ns", "dry")
    assert e.value.code == 404


async def test_namespace_lifecycle_admission_and_its_flag(env: Env) -> None:
    with pytest.raises(ApiError) as e:
        await env.store.create(CONFIGMAPS, "missing", {"metadata": {"name": "a"}}, Opts())
    assert e.value.code == 404
    bare, feed = await _env(admission_plugins=[])
    try:
        await bare.store.create(CONFIGMAPS, "missing", {"metadata": {"name": "a"}}, Opts())
    finally:
        feed.cancel()


async def test_list_is_served_from_the_cache_fed_by_the_backend(env: Env) -> None:
    s = env.store
    for i, team in enumerate(("a", "b", "a")):
        obj = {"metadata": {"name": f"cm{i}", "labels": {"team": team}}}
        await s.create(CONFIGMAPS, "ns", obj, Opts())
    result = await s.list(CONFIGMAPS, "ns", ListOptions.parse("team=a", ""))
    assert [o["metadata"]["name"] for o in result.items] == ["cm0", "cm2"]
    assert result.resource_version == await env.backend.current_revision()


# -- update ------------------------------------------------------------------------------


async def test_update_with_resource_version_precondition(env: Env) -> None:
    s = env.store
    cm = await s.create(CONFIGMAPS, "ns", {"metadata": {"name": "c"}, "data": {"k": "1"}}, Opts())
    rv = cm["metadata"]["resourceVersion"]
    stale = copy.deepcopy(cm) | {"data": {"k": "2"}}
    fresh = await s.update(CONFIGMAPS, "ns", "c", copy.deepcopy(cm) | {"data": {"k": "3"}}, Opts())
    assert int(fresh["metadata"]["resourceVersion"]) > int(rv)
    with pytest.raises(ApiError) as e:
        await s.update(CONFIGMAPS, "ns", "c", stale, Opts())
    assert e.value.code == 409 and e.value.reason == "Conflict"
    same = await s.update(CONFIGMAPS, "ns", "c", copy.deepcopy(fresh), Opts())
    assert same["metadata"]["resourceVersion"] == fresh["metadata"]["resourceVersion"]
    assert (await s.get(CONFIGMAPS, "ns", "c"))["data"] == {"k": "3"}


async def test_status_subresource_resets(env: Env) -> None:
    s = env.store
    await s.create(DEPLOYMENTS, "ns", _deployment("d"), Opts())
    d = await s.patch(
        DEPLOYMENTS,
        "ns",
        "d",
        PATCH_MERGE,
        {"spec": {"replicas": 4}, "status": {"replicas": 8}},
        Opts(),
    )
    assert d["spec"]["replicas"] == 4 and "replicas" not in (d.get("status") or {})
    assert d["metadata"]["generation"] == 2
    body = dict(d, spec=dict(d["spec"], replicas=99), status={"replicas": 3})
    d = await s.update(DEPLOYMENTS, "ns", "d", body, Opts(), subresource="status")
    assert d["status"] == {"replicas": 3} and d["spec"]["replicas"] == 4
    assert d["metadata"]["generation"] == 2
    assert d["metadata"]["managedFields"][-1]["subresource"] == "status"
    d = await s.patch(
        DEPLOYMENTS,
        "ns",
        "d",
        PATCH_MERGE,
        {"status": {"replicas": 5}},
        Opts(),
        subresource="status",
    )
    assert d["status"]["replicas"] == 5
    status = await s.get(DEPLOYMENTS, "ns", "d", subresource="status")
    assert status["kind"] == "Deployment" and status["status"]["replicas"] == 5
    old_selector = d["spec"]["selector"]
    d["spec"]["selector"] = {"matchLabels": {"app": "d", "x": "y"}}
    d["spec"]["template"]["metadata"]["labels"]["x"] = "y"
    assert await _invalid(s.update(DEPLOYMENTS, "ns", "d", d, Opts())) == ["spec.selector"]
    assert (await s.get(DEPLOYMENTS, "ns", "d"))["spec"]["selector"] == old_selector


# -- delete ------------------------------------------------------------------------------


async def test_graceful_pod_delete(env: Env) -> None:
    s = env.store
    await s.create(PODS, "ns", _pod("running", nodeName="n1"), Opts())
    obj, gone = await s.delete(PODS, "ns", "running", DeleteOptions())
    assert not gone
    assert obj["metadata"]["deletionTimestamp"]
    assert obj["metadata"]["deletionGracePeriodSeconds"] == 30
    # A second delete may shorten the grace period; the kubelet confirms with 0.
    obj, gone = await s.delete(PODS, "ns", "running", DeleteOptions(grace_period_seconds=5))
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 5
    _, gone = await s.delete(PODS, "ns", "running", DeleteOptions(grace_period_seconds=0))
    assert gone
    await s.create(PODS, "ns", _pod("unscheduled"), Opts())
    _, gone = await s.delete(PODS, "ns", "unscheduled", DeleteOptions())
    assert gone  # no kubelet to wait for


async def test_finalizers_keep_a_deleted_object(env: Env) -> None:
    s = env.store
    await s.create(
        CONFIGMAPS, "ns", {"metadata": {"name": "f", "finalizers": ["example.com/x"]}}, Opts()
    )
    obj, gone = await s.delete(CONFIGMAPS, "ns", "f", DeleteOptions(propagation_policy="Orphan"))
    assert not gone and obj["metadata"]["finalizers"] == ["example.com/x", "orphan"]
    cur = await s.get(CONFIGMAPS, "ns", "f")
    cur["metadata"]["finalizers"].append("example.com/new")
    assert await _invalid(s.update(CONFIGMAPS, "ns", "f", cur, Opts())) == ["metadata.finalizers"]
    await s.patch(
        CONFIGMAPS,
        "ns",
        "f",
        PATCH_JSON,
        [{"op": "remove", "path": "/metadata/finalizers"}],
        Opts(),
    )
    with pytest.raises(ApiError) as e:
        await s.get(CONFIGMAPS, "ns", "f")
    assert e.value.code == 404


async def test_namespace_terminates_and_finalizes(env: Env) -> None:
    s = env.store
    await s.create(NAMESPACES, None, {"metadata": {"name": "term"}}, Opts())
    obj, gone = await s.delete(NAMESPACES, None, "term", DeleteOptions())
    assert not gone and obj["status"]["phase"] == "Terminating"
    await env.settle()
    with pytest.raises(ApiError) as e:
        await s.create(CONFIGMAPS, "term", {"metadata": {"name": "late"}}, Opts())
    assert e.value.code == 403 and e.value.causes[0].reason == "NamespaceTerminating"
    ns = await s.get(NAMESPACES, None, "term", subresource="finalize")
    assert ns["spec"]["finalizers"] == ["kubernetes"]
    await s.update(
        NAMESPACES, None, "term", {"spec": {"finalizers": []}}, Opts(), subresource="finalize"
    )
    with pytest.raises(ApiError) as e:
        await s.get(NAMESPACES, None, "term")
    assert e.value.code == 404


# -- Services ----------------------------------------------------------------------------


async def test_service_gets_a_cluster_ip_claimed_and_released_with_it(env: Env) -> None:
    s = env.store
    svc = await s.create(
        SERVICES, "ns", {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}, Opts()
    )
    ip = svc["spec"]["clusterIP"]
    assert ip.startswith("10.") and svc["spec"]["clusterIPs"] == [ip]
    assert await env.backend.get(allocators.ip_key(ip)) is not None
    clash = {"metadata": {"name": "clash"}, "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}
    assert await _invalid(s.create(SERVICES, "ns", clash, Opts())) == ["spec.clusterIPs"]
    _, gone = await s.delete(SERVICES, "ns", "web", DeleteOptions())
    assert gone and await env.backend.get(allocators.ip_key(ip)) is None
    bad = {"metadata": {"name": "bad"}, "spec": {"ports": [{"port": 0}]}}
    assert "spec.ports[0].port" in await _invalid(s.create(SERVICES, "ns", bad, Opts()))


# -- subresources ------------------------------------------------------------------------


async def test_scale_subresource(env: Env) -> None:
    s = env.store
    await s.create(DEPLOYMENTS, "ns", _deployment("web", 2), Opts())
    scale = await s.get(DEPLOYMENTS, "ns", "web", subresource="scale")
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}
    scale["spec"]["replicas"] = 5
    out = await s.update(DEPLOYMENTS, "ns", "web", scale, Opts(), subresource="scale")
    assert out["kind"] == "Scale" and out["spec"]["replicas"] == 5
    assert (await s.get(DEPLOYMENTS, "ns", "web"))["spec"]["replicas"] == 5
    with pytest.raises(ApiError) as e:  # the Scale read before is stale now
        await s.update(DEPLOYMENTS, "ns", "web", scale, Opts(), subresource="scale")
    assert e.value.code == 409
    patch = [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    out = await s.patch(DEPLOYMENTS, "ns", "web", PATCH_JSON, patch, Opts(), subresource="scale")
    assert out["spec"]["replicas"] == 1
    bad = s.patch(
        DEPLOYMENTS,
        "ns",
        "web",
        PATCH_MERGE,
        {"spec": {"replicas": -1}},
        Opts(),
        subresource="scale",
    )
    assert await _invalid(bad) == ["spec.replicas"]
    ds = _deployment("ds")
    del ds["spec"]["replicas"]
    await s.create(DAEMONSETS, "ns", ds, Opts())
    with pytest.raises(ApiError) as e:  # DaemonSets have no scale subresource
        await s.get(DAEMONSETS, "ns", "ds", subresource="scale")
    assert e.value.code == 404


async def test_binding_subresource(env: Env) -> None:
    s = env.store
    await s.create(PODS, "ns", _pod("p"), Opts())
    status = await s.create_subresource(
        PODS, "ns", "p", "binding", {"target": {"kind": "Node", "name": "n1"}}, Opts()
    )
    assert status["status"] == "Success" and status["code"] == 201
    pod = await s.get(PODS, "ns", "p")
    assert pod["spec"]["nodeName"] == "n1"
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert [c["status"] for c in scheduled] == ["True"]
    with pytest.raises(ApiError) as e:
        await s.create_subresource(PODS, "ns", "p", "binding", {"target": {"name": "n2"}}, Opts())
    assert e.value.code == 409 and 'already assigned to node "n1"' in e.value.message
    bad = s.create_subresource(PODS, "ns", "p", "binding", {"target": {}}, Opts())
    assert await _invalid(bad) == ["target.name"]
    with pytest.raises(ApiError) as e:  # binding is create-only
        await s.update(PODS, "ns", "p", {}, Opts(), subresource="binding")
    assert e.value.code == 405


async def test_eviction_subresource_deletes_with_its_grace_period(env: Env) -> None:
    s = env.store
    await s.create(PODS, "ns", _pod("p", nodeName="n1"), Opts())
    body = {"metadata": {"name": "p"}, "deleteOptions": {"gracePeriodSeconds": 7}}
    status = await s.create_subresource(PODS, "ns", "p", "eviction", body, Opts())
    assert status["code"] == 201
    pod = await s.get(PODS, "ns", "p")
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 7
