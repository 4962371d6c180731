"""RuntimeClass (kube's ``plugin/pkg/admission/runtimeclass``): a new pod naming a
RuntimeClass gets the class's overhead (refused if it brings a different one) and its
scheduling — node selector entries (refused on a conflicting value) and tolerations;
a pod naming a class that does not exist, or setting an overhead no class defines, is
refused."""

from __future__ import annotations

from typing import Any

from skiff.api.quantity import parse_quantity
from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation, forbidden

PLUGIN_NAME = "RuntimeClass"
RUNTIME_CLASSES = REGISTRY.by_path("node.k8s.io", "v1", "runtimeclasses")
_MISMATCH = "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"


def _same_quantities(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """``apiequality.Semantic.DeepEqual`` of resource lists: quantities by value."""
    return a.keys() == b.keys() and all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)


class RuntimeClass(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def _runtime_class(self, attrs: Attributes) -> dict[str, Any] | None:
        assert RUNTIME_CLASSES is not None and attrs.obj is not None
        name = (attrs.obj.get("spec") or {}).get("runtimeClassName")
        if not name:
            return None
        rc = await self.lister.get(RUNTIME_CLASSES, None, name)
        if rc is None:
            raise forbidden(attrs, f'pod rejected: RuntimeClass "{name}" not found')
        return rc

    def _applies(self, attrs: Attributes) -> bool:
        return attrs.group_resource == ("", "pods") and not attrs.subresource and bool(attrs.obj)

    async def admit(self, attrs: Attributes) -> None:
        if not self._applies(attrs):
            return
        rc = await self._runtime_class(attrs)
        if rc is None:
            return
        assert attrs.obj is not None
        spec = attrs.obj.setdefault("spec", {})
        overhead = (rc.get("overhead") or {}).get("podFixed")
        if overhead is not None:
            if spec.get("overhead") and not _same_quantities(spec["overhead"], overhead):
                raise forbidden(attrs, _MISMATCH)
            spec["overhead"] = dict(overhead)
        scheduling = rc.get("scheduling")
        if scheduling is None:
            return
        selector = dict(spec.get("nodeSelector") or {})
        for key, value in (scheduling.get("nodeSelector") or {}).items():
            if key in selector and selector[key] != value:
                raise forbidden(
                    attrs,
                    f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = {value}; "
                    f"pod.spec.nodeSelector[{key}] = {selector[key]}",
                )
            selector[key] = value
        if selector:
            spec["nodeSelector"] = selector
        tolerations = list(spec.get("tolerations") or [])
        for t in scheduling.get("tolerations") or ():
            if t not in tolerations:
                tolerations.append(dict(t))
        if tolerations:
            spec["tolerations"] = tolerations

    async def validate(self, attrs: Attributes) -> None:
        """The overhead is the class's, or absent when the class defines none."""
        if not self._applies(attrs):
            return
        rc = await self._runtime_class(attrs)
        assert attrs.obj is not None
        given = (attrs.obj.get("spec") or {}).get("overhead")
        defined = ((rc or {}).get("overhead") or {}).get("podFixed")
        if defined is not None:
            if not _same_quantities(given or {}, defined):
                raise forbidden(attrs, _MISMATCH)
        elif given is not None:
            raise forbidden(
                attrs,
                "pod rejected: Pod Overhead set without corresponding RuntimeClass "
                "defined Overhead",
            )
