"""DefaultStorageClass (kube's ``plugin/pkg/admission/storage/storageclass/setdefault``):
a new claim that names no class gets the default one.

``storageClassName: ""`` asks for no class and is kept. With several defaults the newest
wins, as in Kubernetes.
"""

from __future__ import annotations

from skiff.api.resources import REGISTRY, is_default_storage_class

from .interfaces import Attributes, Handler, Lister, Operation

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
            newest = max(
                defaults,
                key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]),
            )
            spec["storageClassName"] = newest["metadata"]["name"]
