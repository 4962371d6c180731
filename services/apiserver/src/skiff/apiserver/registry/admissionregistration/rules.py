"""The parts webhook configurations and admission policies share (kube's
``pkg/apis/admissionregistration/validation``): rules with operations, label selectors,
match conditions and their defaults, in Kubernetes' messages and field paths."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1123_subdomain, is_qualified_name, is_valid_path_segment_name

from ...admission.cel import compile_expression
from ...validation import invalid, not_supported, required

OPERATIONS = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]
SCOPES = ["*", "Cluster", "Namespaced"]
FAILURE_POLICIES = ["Fail", "Ignore"]
MATCH_POLICIES = ["Equivalent", "Exact"]
MAX_MATCH_CONDITIONS = 64


def duplicate(path: str, value: Any) -> Cause:
    """``field.Duplicate``."""
    return Cause(path, f'Duplicate value: "{value}"', "FieldValueDuplicate")


def strings(value: Any) -> list[str]:
    """A list of strings from the object (anything else: empty)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _resources(resources: list[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not resources:
        causes.append(required(path))
    wild_sub: set[str] = set()  # x/*
    wild_res: set[str] = set()  # */x
    double = single = plain = False
    for i, res_sub in enumerate(resources):
        if res_sub == "":
            causes.append(required(f"{path}[{i}]"))
            continue
        double = double or res_sub == "*/*"
        single = single or res_sub == "*"
        if "/" not in res_sub:
            plain = res_sub != "*"
            continue
        res, sub = res_sub.split("/", 1)
        if res in wild_sub:
            causes.append(
                invalid(
                    f"{path}[{i}]", res_sub, f"if '{res}/*' is present, must not specify {res_sub}"
                )
            )
        if sub in wild_res:
            causes.append(
                invalid(
                    f"{path}[{i}]", res_sub, f"if '*/{sub}' is present, must not specify {res_sub}"
                )
            )
        if sub == "*":
            wild_sub.add(res)
        if res == "*":
            wild_res.add(sub)
    if len(resources) > 1 and double:
        causes.append(
            invalid(path, resources, "if '*/*' is present, must not specify other resources")
        )
    if single and plain:
        causes.append(
            invalid(
                path,
                resources,
                "if '*' is present, must not specify other resources without subresources",
            )
        )
    return causes


def _without_others(values: list[str], path: str, what: str) -> list[Cause]:
    """Required, and ``*`` only alone."""
    causes = [] if values else [required(path)]
    if len(values) > 1 and "*" in values:
        causes.append(invalid(path, values, f"if '*' is present, must not specify other {what}"))
    return causes


def rule_with_operations(rule: dict[str, Any], path: str) -> list[Cause]:
    """``validateRuleWithOperations`` (subresources allowed)."""
    ops = strings(rule.get("operations"))
    causes = _without_others(ops, f"{path}.operations", "operations")
    for i, op in enumerate(ops):
        if op not in OPERATIONS:
            causes.append(not_supported(f"{path}.operations[{i}]", op, OPERATIONS))
    causes += _without_others(strings(rule.get("apiGroups")), f"{path}.apiGroups", "API groups")
    versions = strings(rule.get("apiVersions"))
    causes += _without_others(versions, f"{path}.apiVersions", "API versions")
    causes.extend(required(f"{path}.apiVersions[{i}]") for i, v in enumerate(versions) if v == "")
    causes.extend(_resources(strings(rule.get("resources")), f"{path}.resources"))
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        causes.append(not_supported(f"{path}.scope", scope, SCOPES))
    return causes


def match_conditions(conditions: Any, path: str, *, params: bool) -> list[Cause]:
    """``validateMatchConditions``: at most 64, named (qualified names, unique), each a CEL
    expression that compiles to a bool."""
    causes: list[Cause] = []
    items = conditions if isinstance(conditions, list) else []
    if len(items) > MAX_MATCH_CONDITIONS:
        causes.append(
            Cause(
                path,
                f"Too many: {len(items)}: must have at most {MAX_MATCH_CONDITIONS} items",
                "FieldValueTooMany",
            )
        )
    names: set[str] = set()
    for i, mc in enumerate(items):
        at = f"{path}[{i}]"
        mc = mc if isinstance(mc, dict) else {}
        text = str(mc.get("expression") or "").strip()
        if not text:
            causes.append(required(f"{at}.expression"))
        else:
            expr = compile_expression(text, params=params)
            if expr.error:
                causes.append(invalid(f"{at}.expression", text, expr.error))
        name = str(mc.get("name") or "")
        if not name:
            causes.append(required(f"{at}.name"))
        else:
            causes.extend(invalid(f"{at}.name", name, m) for m in is_qualified_name(name))
            if name in names:
                causes.append(duplicate(f"{at}.name", name))
            names.add(name)
    return causes


def fully_qualified_name(name: str, path: str) -> list[Cause]:
    """``IsFullyQualifiedName``: a DNS subdomain of at least three segments."""
    if not name:
        return [required(path)]
    errs = is_dns1123_subdomain(name)
    if errs:
        return [invalid(path, name, ",".join(errs))]
    if len(name.split(".")) < 3:
        return [
            invalid(path, name, "should be a domain with at least three segments separated by dots")
        ]
    return []


def path_segment_names(names: list[str], path: str) -> list[Cause]:
    """``resourceNames``: path segment names, no duplicates."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, n in enumerate(names):
        causes.extend(invalid(f"{path}[{i}]", n, m) for m in is_valid_path_segment_name(n))
        if n in seen:
            causes.append(duplicate(f"{path}[{i}]", n))
        seen.add(n)
    return causes


def default_rules(rules: Any) -> None:
    """``SetDefaults_Rule``: scope ``*``."""
    for rule in rules if isinstance(rules, list) else ():
        if isinstance(rule, dict) and rule.get("scope") is None:
            rule["scope"] = "*"
