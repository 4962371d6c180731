"""The field manager: server-side apply and ``Update`` ownership tracking.

* :func:`server_side_apply` merges an applied configuration into the live object,
  prunes what the applier stopped applying, reports conflicts (409) and records the
  applier as an ``Apply`` manager (and kubectl's last-applied annotation).
* :func:`track_update` records ``Update`` ownership for ordinary writes.

Requests on the main resource and on ``/status`` each own only their part of an
object with a status subresource, like the reset fields of kube-apiserver's strategies.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from skiff.api.errors import bad_request
from skiff.apiserver.apply.fieldset import (
    FieldSet,
    Node,
    node_difference,
    node_intersection,
    node_union,
)
from skiff.apiserver.apply.managedfields import (
    APPLY,
    SYSTEM_METADATA,
    UPDATE,
    Entry,
    conflict_error,
    copy_json,
    decode_entries,
    set_managed_fields,
    strip_unowned,
    without_managed_fields,
)
from skiff.apiserver.apply.merge import Diff, compare_map, merge_map, prune_map, set_of_map
from skiff.apiserver.apply.typed import SchemaType, api_version_of, root_type

LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"


def fields_of(obj: dict[str, Any], definition: str) -> FieldSet:
    """The fields an applier of ``obj`` owns (SMD ``ToFieldSet``, less never-owned fields)."""
    t = root_type(definition)
    return FieldSet(strip_unowned(set_of_map(without_managed_fields(obj), t)))


_STATUS_SCOPE = frozenset(("apiVersion", "kind", "metadata", "status"))


def _scope(
    t: SchemaType, subresource: str, status_subresource: bool | None
) -> Callable[[str], bool]:
    """Which top-level fields a request on ``subresource`` may change and own.

    With a status subresource, the main resource's managers never own ``status`` and
    ``/status`` managers own nothing but ``status`` (and metadata), like the reset fields
    of kube-apiserver's strategies.
    """
    if status_subresource is None:
        status_subresource = "status" in t.declared_fields
    if not status_subresource or subresource not in ("", "status"):
        return _everything
    if subresource == "":
        return _not_status
    return _STATUS_SCOPE.__contains__


def _everything(key: str) -> bool:
    return True


def _not_status(key: str) -> bool:
    return key != "status"


def _in_scope(node: Node, scope: Callable[[str], bool]) -> Node:
    if scope is _everything or all(scope(k[2:]) for k in node):
        return node
    return {k: v for k, v in node.items() if scope(k[2:])}


def _last_applied(applied: dict[str, Any]) -> str:
    """The ``last-applied-configuration`` annotation value for an applied config."""
    obj = copy_json(applied)
    annotations = obj.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
        if not annotations:
            del obj["metadata"]["annotations"]
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    # Go's encoding/json escapes these; kubectl diffs the annotation byte for byte.
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(ch, esc)
    return text + "\n"


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    definition: str,
    now: str,
    subresource: str = "",
    status_subresource: bool | None = None,
) -> dict[str, Any]:
    """Apply ``applied`` to ``live`` (``None`` to create) as field manager ``manager``.

    Returns the new object with ``metadata.managedFields`` updated; inputs are not
    modified.  Raises a 409 ``ApiError`` listing every conflicting field unless
    ``force`` is set, and a 400 for a malformed configuration.  ``status_subresource``
    says whether ``status`` is only writable through ``/status`` (default: whether
    the schema has a ``status`` field).
    """
    if not isinstance(applied, dict) or not isinstance(applied.get("metadata"), dict):
        raise bad_request("the applied configuration must be an object with metadata")
    if applied["metadata"].get("managedFields") is not None:
        raise bad_request("metadata.managedFields must be nil")
    expected = api_version_of(definition)
    patch_version = applied.get("apiVersion")
    if expected and patch_version and patch_version != expected:
        raise bad_request(
            "Incorrect version specified in apply patch. "
            f"Specified patch version: {patch_version}, expected: {expected}"
        )
    api_version = expected or str(patch_version or (live or {}).get("apiVersion") or "")
    t = root_type(definition)
    scope = _scope(t, subresource, status_subresource)

    # The configuration, minus what this request cannot set.
    config = {k: v for k, v in applied.items() if scope(k)}
    config["metadata"] = {k: v for k, v in applied["metadata"].items() if k not in SYSTEM_METADATA}
    config = copy_json(config)

    if live is None:
        base: dict[str, Any] = {}
        entries: list[Entry] = []
    else:
        base = copy_json(without_managed_fields(live))
        entries = decode_entries((live.get("metadata") or {}).get("managedFields"), False) or []

    ident = (manager, APPLY, "", subresource)
    mine = next((e for e in entries if e.ident == ident), None)
    others = [e for e in entries if e is not mine]

    merged = merge_map(base, config, t)
    applied_set = set_of_map(config, t)  # unstripped: name & co. keep metadata alive in prune
    if mine is not None and mine.fields:
        managed: Node = applied_set
        for e in others:
            managed = node_union(managed, e.fields)
        merged = prune_map(merged, mine.fields, managed, t)

    diff = Diff()
    compare_map(base, merged, t, diff)
    changed = _in_scope(node_union(diff.added, diff.modified), scope)
    removed = _in_scope(diff.removed, scope)

    conflicts = []
    if changed:
        for e in others:
            hit = node_intersection(e.fields, changed)
            if hit:
                conflicts.append((e, hit))
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e, hit in conflicts:
        e.set_fields(node_difference(e.fields, hit))
    if removed:
        for e in others:
            e.set_fields(node_difference(e.fields, removed))
    others = [e for e in others if e.fields]

    new_fields = strip_unowned(applied_set)
    if new_fields:
        if mine is None:
            mine = Entry(manager, APPLY, api_version, subresource, now, new_fields)
        else:
            mine.set_fields(new_fields)
            if mine.api_version != api_version:
                mine.api_version = api_version
                mine.raw = None
            if changed or removed or not mine.time:
                mine.time = now
                mine.raw = None
        others.append(mine)

    if manager == "kubectl":
        annotations = (merged.get("metadata") or {}).get("annotations")
        if isinstance(annotations, dict) and LAST_APPLIED_ANNOTATION in annotations:
            annotations[LAST_APPLIED_ANNOTATION] = _last_applied(applied)

    set_managed_fields(merged, others)
    return merged


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    definition: str,
    now: str,
    subresource: str = "",
    status_subresource: bool | None = None,
) -> None:
    """Record an ordinary create/update/patch by ``manager`` in ``new``'s managedFields.

    Fields that differ between ``old`` and ``new`` (everything on create) move to
    ``manager``'s ``Update`` entry; fields that disappeared leave every entry.  A
    request may replace managedFields itself (``[]`` or ``[{}]`` clears them);
    subresource requests always start from ``old``'s.  ``status_subresource`` is as
    for :func:`server_side_apply`.
    """
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    old_meta = (old or {}).get("metadata")
    old_mf = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    req_mf = meta.get("managedFields")

    entries: list[Entry] | None = None
    if not subresource and req_mf is not None and req_mf is not old_mf:
        if req_mf == [] or req_mf == [{}]:
            entries = []
        elif req_mf != old_mf:
            entries = decode_entries(req_mf, True)
            if not entries:
                entries = None
    if entries is None:
        entries = decode_entries(old_mf, False) or []

    t = root_type(definition)
    scope = _scope(t, subresource, status_subresource)
    lhs: dict[str, Any]
    if old is None:
        # Go decodes value structs (metadata, spec, status) as present-but-empty.
        lhs = {k: {} for k in ("metadata", "spec", "status") if k in t.declared_fields}
    else:
        lhs = without_managed_fields(old)
    diff = Diff()
    compare_map(lhs, without_managed_fields(new), t, diff)
    changed = _in_scope(node_union(diff.added, diff.modified), scope)
    removed = _in_scope(diff.removed, scope)

    api_version = str(new.get("apiVersion") or api_version_of(definition) or "")
    ident = (manager, UPDATE, api_version, subresource)
    if changed or removed:
        for e in entries:
            fields = e.fields
            if changed:
                fields = node_difference(fields, changed)
            if removed:
                fields = node_difference(fields, removed)
            e.set_fields(fields)
    owned = strip_unowned(changed)
    if owned:
        mine = next((e for e in entries if e.ident == ident), None)
        if mine is None:
            entries.append(Entry(manager, UPDATE, api_version, subresource, now, owned))
        else:
            mine.set_fields(node_union(mine.fields, owned))
            mine.time = now
            mine.raw = None
    set_managed_fields(new, entries)
