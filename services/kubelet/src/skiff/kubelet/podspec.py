"""Pod spec → CRI container settings: environment and Linux resources.

Environment as the kubelet builds it: ``envFrom`` first (configMaps, secrets, with an
optional prefix), then ``env`` in order, where later entries win and ``$(VAR)``
references to earlier ones (or to the service variables) are expanded; ``valueFrom``
reads fields of the pod (``fieldRef``), its resources (``resourceFieldRef``), ConfigMaps
and Secrets. Then the service variables (``{NAME}_SERVICE_HOST``, the Docker-link style
``{NAME}_PORT...``) of the Services in the pod's namespace (with ``enableServiceLinks``)
and of ``default/kubernetes``, for the names the container does not set itself.
``$(VAR)`` in ``command`` and ``args`` expands against the result (:func:`expand`).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
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


def expand(text: str, *envs: Mapping[str, str]) -> str:
    """``$(VAR)`` from the first mapping that has it (unknown ones stay), ``$$`` → ``$``."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        for env in envs:
            if m.group(1) in env:
                return env[m.group(1)]
        return m.group(0)

    return _REF.sub(one, text)


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(
    services: Iterable[dict[str, Any]], namespace: str, enable_links: bool = True
) -> dict[str, str]:
    """The service variables the kubelet gives a pod's containers (``envvars.FromServices``).

    ``default/kubernetes`` always; the other Services of ``namespace`` with
    ``enableServiceLinks`` (the default). Only Services with a cluster IP count.
    """
    chosen: dict[str, dict[str, Any]] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or not spec.get("ports"):
            continue
        name = meta.get("name") or ""
        if meta.get("namespace") == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif meta.get("namespace") == namespace and enable_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        spec = chosen[name]["spec"]
        ip, ports = spec["clusterIP"], spec["ports"]
        prefix = _env_name(name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(ports[0].get("port"))
        for p in ports:
            if p.get("name"):
                env[f"{prefix}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p.get("port"))
        host = f"[{ip}]" if ":" in ip else ip
        for i, p in enumerate(ports):
            proto = (p.get("protocol") or "TCP").lower()
            url = f"{proto}://{host}:{p.get('port')}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            link = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
            env[link] = url
            env[f"{link}_PROTO"] = proto
            env[f"{link}_PORT"] = str(p.get("port"))
            env[f"{link}_ADDR"] = ip
    return env


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
    services: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """The container's environment, in order, with ``$(VAR)`` references expanded.

    ``services``: the service variables (:func:`service_env`), last and never overriding.
    """
    services = services or {}
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
            env[name] = expand(str(e.get("value", "")), env, services)
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
    return list(env.items()) + [(k, v) for k, v in services.items() if k not in env]
