"""An in-memory API for unit tests of controllers and other clients: enough of
:class:`~skiff.client.rest.ApiClient`.

``FakeApi`` keeps objects per resource, assigns names (``generateName``), uids and
resourceVersions, applies json and merge patches, and feeds informers through
``list_all`` and ``watch``. With ``honor_finalizers`` a delete of an object with
finalizers only sets its deletionTimestamp, and the write that removes the last one
removes the object, as the apiserver does. ``hold()`` stops delivering watch events
(a slow cache) until ``release()``; ``fail_creates`` makes the next creates fail. Every
write is recorded in ``calls`` as ``(verb, resource, name)``.

Not for tests that claim a feature works against the real apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import string
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from skiff.api import patch as patching
from skiff.api.errors import ApiError, Reason
from skiff.api.timestamps import rfc3339
from skiff.client.informer import Informer, copy_object, key_of
from skiff.client.rest import Obj, Res, _info
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.informers import SharedInformers

_SUFFIX = string.ascii_lowercase + string.digits


def _plural(res: Res) -> str:
    return _info(res).plural


def _key(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


class FakeApi:
    """A tiny API server in memory (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        """Wall-clock seconds for creation and deletion timestamps (tests pass their own)."""
        self.objects: dict[str, dict[str, Obj]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self.fail_creates = 0
        """How many of the next pod creates fail with a 500."""
        self.graceful_pod_delete = False
        """Deleting a scheduled pod only sets deletionTimestamp (its kubelet finishes it)."""
        self.honor_finalizers = False
        """Objects with finalizers stay (with deletionTimestamp) until the last one goes."""
        self._rv = itertools.count(1)
        self.rv = 0
        self._log: list[tuple[int, str, str, Obj]] = []
        self._held: list[tuple[int, str, str, Obj]] = []
        self._holding = False
        self._new = asyncio.Event()

    # -- event delivery ------------------------------------------------------------------

    def hold(self) -> None:
        """Stop delivering watch events (they queue up)."""
        self._holding = True

    def release(self) -> None:
        """Deliver the queued events and go on delivering."""
        self._holding = False
        self._log.extend(self._held)
        self._held.clear()
        self._wake()

    def delivered_rv(self, res: Res) -> int:
        """The resourceVersion of the last delivered event of ``res``."""
        plural = _plural(res)
        return max((rv for rv, p, _, _ in self._log if p == plural), default=0)

    async def settle(self, *informers: Informer, timeout: float = 5.0) -> None:
        """Wait until the informers have seen every delivered event and are synced."""
        async with asyncio.timeout(timeout):
            while True:
                if all(
                    inf.has_synced()
                    and int(inf.resource_version or 0) >= self.delivered_rv(inf.info)
                    for inf in informers
                ):
                    return
                await asyncio.sleep(0)

    def _wake(self) -> None:
        self._new.set()
        self._new = asyncio.Event()

    def _publish(self, plural: str, etype: str, obj: Obj) -> None:
        entry = (int(obj["metadata"]["resourceVersion"]), plural, etype, copy_object(obj))
        (self._held if self._holding else self._log).append(entry)
        if not self._holding:
            self._wake()

    def _bump(self, obj: Obj) -> Obj:
        self.rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        return obj

    # -- reads ---------------------------------------------------------------------------

    def store(self, res: Res) -> dict[str, Obj]:
        return self.objects.setdefault(_plural(res), {})

    def list_objects(self, res: Res, namespace: str | None = None) -> list[Obj]:
        """Current objects (copies), for assertions."""
        return [
            copy_object(o)
            for o in self.store(res).values()
            if namespace is None or o["metadata"].get("namespace") == namespace
        ]

    async def get(
        self, res: Res, name: str, namespace: str | None = None, *, subresource: str = ""
    ) -> Obj:
        obj = self.store(res).get(_key(namespace, name))
        if obj is None:
            raise ApiError(404, Reason.NOT_FOUND, f'{_plural(res)} "{name}" not found')
        return copy_object(obj)

    async def list_all(
        self, res: Res, namespace: str | None = None, **_: Any
    ) -> tuple[list[Obj], str]:
        return self.list_objects(res, namespace), str(self.rv)

    async def watch(
        self,
        res: Res,
        namespace: str | None = None,
        *,
        resource_version: str = "",
        **_: Any,
    ) -> AsyncIterator[tuple[str, Obj]]:
        plural = _plural(res)
        since = int(resource_version or 0)
        i = 0
        while True:
            while i < len(self._log):
                rv, p, etype, obj = self._log[i]
                i += 1
                if p != plural or rv <= since:
                    continue
                if namespace is not None and obj["metadata"].get("namespace") != namespace:
                    continue
                yield etype, copy_object(obj)
            await self._new.wait()

    # -- writes --------------------------------------------------------------------------

    async def create(self, res: Res, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        plural = _plural(res)
        obj = copy_object(obj)
        meta = obj.setdefault("metadata", {})
        ns = namespace or meta.get("namespace")
        if _info(res).namespaced:
            meta["namespace"] = ns
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(secrets.choice(_SUFFIX) for _ in range(5))
        self.calls.append(("create", plural, meta.get("name", "")))
        if plural == "pods" and self.fail_creates > 0:
            self.fail_creates -= 1
            raise ApiError(500, Reason.INTERNAL_ERROR, "injected create failure")
        key = _key(ns, meta["name"])
        store = self.store(res)
        if key in store:
            raise ApiError(409, Reason.ALREADY_EXISTS, f'{plural} "{meta["name"]}" already exists')
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=rfc3339(self.clock()), generation=1)
        store[key] = self._bump(obj)
        self._publish(plural, "ADDED", obj)
        return copy_object(obj)

    def _put(self, plural: str, key: str, obj: Obj) -> Obj:
        if self.honor_finalizers and (cur := self.objects[plural].get(key)) is not None:
            self._check_finalizers(cur, obj)
            meta = obj["metadata"]
            if (
                meta.get("deletionTimestamp")
                and not meta.get("finalizers")
                and not (plural == "pods" and (meta.get("deletionGracePeriodSeconds") or 0) > 0)
            ):
                del self.objects[plural][key]  # the last finalizer went: the object goes
                self._publish(plural, "DELETED", self._bump(obj))
                return copy_object(obj)
        self.objects[plural][key] = self._bump(obj)
        self._publish(plural, "MODIFIED", obj)
        return copy_object(obj)

    @staticmethod
    def _check_finalizers(cur: Obj, new: Obj) -> None:
        """The apiserver's rules: deletionTimestamp is kept; none added while deleting."""
        old_meta, meta = cur["metadata"], new["metadata"]
        if not old_meta.get("deletionTimestamp"):
            return
        meta["deletionTimestamp"] = old_meta["deletionTimestamp"]
        if set(meta.get("finalizers") or ()) - set(old_meta.get("finalizers") or ()):
            raise ApiError(
                422, Reason.INVALID, "no new finalizers can be added if the object is being deleted"
            )

    async def update(
        self, res: Res, obj: Obj, namespace: str | None = None, *, subresource: str = "", **_: Any
    ) -> Obj:
        plural = _plural(res)
        meta = obj["metadata"]
        key = _key(namespace or meta.get("namespace"), meta["name"])
        self.calls.append(("update" + (f"/{subresource}" if subresource else ""), plural, key))
        cur = self.store(res).get(key)
        if cur is None:
            raise ApiError(404, Reason.NOT_FOUND, f'{plural} "{meta["name"]}" not found')
        if meta.get("resourceVersion") != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, Reason.CONFLICT, "the object has been modified")
        new = copy_object(cur)
        if subresource == "status":
            new["status"] = copy_object(obj.get("status") or {})
        else:
            status = new.get("status")
            new = copy_object(obj)
            if status is not None:
                new["status"] = status
            if new.get("spec") != cur.get("spec"):
                new["metadata"]["generation"] = int(cur["metadata"].get("generation") or 1) + 1
        return self._put(plural, key, new)

    async def patch(
        self,
        res: Res,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        type: str = "merge",
        subresource: str = "",
        **_: Any,
    ) -> Obj:
        plural = _plural(res)
        key = _key(namespace, name)
        self.calls.append(("patch" + (f"/{subresource}" if subresource else ""), plural, key))
        cur = self.store(res).get(key)
        if cur is None:
            raise ApiError(404, Reason.NOT_FOUND, f'{plural} "{name}" not found')
        if type == "json":
            new = patching.json_patch(cur, patch)
        else:
            new = patching.merge_patch(cur, patch)
        if new.get("spec") != cur.get("spec"):
            new["metadata"]["generation"] = int(cur["metadata"].get("generation") or 1) + 1
        return self._put(plural, key, new)

    async def delete(
        self,
        res: Res,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Obj | None = None,
        **_: Any,
    ) -> Obj:
        plural = _plural(res)
        key = _key(namespace, name)
        self.calls.append(("delete", plural, key))
        store = self.store(res)
        cur = store.get(key)
        if cur is None:
            raise ApiError(404, Reason.NOT_FOUND, f'{plural} "{name}" not found')
        uid = (preconditions or {}).get("uid")
        if uid and uid != cur["metadata"]["uid"]:
            raise ApiError(409, Reason.CONFLICT, "Precondition failed: UID")
        if self.honor_finalizers and cur["metadata"].get("finalizers"):
            if cur["metadata"].get("deletionTimestamp"):
                return copy_object(cur)
            new = copy_object(cur)
            new["metadata"]["deletionTimestamp"] = rfc3339(self.clock())
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._put(plural, key, new)
        if (
            plural == "pods"
            and self.graceful_pod_delete
            and (cur.get("spec") or {}).get("nodeName")
        ):
            if cur["metadata"].get("deletionTimestamp"):
                return copy_object(cur)
            new = copy_object(cur)
            new["metadata"]["deletionTimestamp"] = rfc3339(self.clock())
            new["metadata"]["deletionGracePeriodSeconds"] = 30
            return self._put(plural, key, new)
        del store[key]
        gone = self._bump(copy_object(cur))
        self._publish(plural, "DELETED", gone)
        return gone

    async def finish_deletion(self, res: Res, key: str) -> None:
        """Remove a gracefully deleted object (what the kubelet does)."""
        cur = self.store(res).pop(key)
        self._publish(_plural(res), "DELETED", self._bump(copy_object(cur)))

    async def discovery(self, path: str) -> Obj:
        """Aggregated discovery: the fake serves no custom resources."""
        return {
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "items": [],
        }

    async def aclose(self) -> None:
        """Nothing to close."""

    def writes(self, verb: str, res: Res) -> list[str]:
        """Names (or keys) of the recorded writes of one verb to one resource."""
        plural = _plural(res)
        return [n for v, p, n in self.calls if v == verb and p == plural]

    def keys(self, res: Res) -> list[str]:
        return sorted(key_of(o) for o in self.store(res).values())


C = TypeVar("C", bound=Controller)


@contextlib.asynccontextmanager
async def running(
    make: Callable[[ControllerContext], C], fake: FakeApi | None = None
) -> AsyncIterator[tuple[FakeApi, C]]:
    """The controller ``make`` builds over ``fake`` (a new :class:`FakeApi` if none; its
    clock is the controller's), with its informers started and synced; they are stopped,
    and the controller's events flushed, at the end. For controller unit tests."""
    fake = fake or FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    controller = make(ControllerContext(fake, informers, clock=fake.clock))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield fake, controller
    finally:
        await informers.stop()
        await controller.stop()
