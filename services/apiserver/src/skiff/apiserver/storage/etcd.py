"""The storage interface the API server needs, implemented on etcd v3.

Every write is one transaction that returns the revision it committed at; the
API server uses that revision as ``metadata.resourceVersion``. Only these few
shapes are needed (as in kine): create-if-absent, update-if-revision-matches,
delete-if-revision-matches, range (optionally at a past revision), compact and
watch-from-revision; and :meth:`EtcdBackend.write_claiming`, which does one of the
writes together with claiming and releasing other keys in the same transaction (the
Service IP and node-port allocations, so that none outlives its Service or is given twice).

The gRPC stubs come from ``aetcd``; this module drives them directly so that it
controls revisions, limits and watch progress.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from aetcd import rpc

from .encryption import EncryptionError, Transformer
from .interface import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    StorageError,
    WatchEvent,
    prefix_end,
)

# etcd's default request limit is 1.5 MiB; range pages are kept well below gRPC's 4 MiB.
_GRPC_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 16 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 10_000),
)


def _kv(kv: rpc.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision, kv.lease)


@dataclass(frozen=True, slots=True)
class EtcdTLS:
    """``--etcd-cafile``, ``--etcd-certfile`` and ``--etcd-keyfile``: the CA of etcd's
    serving certificate and the client certificate etcd's ``--client-cert-auth`` asks for."""

    cafile: str
    certfile: str = ""
    keyfile: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        read = lambda path: Path(path).read_bytes() if path else None  # noqa: E731
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.cafile),
            private_key=read(self.keyfile),
            certificate_chain=read(self.certfile),
        )


class EtcdBackend:
    """An asyncio etcd v3 client with compare-and-swap semantics."""

    def __init__(
        self,
        endpoint: str = "127.0.0.1:2379",
        *,
        timeout: float = 10.0,
        tls: EtcdTLS | None = None,
        transformer: Transformer | None = None,
    ) -> None:
        """``transformer``: encryption at rest of the values it names (secrets...)."""
        self.endpoint = endpoint.removeprefix("http://").removeprefix("https://")
        self.tls = tls
        self.transformer = transformer
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self.kv: rpc.KVStub
        self.watch_stub: rpc.WatchStub
        self.lease_stub: rpc.LeaseStub

    async def connect(self) -> None:
        if self.tls is not None:
            self._channel = grpc.aio.secure_channel(
                self.endpoint, self.tls.credentials(), options=_GRPC_OPTIONS
            )
        else:
            self._channel = rpc.insecure_channel(self.endpoint, options=_GRPC_OPTIONS)
        self.kv = rpc.KVStub(self._channel)
        self.watch_stub = rpc.WatchStub(self._channel)
        self.lease_stub = rpc.LeaseStub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    async def __aenter__(self) -> EtcdBackend:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _kv(self, kv: rpc.KeyValue) -> KeyValue:
        out = _kv(kv)
        if self.transformer is not None and out.value:
            try:
                value, stale = self.transformer.read(out.key, out.value)
            except EncryptionError as e:
                raise StorageError(f"cannot decrypt {out.key}: {e}") from e
            out = dataclasses.replace(out, value=value, stale=stale)
        return out

    def _decode(self, key: str, value: bytes) -> bytes:
        if self.transformer is None or not value:
            return value
        try:
            return self.transformer.decode(key, value)
        except EncryptionError as e:
            raise StorageError(f"cannot decrypt {key}: {e}") from e

    def _encode(self, key: str, value: bytes) -> bytes:
        return self.transformer.encode(key, value) if self.transformer is not None else value

    async def _call(self, fn, request):  # type: ignore[no-untyped-def]
        try:
            return await fn(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in (e.details() or ""):
                raise CompactedError(0) from e
            raise StorageError(f"etcd: {e.code().name}: {e.details()}") from e

    # -- reads -------------------------------------------------------------------------

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        resp = await self._call(
            self.kv.Range, rpc.RangeRequest(key=key.encode(), revision=revision)
        )
        return self._kv(resp.kvs[0]) if resp.kvs else None

    async def range(
        self,
        prefix: str,
        *,
        start: str | None = None,
        revision: int = 0,
        limit: int = 0,
    ) -> tuple[list[KeyValue], int, bool]:
        """Keys under ``prefix`` from ``start`` on, at ``revision`` (0: now).

        Returns (key-values, the revision read at, whether more keys follow).
        """
        req = rpc.RangeRequest(
            key=(start or prefix).encode(),
            range_end=prefix_end(prefix),
            revision=revision,
            limit=limit,
        )
        resp = await self._call(self.kv.Range, req)
        return [self._kv(kv) for kv in resp.kvs], resp.header.revision, resp.more

    async def range_all(self, prefix: str, *, revision: int = 0, page: int = 2000):
        """Every key under ``prefix`` at one revision, read in pages."""
        out: list[KeyValue] = []
        start: str | None = None
        while True:
            kvs, rev, more = await self.range(prefix, start=start, revision=revision, limit=page)
            revision = rev if revision == 0 else revision
            out.extend(kvs)
            if not more or not kvs:
                return out, revision
            start = kvs[-1].key + "\0"

    async def count(self, prefix: str) -> int:
        req = rpc.RangeRequest(key=prefix.encode(), range_end=prefix_end(prefix), count_only=True)
        resp = await self._call(self.kv.Range, req)
        return resp.count

    async def current_revision(self) -> int:
        """etcd's latest revision (one cheap, linearizable read)."""
        req = rpc.RangeRequest(key=b"/registry/", count_only=True, limit=1)
        resp = await self._call(self.kv.Range, req)
        return resp.header.revision

    # -- writes ------------------------------------------------------------------------

    async def create(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Put ``key`` if absent; return the revision it was written at."""
        k = key.encode()
        txn = rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=k,
                    result=rpc.Compare.CompareResult.EQUAL,
                    target=rpc.Compare.CompareTarget.CREATE,
                    create_revision=0,
                )
            ],
            success=[
                rpc.RequestOp(
                    request_put=rpc.PutRequest(key=k, value=self._encode(key, value), lease=lease)
                )
            ],
        )
        resp = await self._call(self.kv.Txn, txn)
        if not resp.succeeded:
            raise KeyExistsError(key)
        return resp.header.revision

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Put ``key`` if its mod revision is ``expected_revision``."""
        put = rpc.RequestOp(
            request_put=rpc.PutRequest(key=key.encode(), value=self._encode(key, value))
        )
        return await self._compare_and(key, expected_revision, put)

    async def delete(self, key: str, expected_revision: int) -> int:
        """Delete ``key`` if its mod revision is ``expected_revision``."""
        delete = rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key.encode()))
        return await self._compare_and(key, expected_revision, delete)

    async def _compare_and(self, key: str, expected_revision: int, op: rpc.RequestOp) -> int:
        """Run ``op`` if ``key``'s mod revision matches; else raise with the current value."""
        k = key.encode()
        txn = rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=k,
                    result=rpc.Compare.CompareResult.EQUAL,
                    target=rpc.Compare.CompareTarget.MOD,
                    mod_revision=expected_revision,
                )
            ],
            success=[op],
            failure=[rpc.RequestOp(request_range=rpc.RangeRequest(key=k))],
        )
        resp = await self._call(self.kv.Txn, txn)
        if not resp.succeeded:
            kvs = resp.responses[0].response_range.kvs
            raise ConflictError(key, self._kv(kvs[0]) if kvs else None)
        return resp.header.revision

    async def write_claiming(
        self,
        key: str,
        value: bytes | None,
        expected_revision: int,
        *,
        claim: Mapping[str, bytes] | None = None,
        release: Iterable[str] = (),
    ) -> int:
        """In one transaction: write ``key`` and create every ``claim`` key, delete ``release``.

        ``expected_revision`` 0 creates ``key`` (:class:`KeyExistsError` if present); otherwise
        ``key`` is replaced, or deleted when ``value`` is None, if its mod revision matches
        (else :class:`ConflictError`). A claim key already present fails the whole
        transaction with :class:`KeyExistsError` naming it.
        """
        claim = claim or {}
        k = key.encode()
        if expected_revision == 0:
            own = rpc.Compare(
                key=k,
                result=rpc.Compare.CompareResult.EQUAL,
                target=rpc.Compare.CompareTarget.CREATE,
                create_revision=0,
            )
        else:
            own = rpc.Compare(
                key=k,
                result=rpc.Compare.CompareResult.EQUAL,
                target=rpc.Compare.CompareTarget.MOD,
                mod_revision=expected_revision,
            )
        compares = [own]
        ops = []
        if value is None:
            ops.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k)))
        else:
            ops.append(
                rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=self._encode(key, value)))
            )
        for ck, cv in claim.items():
            compares.append(
                rpc.Compare(
                    key=ck.encode(),
                    result=rpc.Compare.CompareResult.EQUAL,
                    target=rpc.Compare.CompareTarget.CREATE,
                    create_revision=0,
                )
            )
            ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=ck.encode(), value=cv)))
        for rk in release:
            ops.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=rk.encode())))
        checked = [key, *claim]
        txn = rpc.TxnRequest(
            compare=compares,
            success=ops,
            failure=[
                rpc.RequestOp(request_range=rpc.RangeRequest(key=c.encode())) for c in checked
            ],
        )
        resp = await self._call(self.kv.Txn, txn)
        if resp.succeeded:
            return resp.header.revision
        found = [r.response_range.kvs for r in resp.responses]
        if expected_revision == 0:
            if found[0]:
                raise KeyExistsError(key)
        elif not found[0] or found[0][0].mod_revision != expected_revision:
            raise ConflictError(key, self._kv(found[0][0]) if found[0] else None)
        taken = next((c for c, kvs in zip(checked[1:], found[1:], strict=True) if kvs), None)
        if taken is None:  # changed back between the transaction and this answer
            raise ConflictError(key, self._kv(found[0][0]) if found[0] else None)
        raise KeyExistsError(taken)

    async def compact(self, revision: int) -> None:
        try:
            await self._call(self.kv.Compact, rpc.CompactionRequest(revision=revision))
        except CompactedError:
            pass  # already compacted at or past it

    # -- leases ------------------------------------------------------------------------

    async def grant_lease(self, ttl: int) -> int:
        resp = await self._call(self.lease_stub.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl))
        return resp.ID

    async def refresh_lease(self, lease_id: int) -> int:
        """Renew a lease once; return its remaining TTL (0 or less: it has expired)."""

        async def one():  # type: ignore[no-untyped-def]
            yield rpc.LeaseKeepAliveRequest(ID=lease_id)

        try:
            async for resp in self.lease_stub.LeaseKeepAlive(one(), timeout=self.timeout):
                return resp.TTL
        except grpc.aio.AioRpcError as e:
            raise StorageError(f"etcd: {e.code().name}: {e.details()}") from e
        return 0

    async def revoke_lease(self, lease_id: int) -> None:
        await self._call(self.lease_stub.LeaseRevoke, rpc.LeaseRevokeRequest(ID=lease_id))

    # -- watch -------------------------------------------------------------------------

    async def watch(self, prefix: str, start_revision: int) -> AsyncIterator[list[WatchEvent]]:
        """Batches of changes under ``prefix`` from ``start_revision`` on, in order.

        Raises :class:`CompactedError` when that revision is gone and
        :class:`StorageError` when the stream breaks (re-watch from the last
        revision seen + 1).
        """
        queue: asyncio.Queue[rpc.WatchRequest | None] = asyncio.Queue()
        await queue.put(
            rpc.WatchRequest(
                create_request=rpc.WatchCreateRequest(
                    key=prefix.encode(),
                    range_end=prefix_end(prefix),
                    start_revision=start_revision,
                    prev_kv=True,
                    progress_notify=True,
                )
            )
        )

        async def requests():  # type: ignore[no-untyped-def]
            while (req := await queue.get()) is not None:
                yield req

        call = self.watch_stub.Watch(requests())
        try:
            async for resp in call:
                if resp.compact_revision:
                    raise CompactedError(resp.compact_revision)
                if resp.canceled:
                    raise StorageError(f"etcd watch canceled: {resp.cancel_reason}")
                if not resp.events:
                    continue
                batch = []
                for ev in resp.events:
                    if ev.type == rpc.Event.EventType.DELETE:
                        batch.append(
                            WatchEvent(
                                EventType.DELETE,
                                ev.kv.key.decode(),
                                self._decode(ev.kv.key.decode(), ev.prev_kv.value),
                                ev.kv.mod_revision,
                                False,
                            )
                        )
                    else:
                        batch.append(
                            WatchEvent(
                                EventType.PUT,
                                ev.kv.key.decode(),
                                self._decode(ev.kv.key.decode(), ev.kv.value),
                                ev.kv.mod_revision,
                                ev.kv.create_revision == ev.kv.mod_revision,
                            )
                        )
                yield batch
            raise StorageError("etcd watch stream ended")
        except grpc.aio.AioRpcError as e:
            raise StorageError(f"etcd watch: {e.code().name}: {e.details()}") from e
        finally:
            await queue.put(None)
            call.cancel()
