"""StorageClasses (kube's ``pkg/registry/storage/storageclass``) as kube 1.32's
``ValidateStorageClass`` checks them: a provisioner that is a qualified name, at most 512
parameters of 256 KiB in all with non-empty keys, a reclaim policy and binding mode kube
knows, allowed topologies of label requirements; the provisioner, parameters, reclaim
policy and binding mode never change."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_qualified_name

from ...validation import (
    duplicate,
    forbidden,
    immutable,
    invalid,
    not_supported,
    required,
    too_long,
)
from ..core.containers import dict_of, list_of
from ..strategy import Obj, Strategy

RECLAIM_POLICIES = ["Delete", "Retain"]
BINDING_MODES = ["Immediate", "WaitForFirstConsumer"]
MAX_PARAMETERS, MAX_PARAMETER_BYTES = 512, 256 * 1024


def _parameters(params: Obj) -> list[Cause]:
    if len(params) > MAX_PARAMETERS:
        return [too_long("parameters", MAX_PARAMETERS)]
    causes = [invalid("parameters", k, "field can not be empty.") for k in params if not k]
    if sum(len(str(k)) + len(str(v)) for k, v in params.items()) > MAX_PARAMETER_BYTES:
        causes.append(too_long("parameters", MAX_PARAMETER_BYTES))
    return causes


def _topology_term(term: Obj, path: str) -> tuple[dict[str, frozenset[str]], list[Cause]]:
    """``ValidateTopologySelectorTerm``: values present and unique, keys label names,
    each key once."""
    causes: list[Cause] = []
    seen: dict[str, frozenset[str]] = {}
    for i, req in enumerate(list_of(term.get("matchLabelExpressions"))):
        req, at = dict_of(req), f"{path}.matchLabelExpressions[{i}]"
        values = [str(v) for v in list_of(req.get("values"))]
        if not values:
            causes.append(required(f"{at}.values"))
        for j, value in enumerate(values):
            if value in values[:j]:
                causes.append(duplicate(f"{at}.values[{j}]", value))
        key = str(req.get("key") or "")
        causes += [invalid(f"{at}.key", key, m) for m in is_qualified_name(key)]
        if key in seen:
            causes.append(duplicate(f"{at}.key", key))
        seen[key] = frozenset(values)
    return seen, causes


def _topologies(terms: list[Any]) -> list[Cause]:
    causes: list[Cause] = []
    # kube's list starts with one empty entry per term (``make(..., len)`` then append),
    # so an empty term is reported once for each of them
    earlier: list[dict[str, frozenset[str]]] = [{} for _ in terms]
    for i, term in enumerate(terms):
        expressions, errs = _topology_term(dict_of(term), f"allowedTopologies[{i}]")
        causes += errs
        at = f"allowedTopologies[{i}].matchLabelExpressions"
        causes += [duplicate(at, "") for seen in earlier if seen == expressions]
        earlier.append(expressions)
    return causes


class StorageClassStrategy(Strategy):
    def validate(self, obj: Obj) -> list[Cause]:
        provisioner = obj.get("provisioner") or ""
        if not provisioner:
            causes = [required("provisioner")]
        else:
            lower = provisioner.lower()  # kube checks, and prints, it lower-cased
            causes = [invalid("provisioner", lower, m) for m in is_qualified_name(lower)]
        causes += _parameters(dict_of(obj.get("parameters")))
        policy = obj.get("reclaimPolicy")
        if policy and policy not in RECLAIM_POLICIES:
            causes.append(not_supported("reclaimPolicy", policy, RECLAIM_POLICIES))
        mode = obj.get("volumeBindingMode")
        if not mode:
            causes.append(required("volumeBindingMode"))
        elif mode not in BINDING_MODES:
            causes.append(not_supported("volumeBindingMode", mode, BINDING_MODES))
        return causes + _topologies(list_of(obj.get("allowedTopologies")))

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        causes = self.validate(obj)
        for key in ("parameters", "provisioner", "reclaimPolicy"):
            if (obj.get(key) or None) != (old.get(key) or None):
                causes.append(forbidden(key, f"updates to {key} are forbidden."))
        mode, old_mode = obj.get("volumeBindingMode"), old.get("volumeBindingMode")
        return causes + immutable("volumeBindingMode", mode, old_mode)
