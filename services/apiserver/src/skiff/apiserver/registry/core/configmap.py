"""ConfigMaps and Secrets as kube 1.32's ``ValidateConfigMap`` and ``ValidateSecret``
check them: valid keys, at most 1 MiB of data, the keys each Secret type needs, and
``immutable`` objects whose data (and immutability) never change."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_config_map_key

from ...validation import forbidden, immutable, invalid, required, too_long
from ..strategy import Obj, Strategy
from .containers import dict_of

MAX_SIZE = 1024 * 1024  # kube's MaxSecretSize, for ConfigMaps too
_IMMUTABLE = "field is immutable when `immutable` is set"
_REDACTED = "<secret contents redacted>"


def _keys(data: Obj, path: str) -> list[Cause]:
    return [invalid(f"{path}[{k}]", k, m) for k in data for m in is_config_map_key(str(k))]


def _decoded(value: Any) -> bytes:
    """A ``data`` value (base64 in JSON); what does not decode was refused earlier."""
    try:
        return base64.b64decode(value or "", validate=False)
    except (binascii.Error, ValueError, TypeError):
        return b""


def _frozen(obj: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    """The ``immutable`` rule: once true it stays, and so do ``fields``."""
    if old.get("immutable") is not True:
        return []
    causes = [] if obj.get("immutable") is True else [forbidden("immutable", _IMMUTABLE)]
    for name in fields:
        if (obj.get(name) or {}) != (old.get(name) or {}):
            causes.append(forbidden(name, _IMMUTABLE))
    return causes


class ConfigMapStrategy(Strategy):
    """ConfigMaps."""

    def validate(self, obj: Obj) -> list[Cause]:
        data, binary = dict_of(obj.get("data")), dict_of(obj.get("binaryData"))
        causes = _keys(data, "data")
        causes += [
            invalid(f"data[{k}]", k, "duplicate of key present in binaryData")
            for k in data
            if k in binary
        ]
        causes += _keys(binary, "binaryData")
        size = sum(len(str(v).encode()) for v in data.values())
        size += sum(len(_decoded(v)) for v in binary.values())
        if size > MAX_SIZE:
            causes.append(too_long("", MAX_SIZE))
        return causes

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return _frozen(obj, old, ("data", "binaryData")) + self.validate(obj)


_GO_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "bool"}


def _json_error(raw: bytes) -> str | None:
    """Go's ``json.Unmarshal`` into a map: None when ``raw`` is a JSON object."""
    try:
        value = json.loads(raw)
    except ValueError as e:
        text = raw.decode(errors="replace").strip()
        if not text or (isinstance(e, json.JSONDecodeError) and e.pos >= len(raw.rstrip())):
            return "unexpected end of JSON input"
        if text[0] not in '{["-0123456789tfn':
            return f"invalid character '{text[0]}' looking for beginning of value"
        return f"invalid JSON: {e}"
    if value is not None and not isinstance(value, dict):
        kind = _GO_KINDS.get(type(value), "value")
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    return None


def _type_rules(secret_type: str, data: Obj, annotations: Obj) -> list[Cause]:
    if secret_type == "kubernetes.io/service-account-token":
        key = "kubernetes.io/service-account.name"
        return [] if annotations.get(key) else [required(f"metadata.annotations[{key}]")]
    json_keys = {"kubernetes.io/dockercfg": ".dockercfg",
                 "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}  # fmt: skip
    if secret_type in json_keys:
        key = json_keys[secret_type]
        if key not in data:
            return [required(f"data[{key}]")]
        error = _json_error(_decoded(data[key]))
        return [] if error is None else [invalid(f"data[{key}]", _REDACTED, error)]
    if secret_type == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            return [required("data[username]"), required("data[password]")]
    elif secret_type == "kubernetes.io/ssh-auth":
        if not _decoded(data.get("ssh-privatekey")):
            return [required("data[ssh-privatekey]")]
    elif secret_type == "kubernetes.io/tls":
        return [required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data]
    return []


class SecretStrategy(Strategy):
    """Secrets: ConfigMap keys, 1 MiB, the rules of their ``type`` (which never changes)."""

    def validate(self, obj: Obj) -> list[Cause]:
        data = dict_of(obj.get("data"))
        causes = _keys(data, "data")
        if sum(len(_decoded(v)) for v in data.values()) > MAX_SIZE:
            causes.append(too_long("data", MAX_SIZE))
        annotations = dict_of(dict_of(obj.get("metadata")).get("annotations"))
        return causes + _type_rules(obj.get("type") or "", data, annotations)

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = immutable("type", obj.get("type") or "", old.get("type") or "")
        return causes + _frozen(obj, old, ("data",)) + self.validate(obj)
