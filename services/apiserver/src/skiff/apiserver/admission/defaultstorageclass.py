"""DefaultStorageClass (kube's ``plugin/pkg/admission/storage/storageclass/setdefault``):
a new claim that names no class gets the default one.

``storageClassName: ""`` asks for no class and is kept. With several defaults the newest
wins, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from skiff.api.resources import REGISTRY, is_default_storage_class
from skiff.api.timestamps import parse_time

from .interfaces import Attributes, Handler, Lister, Operation

Obj = dict[str, Any]
PLUGIN_NAME = "DefaultStorageClass"
STORAGE_CLASSES = REGISTRY.by_path("storage.k8s.io", "v1", "storageclasses")


class DefaultStorageClass(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def admit(self, attrs: Attributes) -> None:
        if attrs.group_resource != ("", "persistentvolumeclaims") or attrs.obj is None:
            return
        assert STORAGE_CLASSES is not None
        spec = attrs.obj.setdefault("spec", {})
        if spec.get("storageClassName") is not None:
            return
        defaults = [c for c in self.lister.list(STORAGE_CLASSES) if is_default_storage_class(c)]
        if defaults:
            spec["storageClassName"] = newest(defaults)["metadata"]["name"]


def newest(classes: list[Obj]) -> Obj:
    """The newest of several default classes; on a tie the first by name (kube's sort)."""
    return min(
        classes,
        key=lambda c: (-(parse_time(c["metadata"].get("creationTimestamp")) or 0.0),
                       c["metadata"]["name"]),
    )  # fmt: skip
