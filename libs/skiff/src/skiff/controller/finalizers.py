"""Finalizers written safely: JSON patches that test what the change was computed from
(``protectionutil`` and friends).
"""

from __future__ import annotations

from skiff.api.errors import ApiError
from skiff.client.informer import key_of
from skiff.client.rest import ApiClient, Obj
from skiff.controller.owners import cache_conflict
from skiff.log import get_logger

log = get_logger(__name__)


def has_finalizer(obj: Obj, finalizer: str) -> bool:
    return finalizer in ((obj.get("metadata") or {}).get("finalizers") or ())


def is_deletion_candidate(obj: Obj, finalizer: str) -> bool:
    """Being deleted and still held by ``finalizer`` (``protectionutil.IsDeletionCandidate``)."""
    return bool(obj["metadata"].get("deletionTimestamp")) and has_finalizer(obj, finalizer)


def needs_finalizer(obj: Obj, finalizer: str) -> bool:
    """Not being deleted and without ``finalizer`` (``protectionutil.NeedToAddFinalizer``)."""
    return not obj["metadata"].get("deletionTimestamp") and not has_finalizer(obj, finalizer)


def finalizers_patch(meta: Obj, finalizers: list[str]) -> list[Obj]:
    """JSON patch ops setting ``metadata.finalizers`` to ``finalizers``.

    The ops test what the change was computed from: the uid, and the finalizers as seen
    (or, when there were none, the resourceVersion: JSON patch cannot test for absence),
    so a concurrent change of the list fails the patch instead of being lost.
    """
    seen = list(meta.get("finalizers") or ())
    ops: list[Obj] = [{"op": "test", "path": "/metadata/uid", "value": meta["uid"]}]
    if seen:
        ops.append({"op": "test", "path": "/metadata/finalizers", "value": seen})
    else:
        rv = meta.get("resourceVersion", "")
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": rv})
    if finalizers:
        ops.append({"op": "add", "path": "/metadata/finalizers", "value": finalizers})
    elif seen:
        ops.append({"op": "remove", "path": "/metadata/finalizers"})
    return ops


async def set_finalizers(
    client: ApiClient, res: str, obj: Obj, finalizers: list[str]
) -> Obj | None:
    """Write ``finalizers`` to ``obj`` (as cached) with :func:`finalizers_patch`.

    None when the object is gone (or went away because its last finalizer was removed
    while it was being deleted). A failed test (the cache was behind) is a 409, so the
    key is retried with back-off from a fresher cache.
    """
    meta = obj["metadata"]
    ops = finalizers_patch(meta, finalizers)
    try:
        return await client.patch(res, meta["name"], ops, meta.get("namespace"), type="json")
    except ApiError as e:
        if e.code == 404:
            return None
        if e.code == 422 and "test failed" in e.message:
            raise cache_conflict(f"the finalizers of {res} {key_of(obj)} changed meanwhile") from e
        raise


async def add_finalizer(client: ApiClient, res: str, obj: Obj, finalizer: str) -> Obj | None:
    """Append ``finalizer`` to ``obj``'s finalizers (nothing when it is there)."""
    finalizers = list(obj["metadata"].get("finalizers") or ())
    if finalizer in finalizers:
        return obj
    return await set_finalizers(client, res, obj, [*finalizers, finalizer])


async def remove_finalizer(client: ApiClient, res: str, obj: Obj, finalizer: str) -> Obj | None:
    """Remove ``finalizer`` from ``obj``'s finalizers (nothing when it is not there).

    Removing the last finalizer of an object being deleted deletes it.
    """
    finalizers = list(obj["metadata"].get("finalizers") or ())
    if finalizer not in finalizers:
        return obj
    return await set_finalizers(client, res, obj, [f for f in finalizers if f != finalizer])
