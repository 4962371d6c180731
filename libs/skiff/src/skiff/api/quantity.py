"""Resource quantities (``resource.Quantity``): "100m", "1Gi", "2", "1e3", 0.5."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))([eE][+-]?[0-9]+|[KMGTPE]i|[numkMGTPE])?$"
)
_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: Any) -> Decimal | None:
    """A resource quantity ("100m", "1Gi", "2", 0.5) as a Decimal; ``None`` if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.match(value.strip())
    if not m:
        return None
    number, suffix = m.group(1), m.group(2) or ""
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number + suffix)
        return Decimal(number) * _SUFFIXES[suffix]
    except (InvalidOperation, KeyError):
        return None


_BINARY = (("Ei", 60), ("Pi", 50), ("Ti", 40), ("Gi", 30), ("Mi", 20), ("Ki", 10))
_DECIMAL = (("E", 18), ("P", 15), ("T", 12), ("G", 9), ("M", 6), ("k", 3), ("", 0))
_FRACTION = (("m", -3), ("u", -6), ("n", -9))


def is_binary(raw: Any) -> bool:
    """Whether a quantity was written with a binary suffix ("512Mi"), as kube's BinarySI."""
    return isinstance(raw, str) and raw.strip().endswith("i")


def format_quantity(value: Decimal, binary: bool = False) -> str:
    """``value`` in kube's canonical form (``Quantity.String()``): the largest suffix that
    keeps it whole — binary ones ("1536Mi") when ``binary`` and it is a whole number of
    Ki, else decimal ("1500k", "500m"); fractions below 1n round up, as kube's do."""
    if value == 0:
        return "0"
    sign, value = ("-", -value) if value < 0 else ("", value)
    if binary and value == value.to_integral_value() and value >= 1024:
        for suffix, bits in _BINARY:
            if value % (1 << bits) == 0:
                return f"{sign}{int(value) >> bits}{suffix}"
    if value == value.to_integral_value():
        n = int(value)
        for suffix, exp in _DECIMAL:
            if n % 10**exp == 0:
                return f"{sign}{n // 10**exp}{suffix}"
    for suffix, exp in _FRACTION:
        scaled = value.scaleb(-exp)
        if scaled == scaled.to_integral_value() or suffix == "n":
            return f"{sign}{int(scaled.to_integral_value(rounding='ROUND_CEILING'))}{suffix}"
    raise AssertionError("unreachable")


def canonical(raw: Any) -> str:
    """A written quantity as kube prints it (``Quantity.String()``); unparsable as given."""
    value = parse_quantity(raw)
    return str(raw) if value is None else format_quantity(value, is_binary(raw))
