"""What objects use of a ResourceQuota, as kube's quota evaluators
(``pkg/quota/v1/evaluator/core``): shared by the apiserver's ResourceQuota admission, which
charges new objects, and the controller manager's quota controller, which recounts.

Names are kube's: ``pods``, ``services``, ``configmaps``, ``secrets``,
``persistentvolumeclaims``, ``replicationcontrollers``, ``resourcequotas``,
``services.nodeports``, ``services.loadbalancers``, ``requests.cpu`` (also ``cpu``),
``requests.memory`` (``memory``), ``limits.cpu``, ``limits.memory``, the same for
``ephemeral-storage`` and extended resources (``requests.nvidia.com/gpu``),
``requests.storage`` and ``<class>.storageclass.storage.k8s.io/requests.storage`` |
``persistentvolumeclaims``, and ``count/<resource>[.<group>]`` for any resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .quantity import format_quantity, is_binary, parse_quantity

Obj = Mapping[str, Any]
Usage = dict[str, Decimal]

COUNTED = {
    ("", "pods"): "pods",
    ("", "services"): "services",
    ("", "configmaps"): "configmaps",
    ("", "secrets"): "secrets",
    ("", "persistentvolumeclaims"): "persistentvolumeclaims",
    ("", "replicationcontrollers"): "replicationcontrollers",
    ("", "resourcequotas"): "resourcequotas",
}
"""Resources with a short quota name besides ``count/<resource>``."""
SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
          "CrossNamespacePodAffinity")  # fmt: skip
COMPUTE = ("cpu", "memory", "ephemeral-storage")
"""Resources a pod's quota counts as requests and limits; others only as requests."""
STORAGE_CLASS = ".storageclass.storage.k8s.io/"
REQUIRED = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory")
"""Resources every container must state once a quota limits them (kube's compatibility rule)."""


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def is_integer(name: str) -> bool:
    """Whether quota values of ``name`` must be whole numbers (kube's IsIntegerResourceName)."""
    return name in COUNTED.values() or name.startswith("count/") or name in (
        "services.nodeports", "services.loadbalancers",
    ) or name.endswith(STORAGE_CLASS + "persistentvolumeclaims")  # fmt: skip


def resource_of(name: str) -> tuple[str, str] | None:
    """The (group, plural) whose objects count towards the quota resource ``name``."""
    if name.startswith("count/"):
        plural, _, group = name[len("count/") :].partition(".")
        return group, plural
    for key, short in COUNTED.items():
        if name == short:
            return key
    if name.startswith("services."):
        return "", "services"
    if name == "requests.storage" or STORAGE_CLASS in name:
        return "", "persistentvolumeclaims"
    if name.startswith(("requests.", "limits.")) or name in COMPUTE:
        return "", "pods"
    return None


def _add(usage: Usage, name: str, value: Decimal) -> None:
    usage[name] = usage.get(name, Decimal(0)) + value


def quantities(resources: Mapping[str, Any] | None) -> Usage:
    """A ResourceList's parsable quantities."""
    out: Usage = {}
    for name, raw in (resources or {}).items():
        q = parse_quantity(raw)
        if q is not None:
            out[name] = q
    return out


def pod_resources(spec: Obj, kind: str) -> Usage:
    """The pod's effective ``requests`` or ``limits`` (kube's ``PodRequests``/``PodLimits``):
    the app containers and sidecars summed, or the largest init container with the sidecars
    started before it if that is more, plus ``spec.overhead``."""
    total: Usage = {}
    for c in spec.get("containers") or ():
        for name, q in quantities((c.get("resources") or {}).get(kind)).items():
            _add(total, name, q)
    sidecars: Usage = {}
    init_max: Usage = {}
    for c in spec.get("initContainers") or ():
        own = quantities((c.get("resources") or {}).get(kind))
        if c.get("restartPolicy") == "Always":
            for name, q in own.items():
                _add(total, name, q)
                _add(sidecars, name, q)
            own = dict(sidecars)
        else:
            for name, q in sidecars.items():
                _add(own, name, q)
        for name, q in own.items():
            init_max[name] = max(init_max.get(name, Decimal(0)), q)
    for name, q in init_max.items():
        total[name] = max(total.get(name, Decimal(0)), q)
    for name, q in quantities(spec.get("overhead")).items():
        _add(total, name, q)
    return total


def _pod_usage(pod: Obj) -> Usage:
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return {}
    spec = pod.get("spec") or {}
    usage: Usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for name, q in pod_resources(spec, "requests").items():
        usage[f"requests.{name}"] = q
        if name in ("cpu", "memory"):
            usage[name] = q
    for name, q in pod_resources(spec, "limits").items():
        if name in COMPUTE:
            usage[f"limits.{name}"] = q
    return usage


def _service_usage(svc: Obj) -> Usage:
    spec = svc.get("spec") or {}
    usage: Usage = {"services": Decimal(1), "count/services": Decimal(1)}
    kind = spec.get("type") or "ClusterIP"
    if kind in ("NodePort", "LoadBalancer"):
        usage["services.nodeports"] = Decimal(len(spec.get("ports") or []))
    if kind == "LoadBalancer":
        usage["services.loadbalancers"] = Decimal(1)
    return usage


def _claim_usage(pvc: Obj) -> Usage:
    spec = pvc.get("spec") or {}
    usage: Usage = {"persistentvolumeclaims": Decimal(1),
                    "count/persistentvolumeclaims": Decimal(1)}  # fmt: skip
    storage = parse_quantity(((spec.get("resources") or {}).get("requests") or {}).get("storage"))
    cls = spec.get("storageClassName") or ""
    if cls:
        usage[f"{cls}{STORAGE_CLASS}persistentvolumeclaims"] = Decimal(1)
    if storage is not None:
        usage["requests.storage"] = storage
        if cls:
            usage[f"{cls}{STORAGE_CLASS}requests.storage"] = storage
    return usage


def usage(group: str, plural: str, obj: Obj) -> Usage:
    """What ``obj`` (of ``group/plural``) uses, by quota resource name."""
    if (group, plural) == ("", "pods"):
        return _pod_usage(obj)
    if (group, plural) == ("", "services"):
        return _service_usage(obj)
    if (group, plural) == ("", "persistentvolumeclaims"):
        return _claim_usage(obj)
    out: Usage = {count_name(group, plural): Decimal(1)}
    if (group, plural) in COUNTED:
        out[COUNTED[(group, plural)]] = Decimal(1)
    return out


def _best_effort(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return not any(
        (c.get("resources") or {}).get(kind)
        for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]
        for kind in ("requests", "limits")
    )


def _scope_matches(scope: str, pod: Obj, op: str = "Exists", values: Iterable[str] = ()) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return _best_effort(pod)
    if scope == "NotBestEffort":
        return not _best_effort(pod)
    if scope == "PriorityClass":
        name = spec.get("priorityClassName") or ""
        return {
            "Exists": bool(name),
            "DoesNotExist": not name,
            "In": name in set(values),
            "NotIn": name not in set(values),
        }.get(op, False)
    if scope == "CrossNamespacePodAffinity":
        affinity = spec.get("affinity") or {}
        return any(
            term.get("namespaces") or term.get("namespaceSelector") is not None
            for kind in ("podAffinity", "podAntiAffinity")
            for mode in ("requiredDuringSchedulingIgnoredDuringExecution",
                         "preferredDuringSchedulingIgnoredDuringExecution")
            for term in ((affinity.get(kind) or {}).get(mode) or [])
            for term in [term.get("podAffinityTerm", term)]
        )  # fmt: skip
    return False


def matches(quota: Obj, group: str, plural: str, obj: Obj) -> bool:
    """Whether ``obj`` counts towards ``quota`` at all: a quota with scopes counts pods that
    match every scope, nothing else."""
    spec = quota.get("spec") or {}
    scopes = [(s, "Exists", ()) for s in spec.get("scopes") or []]
    scopes += [
        (e.get("scopeName", ""), e.get("operator", ""), e.get("values") or ())
        for e in (spec.get("scopeSelector") or {}).get("matchExpressions") or []
    ]
    if not scopes:
        return True
    if (group, plural) != ("", "pods"):
        return False
    return all(_scope_matches(s, obj, op, values) for s, op, values in scopes)


def missing_requests(limited: Iterable[str], pod: Obj) -> str:
    """kube's pod constraint: once a quota limits cpu or memory requests or limits, every
    container must state them; the complaint, or "" when none is missing."""
    wanted = {("requests." + n if n in ("cpu", "memory") else n) for n in limited}
    wanted &= set(REQUIRED)
    spec = pod.get("spec") or {}
    missing: dict[str, list[str]] = {}
    for c in [*(spec.get("initContainers") or ()), *(spec.get("containers") or ())]:
        resources = c.get("resources") or {}
        for name in wanted:
            kind, _, res = name.partition(".")
            if res not in (resources.get(kind) or {}):
                missing.setdefault(name, []).append(c.get("name", ""))
    errs = [f"must specify {n} for: {','.join(sorted(missing[n]))}" for n in sorted(missing)]
    return errs[0] if len(errs) == 1 else f"[{', '.join(errs)}]" if errs else ""


def _format(name: str, value: Decimal, like: Mapping[str, Any]) -> str:
    # kube keeps the suffix family of what was summed; byte counts read best in Ki/Mi/Gi.
    binary = is_binary(like.get(name)) or name.endswith(("memory", "storage"))
    return format_quantity(value, binary)


def pretty(values: Mapping[str, Decimal], like: Mapping[str, Any] | None = None) -> str:
    """``name=value,...`` sorted, as kube's quota messages print resource lists."""
    return ",".join(f"{n}={_format(n, values[n], like or {})}" for n in sorted(values))


def to_list(values: Mapping[str, Decimal], like: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Quantities as a ResourceList (for ``status.used``)."""
    return {n: _format(n, v, like or {}) for n, v in sorted(values.items())}
