"""The JSONPath that CRDs use for printer columns and the scale subresource (client-go's
``jsonpath`` without the template syntax): ``.a.b``, ``['a.b']``, ``[0]``, ``[-1]``,
``[*]``, ``..a`` is not supported, filters ``[?(@.type=="Ready")]`` with ``==``/``!=``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_TOKEN = re.compile(
    r"""\.(?P<name>[A-Za-z0-9_\-$]+)
      | \[(?P<quoted>'[^']*'|"[^"]*")\]
      | \[(?P<index>-?\d+)\]
      | \[(?P<star>\*)\]
      | \.(?P<dotstar>\*)
      | \[\?\(@(?P<fpath>(?:\.[A-Za-z0-9_\-]+)+)\s*(?P<op>==|!=)\s*
          (?P<fval>'[^']*'|"[^"]*"|[^)\s]+)\)\]
    """,
    re.VERBOSE,
)

Step = tuple[str, Any]


class JSONPathError(ValueError):
    """A path this module cannot parse."""


def parse(path: str) -> list[Step]:
    """The steps of ``path`` (``{`` ``}`` around it are allowed)."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    if text and not text.startswith((".", "[")):
        raise JSONPathError(f"unrecognized JSONPath {path!r}")
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise JSONPathError(f"unrecognized JSONPath {path!r} at {text[pos:]!r}")
        pos = m.end()
        if m.group("name") is not None:
            steps.append(("key", m.group("name")))
        elif m.group("quoted") is not None:
            steps.append(("key", m.group("quoted")[1:-1]))
        elif m.group("index") is not None:
            steps.append(("index", int(m.group("index"))))
        elif m.group("star") is not None or m.group("dotstar") is not None:
            steps.append(("all", None))
        else:
            raw = m.group("fval")
            value: Any = raw[1:-1] if raw[0] in "'\"" else _literal(raw)
            keys = m.group("fpath").lstrip(".").split(".")
            steps.append(("filter", (keys, m.group("op"), value)))
    return steps


def _literal(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _dig(value: Any, keys: list[str]) -> Any:
    for k in keys:
        if not isinstance(value, dict) or k not in value:
            return _MISSING
        value = value[k]
    return value


_MISSING = object()


def find(obj: Any, steps: list[Step]) -> list[Any]:
    """Every value ``steps`` reach in ``obj`` (missing keys give none)."""
    values = [obj]
    for kind, arg in steps:
        out: list[Any] = []
        for v in values:
            if kind == "key":
                if isinstance(v, dict) and arg in v:
                    out.append(v[arg])
            elif kind == "index":
                if isinstance(v, list) and -len(v) <= arg < len(v):
                    out.append(v[arg])
            elif kind == "all":
                if isinstance(v, list):
                    out.extend(v)
                elif isinstance(v, dict):
                    out.extend(v.values())
            else:
                keys, op, want = arg
                if isinstance(v, list):
                    for item in v:
                        got = _dig(item, keys)
                        if got is not _MISSING and (got == want) == (op == "=="):
                            out.append(item)
        values = out
    return values


def text(value: Any) -> str:
    """How client-go's JSONPath prints a value: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))
