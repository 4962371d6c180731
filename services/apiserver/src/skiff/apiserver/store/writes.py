"""Creates and updates of the generic store: the registry's rules before each write
(:mod:`skiff.apiserver.registry.generic`), the admission chain, then etcd with compare-and-swap
retries; keys an object claims (a Service's IPs and node ports) are picked and written in
the same transaction, and picked again when another apiserver took them first. Also
POST to a subresource (pods/binding, pods/eviction).
"""

from __future__ import annotations

import copy
from typing import Any

from opentelemetry import trace

from skiff import tracing
from skiff.api import errors
from skiff.api.errors import Cause
from skiff.api.resources import ResourceInfo
from skiff.apiserver.storage import ConflictError, KeyExistsError, KeyValue, StorageError
from skiff.apiserver.storage.codec import decode

from .. import conversion
from ..admission import Attributes, Operation
from ..registry import Strategy, generic, strategy_for
from ..registry.options import WriteOptions
from .base import StoreBase, encode_limited

_tracer = tracing.tracer("skiff.apiserver.store")


class WriteMixin(StoreBase):
    """``create``, ``update`` and their read-modify-write core, ``update_with``."""

    async def create_subresource(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        subresource: str,
        body: dict[str, Any],
        opts: WriteOptions,
    ) -> dict[str, Any]:
        """POST to a subresource of ``name`` (pods/binding, pods/eviction,
        serviceaccounts/token), after the admission chain has seen the posted object."""
        handler = self._handler(info, subresource, "create")
        await self._admit(
            Attributes(
                Operation.CREATE,
                info,
                body,
                namespace=namespace,
                name=name,
                subresource=subresource,
                dry_run=opts.dry_run,
                user=opts.user,
            )
        )
        return await handler.create(self, info, namespace, name, body, opts)

    async def create(
        self,
        info: ResourceInfo,
        namespace: str | None,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        managed: bool = False,
    ) -> dict[str, Any]:
        """Create ``obj`` (in ``info``'s version, as is the answer); ``managed`` means
        managedFields were already set (apply)."""
        with _tracer.start_as_current_span(
            "store.create", attributes={"k8s.resource": info.plural}
        ):
            hub = conversion.hub(info)
            strategy = strategy_for(hub)
            generic.decode(info, obj, opts)
            obj = conversion.convert(obj, hub)
            generic.before_create(strategy, obj, namespace, opts)
            if not managed:
                generic.track_fields(info, None, obj, opts, "")
            meta = obj["metadata"]
            await self._admit(
                Attributes(
                    Operation.CREATE,
                    hub,
                    obj,
                    namespace=meta.get("namespace"),
                    name=meta["name"],
                    dry_run=opts.dry_run,
                    user=opts.user,
                    request_info=info,
                    warnings=opts.warnings,
                    audit_annotations=opts.audit_annotations,
                ),
                opts,
            )
            created = await self._create_in_storage(strategy, obj, opts)
            return conversion.convert(created, info)

    async def _create_in_storage(
        self, strategy: Strategy, obj: dict[str, Any], opts: WriteOptions
    ) -> dict[str, Any]:
        info = strategy.info
        meta = obj["metadata"]
        key = info.etcd_key(meta.get("namespace"), meta["name"])
        unassigned = copy.deepcopy(obj) if strategy.claims_keys else obj
        avoid: set[str] = set()
        for _attempt in range(16):
            picked: set[str] = set()
            if strategy.claims_keys:
                obj = copy.deepcopy(unassigned)
                picked = await strategy.assign(self, obj, None, avoid)
            value = encode_limited(await self.converted(obj, conversion.storage(info)))
            if opts.dry_run:
                return obj
            try:
                with _tracer.start_as_current_span("etcd.txn.create", kind=trace.SpanKind.CLIENT):
                    rev = await self._write(strategy, key, value, 0, None, obj)
            except KeyExistsError as e:
                if e.key == key:
                    raise errors.already_exists(info.plural, meta["name"], info.group) from e
                if e.key not in picked:
                    raise strategy.taken(self, obj, e.key) from e
                avoid.add(e.key)  # another apiserver took what we picked: pick again
                continue
            except StorageError as e:
                raise errors.unavailable(f"storage is unavailable: {e}") from e
            obj["metadata"]["resourceVersion"] = str(rev)
            return obj
        raise errors.internal("too many allocation conflicts; try again")

    async def update(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Replace an object, or PUT to one of its subresources."""
        if subresource:
            handler = self._handler(info, subresource, "update")
            return await handler.update(self, info, namespace, name, obj, opts)
        return await self.update_object(info, namespace, name, obj, opts)

    async def update_object(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        opts: WriteOptions,
        *,
        subresource: str = "",
    ) -> dict[str, Any]:
        """Replace with ``obj``; its resourceVersion, if any, is a precondition.

        ``subresource`` selects the update rules (``status`` writes only status).
        """
        generic.decode(info, obj, opts)
        meta = obj["metadata"]
        if meta.get("name") and meta["name"] != name:
            raise errors.bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        wanted_rv = meta.get("resourceVersion") or None
        return await self.update_with(
            info,
            namespace,
            name,
            lambda _old: obj,
            opts,
            subresource=subresource,
            precondition_rv=wanted_rv,
            unconditional=wanted_rv is None,
        )

    async def update_with(
        self,
        info: ResourceInfo,
        namespace: str | None,
        name: str,
        mutate,  # type: ignore[no-untyped-def]
        opts: WriteOptions,
        *,
        subresource: str = "",
        precondition_rv: str | None = None,
        create_if_missing=None,  # type: ignore[no-untyped-def]
        managed: bool = False,
        unconditional: bool = False,
    ) -> dict[str, Any]:
        """Read-modify-write with retries on conflict: ``mutate(current) -> new object``,
        both in ``info``'s version (as is the answer).

        ``precondition_rv`` turns a conflict into a 409 instead of a retry;
        ``create_if_missing`` is awaited when the object does not exist (apply);
        ``managed`` means managedFields were already set (apply); ``unconditional``: a
        replacement that named no resourceVersion, refused for an object that exists when
        the strategy does not allow it (kube's 422 "must be specified for an update").
        """
        with _tracer.start_as_current_span(
            "store.update", attributes={"k8s.resource": info.plural, "k8s.subresource": subresource}
        ):
            hub = conversion.hub(info)
            strategy = strategy_for(hub)
            avoid: set[str] = set()
            for _attempt in range(16):
                try:
                    kv = await self.etcd.get(info.etcd_key(namespace, name))
                except StorageError as e:
                    raise errors.unavailable(f"storage is unavailable: {e}") from e
                if kv is None:
                    if create_if_missing is not None:
                        return await create_if_missing()
                    raise errors.not_found(info.plural, name, info.group)
                if unconditional and not strategy.allow_unconditional_update:
                    cause = Cause(
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                    raise errors.invalid(info.plural, name, info.group, [cause])
                old = await self.converted(decode(kv.value, kv.mod_revision), hub)
                if precondition_rv is not None and precondition_rv != str(kv.mod_revision):
                    raise errors.modified(info.plural, name, info.group)
                # The registry's version and the request's are one for custom resources,
                # so converting between them never needs a webhook.
                new = mutate(copy.deepcopy(conversion.convert(old, info)))
                if new.get("apiVersion") is None or new.get("metadata") is None:
                    generic.decode(info, new, opts)
                new = generic.before_update(
                    strategy, old, conversion.convert(new, hub), subresource, opts, managed,
                    request=info,
                )  # fmt: skip
                if new is None:
                    if not kv.stale:
                        # Nothing changed: no write, same resourceVersion.
                        return conversion.convert(old, info)
                    # Read with an old encryption key: written again with the current one.
                    new = copy.deepcopy(old)
                await self._admit(
                    Attributes(
                        Operation.UPDATE,
                        hub,
                        new,
                        old,
                        namespace=namespace,
                        name=name,
                        subresource=subresource,
                        dry_run=opts.dry_run,
                        user=opts.user,
                        request_info=info,
                        warnings=opts.warnings,
                        audit_annotations=opts.audit_annotations,
                    ),
                    opts,
                )
                done = await self._commit_update(
                    strategy, kv, old, new, opts, avoid, precondition_rv
                )
                if done is not None:
                    return conversion.convert(done, info)
            raise errors.conflict(
                info.plural, name, info.group, "too many concurrent updates; try again"
            )

    async def _commit_update(
        self,
        strategy: Strategy,
        kv: KeyValue,
        old: dict[str, Any],
        new: dict[str, Any],
        opts: WriteOptions,
        avoid: set[str],
        precondition_rv: str | None,
    ) -> dict[str, Any] | None:
        """Write ``new`` over ``kv`` (or delete it, when nothing keeps a deleted object any
        more); None when the write must be tried again."""
        info = strategy.info
        picked: set[str] = set()
        if strategy.claims_keys:
            picked = await strategy.assign(self, new, old, avoid)
        value = encode_limited(await self.converted(new, conversion.storage(info)))
        if opts.dry_run:
            return new
        try:
            if generic.ready_to_delete(strategy, new):
                with _tracer.start_as_current_span("etcd.txn.delete"):
                    rev = await self._write(strategy, kv.key, None, kv.mod_revision, old, None)
            else:
                with _tracer.start_as_current_span("etcd.txn.update", kind=trace.SpanKind.CLIENT):
                    rev = await self._write(strategy, kv.key, value, kv.mod_revision, old, new)
        except KeyExistsError as e:
            if e.key not in picked:
                raise strategy.taken(self, new, e.key) from e
            avoid.add(e.key)
            return None
        except ConflictError:
            if precondition_rv is not None:
                name = new["metadata"].get("name") or ""
                raise errors.modified(info.plural, name, info.group) from None
            return None
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e
        new["metadata"]["resourceVersion"] = str(rev)
        return new
