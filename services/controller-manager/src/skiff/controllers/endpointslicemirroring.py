"""The EndpointSlice mirroring controller (kube's ``pkg/controller/endpointslicemirroring``).

Endpoints written by hand for a Service without a selector (an external database, a
service of another cluster) are mirrored into EndpointSlices, which are what the proxy
and the cluster DNS read: one slice per address family and set of ports, at most 1000
endpoints each (addresses ready, ``notReadyAddresses`` not), labelled
``kubernetes.io/service-name`` and ``endpointslice.kubernetes.io/managed-by:
endpointslicemirroring-controller.k8s.io``, with the Endpoints' other labels and
annotations, controlled by the Endpoints. Endpoints labelled
``endpointslice.kubernetes.io/skip-mirror: "true"`` (the apiserver's own ``kubernetes``
Endpoints), of a Service with a selector (the endpointslice controller's business) or
of no Service at all are not mirrored, and their mirrored slices are deleted.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from typing import Any, ClassVar

from skiff.api.endpointslices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from skiff.api.errors import ApiError, namespace_terminating
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.podcontrol import generate_name_prefix

from .endpointslice import SLICES, managed_slice_index, normalize_endpoint, ports_key, slice_port

CONTROLLER_NAME = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_ENDPOINTS_PER_SUBSET = 1000
MIRRORED_INDEX = "endpointslicemirroring:endpoints"
"""Index of the mirrored slices by ``namespace/name`` of their Endpoints."""
_NOT_COPIED = ("endpoints.kubernetes.io/last-change-trigger-time",
               "kubectl.kubernetes.io/last-applied-configuration")  # fmt: skip


mirrored_index = managed_slice_index(CONTROLLER_NAME)


def _address_type(ip: str) -> str | None:
    try:
        return f"IPv{ipaddress.ip_address(ip).version}"
    except ValueError:
        return None


def _endpoint(address: Obj, ready: bool) -> Obj:
    """``addressToEndpoint``."""
    ep: Obj = {"addresses": [address["ip"]], "conditions": {"ready": ready}}
    if address.get("targetRef"):
        ep["targetRef"] = address["targetRef"]
    if address.get("nodeName"):
        ep["nodeName"] = address["nodeName"]
    if address.get("hostname"):
        ep["hostname"] = address["hostname"]
    return ep


def desired_groups(endpoints: Obj) -> dict[tuple[str, Any], tuple[list[Obj], list[Obj]]]:
    """(address type, ports) → (ports, endpoints) of the Endpoints' subsets; at most
    :data:`MAX_ENDPOINTS_PER_SUBSET` addresses of each subset, invalid IPs left out."""
    groups: dict[tuple[str, Any], tuple[list[Obj], list[Obj]]] = {}
    for subset in endpoints.get("subsets") or ():
        ports = [slice_port(p) for p in subset.get("ports") or ()]
        taken = 0
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or ():
                if taken >= MAX_ENDPOINTS_PER_SUBSET:
                    break
                family = _address_type(address.get("ip") or "")
                if family is None:
                    continue
                group = groups.setdefault((family, ports_key(ports)), (ports, []))
                group[1].append(_endpoint(address, ready))
                taken += 1
    return groups


def _shape(s: Obj) -> tuple[Any, ...]:
    """What a mirrored slice says, for comparing a stored one with the wanted one."""
    meta = s.get("metadata") or {}
    return (
        s.get("addressType"),
        ports_key(s.get("ports")),
        sorted((normalize_endpoint(e) for e in s.get("endpoints") or ()), key=repr),
        meta.get("labels") or {},
        meta.get("annotations") or {},
    )


class EndpointSliceMirroringController(Controller):
    """Mirrors the Endpoints of selectorless Services into EndpointSlices."""

    name: ClassVar[str] = "endpointslice-mirroring-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        self.endpoints = self.watch("endpoints")
        self.services = self.watch("services")
        ctx.informers.index(SLICES, MIRRORED_INDEX, mirrored_index)
        self.slices = self.watch(SLICES)
        for informer in (self.endpoints, self.services):
            informer.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.slices.add_handler(self._slice, lambda _o, n: self._slice(n), self._slice)

    def _slice(self, s: Obj) -> None:
        for key in mirrored_index(s):
            self.queue.add(key)

    def should_mirror(self, endpoints: Obj | None, svc: Obj | None) -> bool:
        if endpoints is None or svc is None:
            return False
        labels = endpoints["metadata"].get("labels") or {}
        return labels.get(SKIP_MIRROR_LABEL) != "true" and not (svc.get("spec") or {}).get(
            "selector"
        )

    def desired(self, endpoints: Obj) -> list[Obj]:
        """``newEndpointSlice`` for each address type and ports, in slices of at most
        :data:`MAX_ENDPOINTS_PER_SUBSET` endpoints."""
        meta = endpoints["metadata"]
        labels = {**(meta.get("labels") or {}), SERVICE_NAME_LABEL: meta["name"],
                  MANAGED_BY_LABEL: CONTROLLER_NAME}  # fmt: skip
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k not in _NOT_COPIED}  # fmt: skip
        out = []
        for (family, _), (ports, eps) in sorted(desired_groups(endpoints).items(), key=repr):
            for i in range(0, len(eps), MAX_ENDPOINTS_PER_SUBSET):
                slice_meta: Obj = {
                    "generateName": generate_name_prefix(meta["name"]),
                    "namespace": meta.get("namespace"),
                    "labels": dict(labels),
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Endpoints",
                                         "name": meta["name"], "uid": meta["uid"],
                                         "controller": True, "blockOwnerDeletion": True}],
                }  # fmt: skip
                if annotations:
                    slice_meta["annotations"] = dict(annotations)
                out.append({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": slice_meta, "addressType": family, "ports": ports,
                            "endpoints": eps[i : i + MAX_ENDPOINTS_PER_SUBSET]})  # fmt: skip
        return out

    async def reconcile(self, key: str) -> float | None:
        endpoints, svc = self.endpoints.get(key), self.services.get(key)
        existing = self.slices.store.by_index(MIRRORED_INDEX, key)
        wanted = self.desired(endpoints) if self.should_mirror(endpoints, svc) else []
        # Keep a stored slice for each wanted one of the same address type and ports.
        free: dict[tuple[Any, ...], list[Obj]] = defaultdict(list)
        for s in existing:
            free[(s.get("addressType"), ports_key(s.get("ports")))].append(s)
        creates: list[Obj] = []
        updates: list[Obj] = []
        for want in wanted:
            pool = free[(want["addressType"], ports_key(want["ports"]))]
            if not pool:
                creates.append(want)
                continue
            current = pool.pop()
            if _shape(current) != _shape(want):
                new = writable(current)
                new["metadata"]["labels"] = want["metadata"]["labels"]
                new["metadata"]["annotations"] = want["metadata"].get("annotations") or {}
                new.update(ports=want["ports"], endpoints=want["endpoints"])
                updates.append(new)
        ns = key.partition("/")[0]
        for s in creates:
            try:
                await self.client.create(SLICES, s, ns)
            except ApiError as e:
                if namespace_terminating(e):
                    return None
                raise
        for s in updates:
            await self.client.update(SLICES, s, ns)
        for s in (s for pool in free.values() for s in pool):
            try:
                await self.client.delete(SLICES, s["metadata"]["name"], ns)
            except ApiError as e:
                if e.code != 404:
                    raise
        return None
