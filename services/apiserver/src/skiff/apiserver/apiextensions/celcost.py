"""A cost guard for CEL rules, in the spirit of kube's runtime cost limits.

cel-expr-python counts no cost while it evaluates (its one guard is cel-cpp's fixed limit of
10,000 comprehension iterations per evaluation). So before a rule runs, its checked AST
(decoded from the ``cel.expr.CheckedExpr`` the compiler serializes) is walked with the sizes of
the actual ``self``/``oldSelf`` values: each node costs 1, a comprehension costs its body times
the size of what it iterates, and functions that walk their arguments cost their size (a tenth
of it for strings, as kube's estimator says). The result bounds the work from above; above
:data:`PER_CALL_LIMIT` the rule is not run, and kube's ``operation cancelled: actual cost limit
exceeded`` is reported instead. Rules without comprehensions cost their node count.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PER_CALL_LIMIT",
    "RUNTIME_BUDGET",
    "Ast",
    "decode",
    "depth",
    "estimate",
    "max_size",
    "node_count",
    "total_size",
]

PER_CALL_LIMIT = 1_000_000
"""``celconfig.PerCallLimit``: the most one rule may cost."""
RUNTIME_BUDGET = 10_000_000
"""``celconfig.RuntimeCELCostBudget``: the most all rules of one object may cost."""

_CANDIDATES = 4096
"""Concrete values followed through selections and iterations; beyond, sizes are bounded by
the size of the whole input."""
_SIZED = frozenset(
    "_+_ split join replace substring trim lowerAscii upperAscii format strings.quote find "
    "findAll string bytes dyn getQuery getHost getHostname getEscapedPath value orValue "
    "optional.of optional.ofNonZeroValue".split()
)
"""Functions whose result has a size (the rest yield scalars)."""
_TRAVERSING = frozenset(
    "_==_ _!=_ @in sum min max isSorted indexOf lastIndexOf join sets.contains sets.equivalent "
    "sets.intersects".split()
)

Ast = tuple[Any, ...]
"""A decoded expression: ``("const", size)``, ``("ident", name)``, ``("select", operand,
field)``, ``("call", function, args)``, ``("list", elements)``, ``("comp", var, range, accu,
init, condition, step, result)``."""


# --- protobuf wire format ---


def _varint(b: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        c = b[i]
        i += 1
        out |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return out, i


def _fields(b: bytes) -> list[tuple[int, Any]]:
    out, i = [], 0
    while i < len(b):
        key, i = _varint(b, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i : i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = b[i : i + n], i + n
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((key >> 3, value))
    return out


def _first(fields: list[tuple[int, Any]], number: int, default: Any = b"") -> Any:
    return next((v for f, v in fields if f == number), default)


def _expr(b: bytes) -> Ast:
    for f, v in _fields(b):
        if f == 3:  # const_expr: strings and bytes have a size
            c = _fields(v)
            return ("const", len(_first(c, 6, b"") or _first(c, 7, b"")))
        if f == 4:
            return ("ident", _first(_fields(v), 1).decode())
        if f == 5:
            s = _fields(v)
            return ("select", _expr(_first(s, 1)), _first(s, 2).decode())
        if f == 6:
            c = _fields(v)
            target = [_expr(x) for n, x in c if n == 1]
            args = [_expr(x) for n, x in c if n == 3]
            return ("call", _first(c, 2).decode(), target + args)
        if f == 7:
            return ("list", [_expr(x) for n, x in _fields(v) if n == 1])
        if f == 8:  # map or message literal: its values
            values = [_first(_fields(e), 4) for n, e in _fields(v) if n == 2]
            return ("list", [_expr(x) for x in values])
        if f == 9:  # iter_var, iter_range, accu_var, accu_init, condition, step, result
            c = dict(_fields(v))
            var, accu = c.get(1, b"").decode(), c.get(3, b"").decode()
            rng, init, cond, step, result = (_expr(c.get(n, b"")) for n in (2, 4, 5, 6, 7))
            return ("comp", var, rng, accu, init, cond, step, result)
    return ("const", 0)


def decode(serialized: bytes) -> tuple[Ast, set[str]]:
    """The expression of a serialized ``Any`` holding a ``CheckedExpr``, and the names its
    identifiers resolved to (``oldSelf`` among them when the rule uses it)."""
    checked = _fields(_first(_fields(serialized), 2))
    refs = set()
    for f, entry in checked:
        if f == 2:
            reference = _first(_fields(entry), 2)
            refs.add(_first(_fields(reference), 1).decode())
    return _expr(_first(checked, 4)), refs


def depth(ast: Ast) -> int:
    """How deeply comprehensions nest in ``ast`` (0: none)."""
    kind = ast[0]
    if kind == "comp":
        return 1 + max(depth(x) for x in (ast[2], *ast[4:]))
    if kind == "select":
        return depth(ast[1])
    if kind in ("call", "list"):
        return max((depth(x) for x in ast[-1]), default=0)
    return 0


def node_count(ast: Ast) -> int:
    kind = ast[0]
    if kind == "select":
        return 1 + node_count(ast[1])
    if kind in ("call", "list"):
        return 1 + sum(node_count(x) for x in ast[-1])
    if kind == "comp":
        return 1 + sum(node_count(x) for x in (ast[2], *ast[4:]))
    return 1


# --- estimation ---


def _size(v: Any) -> int:
    return len(v) if isinstance(v, str | bytes | list | dict) else 0


def _elements(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return list(v)  # iteration over a map yields its keys
    return []


class _Abs:
    """What is known of a value: a bound on its size and its elements' sizes (``None``: only
    the size of the whole input bounds it), and the concrete values it may be."""

    __slots__ = ("elem", "size", "vals")

    def __init__(self, size: int | None, elem: int | None, vals: list[Any] | None = None) -> None:
        self.size, self.elem, self.vals = size, elem, vals


_UNKNOWN = _Abs(None, None)
_SCALAR = _Abs(0, 0)


class _Estimator:
    def __init__(self, variables: dict[str, Any]) -> None:
        self.vars = variables
        self._bound: int | None = None

    def bound(self, n: int | None) -> int:
        """``n``, or when unknown the size of the whole input, which bounds every size
        derived from it."""
        if n is not None:
            return n
        if self._bound is None:
            self._bound = 1 + sum(total_size(v) for v in self.vars.values())
        return self._bound

    def concrete(self, vals: list[Any]) -> _Abs:
        if len(vals) > _CANDIDATES:
            return _UNKNOWN
        size = max((_size(v) for v in vals), default=0)
        elem = max((_size(e) for v in vals for e in _elements(v)), default=0)
        return _Abs(size, elem, vals)

    def walk(self, ast: Ast, env: dict[str, _Abs]) -> tuple[int, _Abs]:
        kind = ast[0]
        if kind == "const":
            return 1, _Abs(ast[1], 0)
        if kind == "ident":
            if ast[1] in env:
                return 1, env[ast[1]]
            if ast[1] in self.vars:
                return 1, self.concrete([self.vars[ast[1]]])
            return 1, _SCALAR
        if kind == "select":
            cost, of = self.walk(ast[1], env)
            if of.vals is None:
                return cost + 1, _UNKNOWN
            field = ast[2]
            picked = [v[field] for v in of.vals if isinstance(v, dict) and field in v]
            return cost + 1, self.concrete(picked)
        if kind == "list":
            walked = [self.walk(x, env) for x in ast[1]]
            elem = max((self.bound(a.size) for _, a in walked), default=0)
            return 1 + sum(c for c, _ in walked), _Abs(len(walked), elem)
        if kind == "call":
            return self.call(ast[1], ast[2], env)
        return self.comprehension(ast, env)

    def call(self, fn: str, args: list[Ast], env: dict[str, _Abs]) -> tuple[int, _Abs]:
        walked = [self.walk(x, env) for x in args]
        cost = 1 + sum(c for c, _ in walked)
        if fn == "_[_]" and walked:
            container = walked[0][1]
            if container.vals is not None:
                return cost, self.concrete([e for v in container.vals for e in _values(v)])
            return cost, _Abs(container.elem, None)
        if fn == "_?_:_" and len(walked) == 3:
            a, b = walked[1][1], walked[2][1]
            if a.size is None or b.size is None:
                return cost, _UNKNOWN
            return cost, _Abs(max(a.size, b.size), None)
        if fn in _TRAVERSING:
            cost += sum(self.bound(a.size) for _, a in walked)
        elif fn in _SIZED and fn != "_+_":  # appending to a comprehension's result is no copy
            cost += sum(self.bound(a.size) for _, a in walked) // 10
        if fn not in _SIZED:
            return cost, _SCALAR
        sizes = [self.bound(a.size) for _, a in walked]
        if fn == "replace" and len(sizes) >= 3:
            return cost, _Abs(sizes[0] * max(1, sizes[2]) + sizes[2], None)
        return cost, _Abs(sum(sizes) + 1, None)

    def comprehension(self, ast: Ast, env: dict[str, _Abs]) -> tuple[int, _Abs]:
        _, var, rng, accu, init, cond, step, result = ast
        cost, over = self.walk(rng, env)
        if over.vals is not None:
            item = self.concrete([e for v in over.vals for e in _elements(v)])
        else:
            item = _Abs(over.elem, None)
        init_cost, start = self.walk(init, env)
        n = self.bound(over.size)
        # map and filter grow a list from an empty one; all and exists keep a bool
        inner = {**env, var: item, accu: _Abs(n, None) if init[0] == "list" else start}
        body = self.walk(cond, inner)[0] + self.walk(step, inner)[0]
        out_cost, _ = self.walk(result, inner)
        return cost + init_cost + n * body + out_cost + 1, _Abs(n, None)


def _values(v: Any) -> list[Any]:
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return list(v.values())
    return []


def max_size(v: Any) -> int:
    """The size of the largest string, list or map in a value."""
    if isinstance(v, dict):
        return max(len(v), *(max(len(k), max_size(x)) for k, x in v.items()))
    if isinstance(v, list):
        return max(len(v), *(max_size(x) for x in v)) if v else 0
    return _size(v)


def total_size(v: Any) -> int:
    """Nodes and characters of a value: a bound on the size of anything taken from it."""
    if isinstance(v, dict):
        return 1 + sum(len(k) + total_size(x) for k, x in v.items())
    if isinstance(v, list):
        return 1 + sum(total_size(x) for x in v)
    return 1 + _size(v)


def estimate(ast: Ast, variables: dict[str, Any]) -> int:
    """An upper bound of the cost of evaluating ``ast`` on ``variables`` (``self``,
    ``oldSelf``)."""
    return _Estimator(variables).walk(ast, {})[0]
