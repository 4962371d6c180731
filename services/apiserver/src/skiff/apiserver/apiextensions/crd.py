"""The CustomResourceDefinition registry (kube's ``registry/customresourcedefinition``):
defaults, the status a create starts with, stored versions, validation, and the delete
that marks the CRD for its instances' cleanup first.
"""

from __future__ import annotations

from skiff.api.conditions import new_condition, set_condition
from skiff.api.errors import Cause
from skiff.api.timestamps import rfc3339

from ..registry.options import DeleteOptions
from ..registry.strategy import Obj, Strategy
from . import validation
from .served import FINALIZER, storage_version


def set_defaults(obj: Obj) -> None:
    """kube's ``SetDefaults_CustomResourceDefinitionSpec`` and ``SetDefaults_ServiceReference``."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict):
        kind = names.get("kind") or ""
        if not names.get("singular") and kind:
            names["singular"] = kind.lower()
        if not names.get("listKind") and kind:
            names["listKind"] = f"{kind}List"
    conversion = spec.get("conversion")
    if conversion is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conversion, dict):
        config = (conversion.get("webhook") or {}).get("clientConfig") or {}
        service = config.get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443


class CustomResourceDefinitionStrategy(Strategy):
    """apiextensions.k8s.io/v1 CustomResourceDefinitions."""

    allow_unconditional_update = False  # kube: "must be specified for an update"

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        status: Obj = {"acceptedNames": {"plural": "", "kind": ""}}
        storage = storage_version(obj)
        status["storedVersions"] = [storage] if storage else []
        obj["status"] = status

    def prepare_for_update(self, obj: Obj, old: Obj, subresource: str) -> Obj:
        new = super().prepare_for_update(obj, old, subresource)
        if subresource == "":
            status = new.setdefault("status", {})
            stored = list(status.get("storedVersions") or [])
            storage = storage_version(new)
            if storage and storage not in stored:
                status["storedVersions"] = [*stored, storage]
        return new

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        set_defaults(obj)

    def validate(self, obj: Obj) -> list[Cause]:
        return validation.validate_crd(obj)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return validation.validate_crd_update(obj, old)

    def prepare_delete(self, obj: Obj, opts: DeleteOptions) -> tuple[bool, int]:
        """The first delete adds the cleanup finalizer and the Terminating condition: the
        CRD stays until its objects are gone (:mod:`.finalizer`)."""
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp"):
            finalizers = list(meta.get("finalizers") or [])
            if FINALIZER not in finalizers:
                meta["finalizers"] = [*finalizers, FINALIZER]
            status = obj.setdefault("status", {})
            set_condition(
                status,
                new_condition(
                    "Terminating",
                    "True",
                    "InstanceDeletionPending",
                    "CustomResourceDefinition marked for deletion; CustomResource deletion "
                    "will begin soon",
                    rfc3339(),
                ),
            )
        return False, 0
