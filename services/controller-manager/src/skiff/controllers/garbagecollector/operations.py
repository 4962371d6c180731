"""The garbage collector's writes (``operations.go``, ``patch.go``).

Reading an object's latest state by uid, deleting with a propagation policy and a uid
precondition, and JSON patches of metadata that test what they rely on: removing owner
references, unblocking them (``blockOwnerDeletion: false``), removing a finalizer. A
404 means the object went; a namesake is never touched.
"""

from __future__ import annotations

from collections.abc import Callable

from skiff.api.errors import ApiError, Reason
from skiff.client.rest import Obj
from skiff.controller.controller import Controller

from .graph import Node


class GarbageCollectorOperationsMixin(Controller):
    """The writes of
    :class:`~skiff.controllers.garbagecollector.garbagecollector.GarbageCollector`."""

    async def _latest(self, node: Node) -> Obj | None:
        assert node.info is not None
        try:
            obj = await self.client.get(node.info, node.name, node.namespace or None)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        return obj if obj["metadata"].get("uid") == node.uid else None

    async def _delete(self, node: Node, policy: str) -> None:
        assert node.info is not None
        self.log.info("deleting object", object=node.describe(), propagation=policy)
        try:
            await self.client.delete(
                node.info,
                node.name,
                node.namespace or None,
                propagation_policy=policy,
                preconditions={"uid": node.uid},
            )
        except ApiError as e:
            if e.code not in (404, 409):  # gone, or a namesake
                raise

    async def _patch_metadata(
        self, node: Node, current: Obj | None, build: Callable[[Obj], list[Obj] | None]
    ) -> None:
        """JSON-patch ``node``'s metadata with ops ``build(metadata)`` (None: nothing to do).

        ``build`` tests what it relies on; when the object changed meanwhile it is read
        again and the patch rebuilt (three tries, then a conflict to retry later).
        """
        assert node.info is not None
        for _attempt in range(3):
            if current is None:
                current = await self._latest(node)
                if current is None:
                    return
            ops = build(current["metadata"])
            if ops is None:
                return
            ops.insert(0, {"op": "test", "path": "/metadata/uid", "value": node.uid})
            try:
                await self.client.patch(
                    node.info, node.name, ops, node.namespace or None, type="json"
                )
                return
            except ApiError as e:
                if e.code == 404:
                    return
                if not (e.code == 422 and "test failed" in e.message):
                    raise
            current = None
        raise ApiError(409, Reason.CONFLICT, f"{node.describe()} keeps changing")

    async def _remove_references(self, node: Node, current: Obj | None, uids: set[str]) -> None:
        """Drop the owner references to ``uids`` from ``node`` (cached refs tried first)."""
        if current is None and node.owners:
            current = {"metadata": {"ownerReferences": node.owners}}

        def build(meta: Obj) -> list[Obj] | None:
            refs = list(meta.get("ownerReferences") or ())
            kept = [r for r in refs if r.get("uid") not in uids]
            if len(kept) == len(refs):
                return None
            ops: list[Obj] = [{"op": "test", "path": "/metadata/ownerReferences", "value": refs}]
            if kept:
                ops.append({"op": "replace", "path": "/metadata/ownerReferences", "value": kept})
            else:
                ops.append({"op": "remove", "path": "/metadata/ownerReferences"})
            return ops

        self.log.info("removing owner references", object=node.describe(), owners=sorted(uids))
        await self._patch_metadata(node, current, build)

    async def _unblock_owner_references(self, node: Node, current: Obj) -> None:
        """Set ``blockOwnerDeletion: false`` on every reference of ``node`` that blocks."""

        def build(meta: Obj) -> list[Obj] | None:
            refs = list(meta.get("ownerReferences") or ())
            if not any(r.get("blockOwnerDeletion") for r in refs):
                return None
            new = [
                {**r, "blockOwnerDeletion": False} if r.get("blockOwnerDeletion") else r
                for r in refs
            ]
            return [
                {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
                {"op": "replace", "path": "/metadata/ownerReferences", "value": new},
            ]

        await self._patch_metadata(node, current, build)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        def build(meta: Obj) -> list[Obj] | None:
            finalizers = list(meta.get("finalizers") or ())
            if finalizer not in finalizers:
                return None
            kept = [f for f in finalizers if f != finalizer]
            ops: list[Obj] = [{"op": "test", "path": "/metadata/finalizers", "value": finalizers}]
            if kept:
                ops.append({"op": "replace", "path": "/metadata/finalizers", "value": kept})
            else:
                ops.append({"op": "remove", "path": "/metadata/finalizers"})
            return ops

        self.log.info("removing finalizer", object=node.describe(), finalizer=finalizer)
        await self._patch_metadata(node, None, build)
