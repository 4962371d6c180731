"""The CEL environments x-kubernetes-validations rules use, on cel-expr-python (cel-cpp).

Two kinds, as kube's typed compile and untyped evaluation would be one in cel-go:

- a *checking* environment per schema node (:func:`check_env`): ``self`` and ``oldSelf`` typed
  from the schema (:mod:`.celtypes`), the standard library with kube 1.32's cross-type numeric
  comparisons, optionals, sets, cel-go's strings extension (version 2) and Kubernetes' library
  (quantity, URLs, regex, lists, IP, CIDR), declared and never run;
- one *runtime* environment (:data:`RUNTIME`): every variable dynamic, the same functions
  backed by :mod:`.celfuncs`, rules compiled unchecked and evaluated on plain Python values.

Errors come back in cel-go's words (:func:`compile_error`, :func:`runtime_error`).
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from cel_expr_python import cel
from cel_expr_python.ext import ext_bindings, ext_optional
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from . import celauthz
from .celfuncs import FUNCTIONS, set_message_classes

__all__ = [
    "MESSAGES",
    "RUNTIME",
    "check_env",
    "checking_env",
    "compile_error",
    "new_pool",
    "runtime_env",
    "runtime_error",
]

T = cel.Type

# --- the descriptor pool: well-known types and Kubernetes' value types ---

MESSAGES = {
    "Quantity": "kubernetes.Quantity",
    "URL": "kubernetes.URL",
    "IP": "net.IP",
    "CIDR": "net.CIDR",
    **celauthz.MESSAGES,
}
"""Kubernetes' CEL value types: a message of one canonical string each (the authorizer
library's hold their state as JSON)."""


def _kube_files() -> list[descriptor_pb2.FileDescriptorProto]:
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for full in MESSAGES.values():
        package, name = full.rsplit(".", 1)
        f = files.setdefault(
            package,
            descriptor_pb2.FileDescriptorProto(
                name=f"skiff/cel/{package}.proto", package=package, syntax="proto3"
            ),
        )
        msg = f.message_type.add(name=name)
        msg.field.add(name="value", number=1, type=9, label=1)  # string, optional
        short = next(k for k, v in MESSAGES.items() if v == full)
        for field, kind, number in celauthz.FIELDS.get(short, ()):
            msg.field.add(name=field, number=number, type=11, label=1,  # message, optional
                          type_name=f".{MESSAGES[kind]}")  # fmt: skip
    return list(files.values())


_WELL_KNOWN = [
    descriptor_pb2.FileDescriptorProto.FromString(m.DESCRIPTOR.serialized_pb)
    for m in (any_pb2, duration_pb2, empty_pb2, struct_pb2, timestamp_pb2, wrappers_pb2)
]
_KUBE_FILES = _kube_files()


def new_pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool with the well-known types and Kubernetes' value types."""
    pool = descriptor_pool.DescriptorPool()
    for f in _WELL_KNOWN + _KUBE_FILES:
        pool.Add(f)
    return pool


_POOL = new_pool()
_CLASSES = {
    short: message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full))
    for short, full in MESSAGES.items()
}
set_message_classes(_CLASSES)
celauthz.set_message_classes(_CLASSES)

# --- declarations: (function, implementation, member?, parameter types, result type) ---

_SCALARS = ("int", "uint", "double", "bool", "string", "bytes", "timestamp", "duration")
_ORDERED = ("int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration")
_NUMBERS = ("int", "uint", "double")
_Decl = tuple[str, str | None, bool, tuple[str, ...], str]


def _comparisons() -> list[_Decl]:
    pairs = [(t, t) for t in _ORDERED] + [
        (a, b) for a, b in itertools.product(_NUMBERS, _NUMBERS) if a != b
    ]
    ops = ("_<_", "_<=_", "_>_", "_>=_")
    return [(op, None, False, pair, "bool") for op in ops for pair in pairs]


def _member(name: str, params: tuple[str, ...], result: str, impl: str = "") -> _Decl:
    return (name, impl or name, True, params, result)


def _global(name: str, params: tuple[str, ...], result: str, impl: str = "") -> _Decl:
    return (name, impl or name, False, params, result)


_Q, _S = "Quantity", "string"
_IP_PREDICATES = (
    "isUnspecified", "isLoopback", "isLinkLocalMulticast", "isLinkLocalUnicast", "isGlobalUnicast",
)  # fmt: skip
_DECLS: list[_Decl] = [
    *_comparisons(),
    # library/quantity.go ("sign" is a global function in 1.32; later releases made it a
    # member, which is accepted too)
    _global("quantity", (_S,), _Q),
    _global("isQuantity", (_S,), "bool"),
    _global("sign", (_Q,), "int"),
    _member("sign", (_Q,), "int"),
    _member("isGreaterThan", (_Q, _Q), "bool"),
    _member("isLessThan", (_Q, _Q), "bool"),
    _member("compareTo", (_Q, _Q), "int"),
    _member("asApproximateFloat", (_Q,), "double"),
    _member("asInteger", (_Q,), "int"),
    _member("isInteger", (_Q,), "bool"),
    _member("add", (_Q, _Q), _Q, "quantity_add"),
    _member("add", (_Q, "int"), _Q, "quantity_add"),
    _member("sub", (_Q, _Q), _Q, "quantity_sub"),
    _member("sub", (_Q, "int"), _Q, "quantity_sub"),
    # library/urls.go
    _global("url", (_S,), "URL"),
    _global("isURL", (_S,), "bool"),
    *(_member(f, ("URL",), _S) for f in ("getScheme", "getHost", "getHostname", "getPort")),
    _member("getEscapedPath", ("URL",), _S),
    _member("getQuery", ("URL",), "map(string,list(string))"),
    # library/regex.go
    _member("find", (_S, _S), _S),
    _member("findAll", (_S, _S), "list(string)"),
    _member("findAll", (_S, _S, "int"), "list(string)"),
    # library/lists.go
    *(_member("isSorted", (f"list({t})",), "bool") for t in _ORDERED),
    *(_member("sum", (f"list({t})",), t) for t in ("int", "uint", "double", "duration")),
    *(_member(f, (f"list({t})",), t) for f in ("min", "max") for t in _ORDERED),
    _member("indexOf", ("list(T)", "T"), "int", "list_indexOf"),
    _member("lastIndexOf", ("list(T)", "T"), "int", "list_lastIndexOf"),
    # cel-go's ext.Strings (version 2)
    _member("charAt", (_S, "int"), _S),
    _member("indexOf", (_S, _S), "int"),
    _member("indexOf", (_S, _S, "int"), "int"),
    _member("lastIndexOf", (_S, _S), "int"),
    _member("lastIndexOf", (_S, _S, "int"), "int"),
    _member("lowerAscii", (_S,), _S),
    _member("upperAscii", (_S,), _S),
    _member("replace", (_S, _S, _S), _S),
    _member("replace", (_S, _S, _S, "int"), _S),
    _member("split", (_S, _S), "list(string)"),
    _member("split", (_S, _S, "int"), "list(string)"),
    _member("substring", (_S, "int"), _S),
    _member("substring", (_S, "int", "int"), _S),
    _member("trim", (_S,), _S),
    _member("join", ("list(string)",), _S),
    _member("join", ("list(string)", _S), _S),
    _member("format", (_S, "list(dyn)"), _S),
    _global("strings.quote", (_S,), _S),
    # library/ip.go, library/cidr.go
    _global("ip", (_S,), "IP"),
    _global("isIP", (_S,), "bool"),
    _global("ip.isCanonical", (_S,), "bool"),
    _member("family", ("IP",), "int"),
    *(_member(f, ("IP",), "bool") for f in _IP_PREDICATES),
    _global("cidr", (_S,), "CIDR"),
    _global("isCIDR", (_S,), "bool"),
    _member("containsIP", ("CIDR", "IP"), "bool"),
    _member("containsIP", ("CIDR", _S), "bool"),
    _member("containsCIDR", ("CIDR", "CIDR"), "bool"),
    _member("containsCIDR", ("CIDR", _S), "bool"),
    _member("ip", ("CIDR",), "IP", "cidr_ip"),
    _member("masked", ("CIDR",), "CIDR"),
    _member("prefixLength", ("CIDR",), "int"),
    # library/authz.go (admission expressions' ``authorizer``)
    _member("path", ("Authorizer", _S), "PathCheck", "authz_path"),
    _member("group", ("Authorizer", _S), "GroupCheck", "authz_group"),
    _member("serviceAccount", ("Authorizer", _S, _S), "Authorizer", "authz_service_account"),
    _member("resource", ("GroupCheck", _S), "ResourceCheck", "authz_resource"),
    _member("subresource", ("ResourceCheck", _S), "ResourceCheck", "authz_subresource"),
    _member("namespace", ("ResourceCheck", _S), "ResourceCheck", "authz_namespace"),
    _member("name", ("ResourceCheck", _S), "ResourceCheck", "authz_name"),
    _member("check", ("ResourceCheck", _S), "Decision", "authz_check"),
    _member("check", ("PathCheck", _S), "Decision", "authz_check"),
    _member("allowed", ("Decision",), "bool", "authz_allowed"),
    _member("reason", ("Decision",), _S, "authz_reason"),
    _member("errored", ("Decision",), "bool", "authz_errored"),
    _member("error", ("Decision",), _S, "authz_error"),
]

# --- the checking environment ---

_YAML_NAMES = {"timestamp": "google.protobuf.Timestamp", "duration": "google.protobuf.Duration"}


def _split_params(inner: str) -> list[str]:
    depth, start, out = 0, 0, []
    for i, c in enumerate(inner):
        depth += c == "("
        depth -= c == ")"
        if c == "," and depth == 0:
            out.append(inner[start:i])
            start = i + 1
    return [*out, inner[start:]]


def _yaml_type(t: str) -> dict[str, Any]:
    if "(" in t:
        name, inner = t[:-1].split("(", 1)
        return {"type_name": name, "params": [_yaml_type(p) for p in _split_params(inner)]}
    if t == "T":
        return {"type_name": "T", "is_type_param": True}
    return {"type_name": MESSAGES.get(t) or _YAML_NAMES.get(t, t)}


def _check_config() -> Any:
    functions: dict[str, list[dict[str, Any]]] = {}
    for name, _, member, params, result in _DECLS:
        overloads = functions.setdefault(name, [])
        decl: dict[str, Any] = {"id": f"{name}_{len(overloads)}"}
        args = [_yaml_type(p) for p in params]
        if member:
            decl["target"] = args.pop(0)
        if args:
            decl["args"] = args
        decl["return"] = _yaml_type(result)
        overloads.append(decl)
    config = {
        "stdlib": {"exclude_functions": [{"name": op} for op in ("_<_", "_<=_", "_>_", "_>=_")]},
        "extensions": [{"name": "sets"}],
        "functions": [{"name": n, "overloads": o} for n, o in functions.items()],
    }
    return cel.NewEnvConfigFromYaml(json.dumps(config))


_CHECK_CONFIG = _check_config()


def check_env(pool: Any, variables: dict[str, Any]) -> Any:
    """A type-checking environment over ``pool`` (see :func:`new_pool`) with ``variables``."""
    return cel.NewEnv(
        pool, config=_CHECK_CONFIG, variables=variables, extensions=[ext_optional.ExtOptional()]
    )


# --- the runtime environment ---

_KINDS: dict[str, Any] = {
    "int": T.INT, "uint": T.UINT, "double": T.DOUBLE, "bool": T.BOOL, "string": T.STRING,
    "bytes": T.BYTES, "timestamp": T.TIMESTAMP, "duration": T.DURATION, "null": T.NULL,
}  # fmt: skip
_ANY = [*_KINDS, "list", "map", "Quantity"]  # messages are one kind: Quantity stands for all


def _runtime_kind(t: str) -> Any:
    if t.startswith("list"):
        return T.List(T.DYN)
    if t.startswith("map"):
        return T.Map(T.DYN, T.DYN)
    if t in MESSAGES:
        return T(MESSAGES[t])
    return _KINDS[t]


def _runtime_functions() -> list[Any]:
    """One overload per distinct runtime signature (cel-cpp dispatches on kinds, not types);
    the type parameter ``T`` stands for every kind."""
    seen: set[tuple[str, bool, tuple[str, ...]]] = set()
    decls: dict[str, list[Any]] = {}
    for name, impl, member, params, _ in _DECLS:
        if impl is None:
            continue
        choices = [_ANY if p in ("T", "dyn") else [p] for p in params]
        for kinds in itertools.product(*choices):
            sig = tuple("message" if k in MESSAGES else k.split("(")[0] for k in kinds)
            if (name, member, sig) in seen:
                continue
            seen.add((name, member, sig))
            overloads = decls.setdefault(name, [])
            overloads.append(
                cel.Overload(
                    f"{name}_{len(overloads)}",
                    T.DYN,
                    [_runtime_kind(k) for k in kinds],
                    is_member=member,
                    impl=FUNCTIONS.get(impl) or celauthz.FUNCTIONS[impl],
                )
            )
    return [cel.FunctionDecl(name, overloads) for name, overloads in decls.items()]


_RUNTIME_FUNCTIONS = _runtime_functions()


def runtime_env(variables: dict[str, Any]) -> Any:
    """An environment that runs expressions compiled with ``disable_check``: ``variables``
    (name → CEL type) and the same functions as :func:`check_env`, on plain Python values."""
    return cel.NewEnv(
        _POOL,
        config=cel.NewEnvConfigFromYaml(json.dumps({"extensions": [{"name": "sets"}]})),
        variables=variables,
        extensions=[ext_optional.ExtOptional(), ext_bindings.ExtBindings()],
        functions=_RUNTIME_FUNCTIONS,
    )


def checking_env(variables: dict[str, Any]) -> Any:
    """:func:`check_env` over the shared pool (untyped variables, such as admission's)."""
    return check_env(_POOL, variables)


RUNTIME = runtime_env({"self": T.DYN, "oldSelf": T.DYN, "__hasOldSelf": T.BOOL})
"""Evaluates rules (compiled with ``disable_check``) on values from :mod:`.celtypes`."""

# --- errors in cel-go's words ---

_STATUS = re.compile(r"^[A-Z_]+: ")
_STATUS_TAIL = re.compile(r" \[[A-Z_]+\]$")
_UNDEFINED_FIELD = re.compile(r"(undefined field '[^']*') not found in struct '[^']*'")
_NO_KEY = re.compile(r'Key not found in map : "?(.*?)"?')
_BAD_INDEX = re.compile(r"Index error: index=(-?\d+) size=\d+")


def compile_error(e: Exception) -> str:
    """The issues of a failed compilation as cel-go prints them (``ERROR: <input>:1:5: ...``)."""
    text = _STATUS_TAIL.sub("", _STATUS.sub("", str(e), count=1))
    return _UNDEFINED_FIELD.sub(r"\1", text)


def runtime_error(text: str) -> str:
    """An evaluation error as cel-go and kube's value types word it."""
    text = _STATUS.sub("", text, count=1)
    if m := _NO_KEY.fullmatch(text):
        return f"no such key: {m[1]}"
    if m := _BAD_INDEX.fullmatch(text):
        return f"index out of bounds: {m[1]}"
    if text == "divide by zero":
        return "division by zero"
    if text.startswith("No matching overloads found"):
        return "no such overload"
    return text
