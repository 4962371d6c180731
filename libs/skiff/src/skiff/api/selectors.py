"""Label and field selectors, as ``labelSelector=`` / ``fieldSelector=`` and in objects.

Label selectors follow ``k8s.io/apimachinery/pkg/labels`` (the string grammar, the
``metav1.LabelSelector`` conversion and the error wording), parsed once into plain tuples
so that matching a list of thousands of objects stays cheap. Field selectors are
:mod:`skiff.api.fields`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from skiff.api import errors
from skiff.api.names import is_qualified_name as qualified_name_errors
from skiff.api.names import is_valid_label_value as label_value_errors

_INT64_RE = re.compile(r"^[+-]?[0-9]+$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _invalid(path: str, value: str | list[str], detail: str) -> str:
    # field.Invalid(...).Error(): strings are quoted, string slices printed Go-style.
    if isinstance(value, list):
        shown = "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    else:
        shown = f'"{value}"'
    return f"{path}: Invalid value: {shown}: {detail}"


# --- label selectors ---

# Operator spellings of k8s.io/apimachinery/pkg/selection.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_OPS = (
    IN,
    NOT_IN,
    EQUALS,
    DOUBLE_EQUALS,
    NOT_EQUALS,
    EXISTS,
    DOES_NOT_EXIST,
    GREATER_THAN,
    LESS_THAN,
)

# Compiled operator codes used by LabelSelector.matches.
_M_EQ, _M_IN, _M_NOT_IN, _M_EXISTS, _M_NOT_EXISTS, _M_GT, _M_LT = range(7)


class Requirement(NamedTuple):
    """One label requirement: ``key``, an operator (``in``, ``=``, ``gt``...) and its values."""

    key: str
    operator: str
    values: tuple[str, ...]

    def to_string(self) -> str:
        """The requirement in selector syntax (``a in (x,y)``, ``!a``, ``a>1``...)."""
        op = self.operator
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op == EXISTS:
            return self.key
        joined = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({joined})"
        sym = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{sym}{joined}"


def _parse_int64(text: str) -> int | None:
    if not _INT64_RE.match(text):
        return None
    value = int(text)
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _new_requirement(key: str, op: str, values: Iterable[str]) -> Requirement:
    """Build and validate a requirement the way ``labels.NewRequirement`` does."""
    vals = sorted(set(values))
    errs: list[str] = []
    if key_errs := qualified_name_errors(key):
        errs.append(_invalid("key", key, "; ".join(key_errs)))
    if op in (IN, NOT_IN):
        if not vals:
            errs.append(
                _invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty")
            )
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(
                _invalid("values", vals, "exact-match compatibility requires one single value")
            )
    elif op in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(
                _invalid("values", vals, "values set must be empty for exists and does not exist")
            )
    elif op in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(
                _invalid("values", vals, "for 'Gt', 'Lt' operators, exactly one value is required")
            )
        for i, v in enumerate(vals):
            if _parse_int64(v) is None:
                errs.append(
                    _invalid(
                        f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                )
    else:
        supported = ", ".join(f'"{o}"' for o in _OPS)
        errs.append(f'operator: Unsupported value: "{op}": supported values: {supported}')
    for i, v in enumerate(vals):
        if val_errs := label_value_errors(v):
            errs.append(_invalid(f"values[{i}][{key}]", v, "; ".join(val_errs)))
    if errs:
        raise ValueError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
    return Requirement(key, op, tuple(vals))


def _compile(req: Requirement) -> tuple[str, int, Any]:
    op, vals = req.operator, req.values
    if op in (EQUALS, DOUBLE_EQUALS) or (op == IN and len(vals) == 1):
        return (req.key, _M_EQ, vals[0])
    if op == IN:
        return (req.key, _M_IN, frozenset(vals))
    if op in (NOT_IN, NOT_EQUALS):
        return (req.key, _M_NOT_IN, frozenset(vals))
    if op == EXISTS:
        return (req.key, _M_EXISTS, None)
    if op == DOES_NOT_EXIST:
        return (req.key, _M_NOT_EXISTS, None)
    return (req.key, _M_GT if op == GREATER_THAN else _M_LT, _parse_int64(vals[0]))


class LabelSelector:
    """A parsed label selector: an AND of requirements, or the selector that matches nothing."""

    __slots__ = ("_compiled", "_nothing", "requirements")

    requirements: tuple[Requirement, ...]

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key (stable), as labels.internalSelector keeps them.
        self.requirements = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing
        self._compiled = tuple(_compile(r) for r in self.requirements)

    @classmethod
    def everything(cls) -> LabelSelector:
        """The selector that matches every object (``labels.Everything()``)."""
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        """The selector that matches no object (``labels.Nothing()``, from a nil selector)."""
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """Whether the selector has no requirements and so matches everything."""
        return not self.requirements and not self._nothing

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with these labels is selected."""
        if self._nothing:
            return False
        if labels is None:
            labels = {}
        for key, code, arg in self._compiled:
            if code == _M_EQ:
                if labels.get(key) != arg:
                    return False
            elif code == _M_IN:
                if labels.get(key) not in arg:
                    return False
            elif code == _M_NOT_IN:
                if labels.get(key) in arg:
                    return False
            elif code == _M_EXISTS:
                if key not in labels:
                    return False
            elif code == _M_NOT_EXISTS:
                if key in labels:
                    return False
            else:
                value = labels.get(key)
                num = _parse_int64(value) if value is not None else None
                if num is None or arg is None:
                    return False
                if (num <= arg) if code == _M_GT else (num >= arg):
                    return False
        return True

    def requires_exact_match(self, key: str) -> str | None:
        """The value ``key`` must have (``key=v`` or ``key in (v)``), if the selector pins one."""
        for r_key, code, arg in self._compiled:
            if r_key == key and code == _M_EQ:
                return arg
        return None

    def to_string(self) -> str:
        """The canonical string form (requirements sorted by key, values sorted)."""
        return ",".join(r.to_string() for r in self.requirements)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector.nothing()"
        return f"LabelSelector({self.to_string()!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


class _Tok:
    END, IDENT, OPEN, CLOSE, COMMA, NOT, EQ, DEQ, NEQ, GT, LT, IN, NOTIN = range(13)


_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_SYMBOLS = {
    "(": _Tok.OPEN,
    ")": _Tok.CLOSE,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "=": _Tok.EQ,
    "==": _Tok.DEQ,
    "!=": _Tok.NEQ,
    ">": _Tok.GT,
    "<": _Tok.LT,
}
_KEYWORDS = {"in": _Tok.IN, "notin": _Tok.NOTIN}
_BINARY_OPS = "in, notin, =, ==, !=, gt, lt"
_TOKEN_OPS = {
    _Tok.IN: IN,
    _Tok.NOTIN: NOT_IN,
    _Tok.EQ: EQUALS,
    _Tok.DEQ: DOUBLE_EQUALS,
    _Tok.NEQ: NOT_EQUALS,
    _Tok.GT: GREATER_THAN,
    _Tok.LT: LESS_THAN,
}


def _lex(text: str) -> list[tuple[int, str]]:
    tokens: list[tuple[int, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            tokens.append((_Tok.END, ""))
            return tokens
        if text[i] in _SPECIAL:
            # Longest run of special characters that is still a token ("!=", "==").
            j = i + 1
            if j < n and text[i : j + 1] in _SYMBOLS:
                j += 1
            lit = text[i:j]
            tokens.append((_SYMBOLS[lit], lit))
            i = j
        else:
            j = i
            while j < n and text[j] not in _SPECIAL and text[j] not in _WHITESPACE:
                j += 1
            lit = text[i:j]
            tokens.append((_KEYWORDS.get(lit, _Tok.IDENT), lit))
            i = j


class _Parser:
    """Port of the recursive-descent parser of ``labels.Parse``."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def lookahead(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.tokens[self.pos]
        # In a "values" context the keywords in/notin are plain identifiers.
        if values and tok in (_Tok.IN, _Tok.NOTIN):
            tok = _Tok.IDENT
        return tok, lit

    def consume(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.lookahead(values)
        if self.pos < len(self.tokens) - 1:
            self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in (_Tok.IDENT, _Tok.NOT):
                try:
                    reqs.append(self.parse_requirement())
                except ValueError as exc:
                    raise ValueError(f"unable to parse requirement: {exc}") from None
                tok, lit = self.consume()
                if tok == _Tok.END:
                    return reqs
                if tok == _Tok.COMMA:
                    tok2, lit2 = self.lookahead()
                    if tok2 not in (_Tok.IDENT, _Tok.NOT):
                        raise ValueError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _Tok.END:
                return reqs
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def parse_requirement(self) -> Requirement:
        operator = ""
        tok, lit = self.consume()
        if tok == _Tok.NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self.consume()
        if tok != _Tok.IDENT:
            raise ValueError(f"found '{lit}', expected: identifier")
        key = lit
        if key_errs := qualified_name_errors(key):
            raise ValueError(_invalid("<nil>", key, "; ".join(key_errs)))
        if self.lookahead()[0] in (_Tok.END, _Tok.COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        if operator in (EXISTS, DOES_NOT_EXIST):
            return _new_requirement(key, operator, ())
        tok, lit = self.consume(values=False)
        op = _TOKEN_OPS.get(tok)
        if op is None:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPS}")
        values = self.parse_values() if op in (IN, NOT_IN) else self.parse_exact_value()
        return _new_requirement(key, op, values)

    def parse_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != _Tok.OPEN:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in (_Tok.IDENT, _Tok.COMMA):
            values = self.parse_identifiers_list()
            if self.consume()[0] != _Tok.CLOSE:
                raise ValueError(f"found '{lit}', expected: ')'")
            return values
        if tok == _Tok.CLOSE:
            self.consume()
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def parse_identifiers_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == _Tok.IDENT:
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == _Tok.COMMA:
                    continue
                if tok2 == _Tok.CLOSE:
                    return values
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _Tok.COMMA:
                # "(,", ",,", ",)" each stand for an empty value.
                if not values:
                    values.add("")
                tok2 = self.lookahead()[0]
                if tok2 == _Tok.CLOSE:
                    values.add("")
                    return values
                if tok2 == _Tok.COMMA:
                    self.consume()
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def parse_exact_value(self) -> set[str]:
        tok = self.lookahead()[0]
        if tok in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self.consume()
        if tok == _Tok.IDENT:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a ``labelSelector`` query value; an empty string selects everything.

    Raises ``ApiError`` 400 with the Kubernetes parser's message on bad syntax or invalid
    keys/values.
    """
    if not text or text.isspace():
        return LabelSelector()
    try:
        return LabelSelector(_Parser(text).parse())
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None


_EXPR_OPS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def selector_from_dict(d: Mapping[str, Any] | None) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` (``spec.selector``) as ``LabelSelectorAsSelector`` does.

    ``None`` matches nothing; ``{}`` (no matchLabels, no matchExpressions) matches everything.
    Invalid keys, values or operators raise ``ApiError`` 400.
    """
    if d is None:
        return LabelSelector.nothing()
    match_labels = d.get("matchLabels") or {}
    exprs = d.get("matchExpressions") or []
    if not match_labels and not exprs:
        return LabelSelector()
    reqs: list[Requirement] = []
    try:
        for key, value in match_labels.items():
            reqs.append(_new_requirement(key, EQUALS, (value,)))
        for expr in exprs:
            op_name = expr.get("operator")
            op = _EXPR_OPS.get(op_name)  # type: ignore[arg-type]
            if op is None:
                raise ValueError(f'"{op_name}" is not a valid label selector operator')
            reqs.append(_new_requirement(expr.get("key", ""), op, expr.get("values") or ()))
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None
    return LabelSelector(reqs)


def selector_from_map(m: Mapping[str, str] | None) -> LabelSelector:
    """Selector for a plain label map (Service / ReplicationController ``spec.selector``).

    Like ``labels.SelectorFromSet``: ``None`` or ``{}`` matches everything; each entry is an
    equality requirement. The map is trusted (it was validated with its object).
    """
    if not m:
        return LabelSelector()
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in m.items())
