"""StorageClasses (kube's ``pkg/registry/storage/storageclass``): a provisioner, and
fields that never change."""

from __future__ import annotations

from skiff.api.errors import Cause

from ..strategy import Obj, Strategy

IMMUTABLE = ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode")


class StorageClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        if not obj.get("provisioner"):
            return [Cause("provisioner", "Required value", "FieldValueRequired")]
        return []

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        for f in IMMUTABLE:
            if obj.get(f) != old.get(f):
                causes.append(
                    Cause(f, f"Forbidden: updates to {f} are forbidden.", "FieldValueForbidden")
                )
        return causes
