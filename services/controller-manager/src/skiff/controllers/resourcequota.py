"""The resource quota controller (``pkg/controller/resourcequota``): each ResourceQuota's
``status.hard`` is its ``spec.hard`` and ``status.used`` what the objects of its namespace
use (:mod:`skiff.api.resourcequota`, the same evaluators the apiserver's admission
charges with). A quota is recounted when its spec changes, when a pod, service, claim,
ConfigMap, Secret, ReplicationController or quota of its namespace goes or uses less than
before (kube's replenishment), and every ``sync_period`` seconds (kube's
``--resource-quota-sync-period``). Not when one comes or a quota's status changes:
admission charged it already, and a recount then (from a cache that has not seen the
objects admitted a moment ago) would lower ``used`` below what was admitted and let more
in than the quota allows. ``count/<resource>`` of other resources are listed from
the API at each recount, and recounted every ``LISTED_RESYNC`` seconds."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.api.resourcequota import matches, resource_of, to_list, usage
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.client.informer import Informer
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext
from skiff.controller.owners import NAMESPACE_INDEX, namespace_index

INFORMED = ("pods", "services", "persistentvolumeclaims", "configmaps", "secrets",
            "replicationcontrollers", "resourcequotas")  # fmt: skip
"""Core resources watched for replenishment (kube's default evaluators' and the common
object counts)."""
LISTED_RESYNC = 15.0
"""Seconds between recounts of a quota that counts resources no informer watches."""


def _ignore(_obj: Obj) -> None:
    """Creations: admission charged them."""


def _info(group: str, plural: str) -> ResourceInfo | None:
    for info in REGISTRY.resources:
        if info.group == group and info.plural == plural:
            return info
    return None


class ResourceQuotaController(Controller):
    """Keeps every ResourceQuota's status: hard from the spec, used recounted."""

    name: ClassVar[str] = "resourcequota-controller"

    def __init__(
        self, ctx: ControllerContext, *, workers: int = 5, sync_period: float = 300.0
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.sync_period = sync_period
        self.quotas = ctx.informers.index("resourcequotas", NAMESPACE_INDEX, namespace_index)
        self.watch("resourcequotas")
        self.quotas.add_handler(self.enqueue, self._quota_updated, self._other)
        self.informed: dict[tuple[str, str], Informer] = {}
        for plural in INFORMED:
            inf = ctx.informers.index(plural, NAMESPACE_INDEX, namespace_index)
            self.watch(plural)
            self.informed[("", plural)] = inf
            if plural != "resourcequotas":
                inf.add_handler(_ignore, self._updated(plural), self._other)

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        if (old.get("spec") or {}) != (new.get("spec") or {}) or not new.get("status"):
            self.enqueue(new)

    def _updated(self, plural: str):  # type: ignore[no-untyped-def]
        def handler(old: Obj, new: Obj) -> None:
            before, after = usage("", plural, old), usage("", plural, new)
            if any(after.get(name, Decimal(0)) < v for name, v in before.items()):
                self._other(new)  # e.g. a pod that finished: it no longer counts

        return handler

    def _other(self, obj: Obj) -> None:
        """Replenishment: recount the quotas of ``obj``'s namespace."""
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        for quota in self.quotas.store.by_index(NAMESPACE_INDEX, ns):
            self.enqueue(quota)

    async def _objects(self, group: str, plural: str, namespace: str) -> list[Obj] | None:
        inf = self.informed.get((group, plural))
        if inf is not None:
            return inf.store.by_index(NAMESPACE_INDEX, namespace)
        info = _info(group, plural)
        if info is None or not info.namespaced:
            return None
        items, _rv = await self.client.list_all(info, namespace)
        return items

    async def reconcile(self, key: str) -> float | None:
        quota = self.quotas.get(key)
        if quota is None:
            return None
        namespace = quota["metadata"].get("namespace") or ""
        hard = (quota.get("spec") or {}).get("hard") or {}
        wanted: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name in hard:
            res = resource_of(name)
            if res is not None:
                wanted[res].append(name)
        used = {name: Decimal(0) for name in hard}
        listed = False
        for (group, plural), names in wanted.items():
            objects = await self._objects(group, plural, namespace)
            listed = listed or (group, plural) not in self.informed
            for obj in objects or ():
                if not matches(quota, group, plural, obj):
                    continue
                counted = usage(group, plural, obj)
                for name in names:
                    used[name] += counted.get(name, Decimal(0))
        status = {"hard": dict(hard), "used": to_list(used, hard)}
        if quota.get("status") != status:
            try:
                await self.client.update(
                    "resourcequotas", dict(quota, status=status), namespace, subresource="status"
                )
            except ApiError as e:
                if e.code in (404, 409):  # gone, or the cache is behind: the watch brings it
                    return None
                raise
        return LISTED_RESYNC if listed else self.sync_period
