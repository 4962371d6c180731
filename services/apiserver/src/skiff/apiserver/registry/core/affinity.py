"""Node selectors as kube 1.32's ``ValidateNodeSelector`` checks them (a volume's node
affinity, a pod's required node affinity): terms, operators and their values, label keys
and values, the one field selector (``metadata.name``)."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain, is_qualified_name, is_valid_label_value

from ...validation import forbidden, invalid, required
from .containers import dict_of, list_of


def _requirement(req: Any, path: str, allow_invalid_values: bool) -> list[Cause]:
    """``ValidateNodeSelectorRequirement``."""
    req = dict_of(req)
    op, values = req.get("operator"), list_of(req.get("values"))
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if not values:
            detail = "must be specified when `operator` is 'In' or 'NotIn'"
            causes.append(required(f"{path}.values", detail))
    elif op in ("Exists", "DoesNotExist"):
        if values:
            detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            causes.append(forbidden(f"{path}.values", detail))
    elif op in ("Gt", "Lt"):
        if len(values) != 1:
            detail = "must be specified single value when `operator` is 'Lt' or 'Gt'"
            causes.append(required(f"{path}.values", detail))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    key = str(req.get("key") or "")
    causes += [invalid(f"{path}.key", key, m) for m in is_qualified_name(key)]
    if not allow_invalid_values:
        for i, v in enumerate(values):
            causes += [invalid(f"{path}.values[{i}]", v, m) for m in is_valid_label_value(str(v))]
    return causes


def _field_requirement(req: Any, path: str) -> list[Cause]:
    """``ValidateNodeFieldSelectorRequirement``: only ``metadata.name`` In/NotIn one name."""
    req = dict_of(req)
    op, values = req.get("operator"), list_of(req.get("values"))
    causes: list[Cause] = []
    if op in ("In", "NotIn"):
        if len(values) != 1:
            detail = (
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"
            )
            causes.append(required(f"{path}.values", detail))
    else:
        causes.append(invalid(f"{path}.operator", op or "", "not a valid selector operator"))
    if req.get("key") != "metadata.name":
        key = req.get("key") or ""
        causes.append(invalid(f"{path}.key", key, "not a valid field selector key"))
    else:
        for i, v in enumerate(values):
            causes += [invalid(f"{path}.values[{i}]", v, m) for m in is_dns1123_subdomain(str(v))]
    return causes


def node_selector_term(term: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    """``ValidateNodeSelectorTerm``."""
    term = dict_of(term)
    causes: list[Cause] = []
    for j, req in enumerate(list_of(term.get("matchExpressions"))):
        causes += _requirement(req, f"{path}.matchExpressions[{j}]", allow_invalid_values)
    for j, req in enumerate(list_of(term.get("matchFields"))):
        causes += _field_requirement(req, f"{path}.matchFields[{j}]")
    return causes


def node_selector(selector: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    """``ValidateNodeSelector``: at least one term, each valid."""
    terms = list_of(dict_of(selector).get("nodeSelectorTerms"))
    if not terms:
        detail = "must have at least one node selector term"
        return [required(f"{path}.nodeSelectorTerms", detail)]
    causes: list[Cause] = []
    for i, term in enumerate(terms):
        causes += node_selector_term(term, f"{path}.nodeSelectorTerms[{i}]", allow_invalid_values)
    return causes
