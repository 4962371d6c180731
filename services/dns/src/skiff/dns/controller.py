"""The DNS records kept current on the shared controller runtime: Services and
EndpointSlices through shared informers, one key per Service (``ns/name``), whose
reconcile recomputes that Service's records from the caches."""

from __future__ import annotations

from typing import Any, ClassVar

from skiff.api.endpointslices import service_key
from skiff.controller.controller import Controller, ControllerContext
from skiff.dns.autopath import PodIndex
from skiff.dns.records import ClusterRecords


def _slice_service(es: dict[str, Any]) -> list[str]:
    key = service_key(es)
    return [key] if key else []


class DnsController(Controller):
    """Keeps :class:`ClusterRecords` equal to what the Services and slices say."""

    name: ClassVar[str] = "skiff-dns"

    def __init__(
        self,
        ctx: ControllerContext,
        records: ClusterRecords,
        workers: int = 2,
        pods: PodIndex | None = None,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.records = records
        self.pods = pods
        if pods is not None:  # autopath: which namespace a client address belongs to
            informer = self.watch("pods")
            informer.add_handler(
                pods.set_pod,
                lambda _o, n: pods.set_pod(n),
                lambda o: pods.set_pod(o, deleted=True),
            )
        self.services = self.watch("services")
        self.slices = ctx.informers.index("endpointslices", "service", _slice_service)
        if self.slices not in self.informers:
            self.informers.append(self.slices)
        self.services.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.slices.add_handler(self._slice, lambda _o, n: self._slice(n), self._slice)

    def _slice(self, es: dict[str, Any]) -> None:
        for key in _slice_service(es):
            self.queue.add(key)

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        slices = self.slices.store.by_index("service", key) if svc is not None else []
        self.records.set_service(key, svc, slices)
        return None

    @property
    def ready(self) -> bool:
        """Every cache has listed once (CoreDNS' kubernetes plugin gates /ready the same)."""
        return all(i.has_synced() for i in self.informers)
