"""The generic registry's rules around every write, as Kubernetes' ``rest.BeforeCreate``,
``rest.BeforeUpdate`` and ``rest.BeforeDelete``
(``staging/src/k8s.io/apiserver/pkg/registry/rest/{create,update,delete}.go``).

The order follows kube-apiserver: decode (unknown fields per ``fieldValidation``, types)
→ prepare (server-set metadata, status resets) → default → validate (metadata, then the
resource's strategy) → managedFields. Admission (:mod:`skiff.apiserver.admission`) runs
after these, in the store.
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any

from skiff.api import defaults, errors, names
from skiff.api.errors import Cause
from skiff.api.resources import ResourceInfo
from skiff.api.timestamps import rfc3339
from skiff.apiserver import apply as ssa
from skiff.apiserver import validation

from .. import conversion
from . import strategy_for
from .options import DeleteOptions, WriteOptions
from .strategy import Strategy

Obj = dict[str, Any]

_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# Metadata only the server sets: an update keeps the stored values.
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "name",
    "namespace",
    "generation",
)

# -- decoding ------------------------------------------------------------------------


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


def check_schema(info: ResourceInfo, obj: Obj, opts: WriteOptions) -> None:
    """Types must match the schema; unknown fields per ``fieldValidation``."""
    type_errors, unknown = strategy_for(info).decode_fields(obj)
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


def decode(info: ResourceInfo, obj: Obj, opts: WriteOptions) -> None:
    """Decode-time checks: apiVersion/kind, unknown fields, types."""
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if api_version and api_version != info.api_version:
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({info.api_version})"
        )
    if kind and kind != info.kind:
        raise errors.bad_request(
            f"the kind in the data ({kind}) does not match the expected kind ({info.kind})"
        )
    obj["apiVersion"] = info.api_version
    obj["kind"] = info.kind
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = meta = {}
    elif not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    check_schema(info, obj, opts)


# -- create and update ---------------------------------------------------------------


def default_and_validate(
    strategy: Strategy, obj: Obj, old: Obj | None, opts: WriteOptions, subresource: str = ""
) -> None:
    """Normalize and default, then reject the object (422) if it is invalid."""
    info = strategy.info
    strategy.normalize(obj, old)
    defaults.apply_defaults(info, obj, create=old is None)
    meta = obj["metadata"]
    causes = validation.validate_object_meta(
        meta, info.namespaced, names.name_rule_for(info.plural, info.group)
    )
    if old is None:
        causes.extend(strategy.validate(obj))
    else:
        causes.extend(strategy.validate_part_update(obj, old, subresource))
    if causes:
        raise errors.invalid(
            info.kind, meta.get("name") or meta.get("generateName") or "", info.group, causes
        )
    strategy.canonicalize(obj)


def revalidate(strategy: Strategy, obj: Obj, old: Obj | None, opts: WriteOptions) -> None:
    """Decode and validate again an object that admission rewrote (a mutating webhook's
    patch): unknown fields are dropped, as kube's decoder drops them from a patched object,
    and the registry's defaults and validation run on the result."""
    info = strategy.info
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    obj["apiVersion"], obj["kind"] = info.api_version, info.kind
    check_schema(info, obj, WriteOptions(field_validation="Ignore"))
    default_and_validate(strategy, obj, old, opts)


def _set_namespace(info: ResourceInfo, meta: dict[str, Any], namespace: str | None) -> None:
    if not info.namespaced:
        meta.pop("namespace", None)
        return
    if namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    meta["namespace"] = meta.get("namespace") or namespace


def before_create(strategy: Strategy, obj: Obj, namespace: str | None, opts: WriteOptions) -> None:
    """Namespace and generated name, server-set metadata, defaults, validation."""
    meta = obj["metadata"]
    _set_namespace(strategy.info, meta, namespace)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = meta["generateName"] + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
    strategy.prepare_for_create(obj)
    strategy.set_requester(obj, opts.user)
    meta["uid"] = str(uuid.uuid4())
    meta["creationTimestamp"] = rfc3339()
    meta["generation"] = 1
    for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
        meta.pop(k, None)
    default_and_validate(strategy, obj, None, opts)


def _strip_for_compare(obj: Obj) -> Obj:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    for k in ("resourceVersion", "managedFields"):
        meta.pop(k, None)
    out["metadata"] = meta
    return out


def _spec_of(obj: Obj) -> Obj:
    """Everything but metadata and status: a change here bumps metadata.generation."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _check_no_new_finalizers(info: ResourceInfo, om: dict[str, Any], nm: dict[str, Any]) -> None:
    """Finalizers may only be removed once deletion has started."""
    if not om.get("deletionTimestamp"):
        return
    added = set(nm.get("finalizers") or ()) - set(om.get("finalizers") or ())
    if added:
        raise errors.invalid(
            info.kind,
            om["name"],
            info.group,
            [
                Cause(
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers {sorted(added)!r}",
                    "FieldValueForbidden",
                )
            ],
        )


def before_update(
    strategy: Strategy,
    old: Obj,
    new: Obj,
    subresource: str,
    opts: WriteOptions,
    managed: bool = False,
    request: ResourceInfo | None = None,
) -> Obj | None:
    """Apply the update rules to ``new`` given ``old``; None when nothing would change.

    ``managed``: managedFields were already set (apply); ``request``: the version the
    request named, in which field ownership is recorded (default: the strategy's).
    """
    info = strategy.info
    new["apiVersion"] = info.api_version
    new["kind"] = info.kind
    om = old["metadata"]
    if not isinstance(new.setdefault("metadata", {}), dict):
        raise errors.bad_request("metadata must be an object")
    new = strategy.prepare_for_update(new, old, subresource)
    nm = new["metadata"]
    for k in _SYSTEM_META:
        if k in om:
            nm[k] = om[k]
        else:
            nm.pop(k, None)
    nm.pop("selfLink", None)
    _check_no_new_finalizers(info, om, nm)
    default_and_validate(strategy, new, old, opts, subresource)
    if _spec_of(new) != _spec_of(old):
        nm["generation"] = int(om.get("generation") or 1) + 1
    if not managed:
        track_fields(request or info, old, new, opts, subresource)
    if _strip_for_compare(new) == _strip_for_compare(old):
        return None
    return new


def track_fields(
    info: ResourceInfo, old: Obj | None, new: Obj, opts: WriteOptions, subresource: str
) -> None:
    """Record field ownership in managedFields for a non-apply write, in ``info``'s
    version (the request's; ``old`` and ``new`` may be in the registry's)."""
    view_old = conversion.convert(old, info) if old is not None else None
    view_new = conversion.convert(new, info)
    ssa.track_update(
        view_old,
        view_new,
        manager=opts.field_manager or "unknown",
        definition=info.definition,
        now=rfc3339(),
        subresource=subresource,
    )
    if view_new is not new:
        managed = view_new["metadata"].get("managedFields")
        if managed is None:
            new["metadata"].pop("managedFields", None)
        else:
            new["metadata"]["managedFields"] = managed


# -- delete --------------------------------------------------------------------------

_GC_FINALIZERS = ("orphan", "foregroundDeletion")


def gc_finalizers(strategy: Strategy, finalizers: list[str], policy: str | None) -> list[str]:
    """The finalizers after a delete with ``policy``, as the generic registry sets them: an
    explicit policy replaces the other garbage-collection finalizer (Background removes
    both); with none, existing ones stay, else the resource's default applies."""
    if policy is None:
        if any(f in finalizers for f in _GC_FINALIZERS):
            return finalizers
        policy = strategy.default_gc_policy
        if policy is None:
            return finalizers
    kept = [f for f in finalizers if f not in _GC_FINALIZERS]
    if policy == "Orphan":
        kept.append("orphan")
    elif policy == "Foreground":
        kept.append("foregroundDeletion")
    return kept


def before_delete(strategy: Strategy, obj: Obj, opts: DeleteOptions, now: str) -> bool:
    """Mark ``obj`` for graceful deletion if it needs it; True when it must stay for now."""
    meta = obj["metadata"]
    # The strategy first: it may add a finalizer of its own (a CRD's cleanup).
    graceful, grace = strategy.prepare_delete(obj, opts)
    finalizers = gc_finalizers(
        strategy, list(meta.get("finalizers") or []), opts.propagation_policy
    )
    if not (graceful or finalizers):
        return False
    meta["finalizers"] = finalizers
    if not finalizers:
        meta.pop("finalizers", None)
    if not meta.get("deletionTimestamp"):
        meta["deletionTimestamp"] = now
    meta["deletionGracePeriodSeconds"] = grace
    return True


def ready_to_delete(strategy: Strategy, obj: Obj) -> bool:
    """Whether an update leaves a deleted object with nothing keeping it: it goes now."""
    meta = obj["metadata"]
    return (
        bool(meta.get("deletionTimestamp"))
        and not meta.get("finalizers")
        and not strategy.pending_graceful(obj)
    )
