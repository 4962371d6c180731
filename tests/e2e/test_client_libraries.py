"""Other Python clients users drive Kubernetes with, unchanged, against a real apiserver
(with TLS and a client certificate from the kubeconfig): kubernetes_asyncio, lightkube
and kr8s each create, read, patch, list, watch and delete, and see Skiff's errors as
Kubernetes' Status."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import kr8s.asyncio
import kubernetes
import kubernetes_asyncio
import pytest
from clusterenv import started_cluster
from kr8s.asyncio.objects import ConfigMap as Kr8sConfigMap
from kubernetes_asyncio.client.rest import ApiException
from lightkube import AsyncClient, KubeConfig
from lightkube.core.exceptions import ApiError as LightkubeError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap

from cluster import Cluster

NS = "clientlibs"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "clientlibs", secure=True)


@pytest.fixture(scope="module")
def kubeconfig(secure: Cluster) -> Path:
    return secure.kubeconfig(0)


@pytest.fixture(scope="module")
def namespace(kubeconfig: Path) -> Iterator[str]:
    api = kubernetes.config.new_client_from_config(str(kubeconfig))
    v1 = kubernetes.client.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": NS}})
    try:
        yield NS
    finally:
        v1.delete_namespace(NS)
        api.close()


async def test_kubernetes_asyncio(kubeconfig: Path, namespace: str) -> None:
    ka = kubernetes_asyncio
    cfg = ka.client.Configuration()
    await ka.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    async with ka.client.ApiClient(cfg) as api:
        v1 = ka.client.CoreV1Api(api)
        body = {"metadata": {"name": "ka", "labels": {"lib": "ka"}}, "data": {"a": "1"}}
        await v1.create_namespaced_config_map(namespace, body)
        await v1.patch_namespaced_config_map("ka", namespace, {"data": {"a": "2"}})
        cm = await v1.read_namespaced_config_map("ka", namespace)
        assert cm.data == {"a": "2"}
        listed = await v1.list_namespaced_config_map(namespace, label_selector="lib=ka")
        assert [c.metadata.name for c in listed.items] == ["ka"]
        w = ka.watch.Watch()
        async with w.stream(
            v1.list_namespaced_config_map, namespace, label_selector="lib=ka", timeout_seconds=5
        ) as stream:
            async for event in stream:
                assert (event["type"], event["object"].metadata.name) == ("ADDED", "ka")
                break
        with pytest.raises(ApiException) as e:
            await v1.create_namespaced_config_map(namespace, body)
        assert e.value.status == 409 and "already exists" in e.value.body
        await v1.delete_namespaced_config_map("ka", namespace)


async def test_lightkube(kubeconfig: Path, namespace: str) -> None:
    client = AsyncClient(config=KubeConfig.from_file(str(kubeconfig)), namespace=namespace)
    try:
        cm = ConfigMap(metadata=ObjectMeta(name="lk", labels={"lib": "lk"}), data={"a": "1"})
        await client.create(cm)
        await client.patch(ConfigMap, "lk", {"data": {"a": "2"}})
        assert (await client.get(ConfigMap, "lk")).data == {"a": "2"}
        applied = ConfigMap(metadata=ObjectMeta(name="lk-applied"), data={"b": "1"})
        await client.apply(applied, field_manager="lightkube")  # server-side apply
        names = sorted([c.metadata.name async for c in client.list(ConfigMap)])
        assert {"lk", "lk-applied"} <= set(names)

        async def first_event() -> tuple[str, str]:
            async for op, obj in client.watch(ConfigMap, labels={"lib": "lk"}):
                return op, obj.metadata.name
            raise AssertionError("the watch ended")

        assert await asyncio.wait_for(first_event(), 10) == ("ADDED", "lk")
        with pytest.raises(LightkubeError) as e:
            await client.get(ConfigMap, "missing")
        assert e.value.status.code == 404 and e.value.status.reason == "NotFound"
        await client.delete(ConfigMap, "lk")
        await client.delete(ConfigMap, "lk-applied")
    finally:
        await client.close()


async def test_kr8s(kubeconfig: Path, namespace: str) -> None:
    api = await kr8s.asyncio.api(kubeconfig=str(kubeconfig), namespace=namespace)
    version = await api.version()
    assert version["major"] == "1"
    cm = await Kr8sConfigMap(
        {"metadata": {"name": "k8", "labels": {"lib": "k8"}}, "data": {"a": "1"}}, api=api
    )
    await cm.create()
    await cm.patch({"data": {"a": "2"}})
    await cm.refresh()
    assert cm.raw["data"] == {"a": "2"}
    found = [c.name async for c in api.get("configmaps", label_selector={"lib": "k8"})]
    assert found == ["k8"]
    resources = await api.api_resources()
    assert any(r["name"] == "poddisruptionbudgets" for r in resources)
    await cm.delete()
    assert not await cm.exists()
