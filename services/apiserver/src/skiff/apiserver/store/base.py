"""What every verb of the generic store stands on: etcd and the watch cache, the one
transactional write (claiming and releasing the other keys an object holds, such as a
Service's IPs and node ports), the read of one key, the admission chain (with the
:class:`CachedLister` its plugins read through), and the lookup of a registry's
subresource handler.

:class:`StoreBase` holds these; the verbs are mixins on it, put together as
:class:`~skiff.apiserver.store.Store`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from skiff.api import errors
from skiff.api.resources import ResourceInfo
from skiff.apiserver.storage import Backend, KeyValue, StorageError, codec
from skiff.apiserver.storage.codec import decode

from .. import admission, conversion
from ..admission import Attributes
from ..allocators import ServiceAllocator
from ..authorization import certificates, escalation
from ..registry import Strategy, Subresource, generic, strategy_for
from ..registry.options import WriteOptions
from ..watchcache import WatchCache

if TYPE_CHECKING:
    from ..authentication.serviceaccount import ServiceAccountTokens
    from ..authorization import Authorizer

MAX_OBJECT_BYTES = 1536 * 1024  # etcd's request limit, as kube-apiserver enforces


def encode_limited(obj: dict[str, Any]) -> bytes:
    """:func:`codec.encode`, refusing (413) what etcd would refuse as too large."""
    value = codec.encode(obj)
    if len(value) > MAX_OBJECT_BYTES:
        raise errors.too_large(
            f"object is too large: {len(value)} bytes, the limit is {MAX_OBJECT_BYTES}"
        )
    return value


class CachedLister:
    """Reads for admission plugins: the watch cache first, then storage."""

    def __init__(self, etcd: Backend, cache: WatchCache) -> None:
        self.etcd = etcd
        self.cache = cache
        self.store: StoreBase | None = None
        """The store, for the writes a plugin makes (ResourceQuota's usage)."""

    async def get(
        self, info: ResourceInfo, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        obj = self.cache.get(info, namespace, name)
        if obj is None:
            kv = await self.etcd.get(info.etcd_key(namespace, name))
            obj = decode(kv.value, kv.mod_revision) if kv else None
        return obj

    def list(self, info: ResourceInfo) -> list[dict[str, Any]]:
        return self.cache.list(info)

    async def update_status(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """Read-modify-write of ``name``'s status in storage, retried on conflicts."""
        assert self.store is not None
        return await self.store.update_with(  # type: ignore[attr-defined]
            info, namespace, name, mutate, WriteOptions(), subresource="status"
        )


class StoreBase:
    """The state and primitives the store's verbs share."""

    def __init__(
        self,
        etcd: Backend,
        cache: WatchCache,
        services: ServiceAllocator | None = None,
        *,
        admission_plugins: Sequence[str] | None = None,
    ) -> None:
        """``admission_plugins``: the enabled admission plugins' names (None: the
        defaults, :func:`skiff.apiserver.admission.enabled_plugins`)."""
        self.etcd = etcd
        self.cache = cache
        self.services = services or ServiceAllocator(etcd)
        if admission_plugins is None:
            admission_plugins = admission.enabled_plugins()
        self.lister = CachedLister(etcd, cache)
        self.lister.store = self
        self.admission = admission.new_chain(admission_plugins, self.lister)
        self.tokens: ServiceAccountTokens | None = None
        """Set by the server when it has a service-account signing key."""
        self.authorizer: Authorizer | None = None
        """Set by the server when it authorizes requests (RBAC escalation checks)."""

    async def _write(
        self,
        strategy: Strategy,
        key: str,
        value: bytes | None,
        expected_revision: int,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
    ) -> int:
        """Create (``expected_revision`` 0), replace or delete (``value`` None) one object.

        The other keys the object holds (a Service's IPs and node ports) are claimed and
        released in the same transaction.
        """
        if not strategy.claims_keys:
            if value is None:
                return await self.etcd.delete(key, expected_revision)
            if expected_revision == 0:
                return await self.etcd.create(key, value)
            return await self.etcd.update(key, value, expected_revision)
        before = strategy.held(old) if old is not None else {}
        after = strategy.held(new) if new is not None and value is not None else {}
        return await self.etcd.write_claiming(
            key,
            value,
            expected_revision,
            claim={k: v for k, v in after.items() if k not in before},
            release=[k for k in before if k not in after],
        )

    async def converted(self, obj: dict[str, Any], to: ResourceInfo) -> dict[str, Any]:
        """``obj`` in ``to``'s version (a CRD's conversion webhook called if need be)."""
        return await conversion.aconvert(obj, to, self.lister)

    async def converted_all(
        self, objs: list[dict[str, Any]], to: ResourceInfo
    ) -> list[dict[str, Any]]:
        """A list's items in ``to``'s version (one conversion review for all)."""
        return await conversion.aconvert_all(objs, to, self.lister, as_list=True)

    async def _get_kv(self, info: ResourceInfo, namespace: str | None, name: str) -> KeyValue:
        try:
            kv = await self.etcd.get(info.etcd_key(namespace, name))
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e
        if kv is None:
            raise errors.not_found(info.plural, name, info.group)
        return kv

    async def _admit(self, attrs: Attributes, opts: WriteOptions | None = None) -> None:
        """The admission chain: every mutating plugin, then every validating one. An object
        a mutating webhook rewrote is decoded and validated again in between (kube runs
        mutating admission before the registry's validation), with ``opts``."""
        if self.authorizer is not None:
            escalation.check(self.authorizer, attrs)
            certificates.check(self.authorizer, attrs)
        await self.admission.admit(attrs)
        if attrs.changed and attrs.obj is not None and opts is not None:
            generic.revalidate(strategy_for(attrs.info), attrs.obj, attrs.old, opts)
        await self.admission.validate(attrs)

    def subresource(self, info: ResourceInfo, name: str) -> Subresource | None:
        """The registry's handler of ``info``'s subresource ``name`` (None: not one the
        registry serves, such as pods/log)."""
        return strategy_for(info).subresources.get(name)

    def _handler(self, info: ResourceInfo, name: str, verb: str) -> Subresource:
        handler = self.subresource(info, name)
        if handler is None:
            raise errors.ApiError(
                404,
                errors.Reason.NOT_FOUND,
                f"the server could not find the requested resource ({info.plural}/{name})",
            )
        if verb not in handler.verbs:
            raise handler.not_allowed(info, verb)
        return handler
