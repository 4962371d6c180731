"""The garbage collector against an in-memory API with the API server's deletion rules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from skiff.client.informer import copy_object
from skiff.client.rest import Obj, Res, resource
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.garbagecollector import (
    FOREGROUND,
    ORPHAN,
    AbsentOwnerCache,
    DependencyGraph,
    GarbageCollector,
    Node,
    metadata_only,
)

NS = "ns"


def _plural(res: Res) -> str:
    return res.plural if not isinstance(res, str) else resource(res).plural


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class Fake(FakeApi):
    """FakeApi plus propagationPolicy finalizers and removal when the last finalizer goes."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[tuple[str, str]] = []

    async def get(
        self, res: Res, name: str, namespace: str | None = None, *, subresource: str = ""
    ) -> Obj:
        self.gets.append((_plural(res), _key(namespace, name)))
        return await super().get(res, name, namespace, subresource=subresource)

    async def delete(
        self,
        res: Res,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
        propagation_policy: str | None = None,
        **_: Any,
    ) -> Obj:
        plural, key = _plural(res), _key(namespace, name)
        cur = self.store(res).get(key)
        if (
            cur is None
            or (preconditions or {}).get("uid", cur["metadata"]["uid"]) != (cur["metadata"]["uid"])
        ):
            return await super().delete(res, name, namespace, preconditions=preconditions)
        finalizers = list(cur["metadata"].get("finalizers") or ())
        if propagation_policy == "Orphan":
            finalizers = [f for f in finalizers if f != FOREGROUND] + [ORPHAN]
        elif propagation_policy == "Foreground":
            finalizers = [f for f in finalizers if f != ORPHAN] + [FOREGROUND]
        finalizers = list(dict.fromkeys(finalizers))
        if not finalizers:
            return await super().delete(res, name, namespace, preconditions=preconditions)
        self.calls.append(("delete", plural, key))
        new = copy_object(cur)
        new["metadata"]["finalizers"] = finalizers
        new["metadata"].setdefault(
            "deletionTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        return self._put(plural, key, new)

    async def patch(
        self, res: Res, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Obj:
        out = await super().patch(res, name, patch, namespace, **kw)
        meta = out["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if not (_plural(res) == "pods" and meta.get("deletionGracePeriodSeconds")):
                await self.finish_deletion(res, _key(namespace, name))
        return out

    def exists(self, res: Res, namespace: str | None, name: str) -> bool:
        return _key(namespace, name) in self.store(res)

    def obj(self, res: Res, namespace: str | None, name: str) -> Obj:
        return self.store(res)[_key(namespace, name)]


async def until(check: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    async with asyncio.timeout(timeout):
        while True:
            if result := check():
                return result
            await asyncio.sleep(0.005)
    raise AssertionError(what)  # pragma: no cover


async def quiet(gc: GarbageCollector, fake: Fake) -> None:
    """Wait until the collector has nothing queued or in flight, and its caches are current."""
    await fake.settle(*gc.informers)
    for _ in range(3):
        await until(lambda: len(gc.queue) == 0 and not gc.queue._processing)
        await asyncio.sleep(0.02)


def replica_set(name: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"replicas": 0}}


def ref(owner: Obj, *, kind: str = "ReplicaSet", block: bool = True, **kw: Any) -> Obj:
    meta = owner["metadata"]
    out = {
        "apiVersion": owner.get("apiVersion", "apps/v1"),
        "kind": owner.get("kind", kind),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": block,
    }
    out.update(kw)
    return out


def pod(name: str, *owners: Obj, node: str = "") -> Obj:
    p: Obj = {
        "metadata": {"name": name, "ownerReferences": list(owners)},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    if node:
        p["spec"]["nodeName"] = node
    return p


@contextlib.asynccontextmanager
async def env(
    fake: Fake | None = None, *, share_pods: bool = False
) -> AsyncIterator[tuple[Fake, GarbageCollector]]:
    fake = fake or Fake()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    if share_pods:
        informers.get("pods")  # as when the ReplicaSet controller runs too
    gc = GarbageCollector(ControllerContext(fake, informers), workers=4)  # type: ignore[arg-type]
    informers.start()
    task = asyncio.create_task(gc.run())
    try:
        await informers.wait_synced(timeout=5)
        await until(lambda: gc.informers and all(i.has_synced() for i in gc.informers))
        yield fake, gc
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
        await gc.stop()


async def make_set(fake: Fake, name: str, pods: int, **ref_kw: Any) -> tuple[Obj, list[str]]:
    rs = await fake.create("replicasets", replica_set(name), NS)
    names = []
    for i in range(pods):
        p = await fake.create("pods", pod(f"{name}-{i}", ref(rs, **ref_kw)), NS)
        names.append(p["metadata"]["name"])
    return rs, names


# -- background ------------------------------------------------------------------------


async def test_background_deletion_removes_dependents() -> None:
    async with env() as (fake, gc):
        _, names = await make_set(fake, "web", 3)
        other = await fake.create("pods", pod("standalone"), NS)
        await quiet(gc, fake)
        assert len(fake.list_objects("pods", NS)) == 4  # owners alive: nothing touched
        assert fake.writes("delete", "pods") == []
        await fake.delete("replicasets", "web", NS)
        await until(lambda: fake.keys("pods") == [f"{NS}/standalone"], what="pods collected")
        assert sorted(fake.writes("delete", "pods")) == sorted(f"{NS}/{n}" for n in names)
        assert other["metadata"]["uid"] == fake.obj("pods", NS, "standalone")["metadata"]["uid"]


async def test_owner_looked_up_once_for_many_dependents() -> None:
    async with env() as (fake, gc):
        await make_set(fake, "big", 40)
        await quiet(gc, fake)
        fake.gets.clear()
        await fake.delete("replicasets", "big", NS)
        await until(lambda: not fake.list_objects("pods", NS), what="pods collected")
        # The deletion event says the owner is gone: no lookup of it at all.
        assert [g for g in fake.gets if g[0] == "replicasets"] == []


async def test_dependent_with_another_live_owner_only_loses_the_reference() -> None:
    async with env() as (fake, gc):
        a = await fake.create("replicasets", replica_set("a"), NS)
        b = await fake.create("replicasets", replica_set("b"), NS)
        await fake.create("pods", pod("shared", ref(a), ref(b, controller=False)), NS)
        await quiet(gc, fake)
        await fake.delete("replicasets", "a", NS)

        def refs() -> list[str]:
            return [
                r["name"] for r in fake.obj("pods", NS, "shared")["metadata"]["ownerReferences"]
            ]

        await until(lambda: refs() == ["b"], what="the reference to a removed")
        await quiet(gc, fake)
        assert fake.exists("pods", NS, "shared")
        await fake.delete("replicasets", "b", NS)
        await until(lambda: not fake.exists("pods", NS, "shared"), what="pod collected")


async def test_chain_is_collected() -> None:
    """Deployment → ReplicaSet → pods: each level goes once its owner is gone."""
    async with env() as (fake, gc):
        d = await fake.create("deployments", {"metadata": {"name": "d"}, "spec": {}}, NS)
        d = {**d, "apiVersion": "apps/v1", "kind": "Deployment"}
        rs = await fake.create(
            "replicasets",
            {"metadata": {"name": "d-1", "ownerReferences": [ref(d)]}, "spec": {}},
            NS,
        )
        for i in range(2):
            await fake.create("pods", pod(f"d-1-{i}", ref(rs)), NS)
        await quiet(gc, fake)
        await fake.delete("deployments", "d", NS)
        await until(
            lambda: not fake.list_objects("replicasets", NS) and not fake.list_objects("pods", NS),
            what="the chain collected",
        )


# -- after a restart -------------------------------------------------------------------


async def test_dependents_of_owners_gone_while_down_are_collected() -> None:
    fake = Fake()
    alive = await fake.create("replicasets", replica_set("alive"), NS)
    gone = await fake.create("replicasets", replica_set("gone"), NS)
    await fake.create("pods", pod("orphaned", ref(gone)), NS)
    await fake.create("pods", pod("kept", ref(alive)), NS)
    await fake.delete("replicasets", "gone", NS)
    # A namesake with another uid: the reference still dangles.
    old = await fake.create("replicasets", replica_set("reborn"), NS)
    await fake.create("pods", pod("stale", ref(old)), NS)
    await fake.delete("replicasets", "reborn", NS)
    await fake.create("replicasets", replica_set("reborn"), NS)
    async with env(fake) as (fake, gc):
        await until(
            lambda: fake.keys("pods") == [f"{NS}/kept"],
            what="dependents of absent owners collected",
        )
        await quiet(gc, fake)
        assert fake.keys("pods") == [f"{NS}/kept"]
        assert fake.exists("replicasets", NS, "reborn")


async def test_owner_of_unknown_kind_is_not_collected_against() -> None:
    async with env() as (fake, gc):
        owner = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
        owner["metadata"]["uid"] = "0000-widget"
        await fake.create("pods", pod("p", ref(owner)), NS)
        await quiet(gc, fake)
        assert fake.exists("pods", NS, "p")


async def test_cross_namespace_owner_is_absent() -> None:
    async with env() as (fake, _gc):
        rs = await fake.create("replicasets", replica_set("web"), "other")
        await fake.create("pods", pod("p", ref(rs)), NS)
        await until(lambda: not fake.exists("pods", NS, "p"), what="pod collected")
        assert fake.exists("replicasets", "other", "web")


async def test_cluster_scoped_dependent_of_namespaced_owner_is_reported() -> None:
    async with env() as (fake, gc):
        rs = await fake.create("replicasets", replica_set("web"), NS)
        await fake.create(
            "persistentvolumes", {"metadata": {"name": "pv", "ownerReferences": [ref(rs)]}}
        )
        await fake.delete("replicasets", "web", NS)
        await quiet(gc, fake)
        await gc.events.flush()
        assert fake.exists("persistentvolumes", None, "pv")
        reasons = [e.get("reason") for e in fake.list_objects("events")]
        assert "OwnerRefInvalidNamespace" in reasons


# -- foreground ------------------------------------------------------------------------


async def test_foreground_waits_for_blocking_dependents() -> None:
    async with env() as (fake, gc):
        fake.graceful_pod_delete = True
        rs = await fake.create("replicasets", replica_set("web"), NS)
        for i in range(3):
            await fake.create("pods", pod(f"web-{i}", ref(rs), node="n1"), NS)
        loose = await fake.create("pods", pod("loose", ref(rs, block=False, controller=False)), NS)
        await quiet(gc, fake)
        await fake.delete("replicasets", "web", NS, propagation_policy="Foreground")

        def terminating() -> list[str]:
            return sorted(
                p["metadata"]["name"]
                for p in fake.list_objects("pods", NS)
                if p["metadata"].get("deletionTimestamp")
            )

        await until(lambda: terminating() == ["web-0", "web-1", "web-2"], what="pods deleted")
        await until(lambda: not fake.exists("pods", NS, "loose"), what="non-blocking deleted too")
        await quiet(gc, fake)
        rs_now = fake.obj("replicasets", NS, "web")  # still there: its pods are not gone
        assert rs_now["metadata"]["finalizers"] == [FOREGROUND]
        for i in range(2):
            await fake.finish_deletion("pods", f"{NS}/web-{i}")
        await quiet(gc, fake)
        assert fake.exists("replicasets", NS, "web")
        await fake.finish_deletion("pods", f"{NS}/web-2")
        await until(lambda: not fake.exists("replicasets", NS, "web"), what="owner removed")
        assert loose["metadata"]["uid"]


async def test_foreground_without_dependents_just_finishes() -> None:
    async with env() as (fake, gc):
        await fake.create("replicasets", replica_set("lonely"), NS)
        await quiet(gc, fake)
        await fake.delete("replicasets", "lonely", NS, propagation_policy="Foreground")
        await until(lambda: not fake.exists("replicasets", NS, "lonely"), what="owner removed")


async def test_foreground_cascades_through_levels() -> None:
    async with env() as (fake, gc):
        d = await fake.create("deployments", {"metadata": {"name": "d"}, "spec": {}}, NS)
        d = {**d, "apiVersion": "apps/v1", "kind": "Deployment"}
        rs = await fake.create(
            "replicasets",
            {"metadata": {"name": "d-1", "ownerReferences": [ref(d)]}, "spec": {}},
            NS,
        )
        await fake.create("pods", pod("d-1-0", ref(rs)), NS)
        await quiet(gc, fake)
        await fake.delete("deployments", "d", NS, propagation_policy="Foreground")
        await until(
            lambda: (
                not fake.list_objects("deployments", NS)
                and not fake.list_objects("replicasets", NS)
                and not fake.list_objects("pods", NS)
            ),
            what="everything removed",
        )
        # The ReplicaSet, which had dependents, went in the foreground itself.
        assert ("delete", "replicasets", f"{NS}/d-1") in fake.calls


async def test_foreground_owner_found_on_restart() -> None:
    fake = Fake()
    fake.graceful_pod_delete = True
    rs = await fake.create("replicasets", replica_set("web"), NS)
    await fake.create("pods", pod("web-0", ref(rs), node="n1"), NS)
    await fake.delete("replicasets", "web", NS, propagation_policy="Foreground")
    async with env(fake) as (fake, _gc):
        await until(
            lambda: fake.obj("pods", NS, "web-0")["metadata"].get("deletionTimestamp"),
            what="pod deleted",
        )
        await fake.finish_deletion("pods", f"{NS}/web-0")
        await until(lambda: not fake.exists("replicasets", NS, "web"), what="owner removed")


# -- orphan ----------------------------------------------------------------------------


async def test_orphan_deletion_releases_dependents() -> None:
    async with env(share_pods=True) as (fake, gc):
        _, names = await make_set(fake, "web", 3)
        await quiet(gc, fake)
        await fake.delete("replicasets", "web", NS, propagation_policy="Orphan")
        await until(lambda: not fake.exists("replicasets", NS, "web"), what="owner removed")
        pods = fake.list_objects("pods", NS)
        assert sorted(p["metadata"]["name"] for p in pods) == sorted(names)
        assert all(not p["metadata"].get("ownerReferences") for p in pods)
        assert fake.writes("delete", "pods") == []


async def test_orphan_keeps_other_owners() -> None:
    async with env() as (fake, gc):
        a = await fake.create("replicasets", replica_set("a"), NS)
        b = await fake.create("replicasets", replica_set("b"), NS)
        await fake.create("pods", pod("p", ref(a), ref(b, controller=False)), NS)
        await quiet(gc, fake)
        await fake.delete("replicasets", "a", NS, propagation_policy="Orphan")
        await until(lambda: not fake.exists("replicasets", NS, "a"), what="owner removed")
        refs = fake.obj("pods", NS, "p")["metadata"]["ownerReferences"]
        assert [r["name"] for r in refs] == ["b"]


# -- informers and graph ---------------------------------------------------------------


async def test_own_informers_keep_metadata_only_and_shared_ones_are_reused() -> None:
    async with env(share_pods=True) as (fake, gc):
        await fake.create(
            "configmaps", {"metadata": {"name": "c", "labels": {"a": "b"}}, "data": {"k": "v"}}, NS
        )
        await quiet(gc, fake)
        pods_inf = gc.ctx.informers.get("pods")
        assert pods_inf in gc.informers  # shared, not watched twice
        cms = next(i for i in gc.informers if i.info.plural == "configmaps")
        cached = cms.get(f"{NS}/c")
        assert cached is not None and "data" not in cached
        assert set(cached["metadata"]) <= {"name", "namespace", "uid", "resourceVersion"}
        assert all(i.info.plural != "events" for i in gc.informers)


def test_metadata_only() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "uid": "u",
            "labels": {"a": "b"},
            "managedFields": [{}],
            "ownerReferences": [{"uid": "o"}],
            "finalizers": ["f"],
        },
        "spec": {"containers": []},
    }
    assert metadata_only(obj) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "uid": "u",
            "ownerReferences": [{"uid": "o"}],
            "finalizers": ["f"],
        },
    }


def test_graph_links_virtual_owners_and_forgets_them() -> None:
    deletes: list[str] = []
    orphans: list[str] = []
    graph = DependencyGraph(
        lambda n: deletes.append(n.uid), lambda n: orphans.append(n.uid), AbsentOwnerCache()
    )
    pods, rss = resource("pods"), resource("replicasets")
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs", "uid": "o"}}
    p = {"metadata": {"name": "p", "namespace": NS, "uid": "p", "ownerReferences": [ref(owner)]}}
    graph.observe(pods, p)
    virtual = graph.get("o")
    assert isinstance(virtual, Node) and not virtual.observed
    assert deletes == ["o"]  # verify the owner
    assert virtual.identity == ("o", "apps", "ReplicaSet", NS, "rs")
    graph.observe(rss, {**owner, "metadata": {**owner["metadata"], "namespace": NS}})
    assert virtual.observed and [d.uid for d in virtual.dependents] == ["p"]
    # Foreground deletion starts: dependents and the owner are queued, once.
    dying = {
        **owner,
        "metadata": {
            **owner["metadata"],
            "namespace": NS,
            "deletionTimestamp": "2025-01-01T00:00:00Z",
            "finalizers": [FOREGROUND],
        },
    }
    deletes.clear()
    graph.observe(rss, dying)
    graph.observe(rss, dying)
    assert deletes == ["p", "o"]
    # The dependent drops the reference: the waiting owner is looked at again.
    deletes.clear()
    graph.observe(pods, {"metadata": {**p["metadata"], "ownerReferences": []}})
    assert deletes == ["o"] and not virtual.dependents
    graph.observe_deleted(rss, dying)
    assert graph.get("o") is None and ("o", "apps", "ReplicaSet", NS, "rs") in graph.absent
    graph.observe_deleted(pods, p)
    assert len(graph) == 0
    assert orphans == []


async def test_conflicting_patch_is_retried_from_a_fresh_read() -> None:
    async with env() as (fake, gc):
        a = await fake.create("replicasets", replica_set("a"), NS)
        b = await fake.create("replicasets", replica_set("b"), NS)
        await fake.create("pods", pod("p", ref(a), ref(b, controller=False)), NS)
        await quiet(gc, fake)
        fake.hold()  # the cache falls behind
        await fake.patch("pods", "p", {"metadata": {"labels": {"x": "y"}}}, NS)
        node = gc.graph.get(fake.obj("pods", NS, "p")["metadata"]["uid"])
        assert node is not None
        await gc._remove_references(node, None, {a["metadata"]["uid"]})
        refs = fake.obj("pods", NS, "p")["metadata"]["ownerReferences"]
        assert [r["name"] for r in refs] == ["b"]
        assert fake.obj("pods", NS, "p")["metadata"]["labels"] == {"x": "y"}
        fake.release()


async def test_delete_conflict_on_namesake_is_ignored() -> None:
    async with env() as (fake, gc):
        node = Node("nope", resource("pods"), "Pod", NS, "ghost", observed=True)
        await gc._delete(node, "Background")  # 404: nothing to do
        await fake.create("pods", pod("ghost"), NS)
        await gc._delete(node, "Background")  # another uid: 409, ignored
        assert fake.exists("pods", NS, "ghost")


async def test_startup_with_live_owners_touches_nothing() -> None:
    fake = Fake()
    await make_set(fake, "web", 10)
    async with env(fake) as (fake, gc):
        await quiet(gc, fake)
        assert len(gc.graph) == 11
        assert [c for c in fake.calls if c[0] != "create"] == []
        assert len(fake.gets) <= 1  # at most the owner, if its dependents were seen first


async def test_foreground_cycle_is_broken() -> None:
    """Two objects owning each other, both blocking: foreground deletion still ends."""
    async with env() as (fake, gc):
        a = await fake.create("configmaps", {"metadata": {"name": "a"}}, NS)
        a = {**a, "apiVersion": "v1", "kind": "ConfigMap"}
        b = await fake.create(
            "configmaps", {"metadata": {"name": "b", "ownerReferences": [ref(a)]}}, NS
        )
        b = {**b, "apiVersion": "v1", "kind": "ConfigMap"}
        await fake.patch(
            "configmaps", "a", {"metadata": {"ownerReferences": [ref(b, controller=False)]}}, NS
        )
        await quiet(gc, fake)
        await fake.delete("configmaps", "a", NS, propagation_policy="Foreground")
        await until(lambda: not fake.list_objects("configmaps", NS), timeout=5, what="both removed")
        # b stopped blocking (blockOwnerDeletion: false) before it went in the foreground.
        unblock = fake.calls.index(("patch", "configmaps", f"{NS}/b"))
        assert unblock < fake.calls.index(("delete", "configmaps", f"{NS}/b"))
