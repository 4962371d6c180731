"""Field selectors (``fieldSelector=``), as ``k8s.io/apimachinery/pkg/fields``.

The grammar (``=``, ``==``, ``!=``, backslash escapes), the error wording, and the field
values each resource exposes (``metadata.name``, ``status.phase``, an event's ``source``),
parsed once into plain tuples so that matching many objects stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from skiff.api import errors


def _escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(value: str) -> str:
    if "\\" not in value and "," not in value and "=" not in value:
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            raise ValueError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator occurrence splits; "!=" and "==" are tried before "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _event_source(obj: Mapping[str, Any]) -> str:
    source = obj.get("source")
    component = source.get("component") if isinstance(source, dict) else None
    return component or obj.get("reportingComponent") or ""


# Fields whose value is not simply the JSON value at the dotted path.
_SPECIAL_FIELDS: dict[str, Callable[[Mapping[str, Any]], str]] = {"source": _event_source}

# Omitted-when-zero fields that Kubernetes' field sets render as the zero value.
FIELD_DEFAULTS: dict[str, str] = {
    "spec.hostNetwork": "false",
    "spec.unschedulable": "false",
    "status.successful": "0",
    "status.replicas": "0",
}


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string a field selector compares for ``field`` (``metadata.name``, ``status.phase``)."""
    special = _SPECIAL_FIELDS.get(field)
    if special is not None:
        return special(obj)
    return _value_at(obj, tuple(field.split(".")), FIELD_DEFAULTS.get(field, ""))


def _value_at(obj: Any, parts: tuple[str, ...], default: str) -> str:
    cur = obj
    for part in parts:
        if isinstance(cur, dict):
            cur = cur.get(part)
        else:
            return default
    if isinstance(cur, str):
        return cur
    if cur is None:
        return default
    if cur is True:
        return "true"
    if cur is False:
        return "false"
    if isinstance(cur, int):
        return str(cur)
    if isinstance(cur, float):
        return str(int(cur)) if cur.is_integer() else repr(cur)
    return default


class FieldSelector:
    """A parsed field selector: an AND of ``field=value`` / ``field!=value`` terms."""

    __slots__ = ("_terms", "requirements")

    requirements: list[tuple[str, str, str]]
    """``(field, op, value)`` with op ``"="`` (also for ``==``) or ``"!="``; value unescaped."""

    def __init__(self, requirements: Iterable[tuple[str, str, str]] = ()) -> None:
        self.requirements = list(requirements)
        terms = []
        for field, op, value in self.requirements:
            special = _SPECIAL_FIELDS.get(field)
            parts = tuple(field.split("."))
            terms.append((parts, special, op == "!=", value, FIELD_DEFAULTS.get(field, "")))
        self._terms = tuple(terms)

    @property
    def empty(self) -> bool:
        """Whether the selector has no terms and so matches everything."""
        return not self.requirements

    def fields(self) -> set[str]:
        """The field names the selector refers to (the server checks they are supported)."""
        return {f for f, _, _ in self.requirements}

    def single_value(self, field: str) -> str | None:
        """The value required by a ``field=value`` term, if there is one."""
        for f, op, value in self.requirements:
            if f == field and op == "=":
                return value
        return None

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Whether the object satisfies every term (a missing field reads as ``""``)."""
        for parts, special, negate, value, default in self._terms:
            if special is not None:
                got = special(obj)
            else:
                cur: Any = obj
                for part in parts:
                    cur = cur.get(part) if isinstance(cur, dict) else None
                    if cur is None:
                        break
                got = cur if isinstance(cur, str) else _value_at(cur, (), default)
            if (got == value) == negate:
                return False
        return True

    def to_string(self) -> str:
        """The canonical string form, with values escaped."""
        return ",".join(f"{f}{op}{_escape_field_value(v)}" for f, op, v in self.requirements)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"FieldSelector({self.to_string()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(tuple(self.requirements))


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse a ``fieldSelector`` query value (``=``, ``==``, ``!=``, comma = AND, ``\\`` escapes).

    Like ``fields.ParseSelector``: no whitespace trimming, terms sorted, empty terms skipped.
    Raises ``ApiError`` 400 on a term without an operator or a bad escape sequence.
    """
    if not text:
        return FieldSelector()
    reqs: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise errors.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        try:
            value = _unescape_field_value(rhs)
        except ValueError as exc:
            raise errors.bad_request(str(exc)) from None
        reqs.append((lhs, "!=" if op == "!=" else "=", value))
    return FieldSelector(reqs)
