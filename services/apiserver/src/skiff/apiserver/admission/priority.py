"""Priority (kube's ``plugin/pkg/admission/priority``): a new pod's ``spec.priority``
comes from its PriorityClass, or from the global default class."""

from __future__ import annotations

from typing import Any

from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation, forbidden

PLUGIN_NAME = "Priority"
PRIORITY_CLASSES = REGISTRY.by_path("scheduling.k8s.io", "v1", "priorityclasses")


class Priority(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def _priority_class(self, attrs: Attributes) -> dict[str, Any] | None:
        """The pod's class (403 if it names a missing one), else the global default."""
        assert PRIORITY_CLASSES is not None and attrs.obj is not None
        name = attrs.obj["spec"].get("priorityClassName")
        if not name:
            classes = self.lister.list(PRIORITY_CLASSES)
            return next((c for c in classes if c.get("globalDefault")), None)
        pc = await self.lister.get(PRIORITY_CLASSES, None, name)
        if pc is None:
            raise forbidden(attrs, f"no PriorityClass with name {name} was found")
        return pc

    async def admit(self, attrs: Attributes) -> None:
        if attrs.group_resource != ("", "pods") or attrs.subresource or attrs.obj is None:
            return
        pod = attrs.obj
        spec = pod.setdefault("spec", {})
        pc = await self._priority_class(attrs)
        value = int(pc.get("value") or 0) if pc else 0
        given = spec.get("priority")
        if given is not None and given != value:
            raise forbidden(
                attrs,
                f"the integer value of priority ({given}) must not be provided in pod spec; "
                f"priority admission controller computed {value} from the given PriorityClass "
                "name",
            )
        spec["priority"] = value
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
            spec.setdefault(
                "preemptionPolicy", pc.get("preemptionPolicy") or "PreemptLowerPriority"
            )
