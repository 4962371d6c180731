"""Garbage-collection finalizers a delete sets, as Kubernetes' generic registry does, and the
StorageObjectInUseProtection finalizers of new claims and volumes."""

from __future__ import annotations

import pytest

from skiff.api.resources import REGISTRY
from skiff.apiserver.admission import gc_finalizers, storage_object_in_use_protection


def info(group: str, version: str, plural: str):  # type: ignore[no-untyped-def]
    found = REGISTRY.by_path(group, version, plural)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("resource", "before", "policy", "after"),
    [
        (("apps", "v1", "replicasets"), [], None, []),
        (("apps", "v1", "replicasets"), [], "Orphan", ["orphan"]),
        (("apps", "v1", "replicasets"), ["x"], "Foreground", ["x", "foregroundDeletion"]),
        # An explicit policy replaces the other one; Background removes both.
        (("apps", "v1", "replicasets"), ["orphan"], "Foreground", ["foregroundDeletion"]),
        (("apps", "v1", "replicasets"), ["foregroundDeletion"], "Orphan", ["orphan"]),
        (("apps", "v1", "replicasets"), ["orphan", "x"], "Background", ["x"]),
        # No policy: what is there stays; else the kind's default.
        (("apps", "v1", "replicasets"), ["orphan"], None, ["orphan"]),
        (("", "v1", "replicationcontrollers"), [], None, ["orphan"]),
        (("batch", "v1", "jobs"), [], None, ["orphan"]),
        (("batch", "v1", "jobs"), [], "Background", []),
    ],
)
def test_gc_finalizers(
    resource: tuple[str, str, str], before: list[str], policy: str | None, after: list[str]
) -> None:
    assert gc_finalizers(info(*resource), before, policy) == after


@pytest.mark.parametrize(
    ("plural", "before", "after"),
    [
        ("persistentvolumeclaims", None, ["kubernetes.io/pvc-protection"]),
        ("persistentvolumeclaims", ["x"], ["x", "kubernetes.io/pvc-protection"]),
        ("persistentvolumeclaims", ["kubernetes.io/pvc-protection"], None),
        ("persistentvolumes", None, ["kubernetes.io/pv-protection"]),
        ("persistentvolumes", ["kubernetes.io/pv-protection", "x"], None),
        ("pods", None, None),
        ("configmaps", ["x"], None),
    ],
)
def test_storage_object_in_use_protection(
    plural: str, before: list[str] | None, after: list[str] | None
) -> None:
    meta: dict = {"name": "o"} if before is None else {"name": "o", "finalizers": list(before)}
    storage_object_in_use_protection(info("", "v1", plural), {"metadata": meta})
    assert meta.get("finalizers") == (after if after is not None else before)
