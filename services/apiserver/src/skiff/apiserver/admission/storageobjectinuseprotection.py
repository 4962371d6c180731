"""StorageObjectInUseProtection (kube's ``plugin/pkg/admission/storage/
storageobjectinuseprotection``): a new PersistentVolumeClaim gets the
``kubernetes.io/pvc-protection`` finalizer, a new PersistentVolume
``kubernetes.io/pv-protection``, unless they already have it. A delete then only marks the
object; the pvc-protection and pv-protection controllers remove the finalizer once no
scheduled, unfinished pod uses the claim, or once the volume is no longer Bound.

It runs after managedFields are recorded, as kube-apiserver runs mutating admission after
its field manager: the finalizer belongs to no field manager, so a later apply that
leaves it out does not remove it.
"""

from __future__ import annotations

from skiff.api.resources import PV_PROTECTION_FINALIZER, PVC_PROTECTION_FINALIZER

from .interfaces import Attributes, Handler, Lister, Operation

PLUGIN_NAME = "StorageObjectInUseProtection"
FINALIZERS = {
    ("", "persistentvolumeclaims"): PVC_PROTECTION_FINALIZER,
    ("", "persistentvolumes"): PV_PROTECTION_FINALIZER,
}


class StorageObjectInUseProtection(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister | None = None) -> None:
        self.lister = lister

    async def admit(self, attrs: Attributes) -> None:
        finalizer = FINALIZERS.get(attrs.group_resource)
        if finalizer is None or attrs.obj is None:
            return
        meta = attrs.obj["metadata"]
        finalizers = list(meta.get("finalizers") or ())
        if finalizer not in finalizers:
            meta["finalizers"] = [*finalizers, finalizer]
