"""ResourceQuota (kube's ``plugin/pkg/admission/resourcequota``): a new object, or an update
that uses more, is charged to every ResourceQuota of its namespace that limits what it uses;
the charge is written to the quota's ``status.used`` (compare-and-swap on the stored quota,
so two concurrent creates cannot both take the last unit) before the object is stored, and
a request that would pass ``status.hard`` is refused with kube's message. The quota
controller recounts ``status.used`` from the objects themselves (releasing what deleted
objects held, and what a refused write was charged)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from skiff.api import errors
from skiff.api.resourcequota import (
    Usage,
    matches,
    missing_requests,
    pretty,
    quantities,
    resource_of,
    to_list,
)
from skiff.api.resourcequota import usage as usage_of
from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation, forbidden

PLUGIN_NAME = "ResourceQuota"
QUOTAS = REGISTRY.core("resourcequotas")

Obj = dict[str, Any]


class ResourceQuota(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    def _delta(self, attrs: Attributes) -> Usage:
        group, plural = attrs.group_resource
        assert attrs.obj is not None
        new = usage_of(group, plural, attrs.obj)
        if attrs.operation == Operation.UPDATE and attrs.old is not None:
            old = usage_of(group, plural, attrs.old)
            new = {k: v - old.get(k, Decimal(0)) for k, v in new.items()}
        return {k: v for k, v in new.items() if v > 0}

    def _limited(self, attrs: Attributes, quota: Obj) -> list[str]:
        """The hard resources of ``quota`` that the request's resource counts towards."""
        hard = (quota.get("status") or {}).get("hard") or {}
        return sorted(k for k in hard if resource_of(k) == attrs.group_resource)

    def _judge(self, attrs: Attributes, quota: Obj, delta: Usage) -> Usage:
        """What ``quota``'s used becomes with ``delta``; raises when it may not."""
        name = (quota.get("metadata") or {}).get("name", "")
        status = quota.get("status") or {}
        hard_raw, used_raw = status.get("hard") or {}, status.get("used") or {}
        hard, used = quantities(hard_raw), quantities(used_raw)
        limited = self._limited(attrs, quota)
        for k in limited:
            if k not in used_raw:
                raise forbidden(attrs, f"status unknown for quota: {name}, resource: {k}")
        requested = {k: delta.get(k, Decimal(0)) for k in limited}
        new_used = {k: used.get(k, Decimal(0)) + v for k, v in requested.items()}
        exceeded = sorted(k for k in limited if k in hard and new_used[k] > hard[k])
        if exceeded:
            raise forbidden(
                attrs,
                f"exceeded quota: {name}, requested: "
                f"{pretty({k: requested[k] for k in exceeded}, hard_raw)}, used: "
                f"{pretty({k: used.get(k, Decimal(0)) for k in exceeded}, used_raw)}, limited: "
                f"{pretty({k: hard[k] for k in exceeded}, hard_raw)}",
            )
        return {**used, **new_used}

    async def validate(self, attrs: Attributes) -> None:
        if attrs.subresource or attrs.obj is None or not attrs.namespace:
            return
        group, plural = attrs.group_resource
        quotas = [
            q for q in self.lister.list(QUOTAS)
            if (q.get("metadata") or {}).get("namespace") == attrs.namespace
            and self._limited(attrs, q) and matches(q, group, plural, attrs.obj)
        ]  # fmt: skip
        if not quotas:
            return
        delta = self._delta(attrs)
        if not delta:
            return
        if (group, plural) == ("", "pods") and attrs.operation == Operation.CREATE:
            for quota in quotas:
                missing = missing_requests(self._limited(attrs, quota), attrs.obj)
                if missing:
                    name = quota["metadata"]["name"]
                    raise forbidden(attrs, f"failed quota: {name}: {missing}")
        for quota in quotas:  # from the cache: refuse early, before charging any
            self._judge(attrs, quota, delta)
        if attrs.dry_run:
            return
        for quota in quotas:
            await self._charge(attrs, quota, delta)

    async def _charge(self, attrs: Attributes, quota: Obj, delta: Usage) -> None:
        def charge(current: Obj) -> Obj:
            used = self._judge(attrs, current, delta)
            status = current.setdefault("status", {})
            like = {**(status.get("hard") or {}), **(status.get("used") or {})}
            status["used"] = {**(status.get("used") or {}), **to_list(used, like)}
            return current

        meta = quota["metadata"]
        try:
            await self.lister.update_status(QUOTAS, meta["namespace"], meta["name"], charge)
        except errors.ApiError as e:
            if e.code != 404:  # a quota deleted meanwhile limits nothing
                raise
