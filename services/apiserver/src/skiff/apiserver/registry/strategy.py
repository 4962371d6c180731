"""What each resource brings to the generic store: its strategy and its subresources.

As Kubernetes' ``RESTCreateStrategy``/``RESTUpdateStrategy``/``RESTDeleteStrategy``
(``staging/src/k8s.io/apiserver/pkg/registry/rest``): the generic store
(:mod:`skiff.apiserver.store`) does the storage dance and calls these hooks; a resource
with nothing special uses :class:`Strategy` as it is. Subresources are small handler
objects (kube's ``StatusREST``, ``ScaleREST``, ``BindingREST``, …) that work through the
generic store's primitives (:class:`GenericStore`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from skiff.api import errors
from skiff.api.errors import ApiError, Cause
from skiff.api.resources import ResourceInfo
from skiff.apiserver import schema, validation

from .options import DeleteOptions, ListOptions, WriteOptions

if TYPE_CHECKING:
    from skiff.apiserver.allocators import ServiceAllocator
    from skiff.apiserver.authentication.serviceaccount import ServiceAccountTokens
    from skiff.apiserver.authentication.user import UserInfo

Obj = dict[str, Any]

# HTTP method of each verb, for "… is not supported" messages.
_METHODS = {"get": "GET", "create": "POST", "update": "PUT", "patch": "PATCH", "delete": "DELETE"}


class GenericStore(Protocol):
    """The generic store as strategies and subresource handlers see it."""

    services: ServiceAllocator
    """Services' cluster IPs and node ports (the Service strategy's storage hooks)."""
    tokens: ServiceAccountTokens | None
    """Service-account tokens (serviceaccounts/token); None when no signing key is set."""

    async def get(self, info: ResourceInfo, namespace: str | None, name: str) -> Obj: ...

    async def list(self, info: ResourceInfo, namespace: str | None, opts: ListOptions) -> Any:
        """A consistent list (a ``ListResult``: ``.items``)."""
        ...

    async def update_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        obj: Obj,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> Obj:
        """Replace with ``obj`` (its resourceVersion, if any, is a precondition)."""
        ...

    async def patch_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> Obj: ...

    async def update_with(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Callable[[Obj], Obj],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> Obj:
        """Read-modify-write with retries: ``mutate(current) -> new object``."""
        ...

    async def delete(
        self, info: ResourceInfo, namespace: str | None, name: str, opts: DeleteOptions
    ) -> tuple[Obj, bool]: ...


class Subresource:
    """One subresource's verbs. ``verbs`` lists what it serves; the rest answer 405."""

    name: ClassVar[str] = ""
    verbs: ClassVar[frozenset[str]] = frozenset()
    returns_parent: ClassVar[bool] = True
    """Whether replies are the parent object (status, finalize) rather than another kind."""

    def not_allowed(self, info: ResourceInfo, verb: str) -> ApiError:
        method = _METHODS.get(verb, verb.upper())
        return errors.method_not_allowed(f"{method} is not supported on {info.plural}/{self.name}")

    async def get(
        self, store: GenericStore, info: ResourceInfo, namespace: str | None, name: str
    ) -> Obj:
        raise self.not_allowed(info, "get")

    async def create(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        raise self.not_allowed(info, "create")

    async def update(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        raise self.not_allowed(info, "update")

    async def patch(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> Obj:
        raise self.not_allowed(info, "patch")


class PartREST(Subresource):
    """A subresource that reads the parent object and writes one part of it: the
    strategy's :meth:`Strategy.prepare_for_update`, given the subresource's name, keeps
    the rest as it was."""

    verbs = frozenset({"get", "update", "patch"})

    async def get(
        self, store: GenericStore, info: ResourceInfo, namespace: str | None, name: str
    ) -> Obj:
        return await store.get(info, namespace, name)

    async def update(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        body: Obj,
        opts: WriteOptions,
    ) -> Obj:
        return await store.update_object(info, namespace, name, body, opts, subresource=self.name)

    async def patch(
        self,
        store: GenericStore,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        patch_type: str,
        body: Any,
        opts: WriteOptions,
    ) -> Obj:
        return await store.patch_object(
            info, namespace, name, patch_type, body, opts, subresource=self.name
        )


class StatusREST(PartREST):
    """``/status``: writes change only ``status``."""

    name = "status"


STATUS = StatusREST()


_ZEROS = {"integer": 0, "number": 0, "boolean": False, "string": "", "array": None}


@functools.cache
def zero_status(definition: str) -> Obj | None:
    """The status Go's encoder writes for a zero status struct: its required (not
    ``omitempty``) scalar fields at their zero values, ``{}`` when none (kube answers a
    create with it); None when the kind has no status."""
    definitions = schema.definitions()
    status = (definitions.get(definition, {}).get("properties") or {}).get("status")
    if not isinstance(status, dict):
        return None
    ref = status.get("$ref") or ((status.get("allOf") or [{}])[0]).get("$ref") or ""
    body = definitions.get(ref.rsplit("/", 1)[-1], status)
    props = body.get("properties") or {}
    return {k: _ZEROS.get(props.get(k, {}).get("type"), None) for k in body.get("required") or ()}


class Strategy:
    """The rules of one resource; the defaults suit a resource with nothing special.

    One instance per resource (:func:`skiff.apiserver.registry.strategy_for`), holding its
    :class:`ResourceInfo` as ``info``.
    """

    keep_status_on_create: ClassVar[bool] = False
    """Whether a create keeps the client's ``status`` (nodes report theirs on create)."""
    initial_status: ClassVar[dict[str, Any] | None] = None
    """The status a create starts with, as kube's strategy sets it (else none)."""
    default_gc_policy: ClassVar[str | None] = None
    """Propagation when a delete names none (kube's DefaultGarbageCollectionPolicy)."""
    claims_keys: ClassVar[bool] = False
    """Whether objects hold other keys, claimed and released in their own write
    transaction (:meth:`held`, :meth:`assign`, :meth:`taken`)."""
    allow_unconditional_update: ClassVar[bool] = True
    """Whether a PUT without ``metadata.resourceVersion`` replaces the current object
    (kube's AllowUnconditionalUpdate); else it is refused, "must be specified for an
    update". Its subresources (``/status``) follow it."""

    def __init__(self, info: ResourceInfo) -> None:
        self.info = info
        self.subresources: dict[str, Subresource] = {
            s.name: s for s in self.make_subresources() if s.name in info.subresources
        }

    def make_subresources(self) -> Iterable[Subresource]:
        """The subresources served through the registry (those the resource lists)."""
        return (STATUS,)

    # -- create and update ---------------------------------------------------------

    def prepare_for_create(self, obj: Obj) -> None:
        """Reset what a client may not set on create (status of status-bearing resources,
        then ``initial_status`` where kube's strategy sets one)."""
        if self.info.has_status and not self.keep_status_on_create:
            obj.pop("status", None)
            initial = self.initial_status
            if initial is None:
                initial = zero_status(self.info.definition)
            if initial is not None:
                obj["status"] = copy.deepcopy(initial)
        meta = obj["metadata"]
        if not meta.get("managedFields"):
            meta.pop("managedFields", None)

    def set_requester(self, obj: Obj, user: UserInfo | None) -> None:
        """Record who creates ``obj``, for resources that keep it (CertificateSigningRequests)."""

    def prepare_for_update(self, obj: Obj, old: Obj, subresource: str) -> Obj:
        """The object to store: a ``status`` write keeps everything but status from
        ``old``; a main-resource write keeps ``old``'s status."""
        if subresource == "status":
            result = copy.deepcopy(old)
            result["status"] = obj.get("status")
            if result["status"] is None:
                result.pop("status")
            return result
        if self.info.has_status and subresource == "":
            if "status" in old:
                obj["status"] = old["status"]
            else:
                obj.pop("status", None)
        return obj

    def decode_fields(self, obj: Obj) -> tuple[list[Cause], list[str]]:
        """Decoding's checks: type errors (a 400) and the paths of unknown fields (refused,
        warned about or dropped per ``fieldValidation``)."""
        return validation.validate_object(obj, self.info.definition)

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        """Bring the request into the stored form before defaulting (e.g. fields that
        mirror each other)."""

    def validate(self, obj: Obj) -> list[Cause]:
        """The resource's own rules for a new object (metadata is checked generically)."""
        return []

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        """The rules for an update through ``subresource`` (``""``: the object itself); by
        default :meth:`validate_update`'s for every part."""
        return self.validate_update(obj, old)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        """The rules for an update; by default those of a new object."""
        return self.validate(obj)

    def canonicalize(self, obj: Obj) -> None:
        """Rewrite a valid object into its canonical form (after validation)."""

    # -- delete --------------------------------------------------------------------

    def prepare_delete(self, obj: Obj, opts: DeleteOptions) -> tuple[bool, int]:
        """(whether the object must stay for a graceful deletion, grace period seconds);
        may mark ``obj`` (a namespace's Terminating phase)."""
        return False, 0

    def pending_graceful(self, obj: Obj) -> bool:
        """Whether a deleted object whose finalizers are gone must still stay (a pod whose
        kubelet has not confirmed, a namespace with spec.finalizers)."""
        return False

    # -- storage -------------------------------------------------------------------

    def held(self, obj: Obj) -> dict[str, bytes]:
        """The other keys a stored object holds, each with its value."""
        return {}

    async def assign(
        self, store: GenericStore, obj: Obj, old: Obj | None, avoid: set[str]
    ) -> set[str]:
        """Fill in what the object must claim and lacks; return the keys picked here."""
        return set()

    def taken(self, store: GenericStore, obj: Obj, key: str) -> ApiError:
        """The error for a requested key that another object holds."""
        return errors.internal(f"storage key {key} is held by another object")
