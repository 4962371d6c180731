"""A pod spec, in pods and in templates (kube's ``ValidatePodSpec`` and
``validatePodMetadataAndSpec``): volumes, containers and init containers, then the pod's
own fields in kube's order — host network ports, restart and DNS policies, node selector,
security context, pull secrets, DNS config, readiness and scheduling gates, service
account, node, deadline, host and subdomain names, tolerations, host aliases, priority
and runtime classes, preemption policy, overhead and OS — in kube's words and paths."""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)

from ...validation import (
    duplicate,
    field_diff,
    forbidden,
    invalid,
    not_supported,
    required,
    semantic,
)
from . import resourcenames
from .affinity import validate_affinity, validate_topology_spread
from .containers import dict_of, list_of, validate_containers, validate_init_containers
from .tolerations import validate_tolerations
from .volumes import validate_volumes

Obj = dict[str, Any]

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PREEMPTION_POLICIES = ["PreemptLowerPriority", "Never"]
FS_GROUP_CHANGE = ["Always", "OnRootMismatch"]
_IDS = "must be between 0 and 2147483647, inclusive"
_IP = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_MAX_INT32 = 2147483647


def valid_ip(value: Any, path: str) -> list[Cause]:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return [invalid(path, value, _IP)]
    return []


def _host_network_ports(spec: Obj, path: str, pod: bool) -> list[Cause]:
    if not dict_of(spec).get("hostNetwork"):
        return []
    causes: list[Cause] = []
    for i, c in enumerate(list_of(spec.get("containers"))):
        for j, port in enumerate(list_of(dict_of(c).get("ports"))):
            host, container = dict_of(port).get("hostPort") or 0, dict_of(port).get("containerPort")
            if (pod or host) and host != container:
                causes.append(
                    invalid(
                        f"{path}.containers[{i}].ports[{j}].hostPort",
                        host,
                        "must match `containerPort` when `hostNetwork` is true",
                    )
                )
    return causes


def _enum(value: Any, path: str, allowed: list[str]) -> list[Cause]:
    if not value:
        return [required(path)]
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []


def _labels(labels: Any, path: str) -> list[Cause]:
    """``ValidateLabels``: kube reports each at the map's path."""
    causes: list[Cause] = []
    for k, v in dict_of(labels).items():
        causes += [invalid(path, k, m) for m in is_qualified_name(str(k))]
        causes += [invalid(path, v, m) for m in is_valid_label_value(str(v))]
    return causes


def _security_context(sc: Any, path: str) -> list[Cause]:
    """``validatePodSpecSecurityContext`` (ids, sysctls, fsGroupChangePolicy)."""
    sc = dict_of(sc)
    causes: list[Cause] = []
    for key in ("fsGroup", "runAsUser", "runAsGroup"):
        value = sc.get(key)
        if isinstance(value, int) and not 0 <= value <= _MAX_INT32:
            causes.append(invalid(f"{path}.{key}", value, _IDS))
    for i, g in enumerate(list_of(sc.get("supplementalGroups"))):
        if isinstance(g, int) and not 0 <= g <= _MAX_INT32:
            causes.append(invalid(f"{path}.supplementalGroups[{i}]", g, _IDS))
    names: set[str] = set()
    for i, sysctl in enumerate(list_of(sc.get("sysctls"))):
        name, at = dict_of(sysctl).get("name") or "", f"{path}.sysctls[{i}].name"
        if not name:
            causes.append(required(at))
        elif name in names:
            causes.append(duplicate(at, name))
        names.add(name)
    policy = sc.get("fsGroupChangePolicy")
    if policy is not None and policy not in FS_GROUP_CHANGE:
        causes.append(not_supported(f"{path}.fsGroupChangePolicy", policy, FS_GROUP_CHANGE))
    return causes


def _dns_config(config: Any, policy: Any, path: str) -> list[Cause]:
    if policy == "None":
        if not isinstance(config, dict):
            return [required(path, "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not list_of(config.get("nameservers")):
            return [
                required(
                    f"{path}.nameservers",
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )
            ]
    if not isinstance(config, dict):
        return []
    causes: list[Cause] = []
    servers, searches = list_of(config.get("nameservers")), list_of(config.get("searches"))
    if len(servers) > 3:
        causes.append(
            invalid(f"{path}.nameservers", servers, "must not have more than 3 nameservers")
        )
    for i, ns in enumerate(servers):
        causes += valid_ip(ns, f"{path}.nameservers[{i}]")
    if len(searches) > 32:
        causes.append(
            invalid(f"{path}.searches", searches, "must not have more than 32 search paths")
        )
    if len(" ".join(str(s) for s in searches)) > 2048:
        causes.append(
            invalid(
                f"{path}.searches",
                searches,
                "must not have more than 2048 characters (including spaces) in the search list",
            )
        )
    for i, search in enumerate(searches):
        value = str(search).removesuffix(".")
        causes += [invalid(f"{path}.searches[{i}]", value, m) for m in is_dns1123_subdomain(value)]
    for i, option in enumerate(list_of(config.get("options"))):
        if not dict_of(option).get("name"):
            causes.append(required(f"{path}.options[{i}]", "must not be empty"))
    return causes


def _gates(gates: list[Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, gate in enumerate(gates):
        name = dict_of(gate).get("name") or ""
        causes += [invalid(f"{path}[{i}]", name, m) for m in is_qualified_name(name)]
        if name in seen:
            causes.append(duplicate(f"{path}[{i}]", name))
        seen.add(name)
    return causes


def _names(spec: Obj, path: str) -> list[Cause]:
    """The service account, node, priority class and runtime class: DNS subdomains."""
    causes: list[Cause] = []
    for key in ("serviceAccountName", "nodeName", "priorityClassName", "runtimeClassName"):
        value = spec.get(key)
        if value:
            causes += [invalid(f"{path}.{key}", value, m) for m in is_dns1123_subdomain(value)]
    return causes


def validate_pod_spec(spec: Obj, path: str, *, pod: bool = False, job: bool = False) -> list[Cause]:
    """``ValidatePodSpec`` of ``spec`` at ``path`` (``pod``: a Pod's own spec, with its
    extra checks; ``job``: a Job's template, whose restart policy Jobs check)."""
    causes: list[Cause] = []
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is None:
        causes.append(required(f"{path}.terminationGracePeriodSeconds"))
    volumes, errs = validate_volumes(list_of(spec.get("volumes")), f"{path}.volumes")
    causes += errs
    containers = list_of(spec.get("containers"))
    causes += validate_containers(containers, volumes, f"{path}.containers", grace, pod)
    causes += validate_init_containers(
        list_of(spec.get("initContainers")),
        containers,
        volumes,
        f"{path}.initContainers",
        grace,
        pod,
    )
    causes += _host_network_ports(spec, path, pod)
    if not job:
        causes += _enum(spec.get("restartPolicy"), f"{path}.restartPolicy", RESTART_POLICIES)
    causes += _enum(spec.get("dnsPolicy"), f"{path}.dnsPolicy", DNS_POLICIES)
    causes += _labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    causes += _security_context(spec.get("securityContext"), f"{path}.securityContext")
    for i, secret in enumerate(list_of(spec.get("imagePullSecrets"))):
        if set(dict_of(secret)) - {"name"}:
            causes.append(invalid(f"{path}.imagePullSecrets[{i}]", secret, "only name may be set"))
    causes += validate_affinity(spec.get("affinity"), f"{path}.affinity")
    causes += _dns_config(spec.get("dnsConfig"), spec.get("dnsPolicy"), f"{path}.dnsConfig")
    for i, gate in enumerate(list_of(spec.get("readinessGates"))):
        kind = dict_of(gate).get("conditionType") or ""
        causes += [
            invalid(f"{path}.readinessGates[{i}].conditionType", kind, m)
            for m in is_qualified_name(kind)
        ]
    causes += _gates(list_of(spec.get("schedulingGates")), f"{path}.schedulingGates")
    spread = list_of(spec.get("topologySpreadConstraints"))
    causes += validate_topology_spread(spread, f"{path}.topologySpreadConstraints")
    causes += _names(spec, path)
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and not 1 <= deadline <= _MAX_INT32:
        causes.append(
            invalid(
                f"{path}.activeDeadlineSeconds",
                deadline,
                f"must be between 1 and {_MAX_INT32}, inclusive",
            )
        )
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            causes += [invalid(f"{path}.{key}", spec[key], m) for m in is_dns1123_label(spec[key])]
    causes += validate_tolerations(list_of(spec.get("tolerations")), f"{path}.tolerations")
    for i, alias in enumerate(list_of(spec.get("hostAliases"))):
        alias = dict_of(alias)
        causes += valid_ip(alias.get("ip") or "", f"{path}.hostAliases[{i}].ip")
        for j, host in enumerate(list_of(alias.get("hostnames"))):
            causes += [
                invalid(f"{path}.hostAliases[{i}].hostnames[{j}]", host, m)
                for m in is_dns1123_subdomain(str(host))
            ]
    if spec.get("preemptionPolicy") is not None:
        causes += _enum(spec["preemptionPolicy"], f"{path}.preemptionPolicy", PREEMPTION_POLICIES)
    if isinstance(spec.get("overhead"), dict):
        causes += resourcenames.requirements({"limits": spec["overhead"]}, f"{path}.overhead")
    if isinstance(spec.get("os"), dict):
        name = spec["os"].get("name") or ""
        if not name:
            causes.append(required(f"{path}.os.name", "cannot be empty"))
        elif name not in ("linux", "windows"):
            causes.append(not_supported(f"{path}.os", name, ["linux", "windows"]))
    return causes


def validate_pod_only(spec: Obj, path: str) -> list[Cause]:
    """What ``ValidatePodCreate`` adds for Pods: nodeName waits for the scheduling gates."""
    if spec.get("nodeName") and spec.get("schedulingGates"):
        return [
            forbidden(
                f"{path}.nodeName", "cannot be set until all schedulingGates have been cleared"
            )
        ]
    return []


UPDATABLE = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
    "negative)"
)


def _tolerations_only_added(new: list[Any], old: list[Any]) -> bool:
    """Each old toleration is still there (its tolerationSeconds may change)."""
    for t in old:
        want = {k: v for k, v in dict_of(t).items() if k != "tolerationSeconds"}
        if not any(
            {k: v for k, v in dict_of(n).items() if k != "tolerationSeconds"} == want for n in new
        ):
            return False
    return True


def validate_spec_update(spec: Obj, old: Obj) -> list[Cause]:
    """``ValidatePodUpdate``'s rules on the spec: the containers stay, the deadline only
    shrinks, tolerations are only added, scheduling gates only removed, and nothing else
    but images changes."""
    for key in ("containers", "initContainers"):
        new_list, old_list = list_of(spec.get(key)), list_of(old.get(key))
        if len(new_list) != len(old_list):
            return [forbidden(f"spec.{key}", "pod updates may not add or remove containers")]
    causes: list[Cause] = []
    deadline, old_deadline = spec.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if isinstance(deadline, int):
        if not 0 <= deadline <= _MAX_INT32:
            return [
                invalid(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    f"must be between 0 and {_MAX_INT32}, inclusive",
                )
            ]
        if isinstance(old_deadline, int) and old_deadline < deadline:
            return [
                invalid(
                    "spec.activeDeadlineSeconds",
                    deadline,
                    "must be less than or equal to previous value",
                )
            ]
    elif old_deadline is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds",
                None,
                "must not update from a positive integer to nil value",
            )
        )
    if not _tolerations_only_added(
        list_of(spec.get("tolerations")), list_of(old.get("tolerations"))
    ):
        causes.append(
            forbidden(
                "spec.tolerations",
                "existing toleration can not be modified except its tolerationSeconds",
            )
        )
    old_gates = {dict_of(g).get("name") for g in list_of(old.get("schedulingGates"))}
    for i, gate in enumerate(list_of(spec.get("schedulingGates"))):
        name = dict_of(gate).get("name")
        if name not in old_gates:
            causes.append(
                forbidden(
                    f"spec.schedulingGates[{i}].name",
                    f"only deletion is allowed, but found new scheduling gate '{name}'",
                )
            )
    if semantic(spec) == semantic(old):
        return causes
    munged = copy.deepcopy(spec)
    for key in ("containers", "initContainers"):
        for c, was in zip(list_of(munged.get(key)), list_of(old.get(key)), strict=False):
            if isinstance(c, dict) and isinstance(was, dict):
                c["image"] = was.get("image")
    for key in ("activeDeadlineSeconds", "schedulingGates", "tolerations", "ephemeralContainers"):
        munged[key] = old.get(key)
    old_grace = old.get("terminationGracePeriodSeconds")
    if (
        isinstance(old_grace, int)
        and old_grace < 0
        and spec.get("terminationGracePeriodSeconds") == 1
    ):
        munged["terminationGracePeriodSeconds"] = old_grace
    if old.get("schedulingGates"):  # a gated pod may still gain node selection
        munged["nodeSelector"], munged["affinity"] = old.get("nodeSelector"), old.get("affinity")
    if semantic(munged) != semantic(old):
        diff = field_diff("core.PodSpec", old, munged)
        message = f"pod updates may not change fields other than {UPDATABLE}\n{diff}"
        causes.append(forbidden("spec", message))
    return causes
