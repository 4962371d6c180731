"""The asyncio REST client and the informer against a real apiserver, etcd and NATS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cluster import Cluster
from skiff.api.errors import ApiError, Reason
from skiff.client.informer import Informer, key_of, wait_synced
from skiff.client.rest import ApiClient

POD_SPEC = {"containers": [{"name": "c", "image": "busybox"}]}


@pytest.fixture(scope="module")
async def api(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(cluster.url, user_agent="skiff-test/0", timeout=10) as c:
        yield c


async def namespace(api: ApiClient, name: str) -> str:
    with contextlib.suppress(ApiError):
        await api.create("namespaces", {"metadata": {"name": name}})
    return name


async def eventually(check: Callable[[], bool], timeout: float = 10, what: str = "") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what or check}") from None


@contextlib.asynccontextmanager
async def running(*informers: Informer) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(i.run(), name=i.name) for i in informers]
    try:
        await wait_synced(*informers, timeout=10)
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def versions(objs: list[dict[str, Any]]) -> dict[str, str]:
    return {key_of(o): o["metadata"]["resourceVersion"] for o in objs}


async def test_crud_round_trip(api: ApiClient, kubeconfig: Path) -> None:
    ns = await namespace(api, "rc-crud")
    cm = {"metadata": {"name": "c1", "labels": {"t": "crud"}}, "data": {"k": "v"}}
    created = await api.create("configmaps", cm, ns)
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == ns
    assert (await api.get("cm", "c1", ns))["data"] == {"k": "v"}
    listed = await api.list("configmaps", ns, label_selector="t=crud")
    assert listed["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c1"]

    merged = await api.patch("configmaps", "c1", {"data": {"m": "1"}}, ns)
    assert merged["data"] == {"k": "v", "m": "1"}
    jsonp = [{"op": "add", "path": "/data/j", "value": "2"}]
    assert (await api.patch("configmaps", "c1", jsonp, ns, type="json"))["data"]["j"] == "2"
    applied = await api.patch(
        "configmaps",
        "c1",
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "3"}},
        ns,
        type="apply",
        field_manager="tester",
    )
    assert applied["data"]["a"] == "3" and applied["data"]["k"] == "v"
    managers = {m["manager"] for m in applied["metadata"]["managedFields"]}
    assert "tester" in managers and "skiff-test" in managers

    # update with the current resourceVersion works; with a stale one it is a 409 Conflict
    applied["data"]["k"] = "w"
    updated = await api.update("configmaps", applied)
    assert int(updated["metadata"]["resourceVersion"]) > int(applied["metadata"]["resourceVersion"])
    with pytest.raises(ApiError) as e:
        await api.update("configmaps", applied)
    assert e.value.code == 409 and e.value.reason == Reason.CONFLICT

    deploy = {
        "metadata": {"name": "d"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": POD_SPEC},
        },
    }
    await api.create("deployments.apps", deploy, ns)
    env = {"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "X"}]}]}}}}
    d = await api.patch("deployments.apps", "d", env, ns, type="strategic")
    [container] = d["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "busybox" and container["env"] == [{"name": "X"}]
    scale = await api.get("deployments", "d", ns, subresource="scale")
    assert scale["kind"] == "Scale"

    await api.create("pods", {"metadata": {"name": "p"}, "spec": POD_SPEC}, ns)
    binding = {
        "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    await api.create_subresource("pods", "p", "binding", binding, ns)
    assert (await api.get("pods", "p", ns))["spec"]["nodeName"] == "n1"
    running = await api.patch(
        "pods", "p", {"status": {"phase": "Running"}}, ns, subresource="status"
    )
    assert running["status"]["phase"] == "Running"

    await api.delete("configmaps", "c1", ns)
    await api.delete("pods", "p", ns, grace_period_seconds=0)
    with pytest.raises(ApiError) as e:
        await api.get("configmaps", "c1", ns)
    assert e.value.code == 404

    async with ApiClient.from_kubeconfig(str(kubeconfig)) as kc:
        assert (await kc.get("namespaces", ns))["metadata"]["name"] == ns


async def test_status_errors(api: ApiClient) -> None:
    ns = await namespace(api, "rc-errors")
    with pytest.raises(ApiError) as e:
        await api.get("configmaps", "missing", ns)
    assert (e.value.code, e.value.reason, e.value.name) == (404, Reason.NOT_FOUND, "missing")
    await api.create("configmaps", {"metadata": {"name": "dup"}}, ns)
    with pytest.raises(ApiError) as e:
        await api.create("configmaps", {"metadata": {"name": "dup"}}, ns)
    assert e.value.code == 409 and e.value.reason == Reason.ALREADY_EXISTS
    with pytest.raises(ApiError) as e:
        await api.create("configmaps", {"metadata": {"name": "Bad_Name"}}, ns)
    assert e.value.code == 422 and e.value.reason == Reason.INVALID
    assert e.value.causes and e.value.causes[0].field == "metadata.name"
    with pytest.raises(ApiError) as e:
        await api.delete(
            "configmaps", "dup", ns, preconditions={"uid": "00000000-0000-0000-0000-000000000000"}
        )
    assert e.value.code == 409
    with pytest.raises(ApiError) as e:
        await api.create("configmaps", {"metadata": {"name": "x"}}, "no-such-namespace")
    assert e.value.code == 404


async def test_informer_sees_changes_in_order(api: ApiClient) -> None:
    ns = await namespace(api, "inf-order")
    await api.create("configmaps", {"metadata": {"name": "pre"}, "data": {"v": "0"}}, ns)
    inf = Informer(api, "configmaps", ns)
    events: list[tuple[str, str, str]] = []

    def name_data(o: dict[str, Any]) -> tuple[str, str]:
        return o["metadata"]["name"], (o.get("data") or {}).get("v", "")

    inf.add_handler(
        on_add=lambda o: events.append(("add", *name_data(o))),
        on_update=lambda old, new: events.append(("update", *name_data(new))),
        on_delete=lambda o: events.append(("delete", *name_data(o))),
    )
    async with running(inf):
        assert events == [("add", "pre", "0")] and inf.store.get(f"{ns}/pre") is not None
        await api.create("configmaps", {"metadata": {"name": "a"}, "data": {"v": "1"}}, ns)
        await api.patch("configmaps", "a", {"data": {"v": "2"}}, ns)
        await api.create("configmaps", {"metadata": {"name": "b"}, "data": {"v": "3"}}, ns)
        await api.delete("configmaps", "a", ns)
        await api.delete("configmaps", "pre", ns)
        await eventually(lambda: len(events) >= 6)
    assert events == [
        ("add", "pre", "0"),
        ("add", "a", "1"),
        ("update", "a", "2"),
        ("add", "b", "3"),
        ("delete", "a", "2"),
        ("delete", "pre", "0"),
    ]
    assert inf.store.keys() == [f"{ns}/b"]


async def test_informer_store_after_burst_and_index(api: ApiClient) -> None:
    ns = await namespace(api, "inf-burst")
    inf = Informer(api, "configmaps", ns)
    inf.store.add_index("app", lambda o: [(o["metadata"].get("labels") or {}).get("app", "")])
    counts = {"add": 0, "update": 0, "delete": 0}
    inf.add_handler(
        on_add=lambda o: counts.__setitem__("add", counts["add"] + 1),
        on_update=lambda a, b: counts.__setitem__("update", counts["update"] + 1),
        on_delete=lambda o: counts.__setitem__("delete", counts["delete"] + 1),
    )
    limit = asyncio.Semaphore(16)

    async def write(coro: Any) -> None:
        async with limit:
            await coro

    async with running(inf):
        await asyncio.gather(
            *(
                write(
                    api.create(
                        "configmaps",
                        {"metadata": {"name": f"c{i}", "labels": {"app": f"a{i % 3}"}}},
                        ns,
                    )
                )
                for i in range(120)
            )
        )
        await asyncio.gather(
            *(
                write(
                    api.patch("configmaps", f"c{i}", {"metadata": {"labels": {"app": "moved"}}}, ns)
                )
                for i in range(50)
            ),
            *(write(api.delete("configmaps", f"c{i}", ns)) for i in range(90, 120)),
        )
        items, _ = await api.list_all("configmaps", ns)
        want = versions(items)
        await eventually(lambda: versions(inf.store.list()) == want, what="store == list")
    assert len(want) == 90
    assert counts == {"add": 120, "update": 50, "delete": 30}
    for app in ("a0", "a1", "a2", "moved"):
        expected = sorted(key_of(o) for o in items if o["metadata"]["labels"]["app"] == app)
        assert [key_of(o) for o in inf.store.by_index("app", app)] == expected
    assert len(inf.store.by_index("app", "moved")) == 50


async def test_informer_catches_up_after_apiserver_restart(
    cluster: Cluster, api: ApiClient
) -> None:
    ns = await namespace(api, "inf-restart")
    for i in range(6):
        await api.create("configmaps", {"metadata": {"name": f"r{i}"}, "data": {"v": "0"}}, ns)
    # Writes made while apiserver 0 is down go through a second apiserver.
    index = len(cluster.apiservers)
    await asyncio.to_thread(cluster.start_apiserver)
    other = ApiClient(f"http://127.0.0.1:{cluster.api_ports[index]}", timeout=10)
    inf = Informer(api, "configmaps", ns)
    deleted: list[str] = []
    inf.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    try:
        async with running(inf):
            assert len(inf.store) == 6
            await asyncio.to_thread(cluster.apiservers[0].kill)
            for i in range(6, 10):
                await other.create("configmaps", {"metadata": {"name": f"r{i}"}}, ns)
            await other.patch("configmaps", "r0", {"data": {"v": "1"}}, ns)
            await other.delete("configmaps", "r1", ns)
            await other.delete("configmaps", "r2", ns)
            await asyncio.to_thread(cluster.start_apiserver, 0)
            items, _ = await api.list_all("configmaps", ns)
            want = versions(items)
            await eventually(lambda: versions(inf.store.list()) == want, what="caught up")
    finally:
        await other.aclose()
        await asyncio.to_thread(cluster.apiservers[index].stop)
    assert sorted(deleted) == ["r1", "r2"]
    assert inf.store.get(f"{ns}/r0")["data"] == {"v": "1"}  # type: ignore[index]
    assert len(inf.store) == 8
