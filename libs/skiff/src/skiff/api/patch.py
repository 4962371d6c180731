"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) with the Kubernetes API's errors.

Strategic merge patch, which needs the OpenAPI definitions, is the apiserver's
(``skiff.apiserver.strategicpatch``). None of the functions mutate their arguments.
"""

from __future__ import annotations

import re
from typing import Any

import jsonpatch
import jsonpointer

from skiff.api import errors
from skiff.api.errors import ApiError, Cause, Reason

MAX_JSON_PATCH_OPERATIONS = 10000

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"

_REJECTED = "the server rejected our request due to an error in our request"


def copy_json(value: Any) -> Any:
    """Deep copy of a JSON value (much faster than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def unprocessable(detail: str) -> ApiError:
    # What apiserver answers (NewGenericServerResponse 422) plus the detail kubectl would hide.
    return ApiError(
        422,
        Reason.INVALID,
        f"{_REJECTED}: {detail}",
        causes=[Cause(field="", message=detail, reason="UnexpectedServerResponse")],
    )


# --- JSON merge patch (RFC 7386) ---


def merge_patch(original: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply an RFC 7386 JSON merge patch: ``null`` deletes, objects merge, the rest replaces.

    Raises ``ApiError`` 400 when the patch is not a JSON object.
    """
    if not isinstance(patch, dict):
        raise errors.bad_request(
            f"invalid JSON merge patch: expected a JSON object, got {json_type(patch)}"
        )
    return _merge_into(copy_json(original) if isinstance(original, dict) else {}, patch)


def _merge_into(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            current = target.get(key)
            target[key] = _merge_into(current if isinstance(current, dict) else {}, value)
        else:
            target[key] = copy_json(value)
    return target


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


# --- JSON patch (RFC 6902) ---


def json_patch(original: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Apply an RFC 6902 JSON patch.

    A body that is not a list of objects is a 400 (as kube-apiserver's decode error); more than
    10000 operations a 413; an operation that is malformed or does not apply (missing path,
    failed ``test``...) a 422 whose message names the operation and why it failed.
    """
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise errors.bad_request(
            "invalid JSON patch: expected a JSON array of operation objects"
            ' (e.g. [{"op": "replace", "path": "/spec/replicas", "value": 3}])'
        )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS},"
            f" got {len(ops)}"
        )
    doc: Any = copy_json(original)
    for index, op in enumerate(ops):
        name = op.get("op")
        where = f"operation {index} ({name!s} {op.get('path')!s})"
        try:
            # Copied so that later operations never alias (and mutate) values of the patch.
            doc = jsonpatch.JsonPatch([copy_json(op)]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise unprocessable(f"{where}: test failed: the value does not match") from None
        except jsonpatch.InvalidJsonPatch as exc:
            raise unprocessable(f"{where}: invalid operation: {_short(exc)}") from None
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise unprocessable(f"{where} does not apply: {_short(exc)}") from None
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise unprocessable(f"{where} does not apply: {_short(exc)}") from None
    if not isinstance(doc, dict):
        raise unprocessable(f"the patched document must be a JSON object, got {json_type(doc)}")
    return doc


def _short(exc: BaseException, limit: int = 200) -> str:
    # jsonpointer's "member 'x' not found in {...}" embeds the whole document; drop it.
    text = _EMBEDDED_DOC.sub("", str(exc))
    return text if len(text) <= limit else text[:limit] + "..."


_EMBEDDED_DOC = re.compile(r" in [\[{].*\Z", re.S)


# --- strategic merge patch: schema metadata ---
