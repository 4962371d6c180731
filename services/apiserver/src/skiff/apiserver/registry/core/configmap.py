"""ConfigMaps and Secrets: their keys must be valid config keys."""

from __future__ import annotations

import re

from skiff.api.errors import Cause

from ..strategy import Obj, Strategy

_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")


def validate_config_keys(obj: Obj) -> list[Cause]:
    """``data`` and ``binaryData`` keys (both reported under ``data[...]``)."""
    keys = list((obj.get("data") or {}).keys()) + list((obj.get("binaryData") or {}).keys())
    return [
        Cause(
            f"data[{k}]",
            f'Invalid value: "{k}": a valid config key '
            "must consist of alphanumeric characters, '-', '_' or '.' "
            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex "
            "used for validation is '[-._a-zA-Z0-9]+')",
        )
        for k in keys
        if not _CONFIG_KEY.fullmatch(k)
    ]


class ConfigMapStrategy(Strategy):
    """ConfigMaps and Secrets."""

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_config_keys(obj)
