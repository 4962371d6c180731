"""What kube 1.32's ``ValidateService`` checks beside cluster IPs and node ports (those
are :mod:`skiff.apiserver.allocators`'): ports (named when several, unique names and
port/protocol pairs, protocols, target ports), the type and what each type allows
(ExternalName's DNS name, LoadBalancer's source ranges, class and node-port allocation),
session affinity, external IPs, traffic policies and distribution; on update a
LoadBalancer keeps its class and its health-check node port."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain, is_qualified_name

from ...validation import duplicate, forbidden, invalid, not_supported, required, validate_labels
from .containers import dict_of, list_of, port_num_or_name, port_number
from .endpoints import app_protocol, non_special_ip, port_name, port_protocol
from .podspec import valid_ip

TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
KUBELET_PORT = 10250
MAX_AFFINITY_SECONDS = 86400
_LB_ONLY = "may only be used when `type` is 'LoadBalancer'"
_SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"
_KUBELET_PORT_USED = f"may not expose port {KUBELET_PORT} externally since it is used by kubelet"
_HEALTH_ONLY = (
    "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
)
_CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _headless(spec: dict[str, Any]) -> bool:
    return list_of(spec.get("clusterIPs")) == ["None"]


def _externally_accessible(spec: dict[str, Any]) -> bool:
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(list_of(spec.get("externalIPs")))
    )


def needs_health_check(spec: dict[str, Any]) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def _port(port: dict[str, Any], named: bool, names: set[str], path: str) -> list[Cause]:
    causes = port_name(port, named, path)
    name = port.get("name") or ""
    if name:
        if name in names:
            causes.append(duplicate(f"{path}.name", name))
        names.add(name)
    causes += port_number(port.get("port", 0), f"{path}.port")
    causes += port_protocol(port.get("protocol") or None, path)
    target = port.get("targetPort")
    if target is not None:
        causes += port_num_or_name(target, f"{path}.targetPort")
    return causes + app_protocol(port, path)


def _affinity(spec: dict[str, Any]) -> list[Cause]:
    affinity, config = spec.get("sessionAffinity"), spec.get("sessionAffinityConfig")
    if not affinity:
        return [required("spec.sessionAffinity")]
    if affinity not in AFFINITIES:
        return [not_supported("spec.sessionAffinity", affinity, AFFINITIES)]
    path = "spec.sessionAffinityConfig"
    if affinity == "None":
        return [forbidden(path, "must not be set when session affinity is None")] if config else []
    why = "when session affinity type is ClientIP"
    if not isinstance(config, dict):
        return [required(path, why)]
    client = config.get("clientIP")
    if not isinstance(client, dict):
        return [required(f"{path}.clientIP", why)]
    timeout = client.get("timeoutSeconds")
    if timeout is None:
        return [required(f"{path}.clientIP.timeoutSeconds", why)]
    if isinstance(timeout, int) and not 0 < timeout <= MAX_AFFINITY_SECONDS:
        detail = f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}"
        return [invalid(f"{path}.clientIP.timeoutSeconds", timeout, detail)]
    return []


def _cidr(value: str, path: str) -> list[Cause]:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return [invalid(path, value, _CIDR)]
    return []


def _load_balancer(spec: dict[str, Any], annotations: dict[str, Any]) -> list[Cause]:
    lb = spec.get("type") == "LoadBalancer"
    causes: list[Cause] = []
    ranges = list_of(spec.get("loadBalancerSourceRanges"))
    if ranges:
        if not lb:
            causes.append(forbidden("spec.LoadBalancerSourceRanges", _LB_ONLY))
        for i, value in enumerate(ranges):
            causes += _cidr(str(value).strip(), f"spec.LoadBalancerSourceRanges[{i}]")
    elif _SOURCE_RANGES in annotations:
        path = f"metadata.annotations[{_SOURCE_RANGES}]"
        if not lb:
            causes.append(forbidden(path, _LB_ONLY))
        value = str(annotations[_SOURCE_RANGES]).strip()
        for cidr in value.split(",") if value else ():
            causes += _cidr(cidr.strip(), path)
    allocate = spec.get("allocateLoadBalancerNodePorts")
    if allocate is not None and not lb:
        causes.append(forbidden("spec.allocateLoadBalancerNodePorts", _LB_ONLY))
    if lb and allocate is None:
        causes.append(required("allocateLoadBalancerNodePorts"))  # kube's path
    cls = spec.get("loadBalancerClass")
    if cls is not None:
        if lb:
            causes += [invalid("spec.loadBalancerClass", cls, m) for m in is_qualified_name(cls)]
        else:
            causes.append(forbidden("spec.loadBalancerClass", _LB_ONLY))
    return causes


def _traffic(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    policy = spec.get("externalTrafficPolicy") or ""
    if not _externally_accessible(spec):
        if policy:
            detail = "may only be set for externally-accessible services"
            causes.append(invalid("spec.externalTrafficPolicy", policy, detail))
    elif not policy:
        causes.append(required("spec.externalTrafficPolicy"))
    elif policy not in TRAFFIC_POLICIES:
        causes.append(not_supported("spec.externalTrafficPolicy", policy, TRAFFIC_POLICIES))
    health = spec.get("healthCheckNodePort") or 0
    if not needs_health_check(spec):
        if health:
            causes.append(invalid("spec.healthCheckNodePort", health, _HEALTH_ONLY))
    else:  # a missing port is allocated after validation (kube allocates before)
        causes += port_number(health, "spec.healthCheckNodePort") if health else []
    internal = spec.get("internalTrafficPolicy")
    if internal is None:
        if spec.get("type") in ("ClusterIP", "NodePort", "LoadBalancer"):
            causes.append(required("spec.internalTrafficPolicy"))
    elif internal not in TRAFFIC_POLICIES:
        causes.append(not_supported("spec.internalTrafficPolicy", internal, TRAFFIC_POLICIES))
    distribution = spec.get("trafficDistribution")
    if distribution is not None and distribution != "PreferClose":
        causes.append(not_supported("spec.trafficDistribution", distribution, ["PreferClose"]))
    return causes


def validate_service_spec(obj: dict[str, Any]) -> list[Cause]:
    """``ValidateService`` without its cluster-IP and node-port allocation rules."""
    spec = dict_of(obj.get("spec"))
    annotations = dict_of(dict_of(obj.get("metadata")).get("annotations"))
    kind, ports = spec.get("type"), list_of(spec.get("ports"))
    causes: list[Cause] = []
    if not ports and not _headless(spec) and kind != "ExternalName":
        causes.append(required("spec.ports"))
    if kind == "LoadBalancer":
        for i, port in enumerate(ports):
            if dict_of(port).get("port") == KUBELET_PORT:
                causes.append(invalid(f"spec.ports[{i}]", KUBELET_PORT, _KUBELET_PORT_USED))
    elif kind == "ExternalName":
        name = str(spec.get("externalName") or "").removesuffix(".")
        if name:
            errs = is_dns1123_subdomain(name)
            causes += [invalid("spec.externalName", name, m) for m in errs]
        else:
            causes.append(required("spec.externalName"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        causes += _port(dict_of(port), len(ports) > 1, names, f"spec.ports[{i}]")
    if spec.get("selector") is not None:
        causes += validate_labels(spec.get("selector"), "spec.selector")
    causes += _affinity(spec)
    for i, ip in enumerate(list_of(spec.get("externalIPs"))):
        errs = valid_ip(ip, f"spec.externalIPs[{i}]")
        causes += errs or non_special_ip(ip, f"spec.externalIPs[{i}]")
    if not kind:
        causes.append(required("spec.type"))
    elif kind not in TYPES:
        causes.append(not_supported("spec.type", kind, TYPES))
    if kind == "ClusterIP":
        for i, port in enumerate(ports):
            if dict_of(port).get("nodePort"):
                detail = "may not be used when `type` is 'ClusterIP'"
                causes.append(forbidden(f"spec.ports[{i}].nodePort", detail))
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        port = dict_of(port)
        key = (port.get("protocol"), port.get("port"))
        if key in seen:
            value = {"port": port.get("port"), "protocol": port.get("protocol")}
            causes.append(duplicate(f"spec.ports[{i}]", value))
        seen.add(key)
    return causes + _load_balancer(spec, annotations) + _traffic(spec)


def drop_type_dependent(spec: dict[str, Any], old: dict[str, Any]) -> None:
    """kube's ``dropTypeDependentFields`` for the fields validation now refuses: a type
    change that no longer allows them drops the external traffic policy, LoadBalancer
    node-port allocation and class, unless the client changed them."""
    if spec.get("type") == old.get("type"):
        return
    was_lb, is_lb = old.get("type") == "LoadBalancer", spec.get("type") == "LoadBalancer"
    if was_lb and not is_lb:
        for key in ("allocateLoadBalancerNodePorts", "loadBalancerClass"):
            if spec.get(key) is not None and spec.get(key) == old.get(key):
                spec.pop(key)
    if _externally_accessible(old) and not _externally_accessible(spec):
        if spec.get("externalTrafficPolicy") == old.get("externalTrafficPolicy"):
            spec.pop("externalTrafficPolicy", None)


def validate_service_update(spec: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """The LoadBalancer class and the health-check node port stay while they apply."""
    causes: list[Cause] = []
    both_lb = spec.get("type") == old.get("type") == "LoadBalancer"
    if both_lb and spec.get("loadBalancerClass") != old.get("loadBalancerClass"):
        value = spec.get("loadBalancerClass")
        causes.append(invalid("spec.loadBalancerClass", value, "may not change once set"))
    if needs_health_check(spec) and needs_health_check(old):
        new_port, old_port = spec.get("healthCheckNodePort"), old.get("healthCheckNodePort")
        if new_port and new_port != old_port:
            causes.append(forbidden("spec.healthCheckNodePort", "field is immutable"))
    return causes
