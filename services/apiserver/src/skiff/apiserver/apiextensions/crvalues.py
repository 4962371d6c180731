"""Value-level rules for :mod:`.crschema`, all from Kubernetes 1.32: the string formats
a custom resource schema may check (kube-openapi's ``strfmt`` registry, as
apiextensions-apiserver's ``formats.go`` allows them), Go regular expressions, Go's
printing of values in messages (``%v``, ``%#v``, ``%q``, ``json.Marshal``), the checks
of embedded resources (``schema/objectmeta``) and list-set duplicates
(``schema/listtype``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1035_label
from skiff.apiserver.validation import INVALID, required, validate_object_meta

__all__ = [
    "DUPLICATE",
    "FORMATS",
    "TOO_MANY",
    "canon",
    "clone",
    "coerce_meta",
    "dupes",
    "duplicate",
    "embedded_errors",
    "go_float",
    "go_json",
    "go_quote",
    "go_regex",
    "in_enum",
    "invalid",
    "json_int",
    "list_map_errors",
    "render",
    "same",
    "too_many",
]

DUPLICATE = "FieldValueDuplicate"
TOO_MANY = "FieldValueTooMany"

# --- Go value printing ---

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES.update({"\v": "\\v", '"': '\\"', "\\": "\\\\"})


def go_quote(s: str) -> str:
    """``strconv.Quote`` (Go's ``%q``): printable runes kept, the rest escaped."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return f'"{s}"'
    out = []
    for c in s:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        else:
            o = ord(c)
            out.append(
                f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"
            )
    return '"' + "".join(out) + '"'


def _digits(f: float) -> tuple[str, str, int]:
    """Sign, shortest round-trip digits and decimal point position of a finite ``f``."""
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    return ("-" if sign else ""), ds, len(digits) + int(exp)


def _fixed(sign: str, ds: str, dp: int) -> str:
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return sign + ds + "0" * (dp - len(ds))
    return f"{sign}{ds[:dp]}.{ds[dp:]}"


def _exp(sign: str, ds: str, dp: int, width: int) -> str:
    x = dp - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{sign}{mant}e{'-' if x < 0 else '+'}{abs(x):0{width}d}"


def go_float(f: float) -> str:
    """A float64 printed with ``%v`` (``%g``, shortest): ``20``, ``1.5``, ``1e+06``."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if str(f).startswith("-") else "0"
    sign, ds, dp = _digits(f)
    return _exp(sign, ds, dp, 2) if not -4 <= dp - 1 < 6 else _fixed(sign, ds, dp)


def go_json(v: Any) -> str:
    """``json.Marshal`` of a decoded JSON value (how kube lists non-string enum values)."""
    if isinstance(v, float) and v == v and abs(v) != float("inf"):
        if v == 0:
            return "0"
        sign, ds, dp = _digits(v)
        return _exp(sign, ds, dp, 1) if abs(v) < 1e-6 or abs(v) >= 1e21 else _fixed(sign, ds, dp)
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def go_repr(v: Any) -> str:
    """Go's ``%#v`` of an unstructured value (``map[string]interface {}{"a":1}``)."""
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, dict):
        inner = ", ".join(f"{go_quote(k)}:{go_repr(v[k])}" for k in sorted(v))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(v, list):
        return "[]interface {}{" + ", ".join(go_repr(x) for x in v) + "}"
    return render(v)


def render(v: Any) -> str:
    """A bad value the way ``field.Error.ErrorBody`` prints it."""
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, int):
        return str(v)
    return go_repr(v)


# --- Go regular expressions (RE2) ---

_GO_RE_ERRORS = (
    ("nothing to repeat", "missing argument to repetition operator: `{op}`"),
    ("missing ), unterminated subpattern", "missing closing ): `{pattern}`"),
    ("unbalanced parenthesis", "unexpected ): `{pattern}`"),
    ("unterminated character set", "missing closing ]: `{rest}`"),
)


def _translate(pattern: str) -> str:
    # Without (?m) Go's "$" only matches at the very end; Python's also before a final "\n".
    if "(?m" in pattern or ("$" not in pattern and "\\z" not in pattern):
        return pattern
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append("\\Z" if pattern[i + 1] == "z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        out.append("\\Z" if c == "$" and not in_class else c)
        i += 1
    return "".join(out)


def go_regex(pattern: str) -> tuple[re.Pattern[str] | None, str]:
    """Compile a schema ``pattern``: ``(regex, "")`` or ``(None, Go-style error text)``."""
    try:
        return re.compile(_translate(pattern), re.ASCII), ""
    except re.error as e:
        pos = e.pos or 0
        op = pattern[pos : pos + 2] if pattern[pos + 1 : pos + 2] == "?" else pattern[pos : pos + 1]
        rest = pattern[pattern.rfind("[", 0, pos + 1) :]
        for py, go in _GO_RE_ERRORS:
            if e.msg.startswith(py):
                detail = go.format(op=op, pattern=pattern, rest=rest)
                return None, f"error parsing regexp: {detail}"
        return None, f"error parsing regexp: {e.msg}: `{pattern}`"


# --- strfmt formats ---

_UUID = r"[0-9a-f]{8}-?[0-9a-f]{4}-?%s[0-9a-f]{3}-?%s[0-9a-f]{3}-?[0-9a-f]{12}"


def _rx(pattern: str, flags: int = 0) -> Callable[[str], bool]:
    rx = re.compile(pattern, flags | re.ASCII)
    return lambda s: rx.fullmatch(s) is not None


def _hostname(s: str) -> bool:
    # HostnamePattern allows \p{L} and \p{S} anywhere an ASCII letter or digit is allowed.
    def cls(c: str) -> str:
        if c in "-.":
            return c
        if c.isascii():
            return "a" if c.isalpha() else "0" if c.isdigit() else "!"
        cat = unicodedata.category(c)[0]
        return "a" if cat == "L" else "0" if cat == "S" else "!"

    shape = "".join(map(cls, s))
    if _HOST_RX.fullmatch(shape) is None or len(s.encode()) > 255:
        return False
    return all(len(p.encode()) <= 63 for p in s.split("."))


_HOST_RX = re.compile(r"[a0]((-?[a0]{0,62})?)|([a0](([a0-]{0,61}[a0])?)(\.)){1,}(a){2,63}")


def _ipv4_sloppy(s: str) -> bool:
    parts = s.split(".")
    return len(parts) == 4 and all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts)


def _ipv6(s: str) -> bool:
    if ":" not in s or "%" in s:
        return False
    head, _, tail = s.rpartition(":")
    if "." in tail:  # net.ParseIP reads an embedded IPv4 part sloppily too
        if not _ipv4_sloppy(tail):
            return False
        s = head + ":" + ".".join(str(int(p)) for p in tail.split("."))
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return True


def _cidr(s: str) -> bool:
    ip, slash, bits = s.partition("/")
    if not slash or not bits.isascii() or not bits.isdigit():
        return False
    if _ipv4_sloppy(ip):
        return int(bits) <= 32
    return _ipv6(ip) and int(bits) <= 128


_DATE_RX = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _date(s: str) -> bool:
    m = _DATE_RX.fullmatch(s)
    if m is None:
        return False
    try:
        datetime.date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        return False
    return True


_TIME_RX = re.compile(r"([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))")


def _datetime(s: str) -> bool:
    parts = s.lower().split("t")
    if len(s) < 4 or len(parts) < 2 or not _date(parts[0]):
        return False
    m = _TIME_RX.fullmatch(parts[1])
    return m is not None and m[1] <= "23" and m[2] <= "59" and m[3] <= "59"


_GO_DURATION = re.compile(r"[-+]?(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)")
_LOOSE_DURATION = re.compile(r"([0-9]+)\s*([A-Za-zµ]+)", re.ASCII)
_UNITS = (("ns", "nano"), ("us", "µs", "micro"), ("ms", "milli"), ("s", "sec"), ("m", "min"))
_UNITS += (("h", "hr", "hour"), ("d", "day"), ("w", "wk", "week"))


def _duration(s: str) -> bool:
    if _GO_DURATION.fullmatch(s):
        return True
    for m in _LOOSE_DURATION.finditer(s):
        unit = m[2].lower()
        for variants in _UNITS:
            if any(
                unit == v or (i == len(variants) - 1 and unit.startswith(v))
                for i, v in enumerate(variants)
            ):
                return True
    return False


_SCHEME_RX = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_HOST_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%\x80-\U0010ffff]*")
_PCT_BAD = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _request_uri(s: str) -> bool:
    # url.ParseRequestURI: an absolute URI or an absolute path.
    if not s or any(ord(c) < 0x20 or ord(c) == 0x7F for c in s):
        return False
    if s == "*":
        return True
    m = _SCHEME_RX.match(s)
    rest = s[m.end() :] if m else s
    rest = rest.split("?", 1)[0]
    if not rest.startswith("/"):
        return m is not None
    if m and rest.startswith("//"):
        authority, _, rest = rest[2:].partition("/")
        host = authority.rpartition("@")[2]
        end = host.rfind("]") if host.startswith("[") else -1
        if host.startswith("[") and end < 0:
            return False
        colon = host.rfind(":") if end < 0 else end + 1
        port = host[colon:] if colon >= 0 else ""
        digits = port[1:]
        if port and (port[0] != ":" or (digits and not (digits.isascii() and digits.isdigit()))):
            return False
        if not _HOST_CHARS.fullmatch(host) or _PCT_BAD.search(host):
            return False
    return _PCT_BAD.search(rest) is None


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_EMAIL_RX = re.compile(rf'({_ATOM}(\.{_ATOM})*|"[^"\\]*")@({_ATOM}(\.{_ATOM})*|\[[^\]\\]*\])')


def _email(s: str) -> bool:
    # net/mail.ParseAddress: "user@host" or "Name <user@host>".
    s = s.strip()
    if s.endswith(">") and "<" in s:
        s = s[s.rindex("<") + 1 : -1]
    return _EMAIL_RX.fullmatch(s) is not None


def _isbn(digits: str, size: int) -> bool:
    s = re.sub(r"[\s-]+", "", digits)
    if size == 10:
        if re.fullmatch(r"[0-9]{9}[0-9X]", s) is None:
            return False
        total = sum((i + 1) * int(c) for i, c in enumerate(s[:9]))
        return (total + (10 if s[9] == "X" else int(s[9])) * 10) % 11 == 0
    if re.fullmatch(r"[0-9]{13}", s) is None:
        return False
    total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(s[:12]))
    return (10 - total % 10) % 10 == int(s[12])


_CARD_RX = re.compile(
    r"4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}"
    r"|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35[0-9]{3})[0-9]{11}"
)


def _creditcard(s: str) -> bool:
    digits = re.sub(r"[^0-9]+", "", s)
    if _CARD_RX.fullmatch(digits) is None:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


_MAC_RX = re.compile(r"[0-9A-Fa-f]{2}(?:([:-])[0-9A-Fa-f]{2})+|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4})+")


def _mac(s: str) -> bool:
    # net.ParseMAC: 6, 8 or 20 octets, as xx:xx:.., xx-xx-.. or xxxx.xxxx...
    m = _MAC_RX.fullmatch(s)
    if m is None:
        return False
    if m[1] is None:
        return (len(s) + 1) // 5 in (3, 4, 10)
    return s.count(m[1]) == (len(s) - 2) // 3 and (len(s) + 1) // 3 in (6, 8, 20)


FORMATS: dict[str, Callable[[str], bool]] = {
    "bsonobjectid": _rx(r"[0-9a-fA-F]{24}"),
    "uri": _request_uri,
    "email": _email,
    "hostname": _hostname,
    "ipv4": lambda s: _ipv4_sloppy(s) or ("." in s and _ipv6(s)),
    "ipv6": _ipv6,
    "cidr": _cidr,
    "mac": _mac,
    "uuid": _rx(_UUID % ("[0-9a-f]", "[0-9a-f]"), re.I),
    "uuid3": _rx(_UUID % ("3", "[0-9a-f]"), re.I),
    "uuid4": _rx(_UUID % ("4", "[89ab]"), re.I),
    "uuid5": _rx(_UUID % ("5", "[89ab]"), re.I),
    "isbn": lambda s: _isbn(s, 10) or _isbn(s, 13),
    "isbn10": lambda s: _isbn(s, 10),
    "isbn13": lambda s: _isbn(s, 13),
    "creditcard": _creditcard,
    "ssn": lambda s: (
        len(s) == 11 and re.fullmatch(r"[0-9]{3}[- ]?[0-9]{2}[- ]?[0-9]{4}", s) is not None
    ),
    "hexcolor": _rx(r"#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})"),
    "rgbcolor": _rx(
        r"rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])"
        r"\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)"
    ),
    "byte": _rx(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})"),
    "password": lambda s: True,
    "date": _date,
    "duration": _duration,
    "datetime": _datetime,
}
"""Format name without ``-`` (``date-time`` → ``datetime``) → check; other formats are ignored."""


# --- field errors and comparisons ---


def invalid(field: str, value: Any, detail: str, reason: str = INVALID) -> Cause:
    """``field.Invalid`` (or another error type printed the same way)."""
    return Cause(field, f"Invalid value: {render(value)}: {detail}", reason)


def duplicate(field: str, value: Any) -> Cause:
    """``field.Duplicate``."""
    return Cause(field, f"Duplicate value: {render(value)}", DUPLICATE)


def too_many(field: str, size: int, limit: int) -> Cause:
    """``field.TooMany``."""
    return Cause(field, f"Too many: {size}: must have at most {limit} items", TOO_MANY)


def clone(v: Any) -> Any:
    """A deep copy of a decoded JSON value."""
    t = type(v)
    if t is dict:
        return {k: clone(x) for k, x in v.items()}
    if t is list:
        return [clone(x) for x in v]
    return v


def json_int(f: float) -> bool:
    """``swag.IsFloat64AJSONInteger``."""
    if f != f or abs(f) > 2.0**53:
        return False
    g = float(int(f))
    if f == g:
        return True
    return g != 0 and abs(f - g) / (abs(f) + abs(g)) < 1e-9


def in_enum(enum: tuple[Any, ...], v: Any) -> bool:
    """basicCommonValidator: ``v`` converted to each value's Go type, then DeepEqual."""
    t = type(v)
    for e in enum:
        te = type(e)
        if te is t:
            if same(e, v):
                return True
        elif te is int and t is float:
            if v == v and abs(v) < 2.0**63 and int(v) == e:
                return True
        elif te is float and t is int:
            if float(v) == e:
                return True
        elif te is str and t is int:  # Go converts an integer to the rune it encodes
            if (chr(v) if 0 <= v < 0x110000 and not 0xD800 <= v < 0xE000 else "\ufffd") == e:
                return True
    return False


def same(a: Any, b: Any) -> bool:
    """Go's ``reflect.DeepEqual`` on unstructured values (``1`` is not ``1.0``)."""
    t = type(a)
    if t is not type(b):
        return False
    if t is dict:
        return len(a) == len(b) and all(k in b and same(x, b[k]) for k, x in a.items())
    if t is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def canon(v: Any) -> Any:
    """A hashable stand-in for ``v`` that keeps JSON types apart."""
    t = type(v)
    if t is dict:
        return ("object", tuple(sorted((k, canon(x)) for k, x in v.items())))
    if t is list:
        return ("array", tuple(map(canon, v)))
    return (t.__name__, v)


def dupes(values: list[Any]) -> list[int]:
    """Indices of each value's second occurrence (listtype's ``validateListSet``)."""
    seen: dict[Any, int] = {}
    out = []
    for i, x in enumerate(values):
        k = canon(x)
        n = seen.get(k, 0)
        if n == 1:
            out.append(i)
        seen[k] = n + 1
    return out


def list_map_errors(keys: tuple[str, ...], v: list[Any], fp: str) -> list[Cause]:
    """``validateListMap``: objects only, and no two with the same key fields."""
    for i, x in enumerate(v):
        if x is not None and type(x) is not dict:
            return [invalid(f"{fp}[{i}]", x, "must be an object for an array of list-type map")]
    if len(v) <= 1:
        return []
    if len(keys) == 1:
        k0, unset = keys[0], object()
        vals = [unset if x is None or k0 not in x else x[k0] for x in v]
        return [
            duplicate(f"{fp}[{i}]", {} if vals[i] is unset else {k0: vals[i]}) for i in dupes(vals)
        ]
    maps = [{k: x[k] for k in keys if k in x} if x is not None else {} for x in v]
    return [duplicate(f"{fp}[{i}]", maps[i]) for i in dupes(maps)]


# --- embedded resources (schema/objectmeta) ---

_GO_META_TYPES = {k: (str, "string") for k in ("name", "generateName", "namespace")}
_GO_META_TYPES.update({k: (str, "string") for k in ("selfLink", "uid", "resourceVersion")})
_GO_META_TYPES.update(generation=(int, "int64"), deletionGracePeriodSeconds=(int, "int64"))
_GO_META_TYPES.update(labels=(dict, "map[string]string"), annotations=(dict, "map[string]string"))
_GO_META_TYPES.update(finalizers=(list, "[]string"), ownerReferences=(list, "[]v1.OwnerReference"))
_GO_META_TYPES.update(managedFields=(list, "[]v1.ManagedFieldsEntry"))
_GO_META_TYPES.update(creationTimestamp=(str, "v1.Time"), deletionTimestamp=(str, "v1.Time"))
_GO_JSON_NAMES = {str: "string", bool: "bool", int: "number", float: "number"}
_GO_JSON_NAMES.update({list: "array", dict: "object"})
_CANNOT = "json: cannot unmarshal"


def _meta_decode_error(meta: Any) -> str | None:
    """Why ``meta`` does not decode into an ObjectMeta (a wrong JSON type), if it does not."""
    if type(meta) is not dict:
        return f"{_CANNOT} {_GO_JSON_NAMES[type(meta)]} into Go value of type v1.ObjectMeta"
    for k in sorted(meta):  # the order json.Marshal writes them in
        want, go_type = _GO_META_TYPES.get(k, (None, ""))
        val = meta[k]
        if want is None or val is None:
            continue
        bad = type(val) is not want and not (
            want is int and type(val) is float and val.is_integer()
        )
        if not bad and go_type in ("map[string]string", "[]string"):
            inner = [x for x in (val.values() if want is dict else val) if type(x) is not str]
            if any(x is not None for x in inner):
                bad, go_type, val = True, "string", next(x for x in inner if x is not None)
        if bad:
            got = _GO_JSON_NAMES[type(val)]
            if want is int and type(val) is float:
                got = f"number {go_json(val)}"
            if go_type == "v1.Time":  # Time.UnmarshalJSON decodes a string itself
                return f"{_CANNOT} {got} into Go value of type string"
            return f"{_CANNOT} {got} into Go struct field ObjectMeta.{k} of type {go_type}"
    return None


def _embedded_meta(meta: Any, mp: str) -> list[Cause]:
    err = _meta_decode_error(meta)
    if err is not None:
        return [invalid(mp, meta, err)]
    m = dict(meta)
    if not m.get("name"):
        m["name"] = "fakename"  # as kube does, so that only a bad name is reported
    prefix = mp[: -len("metadata")]
    causes = validate_object_meta(m, bool(m.get("namespace")), "path")
    return [Cause(prefix + c.field, c.message, c.reason) for c in causes]


def _type_meta_error(value: Any) -> str | None:
    if type(value) is not str:
        return "must be a string"
    return None if value else "must not be empty"


def embedded_errors(x: dict[str, Any], fp: str) -> list[Cause]:
    """``validateEmbeddedResource``: apiVersion and kind set and well formed, metadata
    as ObjectMeta with path-segment names (at ``fp``, a ``field.Path`` string)."""
    pre = f"{fp}." if fp else ""
    errs = [required(pre + k, "must not be empty") for k in ("apiVersion", "kind") if k not in x]
    if "apiVersion" in x:
        v = x["apiVersion"]
        why = _type_meta_error(v)
        if why is None and v.count("/") > 1:
            why = f"unexpected GroupVersion string: {v}"
        if why is not None:
            errs.append(invalid(pre + "apiVersion", v, why))
    if "kind" in x:
        v = x["kind"]
        why = _type_meta_error(v)
        if why is None and (bad := is_dns1035_label(v.lower())):
            why = "may have mixed case, but should otherwise match: " + ",".join(bad)
        if why is not None:
            errs.append(invalid(pre + "kind", v, why))
    if "metadata" in x:
        errs.extend(_embedded_meta(x["metadata"], pre + "metadata"))
    return errs


_OBJECT_META = frozenset(_GO_META_TYPES)


def coerce_meta(meta: dict[str, Any], mp: str, unknown: list[str]) -> None:
    """An embedded ObjectMeta's JSON round trip: unknown fields go (their paths into
    ``unknown``), and so do empty ones (``omitempty``)."""
    for k in list(meta):
        v = meta[k]
        if k not in _OBJECT_META:
            unknown.append(f"{mp}.{k}")
            del meta[k]
        elif (
            v is None or (type(v) in (str, dict, list) and not v) or (k == "generation" and v == 0)
        ):
            del meta[k]
