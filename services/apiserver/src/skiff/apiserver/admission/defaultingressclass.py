"""DefaultIngressClass (kube's ``plugin/pkg/admission/network/defaultingressclass``): a
new Ingress that names no class, by field or by the old annotation, gets the default
IngressClass (``ingressclass.kubernetes.io/is-default-class: "true"``; the newest when
there are several)."""

from __future__ import annotations

from skiff.api.resources import REGISTRY

from .defaultstorageclass import newest
from .interfaces import Attributes, Handler, Lister, Operation

PLUGIN_NAME = "DefaultIngressClass"
DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
INGRESS_CLASSES = REGISTRY.by_path("networking.k8s.io", "v1", "ingressclasses")


class DefaultIngressClass(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def admit(self, attrs: Attributes) -> None:
        if attrs.group_resource != ("networking.k8s.io", "ingresses") or attrs.obj is None:
            return
        if attrs.subresource:
            return
        assert INGRESS_CLASSES is not None
        spec = attrs.obj.setdefault("spec", {})
        annotations = attrs.obj.get("metadata", {}).get("annotations") or {}
        if spec.get("ingressClassName") is not None or CLASS_ANNOTATION in annotations:
            return
        defaults = [
            c
            for c in self.lister.list(INGRESS_CLASSES)
            if (c["metadata"].get("annotations") or {}).get(DEFAULT_ANNOTATION) == "true"
        ]
        if defaults:
            spec["ingressClassName"] = newest(defaults)["metadata"]["name"]
