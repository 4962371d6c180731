"""Query parameters as Kubernetes decodes them (``runtime.Convert_Slice_string_To_bool``)."""

from __future__ import annotations

from collections.abc import Mapping


def flag(params: Mapping[str, str], name: str) -> bool:
    """A boolean query parameter: absent, ``0`` or ``false`` (any case) is false, anything
    else — ``true``, ``True`` (what Python clients send), ``1``, even empty — is true."""
    value = params.get(name)
    if value is None:
        return False
    return value != "0" and value.lower() != "false"
