"""The ValidatingAdmissionPolicy admission plugin (kube's
``k8s.io/apiserver/pkg/admission/plugin/policy/validating``): every binding whose policy
and match resources match the request evaluates the policy's CEL — match conditions,
variables, validations, audit annotations — once per parameter object, and acts on each
failed validation as the binding says: ``Deny`` refuses the request in kube's words (the
validation's reason, ``Invalid`` by default, gives the code), ``Warn`` adds a warning,
``Audit`` an audit annotation. An expression that fails to evaluate follows the policy's
``failurePolicy``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from skiff.api import errors
from skiff.api.resources import REGISTRY, ResourceInfo

from .cel import EvaluationError, authorizer_values, compile_expression
from .interfaces import Attributes, Handler, Lister
from .webhook import hooks, review

PLUGIN_NAME = "ValidatingAdmissionPolicy"
_NAMESPACES = REGISTRY.core("namespaces")
_CODES = {"Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}
_AUDIT_KEY = "validation.policy.admission.k8s.io/validation_failure"


POLICIES = hooks.admission_info("validatingadmissionpolicies")
BINDINGS = hooks.admission_info("validatingadmissionpolicybindings")


def _rule_matches(rule: dict[str, Any], attrs: Attributes, info: ResourceInfo) -> bool:
    names = rule.get("resourceNames")
    if names and attrs.name not in names:
        return False
    return hooks.rule_matches(rule, attrs, info)


def matches(
    match: dict[str, Any], attrs: Attributes, ns_labels: dict[str, str] | None
) -> ResourceInfo | None:
    """``MatchResources``: the resource rules (none: every resource, as a binding's) less
    the excluded ones, and the namespace and object selectors (``ns_labels``: from
    :func:`hooks.namespace_labels`). The resource version the policy sees the request in
    (under ``matchPolicy: Equivalent`` another served version of the resource may match);
    None when it does not match."""
    included = match.get("resourceRules") or ()
    equivalent = hooks.is_equivalent(match)
    seen_as = (
        hooks.invocation(included, attrs, equivalent, _rule_matches) if included else attrs.info
    )
    if seen_as is None:
        return None
    excluded = match.get("excludeResourceRules")
    if excluded and hooks.invocation(excluded, attrs, equivalent, _rule_matches) is not None:
        return None
    ok = hooks.selectors_match(
        hooks.parse_selector(match.get("namespaceSelector")),
        hooks.parse_selector(match.get("objectSelector")),
        attrs,
        ns_labels,
    )
    return seen_as if ok else None


@dataclass(slots=True)
class _Failure:
    """A validation that failed (or could not be evaluated, under ``Fail``)."""

    message: str
    reason: str


class _NotFound(Exception):
    pass


class _Evaluation:
    """One policy on one request and parameter: its variables, evaluated as asked."""

    def __init__(self, spec: dict[str, Any], values: dict[str, Any], params: bool) -> None:
        self.spec, self.values, self.params = spec, values, params
        self.fail_closed = spec.get("failurePolicy") != "Ignore"
        variables: dict[str, Any] = {}
        values["variables"] = variables
        for var in spec.get("variables") or ():
            try:
                variables[var["name"]] = self.eval(var["expression"], "dyn")
            except EvaluationError:
                variables[var["name"]] = None  # kube evaluates lazily: an unused error is none

    def eval(self, text: str, want: str) -> Any:
        expr = compile_expression(text.strip(), want=want, params=self.params, variables=True)
        if expr.program is None:
            raise EvaluationError(expr.error)
        return expr.evaluate(self.values, params=self.params, variables=True)

    def matched(self) -> bool | _Failure:
        for mc in self.spec.get("matchConditions") or ():
            try:
                result = self.eval(mc["expression"], "bool")
            except EvaluationError as e:
                if self.fail_closed:
                    return _Failure(
                        f"failed to evaluate match condition {mc['name']}: {e}", "Invalid"
                    )
                return False
            if result is False:
                return False
        return True

    def failures(self) -> list[_Failure]:
        out: list[_Failure] = []
        for v in self.spec.get("validations") or ():
            text = str(v.get("expression") or "")
            try:
                ok = self.eval(text, "bool")
            except EvaluationError as e:
                if self.fail_closed:
                    out.append(_Failure(f"expression '{text}' resulted in error: {e}", "Invalid"))
                continue
            if ok is True:
                continue
            out.append(_Failure(self._message(v, text), str(v.get("reason") or "Invalid")))
        return out

    def _message(self, v: dict[str, Any], text: str) -> str:
        if v.get("messageExpression"):
            try:
                message = self.eval(v["messageExpression"], "string")
                if isinstance(message, str) and message.strip() and "\n" not in message:
                    return message.strip()
            except EvaluationError:
                pass
        return str(v.get("message") or "").strip() or f"failed expression: {text.strip()}"

    def audit_annotations(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for a in self.spec.get("auditAnnotations") or ():
            try:
                value = self.eval(a["valueExpression"], "dyn")
            except EvaluationError:
                continue
            if value is not None:
                out[a["key"]] = str(value)
        return out


class ValidatingAdmissionPolicy(Handler):
    name = PLUGIN_NAME

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def validate(self, attrs: Attributes) -> None:
        if hooks.exempt(attrs):
            return
        bindings = self.lister.list(BINDINGS)
        if not bindings:
            return
        policies = {p["metadata"]["name"]: p for p in self.lister.list(POLICIES)}
        ns_labels = await hooks.namespace_labels(self.lister, attrs)
        # The CEL variables per version the request is seen in, made at the first match.
        seen: dict[ResourceInfo, tuple[Attributes, dict[str, Any]]] = {}
        for binding in sorted(bindings, key=lambda b: b["metadata"]["name"]):
            policy = policies.get((binding.get("spec") or {}).get("policyName"))
            if policy is None:
                continue
            pspec, bspec = policy.get("spec") or {}, binding.get("spec") or {}
            seen_as = matches(pspec.get("matchConstraints") or {}, attrs, ns_labels)
            if seen_as is None:
                continue
            if bspec.get("matchResources") and not matches(
                bspec["matchResources"], attrs, ns_labels
            ):
                continue
            if seen_as not in seen:
                view = await hooks.versioned(attrs, seen_as, self.lister)
                seen[seen_as] = view, await self._values(view)
            await self._check(policy, binding, *seen[seen_as])

    async def _check(
        self,
        policy: dict[str, Any],
        binding: dict[str, Any],
        attrs: Attributes,
        base: dict[str, Any],
    ) -> None:
        pspec, bspec = policy.get("spec") or {}, binding.get("spec") or {}
        params_kind = pspec.get("paramKind")
        try:
            params = await self._params(params_kind, bspec.get("paramRef"), attrs)
        except _NotFound as e:
            self._act(policy, binding, attrs, [_Failure(str(e), "Invalid")])
            return
        failures: list[_Failure] = []
        for param in params:
            ev = _Evaluation(pspec, {**base, "params": param}, params_kind is not None)
            matched = ev.matched()
            if isinstance(matched, _Failure):
                failures.append(matched)
                continue
            if not matched:
                continue
            failures.extend(ev.failures())
            if attrs.audit_annotations is not None:
                for key, value in ev.audit_annotations().items():
                    attrs.audit_annotations[f"{policy['metadata']['name']}/{key}"] = value
        if failures:
            self._act(policy, binding, attrs, failures)

    async def _values(self, attrs: Attributes) -> dict[str, Any]:
        namespace = None
        if attrs.namespace:
            namespace = await self.lister.get(_NAMESPACES, None, attrs.namespace)
        return {
            "object": attrs.obj,
            "oldObject": attrs.old,
            "request": review.request(attrs),
            "namespaceObject": namespace,
            **authorizer_values(attrs),
        }

    async def _params(self, kind: Any, ref: Any, attrs: Attributes) -> list[dict[str, Any] | None]:
        """The parameter objects the binding names (``[None]`` without a paramKind)."""
        if not isinstance(kind, dict):
            return [None]
        not_found = "no params found for policy binding with `Deny` parameterNotFoundAction"
        group, _, version = str(kind.get("apiVersion") or "").rpartition("/")
        info = REGISTRY.by_gvk(group, version, str(kind.get("kind") or ""))
        if info is None or not isinstance(ref, dict):
            raise _NotFound(f"failed to configure binding: {kind.get('kind')} is not served")
        namespace = ref.get("namespace") or (attrs.namespace if info.namespaced else None)
        if ref.get("name"):
            found = await self.lister.get(info, namespace, ref["name"])
            params = [found] if found is not None else []
        else:
            selector = hooks.parse_selector(ref.get("selector"))
            params = [
                p
                for p in self.lister.list(info)
                if (not info.namespaced or p["metadata"].get("namespace") == namespace)
                and selector.matches(p["metadata"].get("labels") or {})
            ]
        if not params:
            if ref.get("parameterNotFoundAction") == "Allow":
                return []
            raise _NotFound(not_found)
        return params

    def _act(
        self,
        policy: dict[str, Any],
        binding: dict[str, Any],
        attrs: Attributes,
        failures: list[_Failure],
    ) -> None:
        pname, bname = policy["metadata"]["name"], binding["metadata"]["name"]
        actions = (binding.get("spec") or {}).get("validationActions") or []
        if "Audit" in actions and attrs.audit_annotations is not None:
            attrs.audit_annotations[_AUDIT_KEY] = json.dumps(
                [
                    {"message": f.message, "policy": pname, "binding": bname,
                     "expressionIndex": i, "validationActions": actions}
                    for i, f in enumerate(failures)
                ],
                separators=(",", ":"),
            )  # fmt: skip
        if "Warn" in actions and attrs.warnings is not None:
            attrs.warnings.extend(
                f"Validation failed for ValidatingAdmissionPolicy '{pname}' with binding "
                f"'{bname}': {f.message}"
                for f in failures
            )
        if "Deny" in actions:
            first = failures[0]
            message = (
                f"ValidatingAdmissionPolicy '{pname}' with binding '{bname}' denied request: "
                f"{first.message}"
            )
            resource = attrs.info.qualified
            err = errors.ApiError(
                _CODES.get(first.reason, 422),
                first.reason,  # type: ignore[arg-type]
                f'{resource} "{attrs.name}" is forbidden: {message}',
                kind=attrs.info.plural,
                name=attrs.name,
                group=attrs.info.group,
            )
            err.causes = [errors.Cause("", message, "")]
            raise err
