"""NamespaceLifecycle (kube's ``plugin/namespace/lifecycle``): new objects only go into a
namespace that exists and is not being terminated."""

from __future__ import annotations

from skiff.api import errors
from skiff.api.resources import REGISTRY

from .interfaces import Attributes, Handler, Lister, Operation

PLUGIN_NAME = "NamespaceLifecycle"
NAMESPACES = REGISTRY.by_path("", "v1", "namespaces")


class NamespaceLifecycle(Handler):
    name = PLUGIN_NAME
    operations = frozenset({Operation.CREATE})

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def admit(self, attrs: Attributes) -> None:
        info = attrs.info
        if not info.namespaced:
            return
        assert NAMESPACES is not None
        namespace = attrs.namespace or ""
        ns = await self.lister.get(NAMESPACES, None, namespace)
        if ns is None:
            raise errors.not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(
                403,
                errors.Reason.FORBIDDEN,
                f'{info.plural} "{attrs.name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                kind=info.plural,
                name=attrs.name,
                group=info.group,
                causes=[
                    errors.Cause(
                        "metadata.namespace",
                        f"namespace {namespace} is being terminated",
                        "NamespaceTerminating",
                    )
                ],
            )
