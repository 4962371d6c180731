"""The admission interfaces, as ``k8s.io/apiserver/pkg/admission/interfaces.go``: a plugin
mutates (:class:`MutationInterface`), validates (:class:`ValidationInterface`) or both,
given the request's :class:`Attributes`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from skiff.api import errors
from skiff.api.resources import ResourceInfo

from ..authentication.user import UserInfo


class Operation(StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    CONNECT = "CONNECT"


@dataclass(slots=True)
class Attributes:
    """What admission knows of a request. ``obj`` is the object being written (None for a
    delete), ``old`` the stored one (None for a create)."""

    operation: Operation
    info: ResourceInfo
    obj: dict[str, Any] | None
    old: dict[str, Any] | None = None
    namespace: str | None = None
    name: str = ""
    subresource: str = ""
    dry_run: bool = False
    user: UserInfo | None = None
    """The requesting user (None: the apiserver itself)."""
    warnings: list[str] | None = None
    """Where plugins add warnings for the client (``Warning`` headers); None: nowhere."""
    audit_annotations: dict[str, str] | None = None
    """Where plugins annotate the request's audit event; None: nowhere."""
    changed: bool = False
    """Set by a plugin that rewrote ``obj`` in a way the resource's validation must see
    again (a mutating webhook's patch)."""
    request_info: ResourceInfo | None = None
    """The version the request named, when ``obj`` and ``old`` are in another (``info``:
    the version the registry works in, such as a v1 HorizontalPodAutoscaler's v2)."""

    @property
    def requested(self) -> ResourceInfo:
        """The resource version the request named (kube's ``GetResource()``)."""
        return self.request_info or self.info

    @property
    def group_resource(self) -> tuple[str, str]:
        """(group, plural), as kube's ``GetResource().GroupResource()``."""
        return self.info.group, self.info.plural


def forbidden(attrs: Attributes, why: str) -> errors.ApiError:
    """403 ``<resource>.<group> "<name>" is forbidden: <why>`` (kube's
    ``admission.NewForbidden``)."""
    return errors.forbidden(attrs.info.plural, attrs.name, attrs.info.group, why)


class Lister(Protocol):
    """Reads plugins may make: the watch cache first, as kube's plugins use informers."""

    async def get(
        self, info: ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """One object from the cache, else from storage; None if it does not exist."""
        ...

    def list(self, info: ResourceInfo) -> list[dict[str, Any]]:
        """Every cached object of ``info``."""
        ...

    async def update_status(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Read-modify-write of an object's status in storage (retried on conflicts;
        ``mutate`` may raise to give up)."""
        ...


class Handler:
    """The operations a plugin handles (kube's ``admission.Handler``)."""

    name: ClassVar[str] = ""
    operations: ClassVar[frozenset[Operation]] = frozenset(Operation)

    def handles(self, operation: Operation) -> bool:
        return operation in self.operations


@runtime_checkable
class MutationInterface(Protocol):
    """A plugin that may change the object (or refuse the request)."""

    name: str

    def handles(self, operation: Operation) -> bool: ...

    async def admit(self, attrs: Attributes) -> None: ...


@runtime_checkable
class ValidationInterface(Protocol):
    """A plugin that may refuse the request, never change it."""

    name: str

    def handles(self, operation: Operation) -> bool: ...

    async def validate(self, attrs: Attributes) -> None: ...
