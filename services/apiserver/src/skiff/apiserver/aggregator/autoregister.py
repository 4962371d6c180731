"""The APIServices of what the apiserver serves itself (kube's ``autoregister`` and
``crdregistration`` controllers): one local APIService per built-in group version, with
kube's priorities, labelled ``kube-aggregator.kubernetes.io/automanaged: onstart``
(written at start; a change a user makes later is left alone), and one per served
version of a custom resource, labelled ``true`` (kept in step with the CRDs; removed when
no CRD serves the version). The aggregator's own group has none, as in kube. An
APIService without the label is never touched."""

from __future__ import annotations

import asyncio
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.resources import AGGREGATOR_GROUP, REGISTRY, apiservice_name, served_priority
from skiff.log import get_logger

from ..apiextensions.served import CRD_INFO
from ..registry.options import DeleteOptions, WriteOptions
from ..store import Store
from ..watchcache import WatchCache
from .apiservices import AUTOMANAGED, INFO

log = get_logger(__name__)

Obj = dict[str, Any]
ONSTART, ALWAYS = "onstart", "true"
RESYNC_SECONDS = 30.0


def desired() -> dict[str, tuple[str, Obj]]:
    """APIService name → (label value, spec) for every group version served here."""
    out: dict[str, tuple[str, Obj]] = {}
    for mode, infos in ((ONSTART, REGISTRY.builtin), (ALWAYS, REGISTRY.custom())):
        for r in infos:
            name = apiservice_name(r.group, r.version)
            if r.group == AGGREGATOR_GROUP or name in out:
                continue
            group_priority, version_priority = served_priority(r.group, r.version)
            spec = {
                "group": r.group,
                "version": r.version,
                "groupPriorityMinimum": group_priority,
                "versionPriority": version_priority,
            }
            out[name] = (mode, spec)
    return out


class AutoRegister:
    """Writes the local APIServices of one apiserver."""

    def __init__(self, store: Store, cache: WatchCache) -> None:
        self.store = store
        self.cache = cache
        self._wake = asyncio.Event()
        cache.observe(CRD_INFO, lambda _objects: self._wake.set())

    async def run(self) -> None:
        await self.cache.ready.wait()
        first = True
        while True:
            self._wake.clear()
            try:
                await self.sync(first)
                first = False
            except ApiError as e:
                log.warning("autoregister sync failed", error=e.message)
            try:
                await asyncio.wait_for(self._wake.wait(), RESYNC_SECONDS)
            except TimeoutError:
                pass

    async def sync(self, first: bool) -> None:
        """Create what is missing, update what changed (``onstart`` ones only on the first
        sync), delete ``true`` ones nothing serves."""
        want = desired()
        have = {o["metadata"]["name"]: o for o in self.cache.list(INFO)}
        for name, (mode, spec) in want.items():
            cur = have.get(name)
            if cur is None:
                await self._create(name, mode, spec)
                continue
            label = ((cur["metadata"].get("labels") or {}).get(AUTOMANAGED)) or ""
            if label == ALWAYS or (label == ONSTART and first):
                if cur.get("spec") != spec:
                    await self._update(name, spec)
        for name, cur in have.items():
            label = (cur["metadata"].get("labels") or {}).get(AUTOMANAGED)
            if label == ALWAYS and name not in want:
                try:
                    await self.store.delete(INFO, None, name, DeleteOptions())
                except ApiError as e:
                    if e.code != 404:
                        raise

    async def _create(self, name: str, mode: str, spec: Obj) -> None:
        obj = {"metadata": {"name": name, "labels": {AUTOMANAGED: mode}}, "spec": dict(spec)}
        try:
            await self.store.create(INFO, None, obj, WriteOptions(field_manager="kube-apiserver"))
        except ApiError as e:
            if e.code != 409:
                raise

    async def _update(self, name: str, spec: Obj) -> None:
        def mutate(cur: Obj) -> Obj:
            cur["spec"] = dict(spec)
            return cur

        try:
            await self.store.update_with(INFO, None, name, mutate, WriteOptions())
        except ApiError as e:
            if e.code not in (404, 409):
                raise
