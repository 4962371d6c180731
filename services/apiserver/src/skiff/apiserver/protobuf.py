"""Decode Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``).

kubectl's typed commands (``create namespace``, ``create deployment``, ``run``...)
send their bodies as protobuf. This module turns such a body into the same dict the
JSON body would have given, walking the message descriptors generically.

The messages live in ``proto/skiff/k8spb`` (written from the Kubernetes API
specification for wire compatibility) and are generated with::

    .venv/bin/python -m grpc_tools.protoc -Iproto --python_out=libs/skiff/src \\
        --pyi_out=libs/skiff/src $(find proto/skiff/k8spb -name '*.proto')

Two field options of ours (``proto/skiff/k8spb/options.proto``) carry what the JSON
form depends on and proto2 cannot say: ``pointer`` (a set zero value is meaningful;
without it Kubernetes writes the field always and a zero value means unset) and
``inline`` (an embedded Go struct whose fields belong to the parent object).
"""

from __future__ import annotations

import base64
import functools
import importlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from skiff.api.errors import ApiError, Reason, bad_request

CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

_MODULES = (
    "skiff.k8spb.options_pb2",
    "skiff.k8spb.apimachinery.pkg.runtime.types_pb2",
    "skiff.k8spb.apimachinery.pkg.apis.meta.v1.types_pb2",
    "skiff.k8spb.apimachinery.pkg.api.resource.types_pb2",
    "skiff.k8spb.apimachinery.pkg.util.intstr.types_pb2",
    "skiff.k8spb.api.core.v1.types_pb2",
    "skiff.k8spb.api.apps.v1.types_pb2",
    "skiff.k8spb.api.batch.v1.types_pb2",
    "skiff.k8spb.api.coordination.v1.types_pb2",
    "skiff.k8spb.api.discovery.v1.types_pb2",
    "skiff.k8spb.api.events.v1.types_pb2",
    "skiff.k8spb.api.rbac.v1.types_pb2",
    "skiff.k8spb.api.autoscaling.v1.types_pb2",
    "skiff.k8spb.api.autoscaling.v2.types_pb2",
    "skiff.k8spb.api.policy.v1.types_pb2",
    "skiff.k8spb.api.networking.v1.types_pb2",
    "skiff.k8spb.api.authentication.v1.types_pb2",
    "skiff.k8spb.api.authorization.v1.types_pb2",
    "skiff.k8spb.api.certificates.v1.types_pb2",
)

_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_TIME = f"{_META}.Time"
_MICRO_TIME = f"{_META}.MicroTime"
_DURATION = f"{_META}.Duration"
_FIELDS_V1 = f"{_META}.FieldsV1"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_OPTIONS_KINDS = frozenset({"DeleteOptions"})
"""meta/v1 kinds Kubernetes registers in every group version."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Absent:
    """Marker: the value is the Go zero value of a special type (JSON ``null``)."""


_ZERO = _Absent()


@dataclass(frozen=True, slots=True)
class _Field:
    """How one descriptor field maps to JSON."""

    desc: FieldDescriptor
    name: str
    pointer: bool
    inline: bool
    is_map: bool


@functools.cache
def _load() -> Any:
    """Import the generated modules once; return the ``options_pb2`` module."""
    mods = [importlib.import_module(m) for m in _MODULES]
    return mods[0]


@functools.cache
def _message_class(full_name: str) -> type[Message] | None:
    _load()
    try:
        desc = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return None
    return message_factory.GetMessageClass(desc)


@functools.cache
def _fields(desc: Descriptor) -> dict[str, _Field]:
    """The JSON mapping of every field of ``desc``, by field name."""
    options = _load()
    out = {}
    for f in desc.fields:
        opts = f.GetOptions()
        mt = f.message_type
        out[f.name] = _Field(
            desc=f,
            name=f.json_name,
            pointer=bool(opts.Extensions[options.pointer]),
            inline=bool(opts.Extensions[options.inline]),
            is_map=bool(mt is not None and mt.GetOptions().map_entry),
        )
    return out


def _package(api_version: str, kind: str) -> str | None:
    """The proto package of ``apiVersion``/``kind`` (``apps/v1`` → ``k8s.io.api.apps.v1``)."""
    if kind in _OPTIONS_KINDS:
        return _META
    group, _, version = api_version.rpartition("/")
    if not version:
        return None
    if group == "meta.k8s.io":
        return _META
    if not group:
        return f"k8s.io.api.core.{version}"
    if group.endswith(".k8s.io"):
        group = group[: -len(".k8s.io")]
    if "." in group:
        group = group.split(".", 1)[0]
    return f"k8s.io.api.{group}.{version}"


def _cannot_decode(api_version: str, kind: str) -> ApiError:
    return ApiError(
        415,
        Reason.UNSUPPORTED_MEDIA_TYPE,
        f"{kind or '<no kind>'} ({api_version or '<no apiVersion>'}) cannot be decoded from "
        f"{CONTENT_TYPE} by this server; send it as application/json instead",
    )


def _object_class(api_version: str, kind: str) -> type[Message]:
    pkg = _package(api_version, kind)
    cls = _message_class(f"{pkg}.{kind}") if pkg and kind else None
    if cls is None:
        raise _cannot_decode(api_version, kind)
    names = cls.DESCRIPTOR.fields_by_name
    if "metadata" not in names and kind not in _OPTIONS_KINDS:
        raise _cannot_decode(api_version, kind)
    return cls


def decode(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf body into the object's JSON dict."""
    if not body.startswith(MAGIC):
        raise bad_request(
            f"the request body is not a Kubernetes protobuf object ({CONTENT_TYPE} bodies "
            'start with the 4 bytes "k8s\\x00")'
        )
    return _decode_unknown(bytes(body[len(MAGIC) :]))


def _parse(cls: type[Message], data: bytes, what: str) -> Message:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise bad_request(f"unable to decode {what} from protobuf: {exc}") from exc
    return msg


def _decode_unknown(data: bytes) -> dict[str, Any]:
    unknown_cls = _message_class(_UNKNOWN)
    assert unknown_cls is not None
    envelope: Any = _parse(unknown_cls, data, "the protobuf envelope (runtime.Unknown)")
    api_version = envelope.typeMeta.apiVersion
    kind = envelope.typeMeta.kind
    if envelope.contentEncoding:
        raise ApiError(
            415,
            Reason.UNSUPPORTED_MEDIA_TYPE,
            f"protobuf content encoding {envelope.contentEncoding!r} is not supported",
        )
    if not kind or not api_version:
        raise bad_request("the protobuf body has no apiVersion and kind")
    cls = _object_class(api_version, kind)
    obj = _parse(cls, envelope.raw, f"{kind} ({api_version})")
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    out.update(_message(obj))
    return out


def _message(msg: Message) -> dict[str, Any]:
    """A message as its Kubernetes JSON object (only fields that are set)."""
    fields = _fields(msg.DESCRIPTOR)
    out: dict[str, Any] = {}
    for desc, value in msg.ListFields():
        f = fields[desc.name]
        if f.is_map:
            value_field = desc.message_type.fields_by_name["value"]
            out[f.name] = {k: _item(value_field, v) for k, v in value.items()}
        elif desc.is_repeated:
            out[f.name] = [_item(desc, v) for v in value]
        else:
            v = _value(desc, value, f.pointer)
            if v is _ZERO:
                continue
            if f.inline:
                out.update(v)
            else:
                out[f.name] = v
    return out


def _item(desc: FieldDescriptor, value: Any) -> Any:
    """A list item or map value: zero values stay (as ``null`` for times)."""
    v = _value(desc, value, True)
    return None if v is _ZERO else v


def _value(desc: FieldDescriptor, value: Any, pointer: bool) -> Any:
    """One field value as JSON; ``_ZERO`` where a Go zero value means "not set"."""
    t = desc.type
    if t == FieldDescriptor.TYPE_MESSAGE:
        return _special(desc.message_type.full_name, value, pointer)
    if t == FieldDescriptor.TYPE_BYTES:
        if not value and not pointer:
            return _ZERO
        return base64.b64encode(value).decode("ascii")
    if not pointer and not value:
        return _ZERO
    if t == FieldDescriptor.TYPE_BOOL:
        return bool(value)
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return float(value)
    if t == FieldDescriptor.TYPE_STRING:
        return str(value)
    return int(value)


def _special(full_name: str, msg: Any, pointer: bool) -> Any:
    """Messages whose JSON form is not an object (times, quantities...)."""
    if full_name == _QUANTITY:
        if not msg.string and not pointer:
            return _ZERO
        return msg.string or "0"
    if full_name == _INT_OR_STRING:
        if msg.type == 1:
            return msg.strVal
        if not msg.intVal and not pointer:
            return _ZERO
        return msg.intVal
    if full_name in (_TIME, _MICRO_TIME):
        if not msg.HasField("seconds") and not msg.HasField("nanos"):
            return _ZERO
        return _timestamp(msg.seconds, msg.nanos, micro=full_name == _MICRO_TIME)
    if full_name == _DURATION:
        if not msg.duration and not pointer:
            return _ZERO
        return go_duration(msg.duration)
    if full_name == _RAW_EXTENSION:
        return _raw_json(msg.raw) if msg.raw else _ZERO
    if full_name == _FIELDS_V1:
        return _raw_json(msg.Raw) if msg.Raw else _ZERO
    if full_name.endswith(".ExtraValue"):  # authentication's and authorization's
        return list(msg.items)
    return _message(msg)


def _raw_json(raw: bytes) -> Any:
    """An embedded object: JSON, or a nested protobuf object."""
    if raw.startswith(MAGIC):
        return _decode_unknown(raw[len(MAGIC) :])
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"embedded object in protobuf body is not valid JSON: {exc}") from exc


def _timestamp(seconds: int, nanos: int, *, micro: bool) -> str:
    """RFC 3339 in UTC, as ``metav1.Time`` (seconds) or ``metav1.MicroTime`` (µs) write it."""
    try:
        t = _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError as exc:
        raise bad_request(f"time out of range in protobuf body: {seconds}s") from exc
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _frac(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    if not frac:
        return str(whole)
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` (``1h2m3.5s``, ``150ms``, ``0s``)."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_frac(u, 6)}ms"
    hours, rest = divmod(u, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    out = f"{_frac(rest, 9)}s"
    if hours or minutes:
        out = f"{minutes}m{out}"
    if hours:
        out = f"{hours}h{out}"
    return sign + out
