"""ValidatingAdmissionPolicies and their bindings (kube's
``pkg/apis/admissionregistration/validation``): v1 defaults, then the policy's failure
policy, parameter kind, match constraints, match conditions, variables, validations and
audit annotations (every expression compiled), and the binding's policy, parameter
reference, match resources and actions, in Kubernetes' words."""

from __future__ import annotations

import re
from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1035_label, is_dns1123_subdomain, is_qualified_name, validate_name

from ...admission.cel import compile_expression
from ...validation import forbidden, invalid, label_selector, not_supported, required
from ..strategy import Obj, Strategy
from . import rules

REASONS = ["Forbidden", "Invalid", "RequestEntityTooLarge"]
ACTIONS = ["Audit", "Deny", "Warn"]
NOT_FOUND_ACTIONS = ["Deny", "Allow"]
MAX_AUDIT_ANNOTATIONS = 20
MAX_VALUE_EXPRESSION = 5 * 1024
_CEL_IDENT = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_CEL_RESERVED = frozenset(
    "true false null in as break const continue else for function if import let loop "
    "package namespace return var void while".split()
)


def default_match_resources(match: Any) -> None:
    """``SetDefaults_MatchResources`` and the rules' scope."""
    if not isinstance(match, dict):
        return
    for key, value in (("matchPolicy", "Equivalent"), ("namespaceSelector", {}),
                       ("objectSelector", {})):  # fmt: skip
        if match.get(key) is None:
            match[key] = value
    rules.default_rules(match.get("resourceRules"))
    rules.default_rules(match.get("excludeResourceRules"))


def _named_rules(items: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, rule in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(rule, dict):
            continue
        at = f"{path}[{i}]"
        names = rules.strings(rule.get("resourceNames"))
        causes.extend(rules.path_segment_names(names, f"{at}.resourceNames"))
        causes.extend(rules.rule_with_operations(rule, at))
    return causes


def match_resources(match: Any, path: str) -> list[Cause]:
    """``validateMatchResources`` (no match resources is valid)."""
    if not isinstance(match, dict):
        return []
    causes: list[Cause] = []
    policy = match.get("matchPolicy")
    if policy is None:
        causes.append(required(f"{path}.matchPolicy"))
    elif policy not in rules.MATCH_POLICIES:
        causes.append(not_supported(f"{path}.matchPolicy", policy, rules.MATCH_POLICIES))
    for key in ("namespaceSelector", "objectSelector"):
        if match.get(key) is None:
            causes.append(required(f"{path}.{key}"))
        else:
            causes.extend(label_selector(match[key], f"{path}.{key}"))
    causes.extend(_named_rules(match.get("resourceRules"), f"{path}.resourceRules"))
    causes.extend(_named_rules(match.get("excludeResourceRules"), f"{path}.excludeResourceRules"))
    return causes


def _param_kind(kind: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    api_version = str(kind.get("apiVersion") or "")
    if not api_version:
        causes.append(required(f"{path}.apiVersion"))
    elif api_version.count("/") > 1:
        causes.append(
            invalid(f"{path}.apiVersion", api_version,
                    f"unexpected GroupVersion string: {api_version}")
        )  # fmt: skip
    else:
        group, _, version = api_version.rpartition("/")
        if group and (errs := is_dns1123_subdomain(group)):
            causes.append(invalid(f"{path}.apiVersion", group, ",".join(errs)))
        if not version:
            causes.append(invalid(f"{path}.apiVersion", api_version, "version must be specified"))
        elif errs := is_dns1035_label(version):
            causes.append(invalid(f"{path}.apiVersion", version, ",".join(errs)))
    name = str(kind.get("kind") or "")
    if not name:
        causes.append(required(f"{path}.kind"))
    elif errs := is_dns1035_label(name.lower()):
        detail = "may have mixed case, but should otherwise match: " + ",".join(errs)
        causes.append(invalid(f"{path}.kind", name, detail))
    return causes


def _expression(text: str, path: str, *, want: str, params: bool) -> list[Cause]:
    expr = compile_expression(text, want=want, params=params, variables=True)
    return [invalid(path, text, expr.error)] if expr.error else []


def _variables(items: Any, path: str, params: bool) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(items if isinstance(items, list) else ()):
        at = f"{path}[{i}]"
        var = var if isinstance(var, dict) else {}
        name = str(var.get("name") or "")
        if not name.strip():
            causes.append(required(f"{at}.name", "name is not specified"))
        elif not _CEL_IDENT.match(name) or name in _CEL_RESERVED:
            causes.append(invalid(f"{at}.name", name, "name is not a valid CEL identifier"))
        text = str(var.get("expression") or "")
        if not text.strip():
            causes.append(required(f"{at}.expression", "expression is not specified"))
        else:
            expr = compile_expression(text, want="dyn", params=params, variables=True)
            if expr.error:
                causes.append(invalid(f"{at}.expression", text, expr.error))
    return causes


def _validation(v: dict[str, Any], path: str, params: bool) -> list[Cause]:
    causes: list[Cause] = []
    text = str(v.get("expression") or "")
    if not text.strip():
        causes.append(required(f"{path}.expression", "expression is not specified"))
    else:
        causes.extend(_expression(text, f"{path}.expression", want="bool", params=params))
    message_expression = str(v.get("messageExpression") or "")
    if message_expression and not message_expression.strip():
        causes.append(
            invalid(
                f"{path}.messageExpression", message_expression, "must be non-empty if specified"
            )
        )
    elif message_expression:
        causes.extend(
            _expression(
                message_expression, f"{path}.messageExpression", want="string", params=params
            )
        )
    message = str(v.get("message") or "")
    if message and not message.strip():
        causes.append(invalid(f"{path}.message", message, "message must be non-empty if specified"))
    elif re.search(r"[\n\r]", message.strip()):
        causes.append(invalid(f"{path}.message", message, "message must not contain line breaks"))
    reason = v.get("reason")
    if reason is not None and reason not in REASONS:
        causes.append(not_supported(f"{path}.reason", reason, REASONS))
    return causes


def _audit_annotation(a: dict[str, Any], policy: str, path: str, params: bool) -> list[Cause]:
    causes: list[Cause] = []
    key = str(a.get("key") or "")
    if policy:
        causes.extend(invalid(f"{path}.key", f"{policy}/{key}", m)
                      for m in is_qualified_name(f"{policy}/{key}"))  # fmt: skip
    else:
        causes.append(invalid(f"{path}.key", key, "requires metadata.name be non-empty"))
    text = str(a.get("valueExpression") or "").strip()
    if not text:
        causes.append(required(f"{path}.valueExpression", "valueExpression is not specified"))
    elif len(text) > MAX_VALUE_EXPRESSION:
        detail = f"must not exceed {MAX_VALUE_EXPRESSION} bytes in length"
        causes.append(required(f"{path}.valueExpression", detail))
    else:
        expr = compile_expression(text, want="dyn", params=params, variables=True)
        if expr.error:
            causes.append(invalid(f"{path}.valueExpression", a.get("valueExpression"), expr.error))
    return causes


def _policy_spec(obj: Obj) -> list[Cause]:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    causes: list[Cause] = []
    policy = spec.get("failurePolicy")
    if policy is None:
        causes.append(required("spec.failurePolicy"))
    elif policy not in rules.FAILURE_POLICIES:
        causes.append(not_supported("spec.failurePolicy", policy, rules.FAILURE_POLICIES))
    params = isinstance(spec.get("paramKind"), dict)
    if params:
        causes.extend(_param_kind(spec["paramKind"], "spec.paramKind"))
    match = spec.get("matchConstraints")
    if not isinstance(match, dict):
        causes.append(required("spec.matchConstraints"))
    else:
        causes.extend(match_resources(match, "spec.matchConstraints"))
        if not match.get("resourceRules"):
            causes.append(required("spec.matchConstraints.resourceRules"))
    causes.extend(
        rules.match_conditions(spec.get("matchConditions"), "spec.matchConditions", params=params)
    )
    causes.extend(_variables(spec.get("variables"), "spec.variables", params))
    validations, audits = spec.get("validations") or [], spec.get("auditAnnotations") or []
    if not validations and not audits:
        detail = "validations or auditAnnotations must contain at least one item"
        return [
            *causes,
            required("spec.validations", detail),
            required("spec.auditAnnotations", detail),
        ]
    for i, v in enumerate(validations):
        causes.extend(
            _validation(v if isinstance(v, dict) else {}, f"spec.validations[{i}]", params)
        )
    if len(audits) > MAX_AUDIT_ANNOTATIONS:
        detail = f"must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"
        causes.append(invalid("spec.auditAnnotations", audits, detail))
    keys: set[str] = set()
    name = str(obj["metadata"].get("name") or "")
    for i, a in enumerate(audits):
        a = a if isinstance(a, dict) else {}
        causes.extend(_audit_annotation(a, name, f"spec.auditAnnotations[{i}]", params))
        if a.get("key") in keys:
            causes.append(rules.duplicate(f"spec.auditAnnotations[{i}].key", a.get("key")))
        keys.add(a.get("key"))
    return causes


class ValidatingAdmissionPolicyStrategy(Strategy):
    allow_unconditional_update = False  # kube: "must be specified for an update"

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            if spec.get("failurePolicy") is None:
                spec["failurePolicy"] = "Fail"
            default_match_resources(spec.get("matchConstraints"))

    def validate(self, obj: Obj) -> list[Cause]:
        return _policy_spec(obj)


def _param_ref(ref: Any, path: str) -> list[Cause]:
    if not isinstance(ref, dict):
        return []
    causes: list[Cause] = []
    name, selector = str(ref.get("name") or ""), ref.get("selector")
    if name:
        causes.extend(invalid(f"{path}.name", name, m) for m in validate_name(name, "path"))
        if selector is not None:
            causes.append(forbidden(f"{path}.name", "name and selector are mutually exclusive"))
    if selector is not None:
        causes.extend(label_selector(selector, f"{path}.selector"))
        if name:
            causes.append(forbidden(f"{path}.selector", "name and selector are mutually exclusive"))
    if not name and selector is None:
        causes.append(required(path, "one of name or selector must be specified"))
    action = ref.get("parameterNotFoundAction")
    if not action:
        causes.append(required(f"{path}.parameterNotFoundAction"))
    elif action not in NOT_FOUND_ACTIONS:
        causes.append(not_supported(f"{path}.parameterNotFoundAction", action, NOT_FOUND_ACTIONS))
    return causes


def _actions(actions: list[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, action in enumerate(actions):
        if action not in ACTIONS:
            causes.append(not_supported(f"{path}[{i}]", action, ACTIONS))
        if action in seen:
            causes.append(rules.duplicate(f"{path}[{i}]", action))
        seen.add(action)
    if {"Deny", "Warn"} <= seen:
        causes.append(
            invalid(path, actions, "must not contain both Deny and Warn (repeating the same "
                    "validation failure information in the API response and headers serves no "
                    "purpose)")
        )  # fmt: skip
    if not seen:
        causes.append(required(path, "at least one validation action is required"))
    return causes


class ValidatingAdmissionPolicyBindingStrategy(Strategy):
    allow_unconditional_update = False  # kube: "must be specified for an update"

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> list[Cause]:
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        causes: list[Cause] = []
        policy = str(spec.get("policyName") or "")
        if not policy:
            causes.append(required("spec.policyName"))
        else:
            causes.extend(invalid("spec.policyName", policy, m) for m in validate_name(policy))
        causes.extend(_param_ref(spec.get("paramRef"), "spec.paramRef"))
        # kube's own spelling of the path
        causes.extend(match_resources(spec.get("matchResources"), "spec.matchResouces"))
        causes.extend(
            _actions(rules.strings(spec.get("validationActions")), "spec.validationActions")
        )
        return causes
