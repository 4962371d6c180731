"""ControllerRevisions: the StatefulSet and DaemonSet template history.

What ``k8s.io/kubernetes/pkg/controller/history`` and the DaemonSet controller's
``controller_utils`` do. A revision snapshots ``spec.template`` as the patch that
restores it (``{"spec": {"template": {..., "$patch": "replace"}}}``), is named
``<owner>-<hash>`` and carries an increasing ``revision`` number. Rolling back to an
old template reuses its revision with the next number instead of creating a new one.
When two different templates hash alike the owner's ``status.collisionCount`` is
raised and the hash computed again.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from skiff.api.errors import ApiError, Reason
from skiff.api.timestamps import parse_time
from skiff.client.informer import copy_object
from skiff.client.rest import ApiClient, Obj
from skiff.controller.owners import controller_ref, new_controller_ref

CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"
"""``apps.ControllerRevisionHashLabelKey``: the revision of a StatefulSet or DaemonSet pod."""
HISTORY_HASH_LABEL = "controller.kubernetes.io/hash"
"""``history.ControllerRevisionHashLabel``: the hash of a StatefulSet's revision."""
_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
"""``rand.SafeEncodeString``'s alphabet: no vowels, no look-alike digits."""
_MAX_PREFIX = 223
"""``ControllerRevisionName`` keeps names within 253 characters."""
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def _fnv32a(data: bytes, h: int = _FNV_OFFSET) -> int:
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """``rand.SafeEncodeString``: each byte mapped onto a vowel-free alphabet."""
    return "".join(_ALPHANUMS[b % len(_ALPHANUMS)] for b in text.encode())


def compute_hash(obj: object, collision_count: int | None = None) -> str:
    """A short, name-safe hash of a JSON value (``controller.ComputeHash``).

    FNV-32a over the canonical JSON (sorted keys) and, when given, the collision count
    as four little-endian bytes. Equal values always give equal hashes; the value is
    not byte-compatible with Kubernetes' (which hashes Go structs).
    """
    h = _fnv32a(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS))
    if collision_count is not None:
        h = _fnv32a((collision_count & 0xFFFFFFFF).to_bytes(4, "little"), h)
    return safe_encode(str(h))


def revision_name(owner_name: str, hash_: str) -> str:
    """``<owner>-<hash>``, the owner's name shortened to stay a valid name."""
    return f"{owner_name[:_MAX_PREFIX]}-{hash_}"


def template_patch(owner: Obj) -> Obj:
    """The revision data of ``owner``: the patch that restores its pod template."""
    template = copy_object(((owner.get("spec") or {}).get("template")) or {})
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def revision_template(revision: Obj) -> Obj:
    """The pod template a revision records (a fresh copy)."""
    data = revision.get("data") or {}
    template = copy_object(((data.get("spec") or {}).get("template")) or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""

    def key(r: Obj) -> tuple[int, float, str]:
        meta = r["metadata"]
        return (revision_number(r), parse_time(meta.get("creationTimestamp")) or 0.0, meta["name"])

    return sorted(revisions, key=key)


def next_revision(revisions: Iterable[Obj]) -> int:
    """One more than the highest revision number (1 for none)."""
    return max((revision_number(r) for r in revisions), default=0) + 1


def equal_revision(a: Obj, b: Obj) -> bool:
    """Whether two revisions record the same data."""
    return (a.get("data") or {}) == (b.get("data") or {})


def find_equal_revisions(revisions: Iterable[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revision(r, needle)]


def new_revision(owner: Obj, *, api_version: str, kind: str, revision: int) -> Obj:
    """An unnamed ControllerRevision of ``owner`` recording its pod template
    (:func:`template_patch`), labelled as the template is (``history.NewControllerRevision``
    as the StatefulSet's ``newRevision`` and the DaemonSet's ``snapshot`` call it)."""
    meta = owner["metadata"]
    template = (owner.get("spec") or {}).get("template") or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "namespace": meta.get("namespace"),
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
            "ownerReferences": [new_controller_ref(owner, api_version, kind)],
        },
        "data": template_patch(owner),
        "revision": revision,
    }


async def create_revision(
    client: ApiClient,
    owner: Obj,
    revision: Obj,
    collision_count: int,
    *,
    hash_of: str | None = None,
    hash_label: str = HISTORY_HASH_LABEL,
) -> tuple[Obj, int]:
    """Create ``revision`` named by its hash; returns it and the collision count used.

    ``hash_of`` is what is hashed (default: the revision's data). When the name is
    taken by a revision with other data (or another owner's), the count goes up and
    the next name is tried, as ``CreateControllerRevision`` does; the caller stores
    a raised count in its status.
    """
    meta = owner["metadata"]
    ns = meta.get("namespace")
    count = collision_count
    for _ in range(64):
        value = revision.get("data") if hash_of is None else hash_of
        h = compute_hash(value, count)
        obj = copy_object(revision)
        obj["metadata"]["name"] = revision_name(meta["name"], h)
        obj["metadata"].setdefault("labels", {})[hash_label] = h
        try:
            return await client.create("controllerrevisions", obj, ns), count
        except ApiError as e:
            if e.code != 409:
                raise
        existing = await client.get("controllerrevisions", obj["metadata"]["name"], ns)
        ref = controller_ref(existing)
        ours = ref is None or ref.get("uid") == meta.get("uid")
        if ours and equal_revision(existing, obj):
            return existing, count
        count += 1
    raise ApiError(409, Reason.CONFLICT, f"no free revision name for {meta['name']} after 64 tries")
