"""The Endpoints controller (``pkg/controller/endpoint``), and what it shares with the
EndpointSlice controller: which pods back a Service, on which ports.

For every Service with a selector (and not of type ExternalName) the controller keeps
an Endpoints object of the same name listing the selected pods of its namespace that
have an IP and are not finished: ready pods under ``addresses``, the others under
``notReadyAddresses`` (all under ``addresses`` with ``publishNotReadyAddresses``;
terminating pods only then). Each service port maps to the pod's port: a number
``targetPort`` as it is, a named one to the container port of that name and protocol
(a pod without it is left out of that port). Addresses carry the pod's node, a
``targetRef`` to the pod, and its ``hostname`` when the pod's ``subdomain`` names the
Service. Subsets are packed as ``RepackSubsets`` packs them (addresses sharing the same
ports together), so an unchanged set of pods never causes a write; more than 1,000
addresses are truncated (``endpoints.kubernetes.io/over-capacity: truncated``).

Services without a selector are left alone (their Endpoints are someone else's); the
Endpoints of a deleted Service are deleted, including those left behind while the
controller was down (except leader-election records).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from typing import Any, ClassVar

from skiff.api.errors import ApiError, namespace_terminating
from skiff.api.pods import is_terminal
from skiff.api.selectors import LabelSelector, selector_from_map
from skiff.client.informer import key_of, split_key
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext, writable
from skiff.controller.owners import NAMESPACE_INDEX, namespace_index
from skiff.controller.ownwrites import OwnWrites

from .pods import is_ready

LABEL_MANAGED_BY = "endpoints.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
MAX_CAPACITY = 1000
"""Addresses one Endpoints object holds at most (``maxCapacity``)."""
STALE_RETRY_SECONDS = 1.0


# -- services and pods (shared with the EndpointSlice controller) ----------------------


def service_selector(svc: Obj) -> LabelSelector | None:
    """The Service's pod selector; None when it has none (its endpoints are managed by hand)."""
    raw = (svc.get("spec") or {}).get("selector")
    if not raw:
        return None
    return selector_from_map(raw)


def selects_pods(svc: Obj) -> bool:
    """Whether the endpoint controllers manage this Service's endpoints."""
    spec = svc.get("spec") or {}
    return spec.get("type") != "ExternalName" and bool(spec.get("selector"))


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def service_ip_set(svc: Obj) -> bool:
    """``IsServiceIPSet``: a cluster IP that is neither empty nor ``None``."""
    return (svc.get("spec") or {}).get("clusterIP") not in (None, "", "None")


def ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def service_families(svc: Obj) -> list[str]:
    """The Service's IP families, primary first (IPv4 when it names none)."""
    spec = svc.get("spec") or {}
    families = [f for f in spec.get("ipFamilies") or () if f in ("IPv4", "IPv6")]
    if not families:
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP") or ""] if ip]
        families = [ip_family(ip) for ip in ips if ip != "None"]
    return families or ["IPv4"]


def pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or () if p.get("ip")]
    if not ips and status.get("podIP"):
        ips = [status["podIP"]]
    return ips


def pod_ip_for(pod: Obj, family: str) -> str | None:
    """The pod's IP of ``family``, if it has one."""
    return next((ip for ip in pod_ips(pod) if ip_family(ip) == family), None)


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """``ShouldPodBeInEndpoints``: not finished, with an IP, terminating only if asked."""
    if is_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    """``ShouldSetHostname``: the pod has a hostname and its subdomain is the Service."""
    spec = pod.get("spec") or {}
    return (
        bool(spec.get("hostname"))
        and spec.get("subdomain") == svc["metadata"]["name"]
        and pod["metadata"].get("namespace") == svc["metadata"].get("namespace")
    )


def _pod_ports(pod: Obj) -> Iterable[Obj]:
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or ():
        yield from c.get("ports") or ()
    for c in spec.get("initContainers") or ():
        if c.get("restartPolicy") == "Always":  # sidecars serve too
            yield from c.get("ports") or ()


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod port a service port targets (``FindPort``); None when the pod has no such port.

    A number is used as it is; a name is looked up among the container ports of the
    same protocol. A missing ``targetPort`` means the service port's own number.
    """
    target = service_port.get("targetPort")
    if target is None or target == "" or target == 0:
        target = service_port.get("port")
    if isinstance(target, int):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for port in _pod_ports(pod):
        if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
            n = port.get("containerPort")
            return int(n) if n is not None else None
    return None


def endpoint_fields(pod: Obj) -> tuple[Any, ...]:
    """What of a pod the endpoints depend on (``podEndpointsChanged``)."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    return (
        meta.get("labels"),
        bool(meta.get("deletionTimestamp")),
        tuple(pod_ips(pod)),
        is_ready(pod),
        is_terminal(pod),
        spec.get("hostname"),
        spec.get("subdomain"),
        spec.get("nodeName"),
    )


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {
        "kind": "Pod",
        "namespace": meta.get("namespace"),
        "name": meta["name"],
        "uid": meta.get("uid"),
    }


class ServicePodsController(Controller):
    """A controller keyed by Service that follows the pods its selector picks."""

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        ctx.informers.index("services", NAMESPACE_INDEX, namespace_index)
        ctx.informers.index("pods", NAMESPACE_INDEX, namespace_index)
        self.services = self.watch("services")
        self.pods = self.watch("pods")
        self._selectors: dict[str, tuple[Any, LabelSelector | None]] = {}
        self.services.add_handler(self.enqueue, self._service_updated, self._service_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    def selector(self, svc: Obj) -> LabelSelector | None:
        """The Service's parsed selector (cached per uid)."""
        uid = svc["metadata"].get("uid", "")
        raw = (svc.get("spec") or {}).get("selector")
        cached = self._selectors.get(uid)
        if cached is not None and cached[0] == raw:
            return cached[1]
        sel = service_selector(svc) if selects_pods(svc) else None
        self._selectors[uid] = (raw, sel)
        return sel

    def services_selecting(self, pod: Obj, labels: dict[str, str] | None = None) -> list[str]:
        """Keys of the Services in the pod's namespace whose selector picks it."""
        meta = pod["metadata"]
        labels = meta.get("labels") if labels is None else labels
        out = []
        for svc in self.services.store.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
            sel = self.selector(svc)
            if sel is not None and sel.matches(labels):
                out.append(key_of(svc))
        return out

    def selected_pods(self, svc: Obj, selector: LabelSelector) -> list[Obj]:
        """The pods of the Service's namespace that its selector picks, by name."""
        ns = svc["metadata"].get("namespace") or ""
        pods = [
            p
            for p in self.pods.store.by_index(NAMESPACE_INDEX, ns)
            if selector.matches(p["metadata"].get("labels"))
        ]
        pods.sort(key=lambda p: p["metadata"]["name"])
        return pods

    # -- event handlers ------------------------------------------------------------------

    def _service_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._selectors.pop(old["metadata"].get("uid", ""), None)
        self.enqueue(new)

    def _service_deleted(self, svc: Obj) -> None:
        self._selectors.pop(svc["metadata"].get("uid", ""), None)
        self.enqueue(svc)

    def _pod_added(self, pod: Obj) -> None:
        for key in self.services_selecting(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return
        if endpoint_fields(old) == endpoint_fields(new):
            return
        keys = set(self.services_selecting(new))
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            keys.update(self.services_selecting(old))
        for key in keys:
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        self._pod_added(pod)


# -- subsets ---------------------------------------------------------------------------


def _ip_sort_key(ip: str) -> tuple[int, int, str]:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return (9, 0, ip)
    return (addr.version, int(addr), ip)


def _address_key(addr: Obj) -> tuple[tuple[int, int, str], str]:
    return (_ip_sort_key(addr.get("ip") or ""), ((addr.get("targetRef") or {}).get("uid") or ""))


def _port_key(port: Obj) -> tuple[str, int, str, str]:
    return (
        port.get("name") or "",
        int(port.get("port") or 0),
        port.get("protocol") or "TCP",
        port.get("appProtocol") or "",
    )


def _clean_address(addr: Obj) -> Obj:
    out = {k: v for k, v in addr.items() if v not in (None, "")}
    ref = out.get("targetRef")
    if isinstance(ref, dict):
        out["targetRef"] = {k: v for k, v in ref.items() if k != "resourceVersion" and v}
    return out


def _clean_port(port: Obj) -> Obj:
    out = {k: v for k, v in port.items() if v not in (None, "")}
    out.setdefault("protocol", "TCP")
    return out


def _subset(ready: list[Obj], not_ready: list[Obj], ports: list[Obj]) -> Obj:
    subset: Obj = {}
    if ready:
        subset["addresses"] = sorted(ready, key=_address_key)
    if not_ready:
        subset["notReadyAddresses"] = sorted(not_ready, key=_address_key)
    if ports:
        subset["ports"] = sorted(ports, key=_port_key)
    return subset


def _subset_sort_key(subset: Obj) -> tuple[Any, ...]:
    addrs = [*subset.get("addresses", ()), *subset.get("notReadyAddresses", ())]
    return (
        [_address_key(a) for a in addrs],
        [_port_key(p) for p in subset.get("ports", ())],
    )


_NO_PORT = ("", -1, "", "")


def repack_subsets(entries: Iterable[tuple[Obj, bool, Obj | None]]) -> list[Obj]:
    """Pack (address, ready, port or None) into canonical subsets (``RepackSubsets``).

    Addresses offering the same set of ports share a subset; an address both ready and
    not ready for a port counts as ready. Sorted, so equal inputs give equal outputs.
    """
    by_port: dict[tuple[str, int, str, str], dict[tuple[Any, ...], tuple[Obj, bool]]] = {}
    ports: dict[tuple[str, int, str, str], Obj] = {}
    for addr, ready, port in entries:
        pk = _NO_PORT if port is None else _port_key(port)
        if port is not None:
            ports[pk] = _clean_port(port)
        addrs = by_port.setdefault(pk, {})
        ak = _address_key(addr)
        prev = addrs.get(ak)
        addrs[ak] = (_clean_address(addr), ready or (prev is not None and prev[1]))
    groups: dict[frozenset[tuple[Any, bool]], tuple[list[tuple[Obj, bool]], list[Obj]]] = {}
    for pk, addrs in by_port.items():
        gk = frozenset((ak, ready) for ak, (_, ready) in addrs.items())
        group = groups.setdefault(gk, (list(addrs.values()), []))
        if pk != _NO_PORT:
            group[1].append(ports[pk])
    subsets = [
        _subset([a for a, r in addrs if r], [a for a, r in addrs if not r], group_ports)
        for addrs, group_ports in groups.values()
    ]
    subsets.sort(key=_subset_sort_key)
    return subsets


def normalize_subsets(subsets: Iterable[Obj] | None) -> list[Obj]:
    """Subsets in canonical form, for comparing what is stored with what is wanted."""
    out = []
    for s in subsets or ():
        subset = _subset(
            [_clean_address(a) for a in s.get("addresses") or ()],
            [_clean_address(a) for a in s.get("notReadyAddresses") or ()],
            [_clean_port(p) for p in s.get("ports") or ()],
        )
        if subset:
            out.append(subset)
    out.sort(key=_subset_sort_key)
    return out


def truncate_subsets(subsets: list[Obj], capacity: int = MAX_CAPACITY) -> bool:
    """Cut the subsets to ``capacity`` addresses, ready ones first (``truncateEndpoints``).

    Each subset keeps its share, rounded up. True when something was cut.
    """
    ready_total = sum(len(s.get("addresses") or ()) for s in subsets)
    not_ready_total = sum(len(s.get("notReadyAddresses") or ()) for s in subsets)
    if ready_total + not_ready_total <= capacity:
        return False
    truncate_ready = ready_total > capacity
    limit = capacity if truncate_ready else capacity - ready_total
    total = ready_total if truncate_ready else not_ready_total
    left = limit
    for s in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        current = s.get(field) or []
        share = min(math.ceil(len(current) / total * limit), left) if total else 0
        kept = current[:share]
        if kept:
            s[field] = kept
        else:
            s.pop(field, None)
        if truncate_ready:
            s.pop("notReadyAddresses", None)
        left -= len(kept)
    return True


# -- the controller --------------------------------------------------------------------


class EndpointsController(ServicePodsController):
    """Keeps the Endpoints of every Service with a selector."""

    name: ClassVar[str] = "endpoints-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        self.endpoints = self.watch("endpoints")
        # Every Endpoints seen (the first list included) is checked against its Service:
        # leftovers of Services deleted while the controller was down go too.
        self.endpoints.add_handler(
            self._endpoints_changed,
            lambda _o, n: self._endpoints_changed(n),
            self._endpoints_changed,
        )
        self.own_writes = OwnWrites()

    def _endpoints_changed(self, ep: Obj) -> None:
        if LEADER_ANNOTATION in (ep["metadata"].get("annotations") or {}):
            return
        self.enqueue(ep)

    def desired_subsets(self, svc: Obj, selector: LabelSelector) -> list[Obj]:
        """The Service's subsets from the pods it selects (``syncService``)."""
        spec = svc.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        family = service_families(svc)[0]
        service_ports = spec.get("ports") or []
        entries: list[tuple[Obj, bool, Obj | None]] = []
        for pod in self.selected_pods(svc, selector):
            if not should_pod_be_in_endpoints(pod, publish):
                continue
            ip = pod_ip_for(pod, family)
            if ip is None:
                continue
            addr: Obj = {"ip": ip}
            if should_set_hostname(pod, svc):
                addr["hostname"] = pod["spec"]["hostname"]
            node = (pod.get("spec") or {}).get("nodeName")
            if node:
                addr["nodeName"] = node
            addr["targetRef"] = target_ref(pod)
            ready = publish or is_ready(pod)
            if not service_ports:
                if is_headless(svc):
                    entries.append((addr, ready, None))
                continue
            for sp in service_ports:
                number = find_port(pod, sp)
                if number is None:
                    continue
                port: Obj = {"port": number, "protocol": sp.get("protocol") or "TCP"}
                if sp.get("name"):
                    port["name"] = sp["name"]
                if sp.get("appProtocol"):
                    port["appProtocol"] = sp["appProtocol"]
                entries.append((addr, ready, port))
        return repack_subsets(entries)

    @staticmethod
    def desired_labels(svc: Obj) -> dict[str, str]:
        labels = dict(svc["metadata"].get("labels") or {})
        labels.pop(HEADLESS_LABEL, None)
        if not service_ip_set(svc):
            labels[HEADLESS_LABEL] = ""
        labels[LABEL_MANAGED_BY] = CONTROLLER_NAME
        return labels

    async def reconcile(self, key: str) -> float | None:
        svc = self.services.get(key)
        ns, name = split_key(key)
        if svc is None:
            current = self.endpoints.get(key)
            if current is None:
                return None
            if LEADER_ANNOTATION in (current["metadata"].get("annotations") or {}):
                return None
            try:
                await self.client.delete(
                    "endpoints", name, ns, preconditions={"uid": current["metadata"]["uid"]}
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
            self.log.info("deleted the Endpoints of a deleted Service", service=key)
            return None
        selector = self.selector(svc)
        if selector is None:
            return None  # no selector (or ExternalName): not ours
        if self.own_writes.pending(key, self.endpoints.get):
            return STALE_RETRY_SECONDS
        subsets = self.desired_subsets(svc, selector)
        truncated = truncate_subsets(subsets)
        labels = self.desired_labels(svc)
        current = self.endpoints.get(key)
        if current is not None:
            annotations = current["metadata"].get("annotations") or {}
            if (
                normalize_subsets(current.get("subsets")) == subsets
                and (current["metadata"].get("labels") or {}) == labels
                and (OVER_CAPACITY in annotations) == truncated
            ):
                return None
            obj = writable(current)
        else:
            obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name}}
        meta = obj["metadata"]
        meta["namespace"] = ns
        meta["labels"] = labels
        annotations = dict(meta.get("annotations") or {})
        if truncated:
            annotations[OVER_CAPACITY] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
        if subsets:
            obj["subsets"] = subsets
        else:
            obj.pop("subsets", None)
        try:
            if current is None:
                written = await self.client.create("endpoints", obj, ns)
            else:
                written = await self.client.update("endpoints", obj, ns)
        except ApiError as e:
            if current is None and namespace_terminating(e):
                return None
            if e.code == 409:
                raise  # our cache is behind (or someone else wrote): retry from a fresher one
            about = {"kind": "Endpoints", "apiVersion": "v1", "metadata": meta}
            if current is None:
                message = f"Failed to create endpoint for service {key}: {e.message}"
                self.events.emit(about, "Warning", "FailedToCreateEndpoint", message)
            else:
                message = f"Failed to update endpoint {key}: {e.message}"
                self.events.emit(about, "Warning", "FailedToUpdateEndpoint", message)
            raise
        self.own_writes.wrote(key, written)
        self.log.debug(
            "endpoints written",
            service=key,
            ready=sum(len(s.get("addresses") or ()) for s in subsets),
            not_ready=sum(len(s.get("notReadyAddresses") or ()) for s in subsets),
        )
        return None
