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


def _old_spec(old: Obj | None) -> dict | None:
    return (old.get("spec") or {}) if old else None


class ServiceStrategy(Strategy):
    claims_keys = True
    # kube's PrepareForCreate: an empty ServiceStatus, written {"loadBalancer": {}}.
    initial_status: ClassVar[dict[str, Any] | None] = {"loadBalancer": {}}

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        if isinstance(obj.get("spec"), dict):
            allocators.normalize(obj["spec"], _old_spec(old))

    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate(obj, None)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self._validate(obj, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[Cause]:
        spec = obj.get("spec") or {}
        causes = allocators.validate(spec, _old_spec(old))
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                causes.append(
                    Cause(
                        f"spec.ports[{i}].port",
                        f"Invalid value: {port}: must be between 1 and 65535, inclusive",
                    )
                )
        return causes

    def held(self, obj: Obj) -> dict[str, bytes]:
        return allocators.held(obj)

    async def assign(
        self, store: GenericStore, obj: Obj, old: Obj | None, avoid: set[str]
    ) -> set[str]:
        return await store.services.assign(obj, old, avoid)

    def taken(self, store: GenericStore, obj: Obj, key: str) -> ApiError:
        return store.services.taken(obj, key)
