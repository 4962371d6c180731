"""WorkloadController and PodOwnerController: what the workload controllers set up alike
(owners and dependents, forgetting a gone owner, claiming, status writes), on FakeApi."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.client.rest import Obj, Res
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controller.owners import CONTROLLER_INDEX, NAMESPACE_INDEX
from skiff.controller.workload import PodOwnerController

NS = "ns"


class Api(FakeApi):
    """FakeApi whose next status updates fail with a 409 (a cache behind our last write)."""

    def __init__(self) -> None:
        super().__init__()
        self.stale_status_writes = 0

    async def update(self, res: Res, obj: Obj, *a: Any, subresource: str = "", **kw: Any) -> Obj:
        if subresource == "status" and self.stale_status_writes > 0:
            self.stale_status_writes -= 1
            raise ApiError(409, Reason.CONFLICT, "the object has been modified")
        return await super().update(res, obj, *a, subresource=subresource, **kw)


class Sets(PodOwnerController):
    """A ReplicaSet-shaped controller that only records what it is asked to sync."""

    name: ClassVar[str] = "test-controller"
    resource: ClassVar[str] = "replicasets"
    api_version: ClassVar[str] = "apps/v1"
    kind: ClassVar[str] = "ReplicaSet"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.synced: list[tuple[str, str]] = []
        self.forgotten: list[str] = []

    async def sync_owner(self, key: str, owner: Obj) -> float | None:
        self.synced.append((key, owner["metadata"]["uid"]))
        return None

    def forget(self, key: str) -> None:
        self.forgotten.append(key)
        super().forget(key)


def replica_set(name: str) -> Obj:
    return {
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}}},
        "status": {"replicas": 0},
    }


def pod(name: str, app: str, **meta: Any) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": app}, **meta}, "spec": {}}


@contextlib.asynccontextmanager
async def env() -> AsyncIterator[tuple[Api, Sets]]:
    api = Api()
    informers = SharedInformers(api)  # type: ignore[arg-type]
    c = Sets(ControllerContext(api, informers))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield api, c
    finally:
        await informers.stop()
        await c.stop()


async def test_the_informers_it_sets_up() -> None:
    async with env() as (_, c):
        assert c.sets is c.owners
        assert c.informers == [c.sets, c.pods]
        assert NAMESPACE_INDEX in c.ctx.informers._indexes["replicasets"]
        assert CONTROLLER_INDEX in c.ctx.informers._indexes["pods"]
        assert c.group == "apps"


async def test_a_gone_owner_is_forgotten_and_a_cached_one_synced() -> None:
    async with env() as (api, c):
        rs = await api.create("replicasets", replica_set("web"), NS)
        await api.settle(c.sets)
        c.creations.expect_creations(f"{NS}/web", 2)
        assert await c.reconcile(f"{NS}/web") is None
        assert c.synced == [(f"{NS}/web", rs["metadata"]["uid"])]
        assert not c.satisfied(f"{NS}/web")
        await api.delete("replicasets", "web", NS)
        await api.settle(c.sets)
        assert c.forgotten == [f"{NS}/web"]  # the delete event
        assert c.satisfied(f"{NS}/web")
        assert await c.reconcile(f"{NS}/web") is None
        assert c.forgotten == [f"{NS}/web", f"{NS}/web"]  # and the sync of a gone key
        assert len(c.synced) == 1


async def test_owner_of_resolves_a_controller_reference_of_its_kind() -> None:
    async with env() as (api, c):
        rs = await api.create("replicasets", replica_set("web"), NS)
        await api.settle(c.sets)
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": ""}
        p = {"metadata": {"namespace": NS}}
        assert c._owner_of(p, {**ref, "uid": rs["metadata"]["uid"]}) is not None
        assert c._owner_of(p, ref) is None  # another incarnation
        assert c._owner_of(p, {**ref, "kind": "StatefulSet"}) is None
        assert c._owner_of(p, None) is None
        assert c.about(rs) == {
            "kind": "ReplicaSet",
            "apiVersion": "apps/v1",
            "metadata": rs["metadata"],
        }


async def test_claim_adopts_matching_orphans_and_keeps_what_keep_keeps() -> None:
    async with env() as (api, c):
        rs = await api.create("replicasets", replica_set("web"), NS)
        await api.create("pods", pod("a", "web"), NS)
        await api.create("pods", pod("b", "web", annotations={"skip": "yes"}), NS)
        await api.create("pods", pod("other", "db"), NS)
        await api.settle(c.sets, c.pods)

        def keep(p: Obj) -> bool:
            return not (p["metadata"].get("annotations") or {}).get("skip")

        claimed = await c.claim(rs, c.selector(rs), c.pods, keep=keep)
        assert [p["metadata"]["name"] for p in claimed] == ["a"]
        refs = (await api.get("pods", "a", NS))["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r["controller"]) for r in refs] == [
            ("ReplicaSet", rs["metadata"]["uid"], True)
        ]
        assert "ownerReferences" not in (await api.get("pods", "b", NS))["metadata"]


async def test_update_status_writes_a_changed_status_once_more_after_a_conflict() -> None:
    async with env() as (api, c):
        rs = await api.create("replicasets", replica_set("web"), NS)
        await c.update_status(rs, {"replicas": 0})
        assert api.writes("update/status", "replicasets") == []  # unchanged: no write
        api.stale_status_writes = 1
        await c.update_status(rs, {"replicas": 2})
        assert api.stale_status_writes == 0  # the first write met the conflict
        assert api.writes("update/status", "replicasets") == [f"{NS}/web"]  # the retry
        assert (await api.get("replicasets", "web", NS))["status"] == {"replicas": 2}


async def test_update_status_leaves_a_namesake_alone() -> None:
    async with env() as (api, c):
        old = await api.create("replicasets", replica_set("web"), NS)
        await api.delete("replicasets", "web", NS)
        await api.create("replicasets", replica_set("web"), NS)
        api.stale_status_writes = 1
        await c.update_status(old, {"replicas": 2})
        assert (await api.get("replicasets", "web", NS))["status"] == {"replicas": 0}
        await api.delete("replicasets", "web", NS)
        await c.update_status(old, {"replicas": 3})  # gone: a 404 is nothing to do
