"""The functions of Kubernetes' CEL library (``k8s.io/apiserver/pkg/cel/library``, 1.32) and of
cel-go's strings extension, in Python: :mod:`.celenv` declares them to the CEL
runtime. Each raises :class:`CelError` with cel-go's or kube's words when it fails.

Quantities, URLs, IPs and CIDRs travel through CEL as protobuf messages (``kubernetes.Quantity``,
``kubernetes.URL``, ``net.IP``, ``net.CIDR``) holding one canonical string, so that CEL's own
equality compares them as kube's ``Equal`` does; :func:`set_message_classes` binds the classes.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, urlsplit

from google.protobuf import duration_pb2, timestamp_pb2

from skiff.api.quantity import parse_quantity
from skiff.apiserver.validation import quantity_error

from .crvalues import go_float, go_quote, go_regex

__all__ = ["FUNCTIONS", "CelError", "set_message_classes"]


class CelError(ValueError):
    """A function's evaluation error; its text becomes the rule's runtime error."""


_MSG: dict[str, Callable[..., Any]] = {}


def set_message_classes(classes: dict[str, Callable[..., Any]]) -> None:
    """Bind the message classes (``Quantity``, ``URL``, ``IP``, ``CIDR``) values are made of."""
    _MSG.update(classes)


# --- quantities (library/quantity.go) ---


def _q(d: Decimal) -> Any:
    return _MSG["Quantity"](value="0" if d == 0 else str(d.normalize()))


def _qv(q: Any) -> Decimal:
    return Decimal(q.value)


def quantity(s: str) -> Any:
    if err := quantity_error(s):
        raise CelError(err)
    d = parse_quantity(s)
    if d is None:
        raise CelError("quantities must match the regular expression")
    return _q(d)


def _as_int(d: Decimal) -> int | None:
    if d != d.to_integral_value() or not -(2**63) <= d < 2**63:
        return None
    return int(d)


def _q_as_integer(q: Any) -> int:
    v = _as_int(_qv(q))
    if v is None:
        raise CelError("cannot convert value to integer")
    return v


def _q_sign(q: Any) -> int:
    d = _qv(q)
    return (d > 0) - (d < 0)


def _q_cmp(a: Any, b: Any) -> int:
    x, y = _qv(a), _qv(b)
    return (x > y) - (x < y)


def _q_num(x: Any) -> Decimal:
    return Decimal(x) if isinstance(x, int) else _qv(x)


_QUANTITY_FUNCS: list[tuple[str, Callable[..., Any]]] = [
    ("quantity", quantity),
    ("isQuantity", lambda s: quantity_error(s) is None and parse_quantity(s) is not None),
    ("sign", _q_sign),
    ("isGreaterThan", lambda a, b: _q_cmp(a, b) == 1),
    ("isLessThan", lambda a, b: _q_cmp(a, b) == -1),
    ("compareTo", _q_cmp),
    ("asApproximateFloat", lambda q: float(_qv(q))),
    ("asInteger", _q_as_integer),
    ("isInteger", lambda q: _as_int(_qv(q)) is not None),
    ("quantity_add", lambda a, b: _q(_qv(a) + _q_num(b))),
    ("quantity_sub", lambda a, b: _q(_qv(a) - _q_num(b))),
]


# --- URLs (library/urls.go, Go's url.ParseRequestURI) ---

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_PORT = re.compile(r":[0-9]*")


def _url_error(s: str) -> str | None:
    """Why Go's ``url.ParseRequestURI`` rejects ``s``, in its words."""
    q = go_quote(s)
    if not s:
        return f"parse {q}: empty url"
    if any(ord(c) < 0x20 or c == "\x7f" for c in s):
        return f"parse {q}: net/url: invalid control character in URL"
    if s.startswith(":"):
        return f"parse {q}: missing protocol scheme"
    scheme = _SCHEME.match(s)
    if scheme is None:
        return None if s.startswith("/") else f"parse {q}: invalid URI for request"
    rest = s[scheme.end() :]
    if rest.startswith("//"):
        host = re.split(r"[/?#]", rest[2:], maxsplit=1)[0].rpartition("@")[2]
        port = host[host.find("]") + 1 :] if host.startswith("[") else host
        port = port[port.find(":") :] if ":" in port else ""
        if port and not _PORT.fullmatch(port):
            return f"parse {q}: invalid port {go_quote(port)} after host"
    return None


def url(s: str) -> Any:
    if err := _url_error(s):
        raise CelError(f"URL parse error during conversion from string: {err}")
    return _MSG["URL"](value=s)


def _split(u: Any) -> Any:
    return urlsplit(u.value)


def _hostname(u: Any) -> str:
    host = _split(u).netloc.rpartition("@")[2]
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.rpartition(":")[0] if ":" in host else host


def _port(u: Any) -> str:
    host = _split(u).netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[host.find("]") + 1 :]
    return host.rpartition(":")[2] if ":" in host else ""


_URL_FUNCS: list[tuple[str, Callable[..., Any]]] = [
    ("url", url),
    ("isURL", lambda s: _url_error(s) is None),
    ("getScheme", lambda u: _split(u).scheme),
    ("getHost", lambda u: _split(u).netloc.rpartition("@")[2]),
    ("getHostname", _hostname),
    ("getPort", _port),
    ("getEscapedPath", lambda u: _split(u).path),
    ("getQuery", lambda u: parse_qs(_split(u).query, keep_blank_values=True)),
]


# --- regular expressions (library/regex.go) ---


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    rx, err = go_regex(pattern)
    if rx is None:
        raise CelError(f"Illegal regex: {err}")
    return rx


def _find(s: str, pattern: str) -> str:
    m = _regex(pattern).search(s)
    return m.group(0) if m else ""


def _find_all(s: str, pattern: str, n: int = -1) -> list[str]:
    found = [m.group(0) for m in _regex(pattern).finditer(s)]
    return found if n < 0 else found[:n]


# --- lists (library/lists.go) ---


def _same(a: Any, b: Any) -> bool:
    return (type(a) is bool) == (type(b) is bool) and a == b


def _sum(values: list[Any]) -> Any:
    if not values:
        return 0
    acc = values[0]
    for v in values[1:]:
        acc = acc + v
    if isinstance(acc, int) and not -(2**63) <= acc < 2**63:
        raise CelError("integer overflow")
    return _to_cel(acc)


def _to_cel(v: Any) -> Any:
    """Timestamps and durations go back into CEL as their well-known messages."""
    if isinstance(v, datetime.datetime):
        out = timestamp_pb2.Timestamp()
        out.FromDatetime(v)
        return out
    if isinstance(v, datetime.timedelta):
        d = duration_pb2.Duration()
        d.FromTimedelta(v)
        return d
    return v


def _extreme(name: str, pick: Callable[..., Any]) -> Callable[[list[Any]], Any]:
    def run(values: list[Any]) -> Any:
        if not values:
            raise CelError(f"{name} called on empty list")
        return _to_cel(pick(values))

    return run


def _index_of(values: list[Any], x: Any) -> int:
    return next((i for i, v in enumerate(values) if _same(v, x)), -1)


def _last_index_of(values: list[Any], x: Any) -> int:
    return next((i for i in range(len(values) - 1, -1, -1) if _same(values[i], x)), -1)


_LIST_FUNCS: list[tuple[str, Callable[..., Any]]] = [
    ("isSorted", lambda values: all(a <= b for a, b in itertools.pairwise(values))),
    ("sum", _sum),
    ("min", _extreme("min", min)),
    ("max", _extreme("max", max)),
    ("list_indexOf", _index_of),
    ("list_lastIndexOf", _last_index_of),
]


# --- strings (cel-go's ext.Strings, version 2) ---


def _out_of_range(i: int) -> CelError:
    return CelError(f"index out of range: {i}")


def _char_at(s: str, i: int) -> str:
    if i < 0 or i > len(s):
        raise _out_of_range(i)
    return s[i : i + 1]


def _index(s: str, sub: str, offset: int = 0) -> int:
    if offset < 0 or offset > len(s):
        raise _out_of_range(offset)
    return s.find(sub, offset)


def _last_index(s: str, sub: str, offset: int | None = None) -> int:
    if offset is None:
        return s.rfind(sub)
    if offset < 0 or offset >= len(s):
        raise _out_of_range(offset)
    return s.rfind(sub, 0, offset + len(sub))


def _substring(s: str, start: int, end: int | None = None) -> str:
    end = len(s) if end is None else end
    if start < 0 or start > len(s):
        raise _out_of_range(start)
    if end < 0 or end > len(s):
        raise _out_of_range(end)
    if start > end:
        raise CelError(f"invalid substring range. start: {start}, end: {end}")
    return s[start:end]


def _split_str(s: str, sep: str, n: int = -1) -> list[str]:
    if n == 0:
        return []
    if sep:
        return s.split(sep, n - 1 if n > 0 else -1)
    runes = list(s)
    if 0 < n < len(runes):
        return [*runes[: n - 1], "".join(runes[n - 1 :])]
    return runes


def _join(values: list[Any], sep: str = "") -> str:
    if not all(isinstance(v, str) for v in values):
        raise CelError("no such overload")
    return sep.join(values)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _as_string(v: Any) -> str:
    """A value the way cel-go's ``format`` prints it with ``%s``."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, str):
        return v
    if isinstance(v, bytes | bytearray):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, datetime.datetime):
        return v.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, datetime.timedelta):
        return f"{go_float(v.total_seconds())}s"
    if isinstance(v, list):
        return "[" + ", ".join(_as_string(x) for x in v) + "]"
    if isinstance(v, dict):
        items = sorted((_as_string(k), _as_string(x)) for k, x in v.items())
        return "{" + ", ".join(f"{k}: {x}" for k, x in items) + "}"
    if hasattr(v, "value"):
        return str(v.value)
    return str(v)


_CLAUSE = re.compile(r"%(?:\.(\d+))?([a-zA-Z%])")


def _format_one(verb: str, precision: str | None, v: Any) -> str:
    integer = isinstance(v, int) and not isinstance(v, bool)
    if verb == "s":
        return _as_string(v)
    if verb == "d":
        if not integer:
            raise CelError("error during formatting: decimal clause can only be used on integers")
        return str(v)
    if verb in "fe":
        if not isinstance(v, int | float) or isinstance(v, bool):
            kind = "fixed-point" if verb == "f" else "scientific"
            raise CelError(f"error during formatting: {kind} clause can only be used on doubles")
        return f"{float(v):.{int(precision or 6)}{verb}}"
    if verb in "box":
        if isinstance(v, bool) and verb == "b":
            return "1" if v else "0"
        if integer:
            return format(v, verb)
        if verb == "x" and isinstance(v, str | bytes | bytearray):
            raw = v.encode() if isinstance(v, str) else bytes(v)
            return raw.hex()
        raise CelError(f"error during formatting: only integers can be formatted with %{verb}")
    if verb == "X":
        return _format_one("x", precision, v).upper()
    raise CelError(f"could not parse formatting clause: unrecognized formatting clause {verb!r}")


def _format(template: str, args: list[Any]) -> str:
    out, pos, i = [], 0, 0
    for m in _CLAUSE.finditer(template):
        out.append(template[pos : m.start()])
        pos = m.end()
        if m.group(2) == "%":
            out.append("%")
            continue
        if i >= len(args):
            raise CelError(f"index {i} out of range")
        out.append(_format_one(m.group(2), m.group(1), args[i]))
        i += 1
    out.append(template[pos:])
    return "".join(out)


_STRING_FUNCS: list[tuple[str, Callable[..., Any]]] = [
    ("charAt", _char_at),
    ("indexOf", _index),
    ("lastIndexOf", _last_index),
    ("lowerAscii", lambda s: s.translate(_ASCII_LOWER)),
    ("upperAscii", lambda s: s.translate(_ASCII_UPPER)),
    ("replace", lambda s, old, new, n=-1: s.replace(old, new, n)),
    ("split", _split_str),
    ("substring", _substring),
    ("trim", lambda s: s.strip()),
    ("join", _join),
    ("format", _format),
    ("strings.quote", go_quote),
]


# --- IPs and CIDRs (library/ip.go, library/cidr.go) ---

_Addr = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ip(s: str) -> _Addr:
    if "%" in s:
        raise ValueError("IP address with zone value is not allowed")
    addr = ipaddress.ip_address(s)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ValueError("IPv4-mapped IPv6 address is not allowed")
    return addr


def _parse_cidr(s: str) -> tuple[_Addr, int]:
    addr, slash, bits = s.partition("/")
    ip = _parse_ip(addr)
    if not slash or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0"):
        raise ValueError(f"netip.ParsePrefix({go_quote(s)}): bad bits after slash: {bits!r}")
    if int(bits) > ip.max_prefixlen:
        raise ValueError(f"netip.ParsePrefix({go_quote(s)}): prefix length out of range")
    return ip, int(bits)


def _ip(s: str) -> Any:
    try:
        return _MSG["IP"](value=str(_parse_ip(s)))
    except ValueError as e:
        raise CelError(
            f"IP Address {go_quote(s)} parse error during conversion from string: {e}"
        ) from None


def _cidr(s: str) -> Any:
    try:
        ip, bits = _parse_cidr(s)
    except ValueError as e:
        raise CelError(f"network address parse error during conversion from string: {e}") from None
    return _MSG["CIDR"](value=f"{ip}/{bits}")


def _ok(parse: Callable[[str], Any]) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        try:
            parse(s)
        except ValueError:
            return False
        return True

    return check


def _addr(v: Any) -> _Addr:
    return ipaddress.ip_address(v.value)


def _net(v: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(v.value, strict=False)


def _link_local_multicast(ip: _Addr) -> bool:
    if ip.version == 4:
        return ip in ipaddress.ip_network("224.0.0.0/24")
    return ip in ipaddress.ip_network("ff02::/16")


def _global_unicast(ip: _Addr) -> bool:
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
        return False
    return not (ip.version == 4 and int(ip) == 0xFFFFFFFF)


def _canonical_ip(s: str) -> bool:
    try:
        return str(_parse_ip(s)) == s
    except ValueError as e:
        raise CelError(
            f"IP Address {go_quote(s)} parse error during conversion from string: {e}"
        ) from None


def _contains_ip(c: Any, x: Any) -> bool:
    ip = _addr(_ip(x) if isinstance(x, str) else x)
    return ip.version == _net(c).version and ip in _net(c)


def _contains_cidr(c: Any, x: Any) -> bool:
    other = _net(_cidr(x) if isinstance(x, str) else x)
    mine = _net(c)
    return other.version == mine.version and other.subnet_of(mine)  # type: ignore[arg-type]


_IP_FUNCS: list[tuple[str, Callable[..., Any]]] = [
    ("ip", _ip),
    ("isIP", _ok(_parse_ip)),
    ("ip.isCanonical", _canonical_ip),
    ("family", lambda v: _addr(v).version),
    ("isUnspecified", lambda v: _addr(v).is_unspecified),
    ("isLoopback", lambda v: _addr(v).is_loopback),
    ("isLinkLocalMulticast", lambda v: _link_local_multicast(_addr(v))),
    ("isLinkLocalUnicast", lambda v: _addr(v).is_link_local),
    ("isGlobalUnicast", lambda v: _global_unicast(_addr(v))),
    ("cidr", _cidr),
    ("isCIDR", _ok(_parse_cidr)),
    ("containsIP", _contains_ip),
    ("containsCIDR", _contains_cidr),
    ("cidr_ip", lambda c: _MSG["IP"](value=c.value.partition("/")[0])),
    ("masked", lambda c: _MSG["CIDR"](value=str(_net(c)))),
    ("prefixLength", lambda c: _net(c).prefixlen),
]

FUNCTIONS: dict[str, Callable[..., Any]] = dict(
    _QUANTITY_FUNCS + _URL_FUNCS + _LIST_FUNCS + _STRING_FUNCS + _IP_FUNCS
)
FUNCTIONS.update({"find": _find, "findAll": _find_all})
"""Implementation name (the function's name, or a name for one of its overloads) → function."""
