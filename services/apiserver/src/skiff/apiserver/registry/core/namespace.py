"""Namespaces (kube's ``pkg/registry/core/namespace``): a delete only marks them
Terminating; ``spec.finalizers`` keep them until the ``finalize`` subresource clears it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api.resources import ResourceInfo

from ..options import DeleteOptions, WriteOptions
from ..strategy import STATUS, GenericStore, Obj, Strategy, Subresource


class FinalizeREST(Subresource):
    """``namespaces/finalize``: replace ``spec.finalizers`` (the namespace controller's
    last step); the namespace goes once they and its metadata finalizers are empty."""

    name = "finalize"
    verbs = frozenset({"get", "update", "patch"})

    async def get(
        self, store: GenericStore, info: ResourceInfo, namespace: str | None, name: str
    ) -> Obj:
        return await store.get(info, None, name)

    async def update(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        finalizers = (body.get("spec") or {}).get("finalizers") or []

        def set_finalizers(cur: Obj) -> Obj:
            cur.setdefault("spec", {})["finalizers"] = finalizers
            if not finalizers:
                cur["spec"].pop("finalizers")
            return cur

        return await store.update_with(info, None, name, set_finalizers, opts)

    async def patch(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> Obj:
        return await store.patch_object(
            info, None, name, patch_type, body, opts, subresource="finalize"
        )


class NamespaceStrategy(Strategy):
    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, FinalizeREST())

    def prepare_delete(self, obj: Obj, opts: DeleteOptions) -> tuple[bool, int]:
        obj.setdefault("status", {})["phase"] = "Terminating"
        return True, 0

    def pending_graceful(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))
