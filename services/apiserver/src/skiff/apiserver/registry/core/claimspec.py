"""What kube 1.32 checks in a PersistentVolumeClaim's spec, wherever one is written (a
claim, a StatefulSet's ``volumeClaimTemplates``, an ephemeral volume's template), and the
access modes and volume modes PersistentVolumes share with it."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_dns1123_subdomain
from skiff.api.quantity import canonical, parse_quantity

from ...validation import (
    forbidden,
    invalid,
    label_selector,
    not_supported,
    required,
    validate_labels,
)
from .containers import dict_of, list_of

Obj = dict[str, Any]

ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
VOLUME_MODES = ["Block", "Filesystem"]
NOT_POSITIVE = "must be greater than zero"


def access_modes(modes: list[Any], path: str) -> list[Cause]:
    """Each mode supported; ``ReadWriteOncePod`` alone."""
    causes: list[Cause] = []
    once_pod = other = False
    for mode in modes:
        if mode not in ACCESS_MODES:
            causes.append(not_supported(path, mode, ACCESS_MODES))
        elif mode == "ReadWriteOncePod":
            once_pod = True
        else:
            other = True
    if once_pod and other:
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def class_name(value: Any, path: str) -> list[Cause]:
    """``ValidateClassName`` (a DNS subdomain) of a set, non-empty class name."""
    if not isinstance(value, str) or not value:
        return []
    return [invalid(path, value, m) for m in is_dns1123_subdomain(value)]


def _data_source(ref: Obj, path: str, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    if not ref.get("name"):
        causes.append(required(f"{path}.name"))
    if not ref.get("kind"):
        causes.append(required(f"{path}.kind"))
    group = ref.get("apiGroup") or ""
    if not group and ref.get("kind") != "PersistentVolumeClaim":
        detail = "must be 'PersistentVolumeClaim' when referencing the default apiGroup"
        causes.append(invalid(path, ref.get("kind") or "", detail))
    if group:
        causes += [invalid(f"{path}.apiGroup", group, m) for m in is_dns1123_subdomain(group)]
    if namespaced and ref.get("namespace"):
        ns = ref["namespace"]
        causes += [invalid(f"{path}.namespace", ns, m) for m in is_dns1123_label(str(ns))]
    return causes


def _same_source(source: Obj, ref: Obj) -> bool:
    return all(source.get(k) == ref.get(k) for k in ("apiGroup", "kind", "name"))


def claim_spec(spec: Obj, path: str) -> list[Cause]:
    """``ValidatePersistentVolumeClaimSpec``."""
    causes: list[Cause] = []
    modes = list_of(spec.get("accessModes"))
    if not modes:
        causes.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    if spec.get("selector") is not None:
        causes += label_selector(spec["selector"], f"{path}.selector")
    causes += access_modes(modes, f"{path}.accessModes")
    requests = dict_of(dict_of(spec.get("resources")).get("requests"))
    at = f"{path}.resources[storage]"
    if "storage" not in requests:
        causes.append(required(at))
    else:
        value = parse_quantity(requests["storage"])
        if value is not None and value <= 0:
            causes.append(invalid(at, canonical(requests["storage"]), NOT_POSITIVE))
    causes += class_name(spec.get("storageClassName"), f"{path}.storageClassName")
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(not_supported(f"{path}.volumeMode", mode, VOLUME_MODES))
    source, ref = spec.get("dataSource"), spec.get("dataSourceRef")
    if isinstance(source, dict):
        causes += _data_source(source, f"{path}.dataSource", False)
    if isinstance(ref, dict):
        causes += _data_source(ref, f"{path}.dataSourceRef", True)
        if ref.get("namespace"):
            if isinstance(source, dict):
                detail = "may not be specified when dataSourceRef.namespace is specified"
                causes.append(invalid(path, f"{path}.dataSource", detail))
        elif isinstance(source, dict) and not _same_source(source, ref):
            causes.append(invalid(path, f"{path}.dataSource", "must match dataSourceRef"))
    causes += class_name(spec.get("volumeAttributesClassName"), f"{path}.volumeAttributesClassName")
    return causes


def claim_template(template: Obj, path: str) -> list[Cause]:
    """``ValidatePersistentVolumeClaimTemplate`` (an ephemeral volume's): only labels and
    annotations in its metadata, and a valid claim spec."""
    meta = dict_of(template.get("metadata"))
    causes = validate_labels(meta.get("labels"), f"{path}.metadata.labels")
    for key in meta:
        if key not in ("labels", "annotations") and meta[key] not in (None, "", {}, []):
            causes.append(forbidden(f"{path}.metadata.{key}", "cannot be set"))
    return causes + claim_spec(dict_of(template.get("spec")), f"{path}.spec")
