"""Int-or-string fields (``k8s.io/apimachinery/pkg/util/intstr``): a count or a percentage
of some total, as ``maxSurge``, ``maxUnavailable`` and ``minAvailable`` are."""

from __future__ import annotations

import math
import re

IntOrString = int | str

_PERCENT = re.compile(r"^[0-9]+%$")


def is_percent(value: object) -> bool:
    """Whether ``value`` is a percentage string (``"25%"``)."""
    return isinstance(value, str) and _PERCENT.match(value) is not None


def scaled_value(value: IntOrString | None, total: int, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent``: an int as it is, a percentage of ``total``
    rounded up or down as asked; None is 0.

    A string that is not a percentage raises ``ValueError`` with Kubernetes' message.
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise ValueError(
        f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}"
    )
