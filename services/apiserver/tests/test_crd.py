"""CustomResourceDefinitions in the store, on the in-memory backend: a CRD is named and
established by the apiserver's controllers, its resource is served (registry,
strategies, printers, discovery), its objects are pruned, defaulted and validated by the
version's schema, status and scale are subresources, and deleting the CRD deletes its
objects first."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver import discovery, printers
from skiff.apiserver.apiextensions.controllers import CRDControllers, serve_custom_resources
from skiff.apiserver.apiextensions.served import CRD_INFO
from skiff.apiserver.storage.memory import MemoryBackend
from skiff.apiserver.store import PATCH_MERGE, PATCH_STRATEGIC, DeleteOptions, ListOptions, Store
from skiff.apiserver.store import WriteOptions as Opts
from skiff.apiserver.watchcache import WatchCache

NAMESPACES = REGISTRY.core("namespaces")

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {
                    "type": "string",
                    "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
                },
                "image": {"type": "string", "default": "busybox"},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
            },
        },
        "status": {
            "type": "object",
            "properties": {"replicas": {"type": "integer"}, "selector": {"type": "string"}},
        },
    },
}


def crontab_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "crontabs.stable.example.com"},
        "spec": {
            "group": "stable.example.com",
            "scope": "Namespaced",
            "names": {"plural": "crontabs", "kind": "CronTab", "shortNames": ["ct"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": copy.deepcopy(CRONTAB_SCHEMA)},
                    "subresources": {
                        "status": {},
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": [
                        {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                    ],
                }
            ],
        },
    }


class Env:
    def __init__(self, backend: MemoryBackend, cache: WatchCache, store: Store) -> None:
        self.backend = backend
        self.cache = cache
        self.store = store

    async def settle(self) -> None:
        assert await self.cache.wait_for(await self.backend.current_revision(), 2)

    async def until(self, check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            assert loop.time() < deadline, "timed out"
            await asyncio.sleep(0.02)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    backend = MemoryBackend()
    cache = WatchCache(backend, None)
    crs = serve_custom_resources(cache)
    feed = asyncio.create_task(cache.follow(backend))
    await cache.ready.wait()
    store = Store(backend, cache)
    controllers = asyncio.create_task(CRDControllers(crs, store, cache).run())
    e = Env(backend, cache, store)
    await store.create(NAMESPACES, None, {"metadata": {"name": "ns"}}, Opts())
    await e.settle()
    yield e
    for task in (controllers, feed):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for group, plural in [(i.group, i.plural) for i in REGISTRY.custom()]:
        REGISTRY.set_custom(group, plural, ())


def crontabs():  # type: ignore[no-untyped-def]
    return REGISTRY.by_path("stable.example.com", "v1", "crontabs")


async def established(env: Env) -> None:
    await env.store.create(CRD_INFO, None, crontab_crd(), Opts())
    await env.until(lambda: crontabs() is not None)


async def test_a_crd_is_named_established_and_served(env: Env) -> None:
    created = await env.store.create(CRD_INFO, None, crontab_crd(), Opts())
    assert created["status"] == {
        "acceptedNames": {"plural": "", "kind": ""},
        "storedVersions": ["v1"],
    }
    assert created["spec"]["names"]["singular"] == "crontab"
    assert created["spec"]["names"]["listKind"] == "CronTabList"
    assert created["spec"]["conversion"] == {"strategy": "None"}
    await env.until(lambda: crontabs() is not None)
    crd = await env.store.get(CRD_INFO, None, "crontabs.stable.example.com")
    conditions = {c["type"]: (c["status"], c["reason"]) for c in crd["status"]["conditions"]}
    assert conditions == {
        "NamesAccepted": ("True", "NoConflicts"),
        "Established": ("True", "InitialNamesAccepted"),
    }
    assert crd["status"]["acceptedNames"]["shortNames"] == ["ct"]
    info = crontabs()
    assert info.namespaced and info.kind == "CronTab" and info.short_names == ("ct",)
    assert info.subresources == ("status", "scale")
    groups = discovery.api_group_list()["groups"]
    assert {
        "name": "stable.example.com",
        "versions": [{"groupVersion": "stable.example.com/v1", "version": "v1"}],
        "preferredVersion": {"groupVersion": "stable.example.com/v1", "version": "v1"},
    } in groups
    listed = discovery.resource_list("stable.example.com", "v1")
    assert [r["name"] for r in listed["resources"]] == [
        "crontabs",
        "crontabs/status",
        "crontabs/scale",
    ]


async def test_custom_objects_are_pruned_defaulted_and_validated(env: Env) -> None:
    await established(env)
    info = crontabs()
    obj = {
        "apiVersion": "stable.example.com/v1",
        "kind": "CronTab",
        "metadata": {"name": "a"},
        "spec": {"cronSpec": "* * * * */5", "unknown": 1},
        "status": {"replicas": 3},
    }
    opts = Opts(field_validation="Ignore")
    created = await env.store.create(info, "ns", copy.deepcopy(obj), opts)
    assert created["spec"] == {"cronSpec": "* * * * */5", "image": "busybox", "replicas": 1}
    assert "status" not in created
    with pytest.raises(ApiError) as e:
        await env.store.create(
            info, "ns", {**copy.deepcopy(obj), "metadata": {"name": "b"}}, Opts()
        )
    assert e.value.code == 400
    assert 'strict decoding error: unknown field "spec.unknown"' in e.value.message
    bad = {**copy.deepcopy(obj), "metadata": {"name": "c"}}
    bad["spec"] = {"cronSpec": "nope", "replicas": 11}
    with pytest.raises(ApiError) as e:
        await env.store.create(info, "ns", bad, opts)
    assert e.value.code == 422
    fields = {c.field for c in e.value.causes}
    assert fields == {"spec.cronSpec", "spec.replicas"}


async def test_status_scale_and_patch_types(env: Env) -> None:
    await established(env)
    info = crontabs()
    obj = {"metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * *"}}
    await env.store.create(info, "ns", obj, Opts())
    await env.store.patch_object(
        info,
        "ns",
        "a",
        PATCH_MERGE,
        {"status": {"replicas": 2, "selector": "app=a"}},
        Opts(),
        subresource="status",
    )
    handler = env.store.subresource(info, "scale")
    assert handler is not None
    scale = await handler.get(env.store, info, "ns", "a")
    assert scale["spec"] == {"replicas": 1}
    assert scale["status"] == {"replicas": 2, "selector": "app=a"}
    with pytest.raises(ApiError) as e:
        await env.store.patch_object(info, "ns", "a", PATCH_STRATEGIC, {"spec": {}}, Opts())
    assert e.value.code == 415
    table = printers.table_for(info, [await env.store.get(info, "ns", "a")])
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Spec", "Replicas", "Age"]
    assert table["rows"][0]["cells"][:3] == ["a", "* * * * *", 1]


async def test_deleting_the_crd_deletes_its_objects_first(env: Env) -> None:
    await established(env)
    info = crontabs()
    for n in ("a", "b"):
        await env.store.create(
            info, "ns", {"metadata": {"name": n}, "spec": {"cronSpec": "* * * * *"}}, Opts()
        )
    deleted, _ = await env.store.delete(
        CRD_INFO, None, "crontabs.stable.example.com", DeleteOptions()
    )
    assert deleted["metadata"]["finalizers"] == ["customresourcecleanup.apiextensions.k8s.io"]
    await env.until(lambda: not env.cache.list(CRD_INFO), timeout=10)
    kvs, _ = await env.backend.range_all("/registry/stable.example.com/")
    assert kvs == []
    await env.until(lambda: crontabs() is None)


async def test_x_kubernetes_validations(env: Env) -> None:
    crd = crontab_crd()
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["x-kubernetes-validations"] = [{"rule": "self.replicas <= 3", "message": "at most 3"}]
    spec["properties"]["image"]["x-kubernetes-validations"] = [
        {"rule": "self == oldSelf", "message": "image is immutable"}
    ]
    bad = copy.deepcopy(crd)
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"
    ] = [{"rule": "self.replicsa <= 3"}]
    with pytest.raises(ApiError) as e:
        await env.store.create(CRD_INFO, None, bad, Opts())
    assert e.value.code == 422
    assert [c.field for c in e.value.causes] == [
        "spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    ]
    await env.store.create(CRD_INFO, None, crd, Opts())
    await env.until(lambda: crontabs() is not None)
    info = crontabs()
    obj = {"metadata": {"name": "a"}, "spec": {"cronSpec": "* * * * *", "replicas": 5}}
    with pytest.raises(ApiError) as e:
        await env.store.create(info, "ns", copy.deepcopy(obj), Opts())
    assert e.value.code == 422
    assert [(c.field, c.message) for c in e.value.causes] == [
        ("spec", 'Invalid value: "object": at most 3')
    ]
    obj["spec"]["replicas"] = 2
    await env.store.create(info, "ns", copy.deepcopy(obj), Opts())
    with pytest.raises(ApiError) as e:
        await env.store.patch_object(
            info, "ns", "a", PATCH_MERGE, {"spec": {"image": "nginx"}}, Opts()
        )
    assert [(c.field, c.message) for c in e.value.causes] == [
        ("spec.image", 'Invalid value: "string": image is immutable')
    ]


def two_version_crd(storage: str = "v1") -> dict[str, Any]:
    """The CronTab CRD served as v1 and v1beta1 (whose schema defaults another field)."""
    crd = crontab_crd()
    beta = copy.deepcopy(crd["spec"]["versions"][0])
    beta_spec = beta["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    beta_spec["legacy"] = {"type": "string", "default": "yes"}
    beta.update(name="v1beta1", storage=storage == "v1beta1")
    crd["spec"]["versions"][0]["storage"] = storage == "v1"
    crd["spec"]["versions"].append(beta)
    return crd


async def test_a_crd_served_in_two_versions_converts_with_strategy_none(env: Env) -> None:
    await env.store.create(CRD_INFO, None, two_version_crd(), Opts())
    beta = lambda: REGISTRY.by_path("stable.example.com", "v1beta1", "crontabs")  # noqa: E731
    await env.until(lambda: crontabs() is not None and beta() is not None)
    body = {"metadata": {"name": "t"}, "spec": {"cronSpec": "* * * * */5"}}
    created = await env.store.create(beta(), "ns", body, Opts())
    # Answered in the request's version, defaulted by that version's schema.
    assert created["apiVersion"] == "stable.example.com/v1beta1"
    assert created["spec"]["legacy"] == "yes"
    key = crontabs().etcd_key("ns", "t")
    kv = await env.backend.get(key)
    assert kv is not None and b'"apiVersion":"stable.example.com/v1"' in kv.value
    got = await env.store.get(crontabs(), "ns", "t")
    # Read in v1: what v1's schema does not know is pruned, as kube's decoder prunes.
    assert got["apiVersion"] == "stable.example.com/v1" and "legacy" not in got["spec"]
    await env.settle()
    listed = await env.store.list(beta(), "ns", ListOptions())
    assert [(o["apiVersion"], o["spec"]["legacy"]) for o in listed.items] == [
        ("stable.example.com/v1beta1", "yes")
    ]
    # The storage version moves to v1beta1: the old object is read and rewritten there.
    crd = await env.store.get(CRD_INFO, None, "crontabs.stable.example.com")
    crd["spec"] = two_version_crd("v1beta1")["spec"]
    await env.store.update(CRD_INFO, None, crd["metadata"]["name"], crd, Opts())
    await env.until(lambda: REGISTRY.storage_for(crontabs()) is beta())
    got["spec"]["replicas"] = 3
    updated = await env.store.update(crontabs(), "ns", "t", got, Opts())
    assert updated["apiVersion"] == "stable.example.com/v1"
    kv = await env.backend.get(key)
    assert kv is not None and b'"apiVersion":"stable.example.com/v1beta1"' in kv.value


def webhook_crd(url: str, ca_bundle: str) -> dict[str, Any]:
    """CronTabs stored as v1 (``cronSpec``) and served as v2 too (``schedule``), converted
    by a webhook."""
    crd = crontab_crd()
    v2 = copy.deepcopy(crd["spec"]["versions"][0])
    props = v2["schema"]["openAPIV3Schema"]["properties"]["spec"]
    props["properties"]["schedule"] = props["properties"].pop("cronSpec")
    props["required"] = ["schedule"]
    v2.update(name="v2", storage=False, additionalPrinterColumns=[])
    crd["spec"]["versions"].append(v2)
    crd["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
        "clientConfig": {"url": url, "caBundle": ca_bundle},
        "conversionReviewVersions": ["v2beta9", "v1"]}}  # fmt: skip
    return crd


def convert_crontab(obj: dict[str, Any], to: str) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    spec = out.setdefault("spec", {})
    if to.endswith("/v2") and "cronSpec" in spec:
        spec["schedule"] = spec.pop("cronSpec")
    if to.endswith("/v1") and "schedule" in spec:
        spec["cronSpec"] = spec.pop("schedule")
    out["apiVersion"] = to
    return out


async def test_a_conversion_webhook_converts_every_read_write_and_watch(env: Env) -> None:
    from webhookserver import WebhookServer

    from skiff.apiserver.store import resolve
    from skiff.apiserver.watchcache import Event

    breaks: dict[str, Any] = {}

    def handler(path: str, review: dict[str, Any]) -> dict[str, Any]:
        req = review["request"]
        objs = [convert_crontab(o, req["desiredAPIVersion"]) for o in req["objects"]]
        for o in objs:
            o["metadata"].setdefault("labels", {})["converted"] = "yes"
            o["metadata"]["generation"] = 99  # not the webhook's to change
            o["metadata"].update(breaks.get("meta", {}))
        result = breaks.get("result", {"status": "Success"})
        response = {"uid": req["uid"], "convertedObjects": objs, "result": result}
        return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
                "response": response}  # fmt: skip

    async with WebhookServer(handler) as server:
        await env.store.create(
            CRD_INFO, None, webhook_crd(server.url("/convert"), server.ca_bundle), Opts()
        )
        v2 = lambda: REGISTRY.by_path("stable.example.com", "v2", "crontabs")  # noqa: E731
        await env.until(lambda: crontabs() is not None and v2() is not None)
        body = {"metadata": {"name": "a"}, "spec": {"schedule": "* * * * */5"}}
        created = await env.store.create(v2(), "ns", body, Opts())
        assert created["apiVersion"] == "stable.example.com/v2"
        assert created["spec"] == {"schedule": "* * * * */5", "image": "busybox", "replicas": 1}
        # Stored in v1, by the webhook (the first review version it speaks: v1).
        path, review = server.calls[0]
        assert path == "/convert?timeout=30s"
        assert review["apiVersion"] == "apiextensions.k8s.io/v1"
        assert review["request"]["desiredAPIVersion"] == "stable.example.com/v1"
        kv = await env.backend.get(crontabs().etcd_key("ns", "a"))
        assert kv is not None and b'"cronSpec":"* * * * */5"' in kv.value
        other = {"metadata": {"name": "b"}, "spec": {"cronSpec": "1 * * * *"}}
        await env.store.create(crontabs(), "ns", other, Opts())
        got = await env.store.get(v2(), "ns", "a")
        assert got["spec"]["schedule"] == "* * * * */5"
        # The webhook's labels stay; the rest of metadata is the stored object's.
        assert got["metadata"]["labels"] == {"converted": "yes"}
        assert got["metadata"]["generation"] == 1
        await env.settle()
        calls = len(server.calls)
        listed = await env.store.list(v2(), "ns", ListOptions())
        assert [o["spec"]["schedule"] for o in listed.items] == ["* * * * */5", "1 * * * *"]
        assert len(server.calls) == calls + 1  # one review for the whole list
        lines: list[dict[str, Any]] = []

        def render(e: Event) -> bytes:
            lines.append(e.obj)
            return e.json_line()

        w, _, _ = await env.store.watch(v2(), "ns", ListOptions(), render=render,
                                        render_key=("json",))  # fmt: skip
        got["spec"]["replicas"] = 2
        await env.store.update(v2(), "ns", "a", got, Opts())
        items = await resolve(await asyncio.wait_for(w.next(3), 4))
        assert items and lines[-1]["apiVersion"] == "stable.example.com/v2"
        assert lines[-1]["spec"]["replicas"] == 2
        env.store.unwatch(v2(), w)
        breaks["result"] = {"status": "Failure", "message": "cannot convert today"}
        with pytest.raises(ApiError) as e:
            await env.store.get(v2(), "ns", "a")
        assert e.value.code == 500
        assert e.value.message == (
            "Internal error occurred: conversion webhook for stable.example.com/v1, "
            "Kind=CronTab failed: cannot convert today"
        )
        breaks.update(result={"status": "Success"}, meta={"name": "other"})
        with pytest.raises(ApiError) as e:
            await env.store.list(v2(), "ns", ListOptions())
        assert e.value.message.endswith(
            "returned invalid converted object at index 0: must have the same name: a != other"
        )


async def test_served_versions_are_published_in_openapi_v3(env: Env) -> None:
    import orjson

    from skiff.apiserver import openapi

    assert "apis/stable.example.com/v1" not in openapi.index()["paths"]
    await established(env)
    assert "apis/stable.example.com/v1" in openapi.index()["paths"]
    doc = orjson.loads(openapi.document("stable.example.com", "v1") or b"{}")
    schemas = doc["components"]["schemas"]
    crontab = schemas["com.example.stable.v1.CronTab"]
    assert crontab["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}
    ]
    assert crontab["properties"]["spec"]["properties"]["cronSpec"]["type"] == "string"
    assert crontab["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    ]
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in schemas
    assert "com.example.stable.v1.CronTabList" in schemas
    named = "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"
    item = doc["paths"][named]
    assert item["patch"]["x-kubernetes-group-version-kind"]["kind"] == "CronTab"
    assert "application/strategic-merge-patch+json" not in item["patch"]["requestBody"]["content"]
    assert (
        "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/scale" in doc["paths"]
    )
    await env.store.delete(CRD_INFO, None, "crontabs.stable.example.com", DeleteOptions())
    await env.until(lambda: crontabs() is None)
    assert "apis/stable.example.com/v1" not in openapi.index()["paths"]
