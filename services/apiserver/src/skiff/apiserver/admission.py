"""Admission for writes: decoding checks, defaulting, validation, field ownership.

The order follows kube-apiserver: decode (unknown fields per ``fieldValidation``,
types) → mutate (defaults, server-set metadata) → validate (names, metadata,
per-kind rules) → managedFields.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from skiff.api import cron, defaults, errors, names
from skiff.api.errors import Cause
from skiff.api.resources import (
    PV_PROTECTION_FINALIZER,
    PVC_PROTECTION_FINALIZER,
    REGISTRY,
    ResourceInfo,
)
from skiff.apiserver import apply as ssa
from skiff.apiserver import validation

from . import allocators

if TYPE_CHECKING:
    from .store import DeleteOptions, WriteOptions

SERVICES = REGISTRY.by_path("", "v1", "services")

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parse_path(path: str) -> list[str | int]:
    return [
        m.group(1) if m.group(1) is not None else int(m.group(2))
        for m in _PATH_PART.finditer(path.lstrip("."))
    ]


def _prune(obj: Any, parts: list[str | int]) -> None:
    for p in parts[:-1]:
        try:
            obj = obj[p]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(obj, dict):
        obj.pop(parts[-1], None)


def check_schema(info: ResourceInfo, obj: dict[str, Any], opts: WriteOptions) -> None:
    """Types must match the schema; unknown fields per ``fieldValidation``."""
    type_errors, unknown = validation.validate_object(obj, info.definition)
    if type_errors:
        detail = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in type_errors)
        raise errors.bad_request(
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {detail}'
        )
    if not unknown:
        return
    mode = opts.field_validation or "Strict"
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{p.lstrip(".")}"' for p in unknown)
        raise errors.bad_request(
            f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
            f"strict decoding error: {listed}"
        )
    if mode == "Warn":
        opts.warnings.extend(f'unknown field "{p.lstrip(".")}"' for p in unknown)
    for p in sorted(unknown, key=len, reverse=True):
        _prune(obj, _parse_path(p))


def prepare_create(info: ResourceInfo, obj: dict[str, Any], now: str) -> None:
    """Reset what a client may not set on create (status of status-bearing resources)."""
    if info.has_status and info.plural not in ("nodes", "events"):
        obj.pop("status", None)
    meta = obj["metadata"]
    if not meta.get("managedFields"):
        meta.pop("managedFields", None)


def default_and_validate(
    info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None, opts: WriteOptions
) -> None:
    """Apply defaults, then reject the object (422) if it is invalid."""
    if info is SERVICES and isinstance(obj.get("spec"), dict):
        allocators.normalize(obj["spec"], (old.get("spec") or {}) if old is not None else None)
    defaults.apply_defaults(info, obj, create=old is None)
    meta = obj["metadata"]
    causes = validation.validate_object_meta(
        meta, info.namespaced, names.name_rule_for(info.plural, info.group)
    )
    causes.extend(_validate_kind(info, obj, old))
    if causes:
        raise errors.invalid(
            info.kind, meta.get("name") or meta.get("generateName") or "", info.group, causes
        )


def _validate_kind(
    info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    if info.plural == "pods" and not info.group:
        causes.extend(_validate_pod_spec(spec, "spec"))
        if old is not None:
            oldc = [(c.get("name")) for c in (old.get("spec") or {}).get("containers") or []]
            newc = [(c.get("name")) for c in spec.get("containers") or []]
            if oldc != newc:
                causes.append(
                    Cause(
                        "spec",
                        "Forbidden: pod updates may not add or remove containers",
                        "FieldValueForbidden",
                    )
                )
    elif info.plural in ("deployments", "replicasets", "statefulsets", "daemonsets") or (
        info.plural == "replicationcontrollers"
    ):
        template = spec.get("template") or {}
        causes.extend(_validate_pod_spec(template.get("spec") or {}, "spec.template.spec"))
        sel = spec.get("selector")
        labels = (template.get("metadata") or {}).get("labels") or {}
        if info.plural == "replicationcontrollers":
            match = sel or {}
        else:
            if not sel:
                causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
            match = (sel or {}).get("matchLabels") or {}
        if (
            sel is not None
            and not (sel or {}).get("matchExpressions")
            and not match
            and (info.plural != "replicationcontrollers")
        ):
            causes.append(
                Cause(
                    "spec.selector",
                    'Invalid value: "null": empty selector is invalid for deployment',
                    "FieldValueInvalid",
                )
            )
        for k, v in match.items():
            if labels.get(k) != v:
                causes.append(
                    Cause(
                        "spec.template.metadata.labels",
                        f"Invalid value: {labels!r}: `selector` does not match template `labels`",
                    )
                )
                break
        replicas = spec.get("replicas")
        if isinstance(replicas, int) and replicas < 0:
            causes.append(
                Cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            )
        if (
            old is not None
            and info.plural != "replicationcontrollers"
            and ((old.get("spec") or {}).get("selector") != sel)
            and info.plural in ("deployments", "replicasets", "daemonsets", "statefulsets")
        ):
            causes.append(Cause("spec.selector", f"Invalid value: {sel!r}: field is immutable"))
    elif info.plural in ("jobs",) and info.group == "batch":
        template = spec.get("template") or {}
        tspec = template.get("spec") or {}
        causes.extend(_validate_pod_spec(tspec, "spec.template.spec"))
        if tspec.get("restartPolicy") not in ("OnFailure", "Never"):
            causes.append(
                Cause(
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{tspec.get("restartPolicy")}": supported '
                    'values: "OnFailure", "Never"',
                    "FieldValueNotSupported",
                )
            )
    elif info.plural == "cronjobs":
        schedule = spec.get("schedule")
        if not schedule:
            causes.append(Cause("spec.schedule", "Required value", "FieldValueRequired"))
        elif isinstance(schedule, str):
            old_schedule = ((old or {}).get("spec") or {}).get("schedule") or ""
            # TZ= in the schedule is refused on create, kept on updates that had it.
            why = cron.validate_schedule(
                schedule, spec.get("timeZone"), allow_tz_in_schedule="TZ" in old_schedule
            )
            if why:
                causes.append(Cause("spec.schedule", f'Invalid value: "{schedule}": {why}'))
        tz = spec.get("timeZone")
        if tz is not None and (why := cron.validate_time_zone(tz)):
            causes.append(Cause("spec.timeZone", f'Invalid value: "{tz}": {why}'))
        jt = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        causes.extend(
            _validate_pod_spec(jt.get("spec") or {}, "spec.jobTemplate.spec.template.spec")
        )
    elif info is SERVICES:
        causes.extend(allocators.validate(spec, (old.get("spec") or {}) if old else None))
        for i, p in enumerate(spec.get("ports") or []):
            port = p.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                causes.append(
                    Cause(
                        f"spec.ports[{i}].port",
                        f"Invalid value: {port}: must be between 1 and 65535, inclusive",
                    )
                )
    elif info.plural == "storageclasses":
        if not obj.get("provisioner"):
            causes.append(Cause("provisioner", "Required value", "FieldValueRequired"))
        for f in ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"):
            if old is not None and obj.get(f) != old.get(f):
                causes.append(
                    Cause(f, f"Forbidden: updates to {f} are forbidden.", "FieldValueForbidden")
                )
    elif info.plural == "priorityclasses":
        causes.extend(_validate_priority_class(obj, old))
    elif info.plural == "configmaps" or info.plural == "secrets":
        for k in list((obj.get("data") or {}).keys()) + list((obj.get("binaryData") or {}).keys()):
            if not re.fullmatch(r"[-._a-zA-Z0-9]+", k):
                causes.append(
                    Cause(
                        f"data[{k}]",
                        f'Invalid value: "{k}": a valid config key '
                        "must consist of alphanumeric characters, '-', '_' or '.' "
                        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
                        "used for validation is '[-._a-zA-Z0-9]+')",
                    )
                )
    return causes


SYSTEM_PRIORITY_CLASSES = {
    "system-node-critical": 2000001000,
    "system-cluster-critical": 2000000000,
}
HIGHEST_USER_PRIORITY = 1_000_000_000


def _validate_priority_class(obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    causes: list[Cause] = []
    name = obj["metadata"].get("name") or ""
    value = obj.get("value")
    if not isinstance(value, int) or isinstance(value, bool):
        causes.append(Cause("value", "Required value", "FieldValueRequired"))
    elif name in SYSTEM_PRIORITY_CLASSES:
        if value != SYSTEM_PRIORITY_CLASSES[name]:
            causes.append(
                Cause(
                    "value",
                    f"Invalid value: {value}: value of {name} "
                    f"PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}",
                )
            )
    elif name.startswith("system-"):
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": priority class names '
                "with 'system-' prefix are reserved for system use only",
            )
        )
    elif value > HIGHEST_USER_PRIORITY:
        causes.append(
            Cause(
                "value",
                f"Invalid value: {value}: maximum allowed value of a user "
                f"defined priority is {HIGHEST_USER_PRIORITY}",
            )
        )
    if old is not None and old.get("value") != value:
        causes.append(
            Cause("value", "Forbidden: may not be changed in an update.", "FieldValueForbidden")
        )
    policy = obj.get("preemptionPolicy")
    if policy not in (None, "PreemptLowerPriority", "Never"):
        causes.append(
            Cause(
                "preemptionPolicy",
                f'Unsupported value: "{policy}": supported values: "Never", "PreemptLowerPriority"',
                "FieldValueNotSupported",
            )
        )
    return causes


def _validate_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        causes.append(Cause(f"{path}.containers", "Required value", "FieldValueRequired"))
        return causes
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(group) or []):
            where = f"{path}.{group}[{i}]"
            name = c.get("name")
            if not name:
                causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
            else:
                for msg in names.is_dns1123_label(name):
                    causes.append(Cause(f"{where}.name", f'Invalid value: "{name}": {msg}'))
                if name in seen:
                    causes.append(
                        Cause(f"{where}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate")
                    )
                seen.add(name)
            if not c.get("image"):
                causes.append(Cause(f"{where}.image", "Required value", "FieldValueRequired"))
    return causes


def track_fields(
    info: ResourceInfo,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    opts: WriteOptions,
    subresource: str,
) -> None:
    """Record field ownership in managedFields for a non-apply write."""
    ssa.track_update(
        old,
        new,
        manager=opts.field_manager or "unknown",
        definition=info.definition,
        now=_now(),
        subresource=subresource,
    )


_PROTECTION_FINALIZERS = {
    ("", "persistentvolumeclaims"): PVC_PROTECTION_FINALIZER,
    ("", "persistentvolumes"): PV_PROTECTION_FINALIZER,
}


def storage_object_in_use_protection(info: ResourceInfo, obj: dict[str, Any]) -> None:
    """StorageObjectInUseProtection admission (on create): a new PersistentVolumeClaim gets
    the ``kubernetes.io/pvc-protection`` finalizer, a new PersistentVolume
    ``kubernetes.io/pv-protection``, unless they already have it. A delete then only marks
    the object; the pvc-protection and pv-protection controllers remove the finalizer once
    no scheduled, unfinished pod uses the claim, or once the volume is no longer Bound.

    Run after managedFields are recorded, as kube-apiserver runs mutating admission after
    its field manager: the finalizer belongs to no field manager, so a later apply that
    leaves it out does not remove it.
    """
    finalizer = _PROTECTION_FINALIZERS.get((info.group, info.plural))
    if finalizer is None:
        return
    meta = obj["metadata"]
    finalizers = list(meta.get("finalizers") or ())
    if finalizer not in finalizers:
        meta["finalizers"] = [*finalizers, finalizer]


# Kinds whose dependents are orphaned when a delete names no policy (their
# DefaultGarbageCollectionPolicy in Kubernetes; kubectl always sends one explicitly).
_ORPHAN_BY_DEFAULT = {("", "replicationcontrollers"), ("batch", "jobs")}
_GC_FINALIZERS = ("orphan", "foregroundDeletion")


def gc_finalizers(info: ResourceInfo, finalizers: list[str], policy: str | None) -> list[str]:
    """The finalizers after a delete with ``policy``, as the generic registry sets them: an
    explicit policy replaces the other garbage-collection finalizer (Background removes
    both); with none, existing ones stay, else the kind's default applies."""
    if policy is None:
        if any(f in finalizers for f in _GC_FINALIZERS):
            return finalizers
        if (info.group, info.plural) in _ORPHAN_BY_DEFAULT:
            policy = "Orphan"
        else:
            return finalizers
    kept = [f for f in finalizers if f not in _GC_FINALIZERS]
    if policy == "Orphan":
        kept.append("orphan")
    elif policy == "Foreground":
        kept.append("foregroundDeletion")
    return kept


def prepare_delete(info: ResourceInfo, obj: dict[str, Any], opts: DeleteOptions, now: str) -> bool:
    """Mark ``obj`` for graceful deletion if it needs it; True when it must stay for now."""
    meta = obj["metadata"]
    finalizers = gc_finalizers(info, list(meta.get("finalizers") or []), opts.propagation_policy)
    graceful = bool(finalizers)
    grace = 0
    if info.plural == "pods" and not info.group:
        spec = obj.get("spec") or {}
        grace = opts.grace_period_seconds
        if grace is None:
            grace = int(spec.get("terminationGracePeriodSeconds") or 30)
        phase = (obj.get("status") or {}).get("phase")
        # An unscheduled or finished pod has no kubelet to wait for.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        if meta.get("deletionTimestamp"):
            prev = meta.get("deletionGracePeriodSeconds")
            grace = min(grace, prev) if prev is not None else grace
        graceful = graceful or grace > 0
    if info.plural == "namespaces" and not info.group:
        graceful = True
        obj.setdefault("status", {})["phase"] = "Terminating"
    if not graceful:
        return False
    meta["finalizers"] = finalizers
    if not finalizers:
        meta.pop("finalizers", None)
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = now
    meta["deletionGracePeriodSeconds"] = grace
    return True


def _now() -> str:
    from .store import now_rfc3339

    return now_rfc3339()
