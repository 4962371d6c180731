"""The service load balancer: LoadBalancer Services get addresses without a cloud, as k3s'
ServiceLB (klipper-lb) gives them.

A LoadBalancer Service without a ``loadBalancerClass`` is published on the nodes'
addresses: ``status.loadBalancer.ingress`` lists the InternalIP of every Ready node (of
those with a local endpoint, under ``externalTrafficPolicy: Local``), and each node's
proxy serves the Service's ports on that address (it routes traffic to load-balancer
IPs like any external IP). Two such Services cannot have the same port and protocol on
the same node address: the one created later gets no address and a ``Warning``
``PortInUse`` Event until the port is free, rather than a rule that would steal the
other's traffic.
"""

from __future__ import annotations

from typing import Any, ClassVar

from skiff.api.endpointslices import service_key
from skiff.api.errors import ApiError
from skiff.api.nodes import internal_ip
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable

from .nodelifecycle import ready_status


def wants_address(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


BY_SERVICE = "service-lb-by-service"


def _by_service(es: Obj) -> list[str]:
    key = service_key(es)
    return [key] if key else []


def _ours(svc: Obj) -> bool:
    """A Service this controller publishes, or published (its ingress must go)."""
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress")
    return wants_address(svc) or bool(ingress)


def _ports(svc: Obj) -> set[tuple[int, str]]:
    return {
        (int(p.get("port") or 0), (p.get("protocol") or "TCP").upper())
        for p in (svc.get("spec") or {}).get("ports") or ()
    }


def _ready_ip(node: Obj) -> str | None:
    if ready_status(node) != "True" or (node.get("spec") or {}).get("unschedulable"):
        return None
    return internal_ip(node)


def _created(svc: Obj) -> tuple[str, str]:
    meta = svc.get("metadata") or {}
    return meta.get("creationTimestamp") or "", key_of(svc)


class ServiceLBController(Controller):
    """Keeps ``status.loadBalancer.ingress`` of LoadBalancer Services on the nodes' addresses."""

    name: ClassVar[str] = "service-lb-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 2) -> None:
        super().__init__(ctx, workers=workers)
        self.services = self.watch("services")
        self.nodes = self.watch("nodes")
        self.slices = ctx.informers.index("endpointslices", BY_SERVICE, _by_service)
        if self.slices not in self.informers:
            self.informers.append(self.slices)
        self.services.add_handler(self._service, self._service_updated, self._service)
        # Any node change can change every Service's addresses; port clashes depend on all.
        self.nodes.add_handler(
            lambda _n: self._all(), lambda _o, _n: self._all(), lambda _n: self._all()
        )
        self.slices.add_handler(self._slice, lambda _o, n: self._slice(n), self._slice)

    def _service(self, svc: Obj) -> None:
        """Added or deleted: a LoadBalancer Service coming or going takes or frees ports."""
        if _ours(svc):
            self.enqueue(svc)
            self._all()

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if not (_ours(old) or _ours(new)):
            return  # other Services neither hold nor free published ports
        self.enqueue(new)
        if wants_address(old) != wants_address(new) or _ports(old) != _ports(new):
            self._all()  # ports taken or freed: others may clash or be free now

    def _slice(self, es: Obj) -> None:
        if (key := service_key(es)) is not None:
            self.queue.add(key)

    def _all(self) -> None:
        for svc in self.services.list():
            if wants_address(svc):
                self.enqueue(svc)

    def _holder(self, svc: Obj) -> Obj | None:
        """The older LoadBalancer Service that holds one of this one's ports, if any."""
        mine = _ports(svc)
        me = _created(svc)
        for other in self.services.list():
            if other is svc or not wants_address(other) or key_of(other) == key_of(svc):
                continue
            if _created(other) < me and mine & _ports(other):
                return other
        return None

    def _local_nodes(self, svc: Obj) -> set[str]:
        out: set[str] = set()
        for es in self.slices.store.by_index(BY_SERVICE, key_of(svc)):
            for ep in es.get("endpoints") or ():
                if (ep.get("conditions") or {}).get("ready") is not False and ep.get("nodeName"):
                    out.add(ep["nodeName"])
        return out

    def addresses(self, svc: Obj) -> list[str]:
        """The node addresses this Service should be published on."""
        local = (svc.get("spec") or {}).get("externalTrafficPolicy") == "Local"
        nodes = self._local_nodes(svc) if local else None
        ips = []
        for node in self.nodes.list():
            ip = _ready_ip(node)
            if ip and (nodes is None or node["metadata"]["name"] in nodes):
                ips.append(ip)
        return sorted(set(ips))

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        if svc is None:
            return None
        ingress: list[dict[str, Any]] = []
        if wants_address(svc):
            holder = self._holder(svc)
            if holder is not None:
                ports = ", ".join(
                    f"{p}/{proto}" for p, proto in sorted(_ports(svc) & _ports(holder))
                )
                self.events.emit(
                    svc,
                    "Warning",
                    "PortInUse",
                    f"port {ports} is already published by service {key_of(holder)}",
                )
            else:
                ingress = [{"ip": ip, "ipMode": "VIP"} for ip in self.addresses(svc)]
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if current == ingress:
            return None
        new = writable(svc)
        new.setdefault("status", {})["loadBalancer"] = {"ingress": ingress} if ingress else {}
        try:
            await self.client.update(
                "services", new, svc["metadata"]["namespace"], subresource="status"
            )
        except ApiError as e:
            if e.code in (404, 409):
                return None  # gone, or changed meanwhile: the informer brings it back
            raise
        if ingress:
            self.events.emit(
                svc,
                "Normal",
                "UpdatedLoadBalancer",
                f"published on {', '.join(i['ip'] for i in ingress)}",
            )
        return None
