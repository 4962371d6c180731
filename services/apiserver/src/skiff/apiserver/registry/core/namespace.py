"""Namespaces (kube's ``pkg/registry/core/namespace``): a delete only marks them
Terminating; ``spec.finalizers`` keep them until the ``finalize`` subresource clears it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_qualified_name
from skiff.api.resources import ResourceInfo

from ...validation import invalid
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


_STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def _finalizer_names(finalizers: Any, path: str) -> list[Cause]:
    """``validateFinalizerName`` of each ``spec.finalizers`` entry: a qualified name, and
    one without a domain must be a standard one."""
    causes: list[Cause] = []
    for name in finalizers if isinstance(finalizers, list) else ():
        name = str(name)
        causes += [invalid(path, name, m) for m in is_qualified_name(name)]
        if "/" not in name and name not in _STANDARD_FINALIZERS:
            detail = "name is neither a standard finalizer name nor is it fully qualified"
            causes.append(invalid(path, name, detail))
    return causes


class NamespaceStrategy(Strategy):
    """Namespaces: kube's finalizer names; a status write keeps the phase kube allows."""

    def validate(self, obj: Obj) -> list[Cause]:
        return _finalizer_names((obj.get("spec") or {}).get("finalizers"), "spec.finalizers")

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        if subresource != "status":
            return self.validate(obj)
        phase = (obj.get("status") or {}).get("phase") or ""
        if not (obj.get("metadata") or {}).get("deletionTimestamp"):
            if phase != "Active":
                detail = "may only be 'Active' if `deletionTimestamp` is empty"
                return [invalid("status.Phase", phase, detail)]
        elif phase != "Terminating":
            detail = "may only be 'Terminating' if `deletionTimestamp` is not empty"
            return [invalid("status.Phase", phase, detail)]
        return []

    def make_subresources(self) -> Iterable[Subresource]:
        return (STATUS, FinalizeREST())

    def prepare_delete(self, obj: Obj, opts: DeleteOptions) -> tuple[bool, int]:
        obj.setdefault("status", {})["phase"] = "Terminating"
        return True, 0

    def pending_graceful(self, obj: Obj) -> bool:
        return bool((obj.get("spec") or {}).get("finalizers"))
