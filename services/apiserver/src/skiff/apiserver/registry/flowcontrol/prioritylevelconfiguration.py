"""PriorityLevelConfigurations (kube's ``pkg/registry/flowcontrol/prioritylevelconfiguration``
and ``pkg/apis/flowcontrol/validation``): ``Exempt`` if and only if named ``exempt``,
a ``Limited`` level's shares, lendable and borrowing percentages and its limit response —
``Reject``, or ``Queue`` with queues, a hand size shuffle sharding can deal and a queue
length — in kube's words; the mandatory ``catch-all`` keeps its fixed spec and ``exempt``
all but its ``spec.exempt``.
"""

from __future__ import annotations

import math
from typing import Any

from skiff.api.errors import Cause

from ...flowcontrol.bootstrap import EXEMPT, MANDATORY_PRIORITY_LEVELS
from ...validation import forbidden, invalid, not_supported, required
from ..strategy import Obj, Strategy
from .flowschema import same_spec, validate_conditions

TYPES = ["Exempt", "Limited"]
LIMIT_RESPONSES = ["Queue", "Reject"]
MAX_QUEUES = 10_000_000
MAX_HASH_BITS = 60
PRESERVE_ZERO = "flowcontrol.k8s.io/v1beta3-preserve-zero-concurrency-shares"


def _queuing(q: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    limit, queues, hand = (q.get(k) or 0 for k in ("queueLengthLimit", "queues", "handSize"))
    if limit <= 0:
        causes.append(invalid(f"{path}.queueLengthLimit", limit, "must be positive"))
    if queues <= 0:
        causes.append(invalid(f"{path}.queues", queues, "must be positive"))
    elif queues > MAX_QUEUES:
        causes.append(invalid(f"{path}.queues", queues, f"must not be greater than {MAX_QUEUES}"))
    if hand <= 0:
        causes.append(invalid(f"{path}.handSize", hand, "must be positive"))
    elif hand > queues:
        causes.append(
            invalid(f"{path}.handSize", hand, f"should not be greater than queues ({queues})")
        )
    elif math.ceil(math.log2(queues) * hand) > MAX_HASH_BITS:
        causes.append(
            invalid(
                f"{path}.handSize",
                hand,
                f"required entropy bits of deckSize {queues} and handSize {hand} "
                f"should not be greater than {MAX_HASH_BITS}",
            )
        )
    return causes


def _limit_response(lr: Obj, path: str) -> list[Cause]:
    kind = lr.get("type") or ""
    queuing = lr.get("queuing")
    if kind == "Reject":
        if queuing is not None:
            return [
                forbidden(
                    f"{path}.queuing", "must be nil if limited.limitResponse.type is not Limited"
                )
            ]
        return []
    if kind == "Queue":
        if not isinstance(queuing, dict):
            return [
                required(
                    f"{path}.queuing", "must not be empty if limited.limitResponse.type is Limited"
                )
            ]
        return _queuing(queuing, f"{path}.queuing")
    return [not_supported(f"{path}.type", kind, LIMIT_RESPONSES)]


def _percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, int) and not 0 <= value <= 100:
        return [invalid(path, value, "must be between 0 and 100, inclusive")]
    return []


def validate_spec(name: str, spec: Obj) -> list[Cause]:
    """``ValidatePriorityLevelConfigurationSpec`` (zero shares allowed, as kube's strategy
    allows them)."""
    causes: list[Cause] = []
    kind = spec.get("type") or ""
    if (name == EXEMPT) != (kind == "Exempt"):
        causes.append(
            invalid("spec.type", kind, "type must be 'Exempt' if and only if name is 'exempt'")
        )
    limited, exempt = spec.get("limited"), spec.get("exempt")
    if kind == "Exempt":
        if limited is not None:
            causes.append(forbidden("spec.limited", "must be nil if the type is not Limited"))
        if isinstance(exempt, dict):
            shares = exempt.get("nominalConcurrencyShares")
            if isinstance(shares, int) and shares < 0:
                causes.append(
                    invalid(
                        "spec.exempt.nominalConcurrencyShares",
                        shares,
                        "must be a non-negative integer",
                    )
                )
            causes += _percent(exempt.get("lendablePercent"), "spec.exempt.lendablePercent")
    elif kind == "Limited":
        if exempt is not None:
            causes.append(forbidden("spec.exempt", "must be nil if the type is Limited"))
        if not isinstance(limited, dict):
            causes.append(required("spec.limited", "must not be empty when type is Limited"))
        else:
            shares = limited.get("nominalConcurrencyShares") or 0
            if shares < 0:
                causes.append(
                    invalid(
                        "spec.limited.nominalConcurrencyShares",
                        shares,
                        "must be a non-negative integer",
                    )
                )
            causes += _limit_response(
                limited.get("limitResponse") or {}, "spec.limited.limitResponse"
            )
            causes += _percent(limited.get("lendablePercent"), "spec.limited.lendablePercent")
            borrowing = limited.get("borrowingLimitPercent")
            if isinstance(borrowing, int) and borrowing < 0:
                causes.append(
                    invalid(
                        "spec.limited.borrowingLimitPercent",
                        borrowing,
                        "if specified, must be a non-negative integer",
                    )
                )
    else:
        causes.append(not_supported("spec.type", kind, TYPES))
    return causes


def _mandatory(name: str, spec: Obj) -> list[Cause]:
    """``ValidateIfMandatoryPriorityLevelConfigurationObject``."""
    fixed = MANDATORY_PRIORITY_LEVELS.get(name)
    if fixed is None:
        return []
    want = fixed["spec"]
    if name == EXEMPT:
        if not same_spec({**spec, "exempt": None}, {**want, "exempt": None}):
            return [
                invalid(
                    "spec",
                    spec,
                    f"spec of '{name}' except the 'spec.exempt' field must equal the fixed value",
                )
            ]
        return []
    if not same_spec(spec, want):
        return [invalid("spec", spec, f"spec of '{name}' must equal the fixed value")]
    return []


class PriorityLevelConfigurationStrategy(Strategy):
    """Spec changes bump ``metadata.generation`` (generically); ``/status`` writes only
    the conditions."""

    def validate(self, obj: Obj) -> list[Cause]:
        meta = obj.get("metadata") or {}
        name, spec = meta.get("name") or "", obj.get("spec") or {}
        causes: list[Cause] = []
        if PRESERVE_ZERO in (meta.get("annotations") or {}):
            causes.append(
                forbidden("metadata.annotations", f"annotation '{PRESERVE_ZERO}' is forbidden")
            )
        causes += validate_spec(name, spec)
        causes += _mandatory(name, spec)
        return causes + validate_conditions(obj.get("status"))
