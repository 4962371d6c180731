"""Services (kube's ``pkg/registry/core/service``): ports, cluster IPs and node ports.

A Service's cluster IPs and node ports are keys of their own
(:mod:`skiff.apiserver.allocators`), claimed and released in the transaction that writes
the Service: the storage hooks :meth:`ServiceStrategy.held`, :meth:`~ServiceStrategy.assign`
and :meth:`~ServiceStrategy.taken`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from skiff.api.errors import ApiError, Cause
from skiff.apiserver import allocators

from ..strategy import GenericStore, Obj, Strategy
from .servicespec import drop_type_dependent, validate_service_spec, validate_service_update


def _old_spec(old: Obj | None) -> dict | None:
    return (old.get("spec") or {}) if old else None


class ServiceStrategy(Strategy):
    claims_keys = True
    # kube's PrepareForCreate: an empty ServiceStatus, written {"loadBalancer": {}}.
    initial_status: ClassVar[dict[str, Any] | None] = {"loadBalancer": {}}

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        if isinstance(obj.get("spec"), dict):
            allocators.normalize(obj["spec"], _old_spec(old))
            if old is not None:
                drop_type_dependent(obj["spec"], _old_spec(old) or {})

    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate(obj, None)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self._validate(obj, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = allocators.validate(spec, _old_spec(old))
        causes += validate_service_spec(obj)
        if old is not None:
            causes += validate_service_update(spec, old.get("spec") or {})
        return causes

    def held(self, obj: Obj) -> dict[str, bytes]:
        return allocators.held(obj)

    async def assign(
        self, store: GenericStore, obj: Obj, old: Obj | None, avoid: set[str]
    ) -> set[str]:
        return await store.services.assign(obj, old, avoid)

    def taken(self, store: GenericStore, obj: Obj, key: str) -> ApiError:
        return store.services.taken(obj, key)
