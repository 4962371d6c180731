"""Resource names and quantities as kube's validation sees them (``pkg/apis/core/helper``
and ``ValidateResourceRequirements``): standard, native, extended and hugepages names,
which may be overcommitted, which must be integers, and a container's requests and
limits in kube's words."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_extended, is_native, is_qualified_name
from skiff.api.quantity import canonical, parse_quantity

from ...validation import forbidden, invalid, required

STANDARD_CONTAINER = ("cpu", "memory", "ephemeral-storage")
_QUOTA_COUNTS = ("pods", "services", "replicationcontrollers", "resourcequotas", "secrets",
                 "configmaps", "persistentvolumeclaims", "services.nodeports",
                 "services.loadbalancers")  # fmt: skip
STANDARD = frozenset((
    *STANDARD_CONTAINER, *_QUOTA_COUNTS, "storage", "requests.cpu", "requests.memory",
    "requests.storage", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
    "limits.ephemeral-storage",
))  # fmt: skip
"""kube's ``IsStandardResourceName`` (besides the hugepages prefixes)."""
_HUGEPAGES = ("hugepages-", "requests.hugepages-", "limits.hugepages-")


def is_hugepages(name: str) -> bool:
    return name.startswith("hugepages-")


def overcommit_allowed(name: str) -> bool:
    """Whether requests may be below limits (not for extended resources or hugepages)."""
    return is_native(name) and not is_hugepages(name)


def is_integer(name: str) -> bool:
    return name in _QUOTA_COUNTS or is_extended(name)


def resource_name(name: str, path: str) -> list[Cause]:
    """``validateResourceName``: a qualified name; without a domain a standard one."""
    causes = [invalid(path, name, m) for m in is_qualified_name(name)]
    if causes:
        return causes
    if "/" not in name and name not in STANDARD and not name.startswith(_HUGEPAGES):
        return [invalid(path, name, "must be a standard resource type or fully qualified")]
    return []


def container_resource_name(name: str, path: str) -> list[Cause]:
    """``validateContainerResourceName``."""
    causes = resource_name(name, path)
    if "/" not in name:
        if name not in STANDARD_CONTAINER and not is_hugepages(name):
            causes.append(invalid(path, name, "must be a standard resource for containers"))
    elif not is_native(name) and not is_extended(name):
        causes.append(invalid(path, name, "doesn't follow extended resource name standard"))
    return causes


def _quantity(name: str, raw: Any, path: str) -> tuple[Decimal | None, list[Cause]]:
    value = parse_quantity(raw)
    if value is None:
        return None, []  # decoding refused it already
    causes: list[Cause] = []
    if value < 0:
        causes.append(invalid(path, canonical(raw), "must be greater than or equal to 0"))
    if is_integer(name) and value != value.to_integral_value():
        causes.append(invalid(path, canonical(raw), "must be an integer"))
    return value, causes


def quantity_value(name: str, raw: Any, path: str) -> list[Cause]:
    """``ValidateResourceQuantityValue``: not negative, whole for integer resources."""
    return _quantity(name, raw, path)[1]


def requirements(resources: Any, path: str) -> list[Cause]:
    """``ValidateContainerResourceRequirements`` of a container's (or the pod overhead's)
    ``resources``: names, non-negative quantities, requests within limits (equal for
    extended resources and hugepages), hugepages beside cpu or memory."""
    resources = resources if isinstance(resources, dict) else {}
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    lim_path, req_path = f"{path}.limits", f"{path}.requests"
    causes: list[Cause] = []
    values: dict[str, Decimal | None] = {}
    hugepages = cpu_or_memory = False
    for name, raw in limits.items():
        causes += container_resource_name(name, f"{lim_path}[{name}]")
        values[name], errs = _quantity(name, raw, f"{lim_path}[{name}]")
        causes += errs
        hugepages |= is_hugepages(name)
        cpu_or_memory |= name in ("cpu", "memory")
    for name, raw in requests.items():
        causes += container_resource_name(name, f"{req_path}[{name}]")
        value, errs = _quantity(name, raw, f"{req_path}[{name}]")
        causes += errs
        if name in limits:
            limit = values.get(name)
            if value is not None and limit is not None:
                if value != limit and not overcommit_allowed(name):
                    detail = f"must be equal to {name} limit of {canonical(limits[name])}"
                    causes.append(invalid(req_path, canonical(raw), detail))
                elif value > limit:
                    detail = (
                        f"must be less than or equal to {name} limit of {canonical(limits[name])}"
                    )
                    causes.append(invalid(req_path, canonical(raw), detail))
        elif not overcommit_allowed(name):
            causes.append(required(lim_path, "Limit must be set for non overcommitable resources"))
        hugepages |= is_hugepages(name)
        cpu_or_memory |= name in ("cpu", "memory")
    if hugepages and not cpu_or_memory:
        causes.append(forbidden(path, "HugePages require cpu or memory"))
    return causes
