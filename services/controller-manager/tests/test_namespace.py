"""The namespace and ServiceAccount controllers against an in-memory API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from skiff.api.errors import ApiError, Cause, Reason
from skiff.client.informer import copy_object
from skiff.client.rest import Obj, Res, resource
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
    NamespaceController,
    updated_conditions,
)
from skiff.controllers.serviceaccount import ServiceAccountsController

NS = "doomed"


def _plural(res: Res) -> str:
    return res.plural if not isinstance(res, str) else resource(res).plural


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.t


class Fake(FakeApi):
    """FakeApi with namespace lifecycle: Terminating on delete, gone once finalized."""

    def __init__(self) -> None:
        super().__init__()
        self.graceful_pod_delete = True

    async def create(self, res: Res, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        plural = _plural(res)
        if plural == "namespaces":
            obj = copy_object(obj)
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj.setdefault("status", {}).setdefault("phase", "Active")
        elif resource(plural).namespaced:
            ns = self.store("namespaces").get(namespace or obj["metadata"].get("namespace"))
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    Reason.FORBIDDEN,
                    f"unable to create new content in namespace {namespace} because it is "
                    "being terminated",
                    causes=[Cause("metadata.namespace", "terminating", "NamespaceTerminating")],
                )
        return await super().create(res, obj, namespace, **kw)

    async def delete(
        self, res: Res, name: str, namespace: str | None = None, **kw: Any
    ) -> Obj | list[Obj]:
        plural = _plural(res)
        if not name:  # deletecollection
            self.calls.append(("deletecollection", plural, namespace or ""))
            out = []
            for o in self.list_objects(res, namespace):
                out.append(await self.delete(res, o["metadata"]["name"], namespace))
            return out
        cur = self.store(res).get(f"{namespace}/{name}" if namespace else name)
        if cur is not None and (cur["metadata"].get("finalizers") or plural == "namespaces"):
            self.calls.append(("delete", plural, name))
            new = copy_object(cur)
            new["metadata"].setdefault("deletionTimestamp", _ts(datetime.now(UTC).timestamp()))
            if plural == "namespaces":
                new.setdefault("status", {})["phase"] = "Terminating"
            return self._put(plural, name if not namespace else f"{namespace}/{name}", new)
        return await super().delete(res, name, namespace, **kw)

    async def update(self, res: Res, obj: Obj, namespace: str | None = None, **kw: Any) -> Obj:
        out = await super().update(res, obj, namespace, **kw)
        if kw.get("subresource") == "finalize":
            meta = out["metadata"]
            if meta.get("deletionTimestamp") and not (out.get("spec") or {}).get("finalizers"):
                await self.finish_deletion(res, meta["name"])
        return out

    async def patch(
        self, res: Res, name: str, patch: Any, namespace: str | None = None, **kw: Any
    ) -> Obj:
        out = await super().patch(res, name, patch, namespace, **kw)
        meta = out["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            await self.finish_deletion(res, f"{namespace}/{name}" if namespace else name)
        return out


async def until(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            if result := check():
                return result
            await asyncio.sleep(0.005)


class Env:
    def __init__(self, fake: Fake, c: NamespaceController, clock: Clock) -> None:
        self.fake = fake
        self.c = c
        self.clock = clock

    def conditions(self) -> dict[str, Obj]:
        ns = self.fake.store("namespaces").get(NS)
        assert ns is not None
        return {c["type"]: c for c in (ns.get("status") or {}).get("conditions") or ()}

    def gone(self) -> bool:
        return NS not in self.fake.store("namespaces")


@contextlib.asynccontextmanager
async def env(*, run: bool = True) -> AsyncIterator[Env]:
    fake = Fake()
    clock = Clock()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = NamespaceController(ControllerContext(fake, informers, clock=clock), workers=2)  # type: ignore[arg-type]
    informers.start()
    task = asyncio.create_task(c.run()) if run else None
    try:
        await informers.wait_synced(timeout=5)
        yield Env(fake, c, clock)
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await informers.stop()
        await c.stop()


async def populate(fake: Fake) -> None:
    await fake.create("namespaces", {"metadata": {"name": NS}})
    await fake.create("namespaces", {"metadata": {"name": "bystander"}})
    for ns in (NS, "bystander"):
        await fake.create("configmaps", {"metadata": {"name": "cm"}, "data": {}}, ns)
        await fake.create("replicasets", {"metadata": {"name": "rs"}, "spec": {}}, ns)
        await fake.create("serviceaccounts", {"metadata": {"name": "default"}}, ns)
        for i in range(2):
            await fake.create(
                "pods",
                {
                    "metadata": {"name": f"p{i}"},
                    "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30},
                },
                ns,
            )


async def test_deleting_a_namespace_empties_it_then_removes_it() -> None:
    async with env() as e:
        await populate(e.fake)
        await e.fake.settle(*e.c.informers)
        assert e.fake.writes("delete", "pods") == []  # nothing is Terminating yet
        await e.fake.delete("namespaces", NS)
        # Pods wait for their kubelet; everything else is gone at once.
        await until(lambda: CONTENT_REMAINING in e.conditions())
        cond = e.conditions()[CONTENT_REMAINING]
        assert cond["status"] == "True" and cond["reason"] == "SomeResourcesRemain"
        assert cond["message"] == "Some resources are remaining: pods. has 2 resource instances"
        assert e.conditions()[FINALIZERS_REMAINING]["status"] == "False"
        assert e.conditions()[CONTENT_FAILURE]["reason"] == "ContentDeleted"
        for res in ("configmaps", "replicasets", "serviceaccounts"):
            assert e.fake.list_objects(res, NS) == []
        assert ("deletecollection", "pods", NS) in e.fake.calls
        assert not e.gone()
        assert e.fake.store("namespaces")[NS]["spec"]["finalizers"] == ["kubernetes"]
        for i in range(2):
            await e.fake.finish_deletion("pods", f"{NS}/p{i}")
        # The last pod going requeues the namespace at once, not after the estimate.
        await until(e.gone, timeout=3)
        # The other namespace is untouched.
        assert len(e.fake.list_objects("pods", "bystander")) == 2
        assert len(e.fake.list_objects("configmaps", "bystander")) == 1


async def test_finalizers_remaining_and_overdue_pods() -> None:
    async with env(run=False) as e:
        await e.fake.create("namespaces", {"metadata": {"name": NS}})
        await e.fake.create(
            "configmaps", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}, NS
        )
        await e.fake.create(
            "pods",
            {
                "metadata": {"name": "p"},
                "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 30},
            },
            NS,
        )
        await e.fake.delete("namespaces", NS)
        await e.fake.settle(*e.c.informers)
        delay = await e.c.reconcile(NS)
        assert delay == 30 // 2 + 1  # the pods' grace period, halved, plus one
        conds = e.conditions()
        assert conds[FINALIZERS_REMAINING]["message"] == (
            "Some finalizers are remaining: example.com/hold in 1 resource instances"
        )
        assert conds[FINALIZERS_REMAINING]["reason"] == "SomeFinalizerRemain"
        assert conds[CONTENT_REMAINING]["message"] == (
            "Some resources are remaining: configmaps. has 1 resource instances, "
            "pods. has 1 resource instances"
        )
        # Past the grace period a pod with no finalizer should be gone: that is a failure.
        e.clock.t += 60
        await e.fake.settle(*e.c.informers)
        with pytest.raises(ApiError, match="unexpected items still remain"):
            await e.c.reconcile(NS)
        conds = e.conditions()
        assert conds[CONTENT_FAILURE]["status"] == "True"
        assert conds[CONTENT_FAILURE]["reason"] == "ContentDeletionFailed"
        await e.fake.finish_deletion("pods", f"{NS}/p")
        await e.fake.patch("configmaps", "held", {"metadata": {"finalizers": None}}, NS)
        await e.fake.settle(*e.c.informers)
        assert await e.c.reconcile(NS) is None
        assert e.gone()


async def test_active_namespaces_are_left_alone() -> None:
    async with env(run=False) as e:
        await e.fake.create("namespaces", {"metadata": {"name": NS}})
        await e.fake.create("configmaps", {"metadata": {"name": "cm"}}, NS)
        await e.fake.settle(*e.c.informers)
        assert await e.c.reconcile(NS) is None
        assert await e.c.reconcile("missing") is None
        assert len(e.fake.list_objects("configmaps", NS)) == 1
        assert e.fake.writes("update/finalize", "namespaces") == []


def test_condition_transition_times() -> None:
    first = updated_conditions(
        [],
        {CONTENT_REMAINING: {"status": "True", "reason": "SomeResourcesRemain", "message": "m"}},
        "t1",
    )
    assert [c["type"] for c in first] == [
        "NamespaceDeletionDiscoveryFailure",
        "NamespaceDeletionGroupVersionParsingFailure",
        CONTENT_FAILURE,
        CONTENT_REMAINING,
        FINALIZERS_REMAINING,
    ]
    assert all(c["lastTransitionTime"] == "t1" for c in first)
    second = updated_conditions(
        first,
        {CONTENT_REMAINING: {"status": "True", "reason": "SomeResourcesRemain", "message": "n"}},
        "t2",
    )
    remaining = next(c for c in second if c["type"] == CONTENT_REMAINING)
    assert remaining["message"] == "n" and remaining["lastTransitionTime"] == "t1"
    third = updated_conditions(second, {}, "t3")
    remaining = next(c for c in third if c["type"] == CONTENT_REMAINING)
    assert remaining == {
        "type": CONTENT_REMAINING,
        "status": "False",
        "reason": "ContentRemoved",
        "message": "All content successfully removed",
        "lastTransitionTime": "t3",
    }
    assert updated_conditions(third, {}, "t4") == third


# -- ServiceAccounts -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sa_env(fake: Fake | None = None) -> AsyncIterator[tuple[Fake, ServiceAccountsController]]:
    fake = fake or Fake()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = ServiceAccountsController(ControllerContext(fake, informers))  # type: ignore[arg-type]
    informers.start()
    task = asyncio.create_task(c.run())
    try:
        await informers.wait_synced(timeout=5)
        yield fake, c
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await informers.stop()


async def test_default_service_account_in_every_namespace() -> None:
    fake = Fake()
    await fake.create("namespaces", {"metadata": {"name": "a"}})  # before the controller
    async with sa_env(fake) as (fake, c):
        await fake.create("namespaces", {"metadata": {"name": "b"}})
        await until(lambda: fake.keys("serviceaccounts") == ["a/default", "b/default"])
        await fake.delete("serviceaccounts", "default", "a")
        await until(lambda: fake.keys("serviceaccounts") == ["a/default", "b/default"])
        assert fake.writes("create", "serviceaccounts").count("default") == 3
        # Another ServiceAccount going away changes nothing.
        await fake.create("serviceaccounts", {"metadata": {"name": "other"}}, "b")
        await fake.delete("serviceaccounts", "other", "b")
        # A Terminating namespace does not get one back.
        await fake.delete("namespaces", "b")
        await fake.delete("serviceaccounts", "default", "b")
        await fake.settle(*c.informers)
        assert await c.reconcile("b") is None
        await asyncio.sleep(0.05)
        assert fake.keys("serviceaccounts") == ["a/default"]


async def test_existing_service_accounts_are_kept() -> None:
    fake = Fake()
    await fake.create("namespaces", {"metadata": {"name": "a"}})
    sa = await fake.create("serviceaccounts", {"metadata": {"name": "default"}}, "a")
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = ServiceAccountsController(ControllerContext(fake, informers))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        assert await c.reconcile("a") is None
        assert fake.writes("create", "serviceaccounts") == ["default"]  # only ours above
        assert (
            fake.store("serviceaccounts")["a/default"]["metadata"]["uid"] == sa["metadata"]["uid"]
        )
    finally:
        await informers.stop()
