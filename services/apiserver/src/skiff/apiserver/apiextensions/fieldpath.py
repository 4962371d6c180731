"""kube's ``cel.ValidFieldPath``: a rule's ``fieldPath`` (``.spec.foo``, ``.map['key']``) as the
field path it names, checked against the structural schema."""

from __future__ import annotations

from .structural import Schema, as_dict, props

__all__ = ["resolve_field_path"]


def _path_tokens(path: str) -> list[str]:
    tokens, i = [], 0
    while i < len(path):
        if path[i] == "'":
            j = i + 1
            while j < len(path) and not (path[j] == "'" and path[j - 1] != "\\"):
                j += 1
            tokens.append(path[i : j + 1])
            i = j + 1
        elif path[i] in ".[]":
            tokens.append(path[i])
            i += 1
        else:
            j = i
            while j < len(path) and path[j] not in ".[]":
                j += 1
            tokens.append(path[i:j])
            i = j
    return tokens


def _step(node: Schema | None, name: str, parts: list[str]) -> tuple[Schema | None, str | None]:
    fields = props(node) if node is not None else {}
    if fields:
        if name not in fields:
            return None, "does not refer to a valid field"
        parts.append(f".{name}" if parts else name)
        return fields[name], None
    if node is not None and node.get("additionalProperties") is not None:
        parts.append(f"[{name}]")
        return as_dict(node["additionalProperties"]), None
    return None, "does not refer to a valid field"


def resolve_field_path(
    json_path: str, schema: Schema, allow_array: bool = True
) -> tuple[str, Schema | None, str | None]:
    """``cel.ValidFieldPath``: (the field.Path it names, the schema there, error)."""
    tokens, parts, node, i = _path_tokens(json_path), [], schema, 0
    end = "unexpected end of JSON path"
    while i < len(tokens):
        tok, i = tokens[i], i + 1
        if tok not in (".", "["):
            return "", None, f"expected [ or . but got: {tok}"
        if tok == "[" and not allow_array:
            return "", None, "array notation is not allowed"
        if i >= len(tokens):
            return "", None, end
        name, i = tokens[i], i + 1
        if tok == "[":
            if len(name) < 2 or name[0] != "'" or name[-1] != "'":
                return "", None, f"expected single quoted string but got {name}"
            name = name[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        node, err = _step(node, name, parts)
        if err:
            return "", None, err
        if tok == "[":
            if i >= len(tokens):
                return "", None, end
            if tokens[i] != "]":
                return "", None, f"expected ] but got {tokens[i]}"
            i += 1
    return "".join(parts), node, None
