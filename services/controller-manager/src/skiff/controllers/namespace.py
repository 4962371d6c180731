"""The namespace controller (``pkg/controller/namespace``).

A namespace being deleted (``deletionTimestamp`` set, phase ``Terminating``) is
emptied: every namespaced resource type the API serves that can be listed and
deleted is deleted with background propagation (``deletecollection``, or one by
one where the collection cannot be deleted). Pods take their grace period, objects
with finalizers wait for them; meanwhile the namespace's conditions say what is
left (``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``,
``NamespaceDeletionContentFailure``…) and the namespace is looked at again after
half the longest grace period (as Kubernetes does), or as soon as its last pod is
gone. When nothing is left, the ``kubernetes`` finalizer is removed through
``/finalize`` and the API server removes the namespace.

The API server refuses new content in a Terminating namespace
(``NamespaceLifecycle``), so nothing new appears while this runs.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import ClassVar

from skiff.api.errors import ApiError, Reason
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.discovery import custom_resources
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.owners import NAMESPACE_INDEX, namespace_index

FINALIZER = "kubernetes"
"""The namespace finalizer this controller owns (``spec.finalizers``)."""
FINALIZER_ESTIMATE_SECONDS = 15
"""The wait assumed for objects held by finalizers (``finalizerEstimateSeconds``)."""
DELETE_CONCURRENCY = 16

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
GV_PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

CONDITION_TYPES = (
    DISCOVERY_FAILURE,
    GV_PARSING_FAILURE,
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    FINALIZERS_REMAINING,
)
OK_REASONS = {
    DISCOVERY_FAILURE: "ResourcesDiscovered",
    GV_PARSING_FAILURE: "ParsedGroupVersions",
    CONTENT_FAILURE: "ContentDeleted",
    CONTENT_REMAINING: "ContentRemoved",
    FINALIZERS_REMAINING: "ContentRemoved",
}
OK_MESSAGES = {
    DISCOVERY_FAILURE: "All resources successfully discovered",
    GV_PARSING_FAILURE: "All legacy kube types successfully parsed",
    CONTENT_FAILURE: "All content successfully deleted, may be waiting on finalization",
    CONTENT_REMAINING: "All content successfully removed",
    FINALIZERS_REMAINING: "All content successfully removed",
}


def deletable(info: ResourceInfo) -> bool:
    """Namespaced and deletable: content the controller removes."""
    verbs = set(info.verbs)
    return info.namespaced and "list" in verbs and bool(verbs & {"delete", "deletecollection"})


class ContentRemaining:
    """What one pass left in a namespace (``allGVRDeletionMetadata``)."""

    def __init__(self) -> None:
        self.estimate = 0
        self.by_resource: dict[ResourceInfo, int] = {}
        self.by_finalizer: Counter[str] = Counter()
        self.errors: list[str] = []

    @property
    def empty(self) -> bool:
        return not self.by_resource

    def conditions(self) -> dict[str, Obj]:
        """The failing conditions (type → condition without times); the others are fine."""
        out: dict[str, Obj] = {}
        if self.by_resource:
            parts = sorted(
                f"{info.plural}.{info.group} has {n} resource instances"
                for info, n in self.by_resource.items()
            )
            out[CONTENT_REMAINING] = {
                "status": "True",
                "reason": "SomeResourcesRemain",
                "message": f"Some resources are remaining: {', '.join(parts)}",
            }
        if self.by_finalizer:
            parts = sorted(f"{f} in {n} resource instances" for f, n in self.by_finalizer.items())
            out[FINALIZERS_REMAINING] = {
                "status": "True",
                "reason": "SomeFinalizerRemain",
                "message": f"Some finalizers are remaining: {', '.join(parts)}",
            }
        if self.errors:
            msgs = sorted(self.errors)
            out[CONTENT_FAILURE] = {
                "status": "True",
                "reason": "ContentDeletionFailed",
                "message": (
                    f"Failed to delete all resource types, {len(msgs)} remaining: "
                    + ", ".join(msgs)
                ),
            }
        return out


def updated_conditions(current: list[Obj], failing: dict[str, Obj], now: str) -> list[Obj]:
    """``current`` with the controller's five conditions set (``updateConditions``).

    A type not failing gets its "ok" variant; ``lastTransitionTime`` moves only when
    the status does.
    """
    out = [dict(c) for c in current]
    for ctype in CONDITION_TYPES:
        new = failing.get(ctype) or {
            "status": "False",
            "reason": OK_REASONS[ctype],
            "message": OK_MESSAGES[ctype],
        }
        old = next((c for c in out if c.get("type") == ctype), None)
        if old is None:
            out.append({"type": ctype, **new, "lastTransitionTime": now})
            continue
        if old.get("status") != new["status"]:
            old["lastTransitionTime"] = now
        old.update(new)
    return out


class NamespaceController(Controller):
    """Empties Terminating namespaces, then finalizes them."""

    name: ClassVar[str] = "namespace-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 10,
        resources: Iterable[ResourceInfo] | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.resources = [
            r for r in (resources if resources is not None else REGISTRY.resources) if deletable(r)
        ]
        self.namespaces = self.watch("namespaces")
        self.namespaces.add_handler(
            self._namespace_changed, lambda _o, n: self._namespace_changed(n)
        )
        ctx.informers.index("pods", NAMESPACE_INDEX, namespace_index)
        self.pods = self.watch("pods")
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- event handlers ------------------------------------------------------------------

    def _namespace_changed(self, ns: Obj) -> None:
        if ns["metadata"].get("deletionTimestamp"):
            self.enqueue(ns)

    def _pod_deleted(self, pod: Obj) -> None:
        """The last pod of a Terminating namespace is gone: finish it now, not at the estimate."""
        name = pod["metadata"].get("namespace") or ""
        ns = self.namespaces.get(name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if not self.pods.store.index_keys(NAMESPACE_INDEX, name):
            self.queue.add(name)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.namespaces.get(key)
        if cached is None or not cached["metadata"].get("deletionTimestamp"):
            return None
        # Several controllers edit a namespace while it terminates: start from the API.
        try:
            ns = await self.client.get("namespaces", key)
        except ApiError as e:
            if e.code == 404:
                return None
            raise
        if not ns["metadata"].get("deletionTimestamp"):
            return None
        ns = await self._ensure_terminating(ns)
        if ns is None or not (ns.get("spec") or {}).get("finalizers"):
            return None  # gone, or finalized already
        left = await self.delete_all_content(ns)
        await self._update_conditions(ns, left)
        if left.errors:
            raise ApiError(
                500, Reason.INTERNAL_ERROR, f"namespace {key}: {'; '.join(sorted(left.errors))}"
            )
        if not left.empty:
            self.log.info(
                "content remains",
                namespace=key,
                resources={i.qualified: n for i, n in left.by_resource.items()},
                estimate=left.estimate,
            )
            return left.estimate // 2 + 1
        await self._finalize(ns)
        return None

    async def _ensure_terminating(self, ns: Obj) -> Obj | None:
        """Phase ``Terminating`` (the API server sets it on delete; this is a safety net)."""
        if (ns.get("status") or {}).get("phase") == "Terminating":
            return ns
        obj = writable(ns)
        obj.setdefault("status", {})["phase"] = "Terminating"
        try:
            return await self.client.update("namespaces", obj, subresource="status")
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    # -- content -------------------------------------------------------------------------

    async def delete_all_content(self, ns: Obj) -> ContentRemaining:
        """Delete everything in ``ns``; report what is left (``deleteAllContent``)."""
        name = ns["metadata"]["name"]
        deleted_at = parse_time(ns["metadata"].get("deletionTimestamp")) or self.ctx.clock()
        left = ContentRemaining()
        # Custom resources come and go with their definitions: ask discovery each time.
        custom = [i for i in await custom_resources(self.client) if deletable(i)]
        resources = [*self.resources, *custom]
        results = await asyncio.gather(
            *(self._delete_resource(info, name, deleted_at, left) for info in resources),
            return_exceptions=True,
        )
        for info, r in zip(resources, results, strict=True):
            if isinstance(r, ApiError):
                left.errors.append(f"{info.qualified}: {r.message}")
            elif isinstance(r, BaseException):
                raise r
        return left

    async def _delete_resource(
        self, info: ResourceInfo, namespace: str, deleted_at: float, left: ContentRemaining
    ) -> None:
        """Delete the ``info`` objects of ``namespace``; record what remains."""
        items, _ = await self.client.list_all(info, namespace)
        if not items:
            return
        estimate = self._estimate(info, items, deleted_at)
        live = [o for o in items if not o["metadata"].get("deletionTimestamp")]
        if live:
            await self._delete_collection(info, namespace, live)
            items, _ = await self.client.list_all(info, namespace)
            if not items:
                return
        left.by_resource[info] = len(items)
        for o in items:
            left.by_finalizer.update(o["metadata"].get("finalizers") or ())
        if estimate:
            left.estimate = max(left.estimate, estimate)
        elif any(o["metadata"].get("finalizers") for o in items):
            left.estimate = max(left.estimate, FINALIZER_ESTIMATE_SECONDS)
        else:
            raise ApiError(
                500,
                Reason.INTERNAL_ERROR,
                f"unexpected items still remain in namespace: {namespace} for gvr: "
                f"{info.group_version}, Resource={info.plural}",
            )

    def _estimate(self, info: ResourceInfo, items: list[Obj], deleted_at: float) -> int:
        """Seconds graceful deletion may still take (pods only), 0 once it is overdue."""
        if info.plural != "pods" or info.group:
            return 0
        estimate = 0
        for pod in items:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            if grace is not None:
                estimate = max(estimate, int(grace))
        if self.ctx.clock() - deleted_at >= estimate:
            return 0
        return estimate

    async def _delete_collection(self, info: ResourceInfo, namespace: str, live: list[Obj]) -> None:
        """``deletecollection`` with background propagation, else one delete per object.

        ``ApiClient`` has no ``delete_collection`` method: ``delete`` with an empty name
        sends the same request (DELETE on the collection path).
        """
        if "deletecollection" in info.verbs:
            try:
                await self.client.delete(info, "", namespace, propagation_policy="Background")
                return
            except ApiError as e:
                if e.code not in (404, 405):
                    raise
        sem = asyncio.Semaphore(DELETE_CONCURRENCY)

        async def one(obj: Obj) -> None:
            meta = obj["metadata"]
            async with sem:
                try:
                    await self.client.delete(
                        info,
                        meta["name"],
                        namespace,
                        propagation_policy="Background",
                        preconditions={"uid": meta["uid"]},
                    )
                except ApiError as e:
                    if e.code not in (404, 409):
                        raise

        results = await asyncio.gather(*(one(o) for o in live), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    # -- status and finalization ---------------------------------------------------------

    async def _update_conditions(self, ns: Obj, left: ContentRemaining) -> None:
        status = ns.get("status") or {}
        current = status.get("conditions") or []
        conditions = updated_conditions(current, left.conditions(), rfc3339(self.ctx.clock()))
        if conditions == current:
            return
        obj = writable(ns)
        obj.setdefault("status", {})["conditions"] = conditions
        try:
            updated = await self.client.update("namespaces", obj, subresource="status")
        except ApiError as e:
            # Not fatal (Kubernetes only logs it): the next pass writes them again.
            self.log.info(
                "could not update namespace conditions",
                namespace=ns["metadata"]["name"],
                error=e.message,
            )
            return
        ns["metadata"]["resourceVersion"] = updated["metadata"].get("resourceVersion")

    async def _finalize(self, ns: Obj) -> None:
        """Remove ``kubernetes`` from ``spec.finalizers`` through ``/finalize``."""
        obj = writable(ns)
        spec = obj.setdefault("spec", {})
        spec["finalizers"] = sorted({f for f in spec.get("finalizers") or () if f != FINALIZER})
        try:
            await self.client.update("namespaces", obj, subresource="finalize")
        except ApiError as e:
            if e.code != 404:
                raise
            return
        self.log.info("namespace finalized", namespace=ns["metadata"]["name"])
