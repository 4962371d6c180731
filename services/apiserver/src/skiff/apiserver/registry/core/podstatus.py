"""What kube 1.32's ``ValidatePodStatusUpdate`` checks in a pod's status: condition types
(reported under ``metadata.conditions``, as kube does), the nominated node's name, a QoS
class that never changes, containers that do not come back from termination when the
pod's restart policy says they stay down, pod and host IPs (valid, one per family,
``hostIPs[0]`` equal to ``hostIP``)."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain, is_qualified_name

from ...validation import duplicate, forbidden, immutable, invalid
from .containers import dict_of, list_of
from .podspec import valid_ip

_SYSTEM_CONDITIONS = ("PodScheduled", "Ready", "Initialized")
_STAYS_DOWN = "may not be transitioned to non-terminated state"


def _transitions(
    new: list[Any], old: list[Any], path: str, policy: Any, restartable: set[str]
) -> list[Cause]:
    """``ValidateContainerStateTransition``: a terminated container stays terminated
    unless the policy restarts it (Always; OnFailure after a failure; sidecars)."""
    if policy == "Always":
        return []
    causes: list[Cause] = []
    for i, before in enumerate(old):
        before = dict_of(before)
        terminated = dict_of(before.get("state")).get("terminated")
        if not isinstance(terminated, dict):
            continue
        if terminated.get("exitCode", 0) != 0 and policy == "OnFailure":
            continue
        if before.get("name") in restartable:
            continue
        for status in new:
            status = dict_of(status)
            still = isinstance(dict_of(status.get("state")).get("terminated"), dict)
            if status.get("name") == before.get("name") and not still:
                causes.append(forbidden(f"{path}[{i}].state", _STAYS_DOWN))
    return causes


def _ips(entries: list[Any], path: str, host_ip: Any = None) -> list[Cause]:
    causes: list[Cause] = []
    ips = [str(dict_of(e).get("ip") or "") for e in entries]
    if host_ip is not None and entries and host_ip != ips[0]:
        causes.append(invalid(f"{path}[0].ip", ips[0], "must be equal to `hostIP`"))
    for i, ip in enumerate(ips):
        causes += valid_ip(ip, f"{path}[{i}]")
    if len(ips) > 1:
        versions = []
        for ip in ips:
            try:
                versions.append(ipaddress.ip_address(ip).version)
            except ValueError:
                versions.append(0)
        if len(ips) > 2 or len(set(versions)) != len(versions):
            detail = "may specify no more than one IP for each IP family"
            causes.append(invalid(path, entries, detail))
        seen: set[str] = set()
        for i, ip in enumerate(ips):
            if ip in seen:
                causes.append(duplicate(f"{path}[{i}]", entries[i]))
            seen.add(ip)
    return causes


def validate_status_update(obj: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    """``ValidatePodStatusUpdate`` (its metadata rules are checked generically)."""
    status, old_status = dict_of(obj.get("status")), dict_of(old.get("status"))
    spec, old_spec = dict_of(obj.get("spec")), dict_of(old.get("spec"))
    causes: list[Cause] = []
    for i, condition in enumerate(list_of(status.get("conditions"))):
        kind = str(dict_of(condition).get("type") or "")
        if kind not in _SYSTEM_CONDITIONS:
            at = f"metadata.conditions[{i}].Type"  # kube's path
            causes += [invalid(at, kind, m) for m in is_qualified_name(kind)]
    if spec.get("nodeName") != old_spec.get("nodeName"):
        causes.append(forbidden("status.nodeName", "may not be changed directly"))
    nominated = status.get("nominatedNodeName") or ""
    if nominated and nominated != old_status.get("nominatedNodeName"):
        errs = is_dns1123_subdomain(nominated)
        causes += [invalid("status.nominatedNodeName", nominated, m) for m in errs]
    causes += immutable("status.qosClass", status.get("qosClass"), old_status.get("qosClass"))
    policy = old_spec.get("restartPolicy")
    sidecars = {
        c.get("name")
        for c in map(dict_of, list_of(old_spec.get("initContainers")))
        if c.get("restartPolicy") == "Always"
    }
    for key, restartable, rule in (
        ("containerStatuses", set(), policy),
        ("initContainerStatuses", sidecars, policy),
        ("ephemeralContainerStatuses", set(), "Never"),
    ):
        causes += _transitions(
            list_of(status.get(key)), list_of(old_status.get(key)), f"status.{key}", rule,
            restartable,
        )  # fmt: skip
    causes += _ips(list_of(status.get("podIPs")), "status.podIPs")
    host_ips = list_of(status.get("hostIPs"))
    if host_ips:
        causes += _ips(host_ips, "status.hostIPs", status.get("hostIP") or "")
    return causes
