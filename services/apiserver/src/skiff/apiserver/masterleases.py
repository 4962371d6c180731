"""The ``default/kubernetes`` Endpoints and EndpointSlice: the apiservers that are alive.

kube-apiserver's "lease" endpoint reconciler: every apiserver keeps a key
``/skiff/masterleases/<advertise address>`` on an etcd lease (15 s, renewed every 5 s;
outside ``/registry/``, so no watcher sees it) and, every 5 seconds, writes the
addresses of the live keys into the Endpoints and the EndpointSlice of the ``kubernetes``
Service. A stopped apiserver removes its key at once; a crashed one drops out when its
lease expires (a restarted one on the same address takes the key over then). Every
apiserver reconciles; they write the same content, so whichever writes last changes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import orjson

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.storage import Backend, KeyExistsError, StorageError
from skiff.log import get_logger

from .store import Store, WriteOptions

log = get_logger(__name__)

PREFIX = "/skiff/masterleases/"
LEASE_TTL = 15
ROUND = LEASE_TTL / 3  # seconds between renewals (and reconciles)
MANAGER = "skiff-apiserver"
ENDPOINTS = REGISTRY.by_path("", "v1", "endpoints")
SLICES = REGISTRY.by_path("discovery.k8s.io", "v1", "endpointslices")


def advertise_address(bind_address: str) -> str:
    """The address other members reach this apiserver at (``--advertise-address``).

    The bind address when it names one; else what this host's name resolves to
    (a container's own IP in compose), else loopback.
    """
    if bind_address not in ("", "0.0.0.0", "::"):
        return bind_address
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class MasterLeases:
    """This apiserver's lease key, and the reconciler of the kubernetes endpoints."""

    def __init__(self, etcd: Backend, store: Store, address: str, port: int) -> None:
        self.etcd = etcd
        self.store = store
        self.address = address
        self.port = port
        self._lease = 0

    @property
    def key(self) -> str:
        return PREFIX + self.address

    async def run(self) -> None:
        """Hold the lease and reconcile, until cancelled (then give the lease up)."""
        try:
            while True:
                try:
                    await self._hold()
                    await self.reconcile()
                except (StorageError, ApiError) as e:
                    log.warning("kubernetes endpoints not reconciled", error=str(e))
                await asyncio.sleep(ROUND)
        finally:
            await self.release()

    async def _hold(self) -> None:
        """Keep our lease alive and our key on it (recreated once a stale one expires)."""
        if not self._lease or await self.etcd.refresh_lease(self._lease) <= 0:
            self._lease = await self.etcd.grant_lease(LEASE_TTL)
        value = orjson.dumps({"ip": self.address, "port": self.port})
        with contextlib.suppress(KeyExistsError):  # ours, or a twin's on this address
            await self.etcd.create(self.key, value, lease=self._lease)

    async def release(self) -> None:
        """Drop this apiserver from the endpoints now (on a clean stop)."""
        if not self._lease:
            return
        with contextlib.suppress(StorageError, asyncio.CancelledError):
            await asyncio.shield(self.etcd.revoke_lease(self._lease))
            await asyncio.shield(self.reconcile())
        self._lease = 0

    async def live(self) -> list[tuple[str, int]]:
        """(address, port) of every apiserver whose lease is alive, sorted."""
        kvs, _ = await self.etcd.range_all(PREFIX)
        out = []
        for kv in kvs:
            data = orjson.loads(kv.value)
            out.append((data["ip"], int(data["port"])))
        return sorted(out)

    async def reconcile(self) -> None:
        """Write the live apiservers into ``default/kubernetes``'s Endpoints and slice."""
        members = await self.live()
        port = members[0][1] if members else self.port
        ips = [ip for ip, _ in members]
        endpoints: dict[str, Any] = {
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": (
                [
                    {
                        "addresses": [{"ip": ip} for ip in ips],
                        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
                    }
                ]
                if ips
                else []
            ),
        }
        family = "IPv6" if ips and ":" in ips[0] else "IPv4"
        endpoint_slice: dict[str, Any] = {
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "kubernetes"},
            },
            "addressType": family,
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
        assert ENDPOINTS is not None and SLICES is not None
        await self._put(ENDPOINTS, endpoints, ("subsets",))
        await self._put(SLICES, endpoint_slice, ("addressType", "endpoints", "ports"))

    async def _put(self, info, desired: dict[str, Any], fields: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
        """Create ``desired``, or set its ``fields`` on the stored one when they differ."""
        opts = WriteOptions(field_manager=MANAGER)
        name = desired["metadata"]["name"]

        def mutate(current: dict[str, Any]) -> dict[str, Any]:
            for f in fields:
                current[f] = desired[f]
            labels = current["metadata"].setdefault("labels", {})
            labels.update(desired["metadata"]["labels"])
            return current

        async def create() -> dict[str, Any]:
            return await self.store.create(info, "default", dict(desired), opts)

        try:
            await self.store.update_with(
                info, "default", name, mutate, opts, create_if_missing=create
            )
        except ApiError as e:
            if e.code != 409:  # created by another apiserver meanwhile: next round
                raise
