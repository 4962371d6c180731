"""Pod spec → CRI container settings: environment and Linux resources.

Environment as the kubelet builds it: ``envFrom`` first (configMaps, secrets, with an
optional prefix), then ``env`` in order, where later entries win and ``$(VAR)``
references to earlier ones are expanded; ``valueFrom`` reads fields of the pod
(``fieldRef``), its resources (``resourceFieldRef``), ConfigMaps and Secrets.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from skiff.api.defaults import parse_quantity
from skiff.api.errors import ApiError

Lookup = Callable[[str, str, str], Awaitable[dict[str, Any]]]  # (resource, namespace, name)

CPU_PERIOD = 100_000  # µs, as the kubelet sets it
MIN_SHARES, MAX_SHARES = 2, 262_144
_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class ConfigError(Exception):
    """The pod cannot start as specified (``CreateContainerConfigError``)."""


def _millis(q: Any) -> int:
    v = parse_quantity(q)
    return 0 if v is None else math.ceil(v * 1000)


def linux_resources(container: dict[str, Any]) -> dict[str, int]:
    """cpu_shares from the CPU request, cpu_quota/period and memory from the limits."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    out: dict[str, int] = {}
    cpu_req = requests.get("cpu", limits.get("cpu"))
    shares = MIN_SHARES if cpu_req is None else _millis(cpu_req) * 1024 // 1000
    out["cpu_shares"] = min(MAX_SHARES, max(MIN_SHARES, shares))
    if "cpu" in limits:
        out["cpu_period"] = CPU_PERIOD
        out["cpu_quota"] = max(1000, _millis(limits["cpu"]) * CPU_PERIOD // 1000)
    if "memory" in limits:
        mem = parse_quantity(limits["memory"])
        if mem is not None:
            out["memory_limit_in_bytes"] = int(mem)
    return out


def _field(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    if m := _SUBSCRIPT.match(path):
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    values = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in values:
        raise ConfigError(f"unsupported fieldRef.fieldPath {path!r}")
    return str(values[path] or "")


def _resource_field(pod: dict[str, Any], ref: dict[str, Any], default_container: str) -> str:
    name = ref.get("containerName") or default_container
    container = next((c for c in pod["spec"].get("containers") or [] if c["name"] == name), {})
    kind, _, resource = (ref.get("resource") or "").partition(".")
    value = ((container.get("resources") or {}).get(kind) or {}).get(resource)
    divisor = parse_quantity(ref.get("divisor") or "1") or Decimal(1)
    quantity = parse_quantity(value) if value is not None else None
    if quantity is None:
        return "0"
    return str(math.ceil(quantity / divisor))


async def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    lookup: Lookup,
    *,
    pod_ip: str = "",
    host_ip: str = "",
) -> list[tuple[str, str]]:
    """The container's environment, in order, with ``$(VAR)`` references expanded."""
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}
    cache: dict[tuple[str, str], dict[str, str] | None] = {}

    async def data(kind: str, name: str, optional: bool) -> dict[str, str] | None:
        if (kind, name) not in cache:
            try:
                obj = await lookup(kind, ns, name)
            except ApiError as e:
                if e.code != 404:
                    raise
                if not optional:
                    raise ConfigError(f'{kind[:-1]} "{name}" not found') from None
                cache[(kind, name)] = None
                return None
            values = dict(obj.get("data") or {})
            if kind == "secrets":
                values = {k: base64.b64decode(v).decode() for k, v in values.items()}
                values.update(obj.get("stringData") or {})
            cache[(kind, name)] = values
        return cache[(kind, name)]

    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if ref := source.get(key):
                values = await data(kind, ref["name"], bool(ref.get("optional")))
                for k, v in (values or {}).items():
                    env[prefix + k] = v
    for e in container.get("env") or []:
        name = e["name"]
        if "valueFrom" not in e:
            env[name] = _REF.sub(
                lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
                str(e.get("value", "")),
            )
            continue
        vf = e["valueFrom"]
        if ref := vf.get("fieldRef"):
            env[name] = _field(pod, ref["fieldPath"], pod_ip, host_ip)
        elif ref := vf.get("resourceFieldRef"):
            env[name] = _resource_field(pod, ref, container["name"])
        else:
            for kind, key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
                if ref := vf.get(key):
                    optional = bool(ref.get("optional"))
                    values = await data(kind, ref["name"], optional)
                    if values is None:
                        break
                    if ref["key"] not in values:
                        if optional:
                            break
                        raise ConfigError(
                            f"couldn't find key {ref['key']} in {kind[:-1]} {ns}/{ref['name']}"
                        )
                    env[name] = values[ref["key"]]
                    break
    return list(env.items())
