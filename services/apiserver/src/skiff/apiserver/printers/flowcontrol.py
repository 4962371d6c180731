"""Printers of the ``flowcontrol.apiserver.k8s.io`` group: FlowSchemas (rows in matching
order: precedence, then name) and PriorityLevelConfigurations, as kube's printers."""

from __future__ import annotations

from skiff.apiserver.flowcontrol.classifier import in_matching_order
from skiff.apiserver.printers.common import (
    AGE_COL,
    NAME_COL,
    NONE,
    Cells,
    Col,
    TablePrinter,
    age,
    name_of,
)

_FV1 = "io.k8s.api.flowcontrol.v1."
_MISSING_DOC = "references a broken or non-existent PriorityLevelConfiguration"


def _print_flow_schema(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    method = (spec.get("distinguisherMethod") or {}).get("type") or NONE
    missing = "?"
    for c in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(c, dict) and c.get("type") == "Dangling":
            missing = str(c.get("status") or "")
            break
    return [
        name_of(obj),
        (spec.get("priorityLevelConfiguration") or {}).get("name") or "",
        int(spec.get("matchingPrecedence") or 0),
        method,
        age(obj, now),
        missing,
    ]


def _print_priority_level(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    shares: object = NONE
    queues: object = NONE
    hand: object = NONE
    length: object = NONE
    limited = spec.get("limited")
    if isinstance(limited, dict):
        shares = limited.get("nominalConcurrencyShares") or 0
        queuing = (limited.get("limitResponse") or {}).get("queuing")
        if isinstance(queuing, dict):
            queues = queuing.get("queues") or 0
            hand = queuing.get("handSize") or 0
            length = queuing.get("queueLengthLimit") or 0
    return [name_of(obj), spec.get("type") or "", shares, queues, hand, length, age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): TablePrinter(
        (
            NAME_COL,
            Col("PriorityLevel", "string", (f"{_FV1}PriorityLevelConfigurationReference", "name")),
            Col("MatchingPrecedence", "string", (f"{_FV1}FlowSchemaSpec", "matchingPrecedence")),
            Col("DistinguisherMethod", "string", (f"{_FV1}FlowSchemaSpec", "distinguisherMethod")),
            AGE_COL,
            Col(
                "MissingPL",
                "string",
                "references a broken or non-existent PriorityLevelConfiguration",
            ),
        ),
        _print_flow_schema,
        order=in_matching_order,
    ),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): TablePrinter(
        (
            NAME_COL,
            Col("Type", "string", (f"{_FV1}PriorityLevelConfigurationSpec", "type")),
            Col(
                "NominalConcurrencyShares",
                "string",
                (f"{_FV1}LimitedPriorityLevelConfiguration", "nominalConcurrencyShares"),
            ),
            Col("Queues", "string", (f"{_FV1}QueuingConfiguration", "queues")),
            Col("HandSize", "string", (f"{_FV1}QueuingConfiguration", "handSize")),
            Col("QueueLengthLimit", "string", (f"{_FV1}QueuingConfiguration", "queueLengthLimit")),
            AGE_COL,
        ),
        _print_priority_level,
    ),
}
