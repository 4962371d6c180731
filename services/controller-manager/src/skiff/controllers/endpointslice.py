"""The EndpointSlice controller (``pkg/controller/endpointslice``).

For every Service with a selector (and not of type ExternalName) it keeps
``discovery.k8s.io/v1`` EndpointSlices labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` and
controlled by the Service (ownerReference). One endpoint per selected pod with an IP
that is not finished, terminating pods included: ``serving`` is the pod's readiness,
``terminating`` its deletion, ``ready`` serving and not terminating (always true with
``publishNotReadyAddresses``); with ``nodeName``, the node's ``zone``, ``hostname``
when the pod's subdomain names the Service, and a ``targetRef`` to the pod.

Pods offering the same resolved ports share slices of at most 100 endpoints
(``--max-endpoints-per-slice``); one slice per IP family of the Service. As in
Kubernetes' reconciler, changes are made in place where possible: endpoints that stay
stay in their slice, new ones fill slices that are being written anyway, then slices
with room, then new slices; a slice left empty is deleted, and a Service without
endpoints keeps a single empty placeholder slice. Writes create first and delete last.

The controller remembers the resourceVersion of each slice it wrote and does not act
on a Service again until its cache has caught up, so a slow cache never makes it
create a slice twice. The slices of a deleted Service are deleted (the garbage
collector would also remove them through their ownerReference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from skiff.api.endpointslices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from skiff.api.errors import ApiError, namespace_terminating
from skiff.api.selectors import LabelSelector
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.controller import ControllerContext, writable
from skiff.controller.ownwrites import OwnWrites
from skiff.controller.podcontrol import generate_name_prefix

from .endpoints import (
    HEADLESS_LABEL,
    STALE_RETRY_SECONDS,
    ServicePodsController,
    find_port,
    ip_family,
    is_headless,
    pod_ips,
    service_families,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)
from .pods import is_ready

SLICES = "endpointslices.discovery.k8s.io"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100
SLICE_SERVICE_INDEX = "endpointslice-controller:service"
"""Index of the slices this controller manages by ``namespace/service``."""

PortsKey = tuple[tuple[str, int, str, str], ...]


def managed_slice_index(controller: str) -> Callable[[Obj], list[str]]:
    """An index function of the slices ``controller`` manages, by ``namespace/service``."""

    def index(obj: Obj) -> list[str]:
        meta = obj.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != controller or not labels.get(SERVICE_NAME_LABEL):
            return []
        return [f"{meta.get('namespace') or ''}/{labels[SERVICE_NAME_LABEL]}"]

    return index


slice_service_index = managed_slice_index(CONTROLLER_NAME)
"""Index function for :data:`SLICE_SERVICE_INDEX`."""


def owned_by(obj: Obj, svc: Obj) -> bool:
    uid = svc["metadata"].get("uid")
    return any(
        r.get("uid") == uid and r.get("kind") == "Service"
        for r in obj["metadata"].get("ownerReferences") or ()
    )


def slice_port(p: Obj) -> Obj:
    """An EndpointSlice port (protocol defaulted to TCP, appProtocol when set)."""
    out: Obj = {"name": p.get("name") or "", "port": p.get("port"), "protocol": "TCP"}
    if p.get("protocol"):
        out["protocol"] = p["protocol"]
    if p.get("appProtocol"):
        out["appProtocol"] = p["appProtocol"]
    return out


def ports_key(ports: list[Obj] | None) -> PortsKey:
    return tuple(
        sorted(
            (
                p.get("name") or "",
                int(p.get("port") or 0),
                p.get("protocol") or "TCP",
                p.get("appProtocol") or "",
            )
            for p in ports or ()
        )
    )


def endpoint_key(ep: Obj) -> tuple[Any, ...]:
    """Which pod (and addresses) an endpoint stands for."""
    return (tuple(ep.get("addresses") or ()), (ep.get("targetRef") or {}).get("uid") or "")


def normalize_endpoint(ep: Obj) -> Obj:
    """An endpoint in canonical form, for comparing what is stored with what is wanted."""
    out: Obj = {"addresses": list(ep.get("addresses") or ())}
    cond = ep.get("conditions") or {}
    out["conditions"] = {k: cond.get(k) for k in ("ready", "serving", "terminating")}
    ref = ep.get("targetRef")
    if ref:
        out["targetRef"] = {k: v for k, v in ref.items() if k != "resourceVersion" and v}
    for k in ("nodeName", "zone", "hostname"):
        if ep.get(k):
            out[k] = ep[k]
    return out


@dataclass(slots=True)
class _Desired:
    ports: list[Obj]
    endpoints: dict[tuple[Any, ...], Obj] = field(default_factory=dict)


@dataclass(slots=True)
class _Plan:
    create: list[Obj] = field(default_factory=list)
    update: list[Obj] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


class EndpointSliceController(ServicePodsController):
    """Keeps the EndpointSlices of every Service with a selector."""

    name: ClassVar[str] = "endpointslice-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 5,
        max_endpoints_per_slice: int = MAX_ENDPOINTS_PER_SLICE,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.max_endpoints = max(1, max_endpoints_per_slice)
        ctx.informers.index(SLICES, SLICE_SERVICE_INDEX, slice_service_index)
        self.slices = self.watch(SLICES)
        self.nodes = self.watch("nodes")
        self.own_writes = OwnWrites()
        self.slices.add_handler(
            self._slice_changed, lambda _o, n: self._slice_changed(n), self._slice_deleted
        )

    # -- event handlers ------------------------------------------------------------------

    def _slice_changed(self, s: Obj) -> None:
        for key in slice_service_index(s):
            self.queue.add(key)

    def _slice_deleted(self, s: Obj) -> None:
        for key in slice_service_index(s):
            self.own_writes.observed_deletion(key, key_of(s))
            self.queue.add(key)

    # -- desired state -------------------------------------------------------------------

    def desired_labels(self, svc: Obj) -> dict[str, str]:
        """``setEndpointSliceLabels``: the Service's labels plus the controller's."""
        labels = {
            k: v
            for k, v in (svc["metadata"].get("labels") or {}).items()
            if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)
        }
        if is_headless(svc):
            labels[HEADLESS_LABEL] = ""
        labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
        labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
        return labels

    def endpoint_ports(self, svc: Obj, pod: Obj) -> list[Obj]:
        """``getEndpointPorts``: the service ports the pod offers, resolved to its numbers."""
        out = []
        for sp in (svc.get("spec") or {}).get("ports") or ():
            number = find_port(pod, sp)
            if number is None:
                continue
            out.append(
                slice_port(
                    {
                        "name": sp.get("name"),
                        "port": number,
                        "protocol": sp.get("protocol"),
                        "appProtocol": sp.get("appProtocol"),
                    }
                )
            )
        return out

    def pod_endpoint(self, svc: Obj, pod: Obj, family: str) -> Obj | None:
        """``podToEndpoint``; None when the pod has no address of ``family``."""
        addresses = [ip for ip in pod_ips(pod) if ip_family(ip) == family]
        if not addresses:
            return None
        serving = is_ready(pod)
        terminating = bool(pod["metadata"].get("deletionTimestamp"))
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        ep: Obj = {
            "addresses": addresses[:1],
            "conditions": {
                "ready": publish or (serving and not terminating),
                "serving": serving,
                "terminating": terminating,
            },
            "targetRef": target_ref(pod),
        }
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name:
            ep["nodeName"] = node_name
            node = self.nodes.get(node_name)
            zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
            if zone:
                ep["zone"] = zone
        if should_set_hostname(pod, svc):
            ep["hostname"] = pod["spec"]["hostname"]
        return ep

    def desired(self, svc: Obj, selector: LabelSelector, family: str) -> dict[PortsKey, _Desired]:
        """The wanted endpoints of one family, grouped by the ports their pods offer."""
        out: dict[PortsKey, _Desired] = {}
        for pod in self.selected_pods(svc, selector):
            if not should_pod_be_in_endpoints(pod, include_terminating=True):
                continue
            ep = self.pod_endpoint(svc, pod, family)
            if ep is None:
                continue
            ports = self.endpoint_ports(svc, pod)
            group = out.setdefault(ports_key(ports), _Desired(sorted(ports, key=_port_sort)))
            group.endpoints[endpoint_key(ep)] = ep
        return out

    def new_slice(self, svc: Obj, family: str, ports: list[Obj], endpoints: list[Obj]) -> Obj:
        """``newEndpointSlice``: named after the Service, controlled by it."""
        meta = svc["metadata"]
        return {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "generateName": generate_name_prefix(meta["name"]),
                "namespace": meta.get("namespace"),
                "labels": self.desired_labels(svc),
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": family,
            "ports": ports,
            "endpoints": endpoints,
        }

    # -- planning ------------------------------------------------------------------------

    def plan(self, svc: Obj, selector: LabelSelector, existing: list[Obj]) -> _Plan:
        """The creates, updates and deletes that make the slices match (``reconcile``)."""
        plan = _Plan()
        families = service_families(svc)
        labels = self.desired_labels(svc)
        mine: dict[str, list[Obj]] = {f: [] for f in families}
        for s in existing:
            if not owned_by(s, svc) or s.get("addressType") not in mine:
                plan.delete.append(s)
            else:
                mine[s["addressType"]].append(s)
        for family in families:
            self._plan_family(
                svc, family, labels, self.desired(svc, selector, family), mine[family], plan
            )
        return plan

    def _plan_family(
        self,
        svc: Obj,
        family: str,
        labels: dict[str, str],
        desired: dict[PortsKey, _Desired],
        existing: list[Obj],
        plan: _Plan,
    ) -> None:
        limit = self.max_endpoints
        kept: list[Obj] = []  # existing slices that stay (changed or not)
        deleting: list[Obj] = []
        by_ports: dict[PortsKey, list[Obj]] = {}
        for s in sorted(existing, key=lambda s: s["metadata"]["name"]):
            by_ports.setdefault(ports_key(s.get("ports")), []).append(s)
        creates: list[Obj] = []
        for pk, slices in by_ports.items():
            if pk not in desired:
                deleting.extend(slices)
        for pk, want in desired.items():
            placed: set[tuple[Any, ...]] = set()
            changed: list[tuple[Obj, list[Obj]]] = []
            unchanged: list[tuple[Obj, list[Obj]]] = []
            for s in by_ports.get(pk, []):
                eps: list[Obj] = []
                dirty = False
                for ep in s.get("endpoints") or ():
                    k = endpoint_key(ep)
                    if k in want.endpoints and k not in placed and len(eps) < limit:
                        new = want.endpoints[k]
                        if normalize_endpoint(ep) != normalize_endpoint(new):
                            dirty = True
                        eps.append(new)
                        placed.add(k)
                    else:
                        dirty = True
                meta_changed = (s["metadata"].get("labels") or {}) != labels or [
                    slice_port(p) for p in s.get("ports") or ()
                ] != want.ports
                (changed if dirty or meta_changed else unchanged).append((s, eps))
            remaining = [ep for k, ep in want.endpoints.items() if k not in placed]
            # Fill the slices being written anyway, then the fullest-with-room others.
            for _s, eps in changed:
                take = max(0, limit - len(eps))
                eps.extend(remaining[:take])
                remaining = remaining[take:]
            unchanged.sort(key=lambda item: -len(item[1]))
            for item in list(unchanged):
                if not remaining:
                    break
                s, eps = item
                take = max(0, limit - len(eps))
                if take:
                    eps.extend(remaining[:take])
                    remaining = remaining[take:]
                    unchanged.remove(item)
                    changed.append(item)
            for s, eps in changed:
                if not eps:
                    deleting.append(s)
                    continue
                obj = writable(s)
                obj["metadata"]["labels"] = labels
                obj["ports"] = want.ports
                obj["endpoints"] = eps
                plan.update.append(obj)
                kept.append(s)
            kept.extend(s for s, _ in unchanged)
            for i in range(0, len(remaining), limit):
                creates.append(self.new_slice(svc, family, want.ports, remaining[i : i + limit]))
        if not kept and not creates:
            # No endpoints at all: one empty placeholder slice stays.
            placeholder = next(
                (s for s in deleting if not s.get("endpoints") and not s.get("ports")), None
            )
            if placeholder is None:
                creates.append(self.new_slice(svc, family, [], []))
            else:
                deleting.remove(placeholder)
                if (placeholder["metadata"].get("labels") or {}) != labels:
                    obj = writable(placeholder)
                    obj["metadata"]["labels"] = labels
                    plan.update.append(obj)
        plan.create.extend(creates)
        plan.delete.extend(deleting)

    # -- reconcile -----------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        existing = self.slices.store.by_index(SLICE_SERVICE_INDEX, key)
        if svc is None:
            await self._apply(key, None, _Plan(delete=existing))
            if not existing:
                self.own_writes.forget(key)
            return None
        selector = self.selector(svc)
        if selector is None:
            return None  # no selector (or ExternalName): not ours
        if self.own_writes.pending(key, self.slices.get):
            return STALE_RETRY_SECONDS  # our last writes are not in the cache yet
        plan = self.plan(svc, selector, existing)
        try:
            await self._apply(key, svc, plan)
        except ApiError as e:
            if e.code != 409:
                self.events.emit(
                    {"kind": "Service", "apiVersion": "v1", "metadata": svc["metadata"]},
                    "Warning",
                    "FailedToUpdateEndpointSlices",
                    f"Error updating Endpoint Slices for Service {key}: {e.message}",
                )
            raise
        return None

    async def _apply(self, key: str, svc: Obj | None, plan: _Plan) -> None:
        """Create, then update, then delete; remember every write for the staleness check."""
        ns, _ = split_key(key)
        for obj in plan.create:
            try:
                created = await self.client.create(SLICES, obj, ns)
            except ApiError as e:
                if namespace_terminating(e):
                    return
                raise
            self.own_writes.wrote(key, created)
        for obj in plan.update:
            try:
                updated = await self.client.update(SLICES, obj, ns)
            except ApiError as e:
                if e.code == 404:
                    continue
                raise
            self.own_writes.wrote(key, updated)
        for s in plan.delete:
            meta = s["metadata"]
            try:
                await self.client.delete(
                    SLICES, meta["name"], ns, preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
            self.own_writes.wrote(key, s, deleted=True)
        if plan.create or plan.update or plan.delete:
            self.log.debug(
                "endpoint slices written",
                service=key,
                created=len(plan.create),
                updated=len(plan.update),
                deleted=len(plan.delete),
            )


def _port_sort(p: Obj) -> tuple[str, int, str]:
    return (p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP")
