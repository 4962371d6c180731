"""A pod spec's volumes (kube's ``ValidateVolumes`` and ``validateVolumeSource``): names
(DNS labels, once each), exactly one source, and the rules of the common sources —
emptyDir, hostPath, secret, configMap, persistentVolumeClaim, nfs, downwardAPI,
projected, csi, ephemeral — in kube's words and paths. Only the volumes without errors
count for the containers' mounts, as in kube."""

from __future__ import annotations

import posixpath
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_label, is_dns1123_subdomain
from skiff.api.quantity import parse_quantity

from ...validation import duplicate, forbidden, invalid, not_supported, required, too_long
from .claimspec import claim_template
from .containers import dict_of, field_ref, list_of, local_descending_path, resource_field_ref

Obj = dict[str, Any]

SOURCES = (
    "emptyDir", "hostPath", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret",
    "nfs", "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs",
    "quobyte", "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
    "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO",
    "csi", "ephemeral", "image",
)  # fmt: skip
"""Volume sources, in the order kube checks them."""
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File",
                   "FileOrCreate", "Socket"]  # fmt: skip
VOLUME_FIELD_PATHS = ["metadata.annotations", "metadata.labels", "metadata.name",
                      "metadata.namespace", "metadata.uid"]  # fmt: skip
_MODE = "must be a number between 0 and 0777 (octal), both inclusive"


def _mode(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int) and not 0 <= value <= 0o777:
        return [invalid(path, value, _MODE)]
    return []


def local_non_reserved_path(value: str, path: str) -> list[Cause]:
    """``ValidateLocalNonReservedPath``."""
    causes = local_descending_path(value, path)
    if value.startswith("..") and not value.startswith("../"):
        causes.append(invalid(path, value, "must not start with '..'"))
    return causes


def _key_to_path(item: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not item.get("key"):
        causes.append(required(f"{path}.key"))
    if not item.get("path"):
        causes.append(required(f"{path}.path"))
    causes += local_non_reserved_path(item.get("path") or "", f"{path}.path")
    causes += _mode(item.get("mode"), f"{path}.mode")
    return causes


def _downward_items(items: list[Any], path: str) -> list[Cause]:
    """Downward API files; kube reports them at the source's path, not the item's."""
    causes: list[Cause] = []
    for raw in items:
        item = dict_of(raw)
        if not item.get("path"):
            causes.append(required(f"{path}.path"))
        causes += local_non_reserved_path(item.get("path") or "", f"{path}.path")
        if isinstance(item.get("fieldRef"), dict):
            causes += field_ref(item["fieldRef"], VOLUME_FIELD_PATHS, f"{path}.fieldRef")
            if item.get("resourceFieldRef") is not None:
                causes.append(
                    invalid(
                        path,
                        "resource",
                        "fieldRef and resourceFieldRef can not be specified simultaneously",
                    )
                )
        elif isinstance(item.get("resourceFieldRef"), dict):
            causes += resource_field_ref(item["resourceFieldRef"], f"{path}.resourceFieldRef", True)
        else:
            causes.append(required(path, "one of fieldRef and resourceFieldRef is required"))
        causes += _mode(item.get("mode"), f"{path}.mode")
    return causes


def _projected(projected: Obj, path: str) -> list[Cause]:
    causes = _mode(projected.get("defaultMode"), f"{path}.defaultMode")
    seen: set[str] = set()
    for i, raw in enumerate(list_of(projected.get("sources"))):
        source, at = dict_of(raw), f"{path}.sources[{i}]"
        kinds = [
            k
            for k in (
                "secret",
                "downwardAPI",
                "configMap",
                "serviceAccountToken",
                "clusterTrustBundle",
            )
            if source.get(k) is not None
        ]
        if len(kinds) > 1:
            causes.append(forbidden(at, "may not specify more than 1 volume type per source"))
        for kind in ("secret", "configMap"):
            ref = source.get(kind)
            if not isinstance(ref, dict):
                continue
            if not ref.get("name"):
                causes.append(required(f"{at}.{kind}.name"))
            for j, item in enumerate(list_of(ref.get("items"))):
                causes += _key_to_path(dict_of(item), f"{at}.{kind}.items[{j}]")
                p = dict_of(item).get("path") or ""
                if p in seen:
                    causes.append(
                        invalid(path, ref.get("name") or "", "conflicting duplicate paths")
                    )
                seen.add(p)
        if isinstance(source.get("downwardAPI"), dict):
            items = list_of(source["downwardAPI"].get("items"))
            causes += _downward_items(items, f"{at}.downwardAPI")
            for item in items:
                p = dict_of(item).get("path") or ""
                if p in seen:
                    causes.append(invalid(path, p, "conflicting duplicate paths"))
                seen.add(p)
        token = source.get("serviceAccountToken")
        if isinstance(token, dict):
            seconds = token.get("expirationSeconds") or 0
            if seconds < 600:
                causes.append(
                    invalid(
                        f"{at}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration less than 10 minutes",
                    )
                )
            elif seconds > 1 << 32:
                causes.append(
                    invalid(
                        f"{at}.serviceAccountToken.expirationSeconds",
                        seconds,
                        "may not specify a duration larger than 2^32 seconds",
                    )
                )
            if not token.get("path"):
                causes.append(required(f"{path}.path"))
            else:
                causes += local_non_reserved_path(token["path"], f"{path}.path")
    return causes


def _empty_dir(src: Obj, at: str) -> list[Cause]:
    size = parse_quantity(src.get("sizeLimit")) if src.get("sizeLimit") is not None else None
    if size is not None and size < 0:
        message = "SizeLimit field must be a valid resource quantity"
        return [forbidden(f"{at}.sizeLimit", message)]
    return []


def _host_path(src: Obj, at: str) -> list[Cause]:
    host = src.get("path") or ""
    if not host:
        return [required(f"{at}.path")]
    causes: list[Cause] = []
    if ".." in host.split("/"):
        causes.append(invalid(f"{at}.path", host, "must not contain '..'"))
    kind = src.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        causes.append(not_supported(f"{at}.type", kind, HOST_PATH_TYPES))
    return causes


def _files(name_key: str) -> Any:
    def check(src: Obj, at: str) -> list[Cause]:
        causes = [] if src.get(name_key) else [required(f"{at}.{name_key}")]
        causes += _mode(src.get("defaultMode"), f"{at}.defaultMode")
        for i, item in enumerate(list_of(src.get("items"))):
            causes += _key_to_path(dict_of(item), f"{at}.items[{i}]")
        return causes

    return check


def _nfs(src: Obj, at: str) -> list[Cause]:
    causes = [] if src.get("server") else [required(f"{at}.server")]
    if not src.get("path"):
        causes.append(required(f"{at}.path"))
    if not posixpath.isabs(src.get("path") or ""):
        causes.append(invalid(f"{at}.path", src.get("path") or "", "must be an absolute path"))
    return causes


def _downward(src: Obj, at: str) -> list[Cause]:
    causes = _mode(src.get("defaultMode"), f"{at}.defaultMode")
    return causes + _downward_items(list_of(src.get("items")), at)


def csi_driver(driver: Any, path: str) -> list[Cause]:
    """``ValidateCSIDriverName``."""
    driver = driver if isinstance(driver, str) else ""
    if not driver:
        return [required(path)]
    if len(driver) > 63:
        return [too_long(path, 63)]
    return [invalid(path, driver, m) for m in is_dns1123_subdomain(driver.lower())]


def _csi(src: Obj, at: str) -> list[Cause]:
    causes = csi_driver(src.get("driver"), f"{at}.driver")
    ref = src.get("nodePublishSecretRef")
    if isinstance(ref, dict):
        if not ref.get("name"):
            causes.append(required(f"{at}.nodePublishSecretRef.name"))
        else:
            errs = is_dns1123_subdomain(ref["name"])
            causes += [invalid(f"{at}.name", ref["name"], m) for m in errs]  # kube's path
    return causes


def _ephemeral(src: Obj, at: str) -> list[Cause]:
    if not isinstance(src.get("volumeClaimTemplate"), dict):
        return [required(f"{at}.volumeClaimTemplate")]
    return claim_template(src["volumeClaimTemplate"], f"{at}.volumeClaimTemplate")


SOURCE_CHECKS = {
    "emptyDir": _empty_dir,
    "hostPath": _host_path,
    "secret": _files("secretName"),
    "configMap": _files("name"),
    "persistentVolumeClaim": lambda src, at: (
        [] if src.get("claimName") else [required(f"{at}.claimName")]
    ),
    "nfs": _nfs,
    "downwardAPI": _downward,
    "projected": lambda src, at: _projected(src, at),
    "csi": _csi,
    "ephemeral": _ephemeral,
}
"""The rules of the volume sources kube checks (those of the others are not kept)."""


def validate_volumes(volumes: list[Any], path: str) -> tuple[dict[str, Obj], list[Cause]]:
    """(the valid volumes by name, the errors) of a pod spec's ``volumes``."""
    valid: dict[str, Obj] = {}
    causes: list[Cause] = []
    names: set[str] = set()
    for i, raw in enumerate(volumes):
        volume, at = dict_of(raw), f"{path}[{i}]"
        errs: list[Cause] = []
        present = [k for k in SOURCES if volume.get(k) is not None]
        for extra in present[1:]:
            errs.append(forbidden(f"{at}.{extra}", "may not specify more than 1 volume type"))
        if not present:
            errs.append(required(at, "must specify a volume type"))
        elif present[0] in SOURCE_CHECKS:
            errs += SOURCE_CHECKS[present[0]](dict_of(volume[present[0]]), f"{at}.{present[0]}")
        name = volume.get("name") or ""
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            errs += [invalid(f"{at}.name", name, m) for m in is_dns1123_label(name)]
        if name in names:
            errs.append(duplicate(f"{at}.name", name))
        if errs:
            causes += errs
        else:
            names.add(name)
            valid[name] = volume
    return valid, causes
