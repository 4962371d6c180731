"""APIServices (kube-aggregator's ``registry/apiservice`` and ``apis/apiregistration``
validation): the name is ``<version>.<group>``, priorities in range, a Service or none
(local), a CA bundle or ``insecureSkipTLSVerify`` but not both; a local APIService is
created available."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from skiff.api.conditions import new_condition
from skiff.api.errors import Cause
from skiff.api.names import is_dns1035_label, is_dns1123_subdomain
from skiff.api.resources import apiservice_name
from skiff.api.timestamps import rfc3339

from ...validation import invalid, not_supported, required
from ..strategy import Obj, Strategy

AVAILABLE = "Available"
LOCAL_REASON = "Local"
LOCAL_MESSAGE = "Local APIServices are always available"
CONDITION_STATUSES = ["True", "False", "Unknown"]


def local_condition() -> Obj:
    """The condition a local APIService has (kube's local availability controller)."""
    return new_condition(AVAILABLE, "True", LOCAL_REASON, LOCAL_MESSAGE, rfc3339())


def is_local(obj: Obj) -> bool:
    """Whether ``obj`` is served by this apiserver (it names no Service)."""
    return not (obj.get("spec") or {}).get("service")


def _bundle_size(raw: Any) -> int:
    if not isinstance(raw, str):
        return 0
    try:
        return len(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return len(raw)


def _priority(spec: Obj, field: str, top: int) -> list[Cause]:
    value = spec.get(field)
    n = value if isinstance(value, int) and not isinstance(value, bool) else 0
    if 0 < n <= top:
        return []
    return [invalid(f"spec.{field}", n, f"must be positive and less than {top}")]


def validate_apiservice(obj: Obj) -> list[Cause]:
    """``ValidateAPIService`` (the generic metadata checks run before)."""
    spec = obj.get("spec") or {}
    group = spec.get("group") or ""
    version = spec.get("version") or ""
    errs: list[Cause] = []
    name = obj["metadata"].get("name") or ""
    wanted = apiservice_name(group, version)
    if name and name != wanted:
        errs.append(
            invalid("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{wanted}"')
        )
    if not group and version != "v1":
        errs.append(
            required("spec.group", "only v1 may have an empty group and it better be legacy kube")
        )
    if group:
        errs.extend(invalid("spec.group", group, m) for m in is_dns1123_subdomain(group))
    errs.extend(invalid("spec.version", version, m) for m in is_dns1035_label(version))
    errs += _priority(spec, "groupPriorityMinimum", 20000)
    errs += _priority(spec, "versionPriority", 1000)
    service = spec.get("service")
    insecure = spec.get("insecureSkipTLSVerify") is True
    size = _bundle_size(spec.get("caBundle"))
    if not service:
        if size:
            errs.append(
                invalid(
                    "spec.caBundle", f"{size} bytes", "local APIServices may not have a caBundle"
                )
            )
        if insecure:
            errs.append(
                invalid(
                    "spec.insecureSkipTLSVerify",
                    True,
                    "local APIServices may not have insecureSkipTLSVerify",
                )
            )
        return errs
    if not service.get("namespace"):
        errs.append(required("spec.service.namespace"))
    if not service.get("name"):
        errs.append(required("spec.service.name"))
    port = service.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        detail = "port is not valid: must be between 1 and 65535, inclusive"
        errs.append(invalid("spec.service.port", port, detail))
    if insecure and size:
        errs.append(
            invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present")
        )
    return errs


def validate_status(obj: Obj) -> list[Cause]:
    """``ValidateAPIServiceStatus``: each condition's status is True, False or Unknown."""
    conditions = (obj.get("status") or {}).get("conditions") or ()
    return [
        not_supported(f"status.conditions[{i}].status", c.get("status"), CONDITION_STATUSES)
        for i, c in enumerate(conditions)
        if isinstance(c, dict) and c.get("status") not in CONDITION_STATUSES
    ]


class APIServiceStrategy(Strategy):
    """A create starts with an empty status, a local APIService's saying it is available;
    a service's port defaults to 443."""

    allow_unconditional_update = False  # kube: "must be specified for an update"

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj["status"] = {"conditions": [local_condition()]} if is_local(obj) else {}

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        service = (obj.get("spec") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_apiservice(obj) + validate_status(obj)
