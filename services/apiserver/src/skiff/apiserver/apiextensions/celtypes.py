"""What ``self`` is to a CEL rule: its type for checking (kube's ``SchemaDeclType``) and its value
for evaluation (``UnstructuredToVal``), both derived from the structural schema.

Object types become protobuf messages in a per-schema descriptor pool, so that the checker
refuses ``self.nmae`` as cel-go does with kube's declared object types. Property names are
escaped as kube's ``cel.Escape`` does (``foo-bar`` → ``foo__dash__bar``); those it cannot escape
are not visible. At a resource root (the custom resource, or an embedded resource) only
``apiVersion``, ``kind``, ``metadata.name`` and ``metadata.generateName`` of the type meta and
object meta are visible, unless the schema declares more of metadata.
"""

from __future__ import annotations

import base64
import datetime
import itertools
import re
from collections.abc import Callable
from typing import Any

from cel_expr_python import cel
from google.protobuf import descriptor_pb2, duration_pb2, timestamp_pb2

from .celenv import check_env, new_pool

__all__ = ["SchemaTypes", "escape"]

_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop package "
    "namespace return var void while".split()
)
_IDENT = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"__": "__underscores__", ".": "__dot__", "-": "__dash__", "/": "__slash__"}
_ESCAPED = re.compile(r"__|[./-]")
_ESCAPABLE = re.compile(r"[a-zA-Z_./-][a-zA-Z0-9_./-]*")


def escape(name: str) -> str | None:
    """kube's ``cel.Escape``: a property name as a CEL identifier, or ``None``."""
    if name in _RESERVED:
        return f"__{name}__"
    if _IDENT.fullmatch(name) and "__" not in name:
        return name
    if not _ESCAPABLE.fullmatch(name):
        return None
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group(0)], name)


_COUNTER = itertools.count()
_F = descriptor_pb2.FieldDescriptorProto
_SCALAR_FIELDS = {
    "int": _F.TYPE_INT64, "double": _F.TYPE_DOUBLE, "bool": _F.TYPE_BOOL,
    "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES,
}  # fmt: skip
_MESSAGE_FIELDS = {
    "timestamp": ".google.protobuf.Timestamp", "duration": ".google.protobuf.Duration",
    "dyn": ".google.protobuf.Value", "list": ".google.protobuf.ListValue",
    "map": ".google.protobuf.Struct",
}  # fmt: skip
_CEL_SCALARS = {
    "int": cel.Type.INT, "double": cel.Type.DOUBLE, "bool": cel.Type.BOOL,
    "string": cel.Type.STRING, "bytes": cel.Type.BYTES, "timestamp": cel.Type.TIMESTAMP,
    "duration": cel.Type.DURATION, "dyn": cel.Type.DYN,
}  # fmt: skip
_STRING_FORMATS = {"byte": "bytes", "duration": "duration", "date": "timestamp"}
_STRING_FORMATS["date-time"] = "timestamp"

Spec = str | tuple[str, Any]
"""A CEL type: a scalar name (``"int"``, ``"dyn"``), ``("list", spec)``, ``("map", spec)``
or ``("msg", full message name)``."""
Converter = Callable[[Any], Any] | None
"""How a JSON value becomes ``self``; ``None`` where it is passed as it is."""

_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_META_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}},
}


def _embedded(s: dict[str, Any]) -> bool:
    return bool(s.get("x-kubernetes-embedded-resource"))


def _is(s: Any, typ: str) -> bool:
    return isinstance(s, dict) and s.get("type") == typ


def _with_type_and_object_meta(s: dict[str, Any]) -> dict[str, Any]:
    """``WithTypeAndObjectMeta``: the schema, or a copy declaring kind, apiVersion and
    metadata.name/generateName."""
    props = s.get("properties") or {}
    meta = props.get("metadata")
    meta_props = (meta.get("properties") or {}) if isinstance(meta, dict) else {}
    if (
        _is(props.get("kind"), "string")
        and _is(props.get("apiVersion"), "string")
        and _is(meta, "object")
        and _is(meta_props.get("name"), "string")
        and _is(meta_props.get("generateName"), "string")
    ):
        return s
    props = {**props, "kind": {"type": "string"}, "apiVersion": {"type": "string"}}
    return {**s, "properties": {**props, "metadata": _META_SCHEMA}}


class SchemaTypes:
    """The CEL types and value converters of one structural schema's nodes, built once."""

    def __init__(self, root: dict[str, Any]) -> None:
        n = next(_COUNTER)
        self._package = f"selfType{n}"
        self._file = descriptor_pb2.FileDescriptorProto(
            name=f"skiff/cel/schema{n}.proto",
            package=self._package,
            syntax="proto2",
            dependency=["google/protobuf/duration.proto", "google/protobuf/struct.proto"],
        )
        self._file.dependency.append("google/protobuf/timestamp.proto")
        self._frozen = False
        self._specs: dict[tuple[int, bool], Spec | None] = {}
        self._convs: dict[tuple[int, bool], Converter] = {}
        self._envs: dict[tuple[Spec, bool], Any] = {}
        self._resources: dict[int, dict[str, Any]] = {}
        self._declare(root, True)
        self._pool = new_pool()
        self._pool.Add(self._file)
        self._frozen = True

    def _declare(self, s: dict[str, Any], resource: bool) -> None:
        """Type every node up front: the pool cannot take messages once it is built."""
        self.spec(s, resource)
        below = [s.get("items"), s.get("additionalProperties")]
        below += list((s.get("properties") or {}).values())
        for c in below:
            if isinstance(c, dict):
                self._declare(c, _embedded(c))

    def _resource(self, s: dict[str, Any]) -> dict[str, Any]:
        if id(s) not in self._resources:
            self._resources[id(s)] = _with_type_and_object_meta(s)
        return self._resources[id(s)]

    # --- types ---

    def spec(self, s: dict[str, Any], resource: bool) -> Spec | None:
        """The node's CEL type, or ``None`` where kube does not expose it."""
        key = (id(s), resource)
        if key not in self._specs:
            self._specs[key] = None if self._frozen else self._compute(s, resource)
        return self._specs[key]

    def _compute(self, s: dict[str, Any], resource: bool) -> Spec | None:
        if s.get("x-kubernetes-int-or-string"):
            return "dyn"
        if resource:
            s = self._resource(s)
        typ = s.get("type")
        if typ == "array":
            items = s.get("items")
            if not isinstance(items, dict):
                return None
            inner = self.spec(items, _embedded(items))
            return None if inner is None else ("list", inner)
        if typ == "object":
            extra = s.get("additionalProperties")
            if isinstance(extra, dict):
                inner = self.spec(extra, _embedded(extra))
                return None if inner is None else ("map", inner)
            return ("msg", self._message(s))
        if typ == "string":
            return _STRING_FORMATS.get(s.get("format") or "", "string")
        return {"boolean": "bool", "number": "double", "integer": "int"}.get(typ or "")

    def _message(self, s: dict[str, Any]) -> str:
        fields = []
        for name, prop in (s.get("properties") or {}).items():
            esc = escape(name)
            inner = self.spec(prop, _embedded(prop)) if isinstance(prop, dict) else None
            if esc is not None and inner is not None:
                fields.append((esc, inner))
        msg = self._file.message_type.add(name=f"T{len(self._file.message_type)}")
        for esc, inner in fields:
            self._field(msg, esc, inner)
        return self._full(msg)

    def _field(self, msg: Any, name: str, spec: Spec) -> None:
        number = len(msg.field) + 1
        if isinstance(spec, tuple) and spec[0] == "map":
            # protoc's naming, which the C++ descriptor builder insists on
            camel = re.sub(r"_+([a-zA-Z0-9]?)", lambda m: m.group(1).upper(), "_" + name)
            entry = msg.nested_type.add(name=f"{camel}Entry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_F.TYPE_STRING, label=_F.LABEL_OPTIONAL)
            self._typed(entry.field.add(name="value", number=2, label=_F.LABEL_OPTIONAL), spec[1])
            field = msg.field.add(name=name, number=number, label=_F.LABEL_REPEATED)
            field.type, field.type_name = _F.TYPE_MESSAGE, f".{self._full(msg)}.{entry.name}"
        elif isinstance(spec, tuple) and spec[0] == "list":
            self._typed(msg.field.add(name=name, number=number, label=_F.LABEL_REPEATED), spec[1])
        else:
            self._typed(msg.field.add(name=name, number=number, label=_F.LABEL_OPTIONAL), spec)

    def _full(self, msg: Any) -> str:
        return f"{self._package}.{msg.name}"

    @staticmethod
    def _typed(field: Any, spec: Spec) -> None:
        """Type a singular field or a repeated/map element (nested collections and dynamic
        values become the well-known Value, ListValue and Struct: ``dyn`` to the checker)."""
        if isinstance(spec, tuple):
            field.type = _F.TYPE_MESSAGE
            field.type_name = f".{spec[1]}" if spec[0] == "msg" else _MESSAGE_FIELDS[spec[0]]
        elif spec in _SCALAR_FIELDS:
            field.type = _SCALAR_FIELDS[spec]
        else:
            field.type, field.type_name = _F.TYPE_MESSAGE, _MESSAGE_FIELDS[spec]

    def cel_type(self, spec: Spec) -> Any:
        if isinstance(spec, str):
            return _CEL_SCALARS[spec]
        kind, inner = spec
        if kind == "list":
            return cel.Type.List(self.cel_type(inner))
        if kind == "map":
            return cel.Type.Map(cel.Type.STRING, self.cel_type(inner))
        return cel.Type(inner)

    def env(self, s: dict[str, Any], resource: bool, optional_old: bool) -> Any | None:
        """The checking environment of rules at node ``s``; ``None`` if ``self`` has no type.
        With ``optional_old`` ``oldSelf`` is dynamic (cel-expr-python cannot declare an
        optional variable)."""
        spec = self.spec(s, resource)
        if spec is None:
            return None
        key = (spec, optional_old)  # nodes of one type share an environment
        if key not in self._envs:
            t = self.cel_type(spec)
            old = cel.Type.DYN if optional_old else t
            self._envs[key] = check_env(self._pool, {"self": t, "oldSelf": old})
        return self._envs[key]

    # --- values ---

    def converter(self, s: dict[str, Any], resource: bool) -> Converter:
        """How a value at node ``s`` becomes ``self``: numbers as doubles, formatted strings as
        timestamps, durations and bytes, objects with only their declared, escaped, non-null
        properties."""
        key = (id(s), resource)
        if key not in self._convs:
            self._convs[key] = self._converter(s, resource)
        return self._convs[key]

    def _converter(self, s: dict[str, Any], resource: bool) -> Converter:
        if s.get("x-kubernetes-int-or-string"):
            return None
        if resource:
            s = self._resource(s)
        typ = s.get("type")
        if typ == "object":
            return self._object_converter(s, resource)
        if typ == "array" and isinstance(s.get("items"), dict):
            item = self.converter(s["items"], _embedded(s["items"]))
            if item is None:
                return None
            return lambda v: [item(x) for x in v] if type(v) is list else v
        if typ == "number":
            return lambda v: float(v) if type(v) is int else v
        if typ == "string":
            parse = _STRING_PARSERS.get(s.get("format") or "")
            return None if parse is None else lambda v: parse(v) if type(v) is str else v
        return None

    def _object_converter(self, s: dict[str, Any], resource: bool) -> Converter:
        props = s.get("properties")
        if not (props or resource or _embedded(s)):
            extra = s.get("additionalProperties")
            if not isinstance(extra, dict):
                return None
            value = self.converter(extra, _embedded(extra))
            if value is None:
                return None
            return lambda v: {k: value(x) for k, x in v.items()} if type(v) is dict else v
        fields = []
        plain = not resource and not s.get(_PRESERVE)
        for name, prop in (props or {}).items():
            esc = escape(name)
            if esc is None or not isinstance(prop, dict):
                plain = False
                continue
            conv = self.converter(prop, _embedded(prop))
            if resource and name == "metadata" and conv is None:
                # metadata is not pruned: only what its schema declares is visible
                conv = self._object_converter({**prop, _PRESERVE: True}, False)
            fields.append((name, esc, conv))
            plain = plain and esc == name and conv is None and not prop.get("nullable")
        if plain:
            return None

        def convert(v: Any) -> Any:
            if type(v) is not dict:
                return v
            out = {}
            for name, esc, conv in fields:
                x = v.get(name)
                if x is not None:
                    out[esc] = x if conv is None else conv(x)
            return out

        return convert


def _timestamp(v: str) -> Any:
    try:
        t = datetime.datetime.fromisoformat(v)
    except ValueError:
        return v
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(t if t.tzinfo else t.replace(tzinfo=datetime.UTC))
    return out


_DURATION = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_UNIT_SECONDS.update({"d": 86400, "w": 604800})


def _duration(v: str) -> Any:
    sign, body = (-1, v[1:]) if v.startswith("-") else (1, v.removeprefix("+"))
    if body == "0":
        return duration_pb2.Duration()
    parts = _DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        return v
    if any(n in ("", ".") for n, _ in parts):
        return v
    out = duration_pb2.Duration()
    out.FromTimedelta(
        datetime.timedelta(seconds=sign * sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))
    )
    return out


def _bytes(v: str) -> Any:
    try:
        return base64.b64decode(v, validate=True)
    except ValueError:
        return v


_STRING_PARSERS: dict[str, Callable[[str], Any]] = {
    "date-time": _timestamp, "date": _timestamp, "duration": _duration, "byte": _bytes,
}  # fmt: skip
