"""Deletes of the generic store: UID and resourceVersion preconditions, the admission
chain, then either marking the object (deletionTimestamp, grace period, the finalizers
its propagation policy asks for) while a grace period or finalizers keep it, or removing
it from etcd; the rules are :func:`skiff.apiserver.registry.generic.before_delete`'s (the
update that clears the last finalizer removes it: :mod:`.writes`). Also deletecollection:
each listed object deleted the same way.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from opentelemetry import trace

from skiff import tracing
from skiff.api import errors
from skiff.api.errors import ApiError
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import rfc3339
from skiff.apiserver.storage import ConflictError, KeyValue, StorageError, codec
from skiff.apiserver.storage.codec import decode

from .. import conversion
from ..admission import Attributes, Operation
from ..registry import Strategy, generic, strategy_for
from ..registry.options import DeleteOptions
from .reads import ListOptions, ReadMixin, matcher

_tracer = tracing.tracer("skiff.apiserver.store")


class DeleteMixin(ReadMixin):
    """``delete`` and ``delete_collection``."""

    async def delete(
        self, info: ResourceInfo, namespace: str | None, name: str, opts: DeleteOptions
    ) -> tuple[dict[str, Any], bool]:
        """Delete (or start deleting) an object. Returns (object in ``info``'s version,
        whether it is gone now)."""
        with _tracer.start_as_current_span(
            "store.delete", attributes={"k8s.resource": info.plural}
        ):
            hub = conversion.hub(info)
            strategy = strategy_for(hub)
            for _attempt in range(16):
                kv = await self._get_kv(info, namespace, name)
                obj = decode(kv.value, kv.mod_revision)
                _check_delete_preconditions(info, name, obj["metadata"], opts)
                await self._admit(
                    Attributes(
                        Operation.DELETE,
                        hub,
                        None,
                        await self.converted(obj, hub),
                        namespace=namespace,
                        name=name,
                        dry_run=opts.dry_run,
                        user=opts.user,
                        request_info=info,
                    )
                )
                done = await self._commit_delete(strategy, kv, obj, opts)
                if done is not None:
                    return await self.converted(done[0], info), done[1]
            raise errors.conflict(
                info.plural, name, info.group, "too many concurrent updates; try again"
            )

    async def _commit_delete(
        self, strategy: Strategy, kv: KeyValue, obj: dict[str, Any], opts: DeleteOptions
    ) -> tuple[dict[str, Any], bool] | None:
        """Mark or delete ``obj``; None when the write must be tried again."""
        meta = obj["metadata"]
        before = copy.deepcopy(meta) if meta.get("deletionTimestamp") else None
        graceful = generic.before_delete(strategy, obj, opts, rfc3339())
        if opts.dry_run:
            return obj, not graceful
        if graceful and before is not None and before == meta:
            return obj, False  # already terminating as asked: no write, no event
        try:
            if graceful:
                value = codec.encode(obj)
                rev = await self.etcd.update(kv.key, value, kv.mod_revision)
                meta["resourceVersion"] = str(rev)
                return obj, False
            with _tracer.start_as_current_span("etcd.txn.delete", kind=trace.SpanKind.CLIENT):
                rev = await self._write(strategy, kv.key, None, kv.mod_revision, obj, None)
            meta["resourceVersion"] = str(rev)
            return obj, True
        except ConflictError:
            return None
        except StorageError as e:
            raise errors.unavailable(f"storage is unavailable: {e}") from e

    async def delete_collection(
        self,
        info: ResourceInfo,
        namespace: str | None,
        list_opts: ListOptions,
        opts: DeleteOptions,
    ) -> list[dict[str, Any]]:
        listed = await self._list_etcd(
            info,
            namespace,
            ListOptions(
                label_selector=list_opts.label_selector,
                field_selector=list_opts.field_selector,
            ),
            matcher(info, list_opts),
        )
        out = []
        sem = asyncio.Semaphore(16)

        async def one(o: dict[str, Any]) -> None:
            async with sem:
                try:
                    obj, _ = await self.delete(
                        info, o["metadata"].get("namespace"), o["metadata"]["name"], opts
                    )
                    out.append(obj)
                except ApiError as e:
                    if e.code != 404:
                        raise

        await asyncio.gather(*(one(o) for o in listed.items))
        return out


def _check_delete_preconditions(
    info: ResourceInfo, name: str, meta: dict[str, Any], opts: DeleteOptions
) -> None:
    if opts.precondition_uid and opts.precondition_uid != meta.get("uid"):
        raise errors.conflict(
            info.plural,
            name,
            info.group,
            f"Precondition failed: UID in precondition: {opts.precondition_uid}, "
            f"UID in object meta: {meta.get('uid')}",
        )
    if opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
        raise errors.conflict(
            info.plural,
            name,
            info.group,
            f"Precondition failed: ResourceVersion in precondition: "
            f"{opts.precondition_rv}, ResourceVersion in object meta: "
            f"{meta['resourceVersion']}",
        )
