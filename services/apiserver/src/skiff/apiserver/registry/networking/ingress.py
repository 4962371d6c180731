"""Ingresses and IngressClasses (kube's ``pkg/apis/networking/validation``): hosts that
are DNS names (wildcards allowed), paths each with a ``pathType``, backends that name a
Service port or a typed resource, TLS hosts and secrets, and classes whose controller is
a domain-prefixed path that never changes; with Kubernetes' messages and field paths."""

from __future__ import annotations

import ipaddress
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import (
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_name,
    is_wildcard_dns1123_subdomain,
)

from ...validation import forbidden, invalid, not_supported, required
from ..strategy import Obj, Strategy

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_SUFFIXES = ("/..", "/.")
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
"""The class annotation from before ``spec.ingressClassName``."""
MAX_CONTROLLER_LENGTH = 250
SCOPES = ["Cluster", "Namespace"]


def _host(host: str, path: str) -> list[Cause]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    check = is_wildcard_dns1123_subdomain if host.startswith("*.") else is_dns1123_subdomain
    return [invalid(path, host, m) for m in check(host)]


def _path(p: dict[str, Any], path: str) -> list[Cause]:
    """``validateHTTPIngressPath``."""
    causes: list[Cause] = []
    kind, value = p.get("pathType"), p.get("path") or ""
    if kind is None:
        causes.append(required(f"{path}.pathType", "pathType must be specified"))
    elif kind not in PATH_TYPES:
        causes.append(not_supported(f"{path}.pathType", kind, PATH_TYPES))
    elif kind in ("Exact", "Prefix") or value:
        if not value.startswith("/"):
            causes.append(invalid(f"{path}.path", value, "must be an absolute path"))
        elif kind != "ImplementationSpecific":
            for seq in _INVALID_SEQUENCES:
                if seq in value:
                    causes.append(invalid(f"{path}.path", value, f"must not contain '{seq}'"))
            for suffix in _INVALID_SUFFIXES:
                if value.endswith(suffix):
                    causes.append(invalid(f"{path}.path", value, f"cannot end with '{suffix}'"))
    causes += validate_backend(p.get("backend") or {}, f"{path}.backend")
    return causes


def validate_backend(backend: dict[str, Any], path: str) -> list[Cause]:
    """``validateIngressBackend``: a Service port or a typed resource, not both."""
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _typed_reference(resource, f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    causes: list[Cause] = []
    name = service.get("name") or ""
    if not name:
        causes.append(required(f"{path}.service.name"))
    else:
        causes += [invalid(f"{path}.service.name", name, m) for m in is_dns1035_label(name)]
    port = service.get("port") or {}
    port_name, number = port.get("name") or "", port.get("number")
    if port_name and number:
        causes.append(
            invalid(f"{path}.service.port", "", "cannot set both port name & port number")
        )
    elif port_name:
        causes += [invalid(f"{path}.service.port.name", port_name, m)
                   for m in is_valid_port_name(port_name)]  # fmt: skip
    elif number:
        if not 1 <= int(number) <= 65535:
            causes.append(invalid(f"{path}.service.port.number", number,
                                  "must be between 1 and 65535, inclusive"))  # fmt: skip
    else:
        causes.append(required(f"{path}.service.port", "port name or number is required"))
    return causes


def _typed_reference(ref: dict[str, Any], path: str) -> list[Cause]:
    """``validateTypedLocalObjectReference``."""
    causes: list[Cause] = []
    group = ref.get("apiGroup")
    if group:
        causes += [invalid(f"{path}.apiGroup", group, m) for m in is_dns1123_subdomain(group)]
    if not ref.get("kind"):
        causes.append(required(f"{path}.kind"))
    if not ref.get("name"):
        causes.append(required(f"{path}.name"))
    return causes


def validate_ingress(obj: Obj) -> list[Cause]:
    """``ValidateIngressSpec`` and the class fields."""
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    default = spec.get("defaultBackend")
    rules = spec.get("rules") or []
    if default is not None:
        causes += validate_backend(default, "spec.defaultBackend")
    elif not rules:
        message = "either `defaultBackend` or `rules` must be specified"
        causes.append(Cause("spec", f"Invalid value: []networking.IngressRule(nil): {message}"))
    for i, rule in enumerate(rules):
        base = f"spec.rules[{i}]"
        if rule.get("host"):
            causes += _host(rule["host"], f"{base}.host")
        http = rule.get("http")
        if http is not None:
            paths = http.get("paths") or []
            if not paths:
                causes.append(required(f"{base}.http.paths"))
            for j, p in enumerate(paths):
                causes += _path(p, f"{base}.http.paths[{j}]")
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate(tls.get("hosts") or []):
            causes += [invalid(f"spec.tls[{i}].hosts[{j}]", host, m)
                       for m in is_dns1123_subdomain(host.removeprefix("*."))]  # fmt: skip
        secret = tls.get("secretName")
        if secret:
            causes += [invalid(f"spec.tls[{i}].secretName", secret, m)
                       for m in is_dns1123_subdomain(secret)]  # fmt: skip
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        causes += [invalid("spec.ingressClassName", class_name, m)
                   for m in is_dns1123_subdomain(class_name)]  # fmt: skip
    return causes


def _annotation_conflict(obj: Obj) -> list[Cause]:
    annotation = (obj["metadata"].get("annotations") or {}).get(CLASS_ANNOTATION)
    if annotation is None or (obj.get("spec") or {}).get("ingressClassName") is None:
        return []
    return [invalid(f"annotations.{CLASS_ANNOTATION}", annotation,
                    "can not be set when the class field is also set")]  # fmt: skip


class IngressStrategy(Strategy):
    initial_status = {"loadBalancer": {}}  # as kube answers a create

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_ingress(obj) + _annotation_conflict(obj)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        # The annotation/field conflict is checked on create only, as kube does.
        return validate_ingress(obj)


def _is_domain_prefixed_path(value: str, path: str) -> list[Cause]:
    """``IsDomainPrefixedPath``: ``example.com/path``."""
    domain, slash, rest = value.partition("/")
    if not slash or not domain or not rest:
        return [invalid(path, value, 'must be a domain-prefixed path (such as "acme.io/foo")')]
    return [invalid(path, domain, m) for m in is_dns1123_subdomain(domain)]


def _parameters(params: dict[str, Any], path: str) -> list[Cause]:
    """``validateIngressClassParametersReference``."""
    causes = _typed_reference(params, path)
    scope, namespace = params.get("scope"), params.get("namespace")
    if scope is None:
        if namespace is not None:
            causes.append(required(f"{path}.scope", "`scope` must be set when `namespace` is set"))
        return causes
    if scope not in SCOPES:
        causes.append(not_supported(f"{path}.scope", scope, SCOPES))
    elif scope == "Namespace" and not namespace:
        causes.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
    elif scope == "Cluster" and namespace is not None:
        causes.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return causes


class IngressClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") or {}
        controller = spec.get("controller") or ""
        causes: list[Cause] = []
        if not controller:
            causes.append(required("spec.controller"))
        elif len(controller) > MAX_CONTROLLER_LENGTH:
            causes.append(Cause("spec.controller", "Too long: may not be more than 250 bytes",
                                "FieldValueTooLong"))  # fmt: skip
        else:
            causes += _is_domain_prefixed_path(controller, "spec.controller")
        if spec.get("parameters") is not None:
            causes += _parameters(spec["parameters"], "spec.parameters")
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        if (obj.get("spec") or {}).get("controller") != (old.get("spec") or {}).get("controller"):
            causes.append(invalid("spec.controller", (obj.get("spec") or {}).get("controller"),
                                  "field is immutable"))  # fmt: skip
        return causes
