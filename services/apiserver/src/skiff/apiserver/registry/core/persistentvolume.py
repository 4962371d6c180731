"""PersistentVolumes and PersistentVolumeClaims as kube 1.32's ``ValidatePersistentVolume``
and ``ValidatePersistentVolumeClaim`` check them: access modes, capacity, reclaim policy,
exactly one volume source (hostPath, local with node affinity, nfs and csi checked in
full), class names and modes; a volume's source never changes, a claim's spec changes
only to bind it, to set its class once, or to resize a bound claim (never below what it
asked for)."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_dns1123_subdomain
from skiff.api.quantity import canonical, parse_quantity

from ...validation import (
    field_diff,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    semantic,
)
from ..strategy import Obj, Strategy
from .affinity import node_selector
from .claimspec import NOT_POSITIVE, VOLUME_MODES, access_modes, claim_spec, class_name
from .containers import dict_of, list_of
from .volumes import SOURCE_CHECKS, csi_driver

RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
# PersistentVolumeSource's members in kube's order, each with the path kube names in its
# errors (kube's own quirks: gcePersistentDisk's checks say persistentDisk, cephfs' cephFS).
PV_SOURCES = (
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
)
_SOURCE_KEYS = frozenset(k for k, _ in PV_SOURCES)
_CSI_SECRETS = (
    "controllerPublishSecretRef",
    "controllerExpandSecretRef",
    "nodePublishSecretRef",
    "nodeExpandSecretRef",
)


def basic_resource(raw: Any, path: str) -> list[Cause]:
    """``validateBasicResource``: not negative (the value rounded up, as kube prints it)."""
    value = parse_quantity(raw)
    if value is not None and value < 0:
        rounded = int(value.to_integral_value(rounding="ROUND_CEILING"))
        return [invalid(path, rounded, "must be a valid resource quantity")]
    return []


def _secret_ref(ref: Obj, path: str) -> list[Cause]:
    """``validatePVSecretReference``: a name and a namespace."""
    causes: list[Cause] = []
    name, ns = ref.get("name") or "", ref.get("namespace") or ""
    if not name:
        causes.append(required(f"{path}.name"))
    else:
        causes += [invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(name)]
    if not ns:
        causes.append(required(f"{path}.namespace"))
    else:
        causes += [invalid(f"{path}.namespace", ns, m) for m in is_dns1123_label(ns)]
    return causes


def _csi(src: Obj, at: str) -> list[Cause]:
    causes = csi_driver(src.get("driver"), f"{at}.driver")
    if not src.get("volumeHandle"):
        causes.append(required(f"{at}.volumeHandle"))
    for key in _CSI_SECRETS:
        if isinstance(src.get(key), dict):
            causes += _secret_ref(src[key], f"{at}.{key}")
    return causes


def _local(src: Obj, at: str) -> list[Cause]:
    path = src.get("path") or ""
    if not path:
        return [required(f"{at}.path")]
    if ".." in path.split("/"):
        return [invalid(f"{at}.path", path, "must not contain '..'")]
    return []


_PV_CHECKS = {"hostPath": SOURCE_CHECKS["hostPath"], "nfs": SOURCE_CHECKS["nfs"], "csi": _csi}


def _capacity(spec: Obj) -> list[Cause]:
    capacity = dict_of(spec.get("capacity"))
    causes: list[Cause] = []
    if not capacity:
        causes.append(required("spec.capacity"))
    if "storage" not in capacity or len(capacity) > 1:
        causes.append(not_supported("spec.capacity", capacity, ["storage"]))
    for name, raw in capacity.items():
        causes += basic_resource(raw, f"spec.capacity[{name}]")
        value = parse_quantity(raw)
        if value is not None and value <= 0:
            causes.append(invalid(f"spec.capacity[{name}]", canonical(raw), NOT_POSITIVE))
    return causes


def _sources(spec: Obj, affinity_set: bool) -> list[Cause]:
    causes: list[Cause] = []
    found = 0
    for key, named in PV_SOURCES:
        src = spec.get(key)
        if not isinstance(src, dict):
            continue
        if found and key != "flexVolume":  # kube never refuses a second flexVolume
            causes.append(forbidden(f"spec.{named}", "may not specify more than 1 volume type"))
            continue
        found += 1
        if key in _PV_CHECKS:
            causes += _PV_CHECKS[key](src, f"spec.{key}")
        elif key == "local":
            causes += _local(src, "spec.local")
            if not affinity_set:
                detail = "Local volume requires node affinity"
                causes.append(required("spec.nodeAffinity", detail))
    if not found:
        causes.append(required("spec", "must specify a volume type"))
    return causes


def validate_pv_spec(spec: Obj) -> list[Cause]:
    """``ValidatePersistentVolumeSpec`` of a PersistentVolume (not an inline one)."""
    modes = list_of(spec.get("accessModes"))
    causes = [] if modes else [required("spec.accessModes")]
    causes += access_modes(modes, "spec.accessModes")
    causes += _capacity(spec)
    policy = spec.get("persistentVolumeReclaimPolicy")
    if policy and policy not in RECLAIM_POLICIES:
        causes.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
    affinity_set = isinstance(spec.get("nodeAffinity"), dict)
    if affinity_set:
        required_terms = spec["nodeAffinity"].get("required")
        if isinstance(required_terms, dict):
            causes += node_selector(required_terms, "spec.nodeAffinity.required", True)
        else:
            detail = "must specify required node constraints"
            causes.append(required("spec.nodeAffinity.required", detail))
    causes += _sources(spec, affinity_set)
    host = dict_of(spec.get("hostPath")).get("path")
    if isinstance(host, str) and posixpath.normpath(host) == "/" and policy == "Recycle":
        detail = "may not be 'recycle' for a hostPath mount of '/'"
        causes.append(forbidden("spec.persistentVolumeReclaimPolicy", detail))
    causes += class_name(spec.get("storageClassName"), "spec.storageClassName")
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        causes.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))
    vac = spec.get("volumeAttributesClassName")
    if vac is not None:
        if vac == "":
            detail = "an empty string is disallowed"
            causes.append(required("spec.volumeAttributesClassName", detail))
        else:
            causes += class_name(vac, "spec.volumeAttributesClassName")
        if not isinstance(spec.get("csi"), dict):
            detail = "has to be specified when using volumeAttributesClassName"
            causes.append(required("spec.csi", detail))
    return causes


def _source(spec: Obj) -> Obj:
    return {k: v for k, v in spec.items() if k in _SOURCE_KEYS}


class PersistentVolumeStrategy(Strategy):
    """PersistentVolumes: a whole-object update must keep the volume's source, mode and
    node affinity; ``/status`` writes are free."""

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_pv_spec(dict_of(obj.get("spec")))

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        if subresource == "status":
            return []
        return self.validate_update(obj, old)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        spec, old_spec = dict_of(obj.get("spec")), dict_of(old.get("spec"))
        causes = self.validate(obj)
        new_source, old_source = _source(spec), _source(old_spec)
        csi = dict_of(new_source.get("csi"))
        if "controllerExpandSecretRef" in csi and "controllerExpandSecretRef" not in dict_of(
            old_source.get("csi")
        ):  # kube lets an expansion secret be added
            new_source = copy.deepcopy(new_source)
            del new_source["csi"]["controllerExpandSecretRef"]
        if semantic(new_source) != semantic(old_source):
            diff = field_diff("core.PersistentVolumeSource", old_source, new_source)
            detail = f"spec.persistentvolumesource is immutable after creation\n{diff}"
            causes.append(forbidden("spec.persistentvolumesource", detail))
        causes += immutable("volumeMode", spec.get("volumeMode"), old_spec.get("volumeMode"))
        if old_spec.get("nodeAffinity") is not None and semantic(
            spec.get("nodeAffinity")
        ) != semantic(old_spec.get("nodeAffinity")):
            detail = "field is immutable, except for updating from beta label to GA"
            causes.append(invalid("nodeAffinity", spec.get("nodeAffinity"), detail))
        old_vac = old_spec.get("volumeAttributesClassName")
        if old_vac is not None and spec.get("volumeAttributesClassName") is None:
            detail = "update from non-nil value to nil is forbidden"
            causes.append(forbidden("spec.volumeAttributesClassName", detail))
        return causes


_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"


def _storage(spec: Obj) -> Any:
    return dict_of(dict_of(spec.get("resources")).get("requests")).get("storage")


def _claim_update(obj: Obj, old: Obj) -> list[Cause]:
    """``ValidatePersistentVolumeClaimUpdate``'s own rules."""
    spec, old_spec = dict_of(obj.get("spec")), dict_of(old.get("spec"))
    new_clone, old_clone = copy.deepcopy(spec), copy.deepcopy(old_spec)
    causes: list[Cause] = []
    if not old_spec.get("volumeName"):
        old_clone["volumeName"] = new_clone.get("volumeName")
    annotations = dict_of(dict_of(obj.get("metadata")).get("annotations"))
    old_annotations = dict_of(dict_of(old.get("metadata")).get("annotations"))
    old_class, new_class = old_spec.get("storageClassName"), spec.get("storageClassName")
    if (
        _BETA_CLASS in old_annotations
        and old_class is None
        and new_class == old_annotations[_BETA_CLASS]
        and annotations.get(_BETA_CLASS, new_class) == old_annotations[_BETA_CLASS]
    ):
        new_clone.pop("storageClassName", None)
    else:
        value = annotations.get(_BETA_CLASS, "")
        if value != old_annotations.get(_BETA_CLASS, ""):  # kube: ValidateImmutableAnnotation
            causes.append(
                invalid(f"metadata.annotations.{_BETA_CLASS}", value, "field is immutable")
            )
        if (
            new_class is not None
            and old_class is None
            and new_class == old_annotations.get(_BETA_CLASS, new_class)
        ):
            new_clone["storageClassName"] = old_class
    bound = dict_of(obj.get("status")).get("phase") == "Bound"
    if bound and isinstance(dict_of(new_clone.get("resources")).get("requests"), dict):
        new_clone["resources"]["requests"]["storage"] = _storage(old_spec)
    if bound and new_clone.get("volumeAttributesClassName") is not None:
        new_clone["volumeAttributesClassName"] = old_clone.get("volumeAttributesClassName")
    if semantic(new_clone) != semantic(old_clone):
        diff = field_diff("core.PersistentVolumeClaimSpec", old_clone, new_clone)
        detail = (
            "spec is immutable after creation except resources.requests and "
            f"volumeAttributesClassName for bound claims\n{diff}"
        )
        causes.append(forbidden("spec", detail))
    new_size, old_size = parse_quantity(_storage(spec)), parse_quantity(_storage(old_spec))
    if new_size is not None and old_size is not None and new_size < old_size:
        detail = "field can not be less than previous value"
        causes.append(forbidden("spec.resources.requests.storage", detail))
    causes += immutable("volumeMode", spec.get("volumeMode"), old_spec.get("volumeMode"))
    old_vac = old_spec.get("volumeAttributesClassName")
    if old_vac is not None:
        vac = spec.get("volumeAttributesClassName")
        if vac is None:
            detail = "update from non-nil value to nil is forbidden"
            causes.append(forbidden("spec.volumeAttributesClassName", detail))
        elif vac == "":
            detail = "update from non-nil value to an empty string is forbidden"
            causes.append(forbidden("spec.volumeAttributesClassName", detail))
    return causes


class PersistentVolumeClaimStrategy(Strategy):
    """PersistentVolumeClaims: kube's claim spec rules; updates as
    ``ValidatePersistentVolumeClaimUpdate``; ``/status`` writes keep an access mode and
    non-negative capacities."""

    def validate(self, obj: Obj) -> list[Cause]:
        return claim_spec(dict_of(obj.get("spec")), "spec")

    def validate_part_update(self, obj: Obj, old: Obj, subresource: str) -> list[Cause]:
        if subresource != "status":
            return self.validate_update(obj, old)
        causes: list[Cause] = []
        if not list_of(dict_of(obj.get("spec")).get("accessModes")):
            causes.append(required("Spec.accessModes"))  # kube's path, capital S
        for name, raw in dict_of(dict_of(obj.get("status")).get("capacity")).items():
            causes += basic_resource(raw, f"status.capacity[{name}]")
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self.validate(obj) + _claim_update(obj, old)
