"""``metadata.managedFields`` bookkeeping: entries, their encoding, and conflicts.

Each entry is one manager's ``Apply`` or ``Update`` (per API version and subresource)
field set. Entries decode from and encode to the object, Update entries beyond
:data:`MAX_UPDATE_MANAGERS` fold into ``ancient-changes`` buckets, fields nobody owns
(apiVersion, kind, name, system metadata) are stripped, and a 409 lists every
conflicting field by manager.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from skiff.api.errors import ApiError, Cause, Reason
from skiff.apiserver.apply.fieldset import (
    Node,
    canonical_node,
    format_path,
    iter_paths,
    kids_of,
    node_recursive_difference,
    node_union,
    sorted_copy,
)

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
MAX_UPDATE_MANAGERS = 10
"""Update entries kept before the oldest are folded into :data:`ANCIENT_CHANGES`."""
ANCIENT_CHANGES = "ancient-changes"

# Metadata the server owns; never part of anyone's field set, never merged from an apply.
SYSTEM_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
# kube-apiserver's stripMetaManager set, plus the deletion fields the brief excludes.
_STRIP_METADATA = {"f:" + k: {} for k in ("name", "namespace", "clusterName", *SYSTEM_METADATA)}
_STRIP_TOP = ("f:apiVersion", "f:kind")


def strip_unowned(root: Node) -> Node:
    """Drop the fields nobody owns (apiVersion, kind, name, system metadata)."""
    if "f:apiVersion" in root or "f:kind" in root or "f:metadata" in root:
        root = dict(root)
        for k in _STRIP_TOP:
            root.pop(k, None)
        meta = root.get("f:metadata")
        if meta is not None:
            kids = node_recursive_difference(kids_of(meta), _STRIP_METADATA)
            if kids:
                root["f:metadata"] = kids
            else:
                del root["f:metadata"]
    return root


def without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        meta = dict(meta)
        del meta["managedFields"]
        obj = dict(obj)
        obj["metadata"] = meta
    return obj


@dataclass(slots=True)
class Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str
    time: str | None
    fields: Node
    raw: dict[str, Any] | None = None  # reused verbatim while the entry is unchanged

    @property
    def ident(self) -> tuple[str, str, str, str]:
        # Apply entries are one per manager whatever the version; Update ones per version.
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def label(self) -> str:
        """The manager as conflict messages name it (``printManager``)."""
        out = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            out += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            out += f" using {self.api_version}"
        return out

    def set_fields(self, fields: Node) -> None:
        if fields is not self.fields:
            self.fields = fields
            self.raw = None

    def encode(self) -> dict[str, Any]:
        if self.raw is not None:
            return copy_json(self.raw)
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        out["fieldsV1"] = sorted_copy(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_entries(managed_fields: Any, canonical: bool) -> list[Entry] | None:
    """Parse ``metadata.managedFields``; None when it is malformed."""
    if not managed_fields:
        return []
    if not isinstance(managed_fields, list):
        return None
    out: dict[tuple[str, str, str, str], Entry] = {}
    try:
        for raw in managed_fields:
            if not isinstance(raw, dict):
                return None
            fields = raw.get("fieldsV1") or {}
            if raw.get("fieldsType", FIELDS_V1) != FIELDS_V1 or not isinstance(fields, dict):
                return None
            if canonical:
                fields = canonical_node(fields)
            op = raw.get("operation")
            if op not in (APPLY, UPDATE):
                return None
            e = Entry(
                manager=str(raw.get("manager") or ""),
                operation=op,
                api_version=str(raw.get("apiVersion") or ""),
                subresource=str(raw.get("subresource") or ""),
                time=raw.get("time"),
                fields=fields,
                raw=None if canonical else raw,
            )
            prev = out.get(e.ident)
            if prev is not None:
                prev.set_fields(node_union(prev.fields, e.fields))
            else:
                out[e.ident] = e
    except (ValueError, TypeError):
        return None
    return list(out.values())


def _entry_order(e: Entry) -> tuple[str, str, str, str, str]:
    return (e.operation, str(e.time or ""), e.manager, e.api_version, e.subresource)


def _cap_update_managers(entries: list[Entry]) -> list[Entry]:
    """Fold the oldest Update entries into per-version ``ancient-changes`` buckets."""
    updaters = [e for e in entries if e.operation == UPDATE]
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return entries
    updaters.sort(key=lambda e: (str(e.time or ""), e.ident))
    by_ident = {e.ident: e for e in entries}
    first_of_version: dict[str, Entry] = {}
    length = len(updaters)
    for e in updaters:
        if length <= MAX_UPDATE_MANAGERS:
            break
        first = first_of_version.get(e.api_version)
        if first is None:
            first_of_version[e.api_version] = e
            continue
        bucket_ident = (ANCIENT_CHANGES, UPDATE, e.api_version, "")
        if e.ident == bucket_ident:
            continue
        bucket = by_ident.get(bucket_ident)
        if bucket is None:
            # The first entry seen at this version becomes the bucket.
            del by_ident[first.ident]
            bucket = Entry(ANCIENT_CHANGES, UPDATE, e.api_version, "", first.time, first.fields)
            by_ident[bucket_ident] = bucket
        bucket.set_fields(node_union(e.fields, bucket.fields))
        bucket.time = e.time
        bucket.raw = None
        del by_ident[e.ident]
        length -= 1
    return list(by_ident.values())


def _encode(entries: list[Entry]) -> list[dict[str, Any]]:
    entries = _cap_update_managers([e for e in entries if e.fields])
    return [e.encode() for e in sorted(entries, key=_entry_order)]


def set_managed_fields(obj: dict[str, Any], entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = _encode(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def copy_json(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: copy_json(i) for k, i in v.items()}
    if isinstance(v, list):
        return [copy_json(i) for i in v]
    return v


def conflict_error(conflicts: list[tuple[Entry, Node]]) -> ApiError:
    found: list[tuple[str, str]] = []
    for e, node in sorted(conflicts, key=lambda c: c[0].ident):
        label = e.label()
        found.extend((label, format_path(p)) for p in iter_paths(node, ()))
    causes = [
        Cause(field=path, message=f"conflict with {label}", reason="FieldManagerConflict")
        for label, path in found
    ]
    if len(found) == 1:
        label, path = found[0]
        message = f"Apply failed with 1 conflict: conflict with {label}: {path}"
    else:
        lines: list[str] = []
        last_label = None
        for label, path in found:
            if label != last_label:
                lines.append(f"conflicts with {label}:")
                last_label = label
            lines.append(f"- {path}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return ApiError(409, Reason.CONFLICT, message, causes=causes)
