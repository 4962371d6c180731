"""``x-kubernetes-validations``: CEL rules of custom resource schemas, as Kubernetes 1.32
compiles and evaluates them (apiextensions-apiserver's ``schema/cel``).

- :func:`node_rules` compiles a node's rules once: type-checked against the node's schema
  (:mod:`.celtypes`, :mod:`.celenv`), then compiled again, unchecked, for the runtime;
- :class:`NodeRules` evaluates them on a value: ``self`` is the value (``oldSelf`` the old one on
  updates), and a rule that does not hold becomes kube's field error (``spec: Invalid value:
  "object": failed rule: ...``, or its ``message``, ``messageExpression``, ``reason`` and
  ``fieldPath``);
- :func:`validate` walks an object with kube's correlation of old values (by field, and by key in
  ``x-kubernetes-list-type: map`` lists) and ratcheting (errors of rules without ``oldSelf`` on
  unchanged values are dropped; kube turns them into warnings);
- :func:`rule_errors` is what CRD validation reports for rules that do not compile.

Cost: each rule is bounded before it runs (:mod:`.celcost`) against kube's per-call limit and
per-object budget, with kube's messages when exceeded. cel-cpp also stops any evaluation after
10,000 comprehension iterations (a limit cel-expr-python does not let us change), which is
reported as the per-call limit: kube, counting cost instead, lets somewhat more through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from skiff.api.errors import Cause
from skiff.apiserver.validation import FORBIDDEN, REQUIRED, forbidden, required

from . import celcost
from .celenv import RUNTIME, compile_error, runtime_error
from .celtypes import Converter, SchemaTypes
from .crvalues import duplicate, go_quote, invalid
from .fieldpath import resolve_field_path

__all__ = [
    "MISSING",
    "NodeRules",
    "Rule",
    "blocking_error",
    "has_rules",
    "node_rules",
    "rule_errors",
    "validate",
]

MISSING: Any = object()
"""No old value (create, or nothing correlates)."""
_MESSAGE_LIMIT = 5 * 1024  # celconfig.MaxEvaluatedMessageExpressionSizeBytes
_CRUDE_LIMIT = 100_000
"""Below this, a comprehension's crude bound is charged as it is (see :meth:`Rule.cost`)."""
_OUT_OF_BUDGET = (
    "validation failed due to running out of cost budget, no further validation rules will be run"
)
_BLOCKED = (
    "some validation rules were not checked because the object was invalid; correct the "
    "existing errors to complete validation"
)
_BLOCKING = frozenset(
    {"FieldValueNotSupported", REQUIRED, "FieldValueTooLong", "FieldValueTooMany"}
    | {"FieldValueTypeInvalid"}
)
_MESSAGE_OUT_OF_BUDGET = (
    "messageExpression evaluation failed due to running out of cost budget, no further "
    "validation rules will be run"
)
_ITERATIONS = "Iteration budget exceeded"  # cel-cpp's message
_OPTIONAL_OLD = "cel.bind(oldSelf, __hasOldSelf ? optional.of(oldSelf) : optional.none(), ({}))"
"""How a rule with ``optionalOldSelf`` runs: cel-expr-python cannot pass optional values in."""


class _Program:
    """A runtime program and what bounds its cost (its checked AST)."""

    __slots__ = ("ast", "depth", "nodes", "program")

    def __init__(self, checked: Any, runtime_text: str) -> None:
        self.ast = celcost.decode(checked.serialize())[0]
        self.nodes, self.depth = celcost.node_count(self.ast), celcost.depth(self.ast)
        self.program = RUNTIME.compile(runtime_text, disable_check=True)

    def eval(self, activation: Any) -> Any:
        return self.program.eval(activation)

    def cost(self, variables: dict[str, Any], sizes: list[int]) -> int:
        """A bound of the program's cost on ``variables``: its node count without
        comprehensions; else, while small, each node iterated over the largest collection in
        the input per nesting level (``sizes`` caches that size across a node's rules), and
        past that :func:`.celcost.estimate`."""
        if not self.depth:
            return self.nodes
        if not sizes:
            sizes.append(max(celcost.max_size(v) for v in variables.values()))
        crude = self.nodes * (sizes[0] + 1) ** (self.depth + 1)
        return crude if crude <= _CRUDE_LIMIT else celcost.estimate(self.ast, variables)


@dataclass
class Rule:
    """One compiled rule. ``error``/``message_error`` are kube's compile error details."""

    spec: dict[str, Any]
    program: _Program | None = None
    message: _Program | None = None
    uses_old: bool = False
    field_path: str = ""
    error: str = ""
    message_error: str = ""

    @property
    def text(self) -> str:
        return str(self.spec.get("rule") or "")

    @property
    def optional_old(self) -> bool:
        return self.spec.get("optionalOldSelf") is True

    @property
    def shown(self) -> str:
        """``ruleErrorString``: the rule's message, else the rule."""
        message = str(self.spec.get("message") or "").strip()
        return message or self.text.strip()

    def default_message(self) -> str:
        message = str(self.spec.get("message") or "").strip()
        return message or f"failed rule: {self.text.strip()}"


def _checked(env: Any, text: str, want: Any, kind: str) -> tuple[Any, str]:
    """Type-check ``text``: (checked expression, "") or (None, kube's error detail)."""
    prefix = "messageExpression " if kind == "message" else ""
    try:
        checked = env.compile(text)
    except RuntimeError as e:
        return None, f"{prefix}compilation failed: {compile_error(e)}"
    if checked.return_type() != want:
        if kind == "message":
            return None, "messageExpression must evaluate to a string"
        return None, "cel expression must evaluate to a bool"
    return checked, ""


def _compile(spec: dict[str, Any], env: Any, schema: dict[str, Any]) -> Rule:
    rule = Rule(spec)
    text = rule.text
    if not text.strip():
        return rule  # kube compiles nothing and reports the empty rule elsewhere
    checked, rule.error = _checked(env, text, cel.Type.BOOL, "rule")
    if checked is None:
        return rule
    rule.uses_old = "oldSelf" in celcost.decode(checked.serialize())[1]
    rule.program = _Program(checked, _OPTIONAL_OLD.format(text) if rule.optional_old else text)
    if expression := str(spec.get("messageExpression") or ""):
        checked, rule.message_error = _checked(env, expression, cel.Type.STRING, "message")
        if checked is not None:
            rule.message = _Program(checked, expression)
    if field_path := str(spec.get("fieldPath") or ""):
        rule.field_path = resolve_field_path(field_path, schema)[0]
    return rule


def _specs(sch: dict[str, Any]) -> list[dict[str, Any]]:
    rules = sch.get("x-kubernetes-validations")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def has_rules(sch: Any) -> bool:
    """Whether a schema holds ``x-kubernetes-validations`` anywhere (kube's ``hasXValidations``,
    with ``allOf`` too)."""
    if not isinstance(sch, dict):
        return False
    if _specs(sch):
        return True
    below = [sch.get("items"), sch.get("additionalProperties"), *(sch.get("allOf") or [])]
    below += list((sch.get("properties") or {}).values())
    return any(has_rules(x) for x in below)


def _compile_all(
    types: SchemaTypes, sch: dict[str, Any], resource: bool, specs: list[dict[str, Any]]
) -> list[Rule]:
    envs = {opt: types.env(sch, resource, opt) for opt in (False, True)}
    return [_compile(spec, envs[spec.get("optionalOldSelf") is True], sch) for spec in specs]


def node_rules(types: SchemaTypes, sch: dict[str, Any], resource: bool) -> NodeRules | None:
    """The rules of node ``sch`` (``resource``: a resource root) and of its ``allOf``,
    compiled against the node's type; ``None`` without rules, or where ``self`` has no CEL
    type (kube leaves such fields out of CEL validation)."""
    specs = _specs(sch)
    for sub in sch.get("allOf") or []:
        specs += _specs(sub) if isinstance(sub, dict) else []
    if not specs or types.env(sch, resource, False) is None:
        return None
    rules = _compile_all(types, sch, resource, specs)
    return NodeRules(rules, types.converter(sch, resource), str(sch.get("type") or ""))


# --- evaluation ---


class _Run:
    """One validation: the errors so far and the cost budget left (negative: stopped)."""

    __slots__ = ("budget", "errs")

    def __init__(self) -> None:
        self.errs: list[Cause] = []
        self.budget = celcost.RUNTIME_BUDGET


def _detail_error(reason: str | None, fp: str, type_name: str, detail: str) -> Cause:
    """``fieldErrorForReason`` (1.32 shows the schema type as the value)."""
    if reason == FORBIDDEN:
        return forbidden(fp, detail)
    if reason == REQUIRED:
        return required(fp, detail)
    if reason == "FieldValueDuplicate":
        return duplicate(fp, type_name)
    return invalid(fp, type_name, detail)


class NodeRules:
    """The compiled rules of one schema node (its own and its ``allOf``'s) and how its value
    becomes ``self``."""

    __slots__ = ("convert", "rules", "type_name")

    def __init__(self, rules: list[Rule], convert: Converter, type_name: str) -> None:
        self.rules, self.convert, self.type_name = rules, convert, type_name

    def _value(self, v: Any) -> Any:
        return v if self.convert is None or v is None else self.convert(v)

    def evaluate(self, v: Any, old: Any, fp: str, run: _Run, ratchet: Callable[[], bool]) -> None:
        """``validateExpressions`` for value ``v`` (not null) at field path ``fp``."""
        field, type_name = fp or "<nil>", self.type_name
        if run.budget <= 0:
            run.errs.append(invalid(field, type_name, _OUT_OF_BUDGET))
            run.budget = -1
            return
        has_old = old is not MISSING and old is not None
        variables = {"self": self._value(v), "oldSelf": self._value(old) if has_old else None}
        activation = RUNTIME.Activation({**variables, "__hasOldSelf": has_old})
        sizes: list[int] = []
        for rule in self.rules:
            if rule.error:
                run.errs.append(invalid(field, type_name, f"rule compile error: {rule.error}"))
                continue
            if rule.program is None or (rule.uses_old and not has_old and not rule.optional_old):
                continue  # empty, or a transition rule without an old value
            cost = rule.program.cost(variables, sizes)
            if cost > celcost.PER_CALL_LIMIT:
                run.errs.append(invalid(field, type_name, _cost_exceeded(rule)))
                run.budget = -1
                return
            if cost > run.budget:
                run.errs.append(invalid(field, type_name, _OUT_OF_BUDGET))
                run.budget = -1
                return
            run.budget -= cost
            try:
                result = rule.program.eval(activation)
            except RuntimeError as e:  # cel-cpp's own guard: 10,000 iterations per evaluation
                if _ITERATIONS not in str(e):
                    run.errs.append(invalid(field, type_name, _eval_error(str(e), rule)))
                    continue
                run.errs.append(invalid(field, type_name, _cost_exceeded(rule)))
                run.budget = -1
                return
            if result.type() == cel.Type.ERROR:
                run.errs.append(invalid(field, type_name, _eval_error(result.value(), rule)))
                continue
            if result.value() is True:
                continue
            at = fp if not rule.field_path else f"{fp}.{rule.field_path}" if fp else rule.field_path
            detail = self._message(rule, activation, variables, run)
            if detail is None:
                error = invalid(at or "<nil>", type_name, _MESSAGE_OUT_OF_BUDGET)
            else:
                error = _detail_error(rule.spec.get("reason"), at or "<nil>", type_name, detail)
            if rule.uses_old or not ratchet():
                run.errs.append(error)
            if detail is None:
                run.budget = -1
                return

    def _message(
        self, rule: Rule, activation: Any, variables: dict[str, Any], run: _Run
    ) -> str | None:
        """The failure's detail: ``messageExpression``'s value, else the message or the
        default (``None``: the budget ran out)."""
        if rule.message is None:
            return rule.default_message()
        cost = rule.message.cost(variables, [])
        if cost > run.budget or cost > celcost.PER_CALL_LIMIT:
            return None
        run.budget -= cost
        try:
            result = rule.message.eval(activation)
        except RuntimeError:
            return rule.default_message()
        value = result.value() if result.type() == cel.Type.STRING else None
        if not isinstance(value, str):
            return rule.default_message()
        value = value.strip()
        if not value or len(value.encode()) > _MESSAGE_LIMIT or "\n" in value:
            return rule.default_message()
        return value


def _cost_exceeded(rule: Rule) -> str:
    return (
        "'operation cancelled: actual cost limit exceeded': no further validation rules will "
        f"be run due to call cost exceeds limit for rule: {rule.shown}"
    )


def _eval_error(text: str, rule: Rule) -> str:
    error = runtime_error(text)
    if error.startswith("no such overload"):
        return (
            f"'{error}': call arguments did not match a supported operator, function or macro "
            f"signature for rule: {rule.shown}"
        )
    return f"{error} evaluating rule: {rule.shown}"


# --- the walk over an object ---

Equal = Callable[[Any, Any, Any], bool]
OldItems = Callable[[Any, list[Any], Any], list[Any] | None]


@dataclass
class _Walk:
    run: _Run
    equal: Equal
    old_items: OldItems


def validate(
    root: Any, obj: dict[str, Any], old: Any, equal: Equal, old_items: OldItems
) -> list[Cause]:
    """Evaluate every rule under ``root`` (a compiled schema node with ``cel``, ``cel_below``,
    ``props``, ``additional`` and ``items``) on ``obj``; ``old`` is :data:`MISSING` on create.
    ``equal`` and ``old_items`` are the schema's deep equality and list-map correlation."""
    walk = _Walk(_Run(), equal, old_items)
    _walk(walk, root, obj, old, "", old, None)
    return walk.run.errs


def _walk(w: _Walk, n: Any, v: Any, old: Any, fp: str, corr: Any, near: Any) -> None:
    """Rules at node ``n`` and below. ``corr`` is the old value correlated for ratcheting
    (:data:`MISSING` if none) and ``near`` the nearest correlated ancestor's (node, value,
    old)."""
    if v is None or w.run.budget < 0:
        return
    if n.cel is not None:

        def ratchet() -> bool:
            if corr is not MISSING:
                return w.equal(n, v, corr)
            return near is not None and w.equal(*near)

        n.cel.evaluate(v, old, fp, w.run, ratchet)
    here = (n, v, corr) if corr is not MISSING else near
    if type(v) is dict:
        old_map = old if type(old) is dict else {}
        corr_map = corr if type(corr) is dict else None
        props = n.props or {}
        for k, x in v.items():
            c = props.get(k) or n.additional
            if c is None or not c.cel_below:
                continue
            child = (f"{fp}.{k}" if fp else k) if k in props else f"{fp}[{k}]"
            if corr is MISSING:
                sub_corr, sub_near = MISSING, near
            elif near is None and not fp and k in ("apiVersion", "kind"):
                sub_corr, sub_near = MISSING, None  # converted to one version: never ratchet
            else:
                sub_corr = corr_map.get(k, MISSING) if corr_map is not None else MISSING
                sub_near = here
            _walk(w, c, x, old_map.get(k, MISSING), child, sub_corr, sub_near)
            if w.run.budget < 0:
                return
    elif type(v) is list and n.items is not None and n.items.cel_below:
        olds = w.old_items(n, v, old) if old is not MISSING else None
        corrs = w.old_items(n, v, corr) if corr is not MISSING else None
        for i, x in enumerate(v):
            sub_corr = corrs[i] if corrs else MISSING
            sub_near = here if corr is not MISSING else near
            _walk(w, n.items, x, olds[i] if olds else MISSING, f"{fp}[{i}]", sub_corr, sub_near)
            if w.run.budget < 0:
                return


def blocking_error(errs: list[Cause]) -> Cause | None:
    """``hasBlockingErr``: schema errors that keep the rules from running, reported as one."""
    if any(c.reason in _BLOCKING for c in errs):
        return invalid("<nil>", "null", _BLOCKED)
    return None


# --- CRD validation ---


def _go_rule(spec: dict[str, Any]) -> str:
    """A rule as Go prints an ``apiextensions.ValidationRule`` with ``%#v``."""

    def s(name: str) -> str:
        return go_quote(str(spec.get(name) or ""))

    reason = "(*apiextensions.FieldValueErrorReason)(nil)"
    if spec.get("reason") is not None:
        reason = "(*apiextensions.FieldValueErrorReason)(0xc000000000)"
    optional = "(*bool)(nil)" if spec.get("optionalOldSelf") is None else "(*bool)(0xc000000000)"
    return (
        f"apiextensions.ValidationRule{{Rule:{s('rule')}, Message:{s('message')}, "
        f"MessageExpression:{s('messageExpression')}, Reason:{reason}, "
        f"FieldPath:{s('fieldPath')}, OptionalOldSelf:{optional}}}"
    )


def rule_errors(
    types: SchemaTypes, sch: dict[str, Any], resource: bool, path: str, uncorrelatable: str
) -> list[Cause]:
    """What CRD validation says of node ``sch``'s rules at ``path`` (the schema node's field
    path): compile errors, and ``oldSelf`` where old values cannot be correlated
    (``uncorrelatable``: the list above, or "")."""
    specs = _specs(sch)
    if not specs:
        return []
    base = f"{path}.x-kubernetes-validations"
    if types.env(sch, resource, False) is None:
        msg = "Internal error: failed to convert to declType for CEL validation rules"
        return [Cause(base, msg, "InternalError")]
    errs = []
    for i, rule in enumerate(_compile_all(types, sch, resource, specs)):
        at, shown = f"{base}[{i}]", _go_rule(rule.spec)
        if rule.error:
            msg = f"Invalid value: {shown}: {rule.error}"
            errs.append(Cause(f"{at}.rule", msg, "FieldValueInvalid"))
        if rule.message_error:
            msg = f"Invalid value: {shown}: {rule.message_error}"
            errs.append(Cause(f"{at}.messageExpression", msg, "FieldValueInvalid"))
        if rule.uses_old and uncorrelatable:
            detail = "oldSelf cannot be used on the uncorrelatable portion of the schema within "
            errs.append(invalid(f"{at}.rule", rule.text, detail + uncorrelatable))
        elif not rule.uses_old and rule.spec.get("optionalOldSelf") is not None:
            detail = "may not be set if oldSelf is not used in rule"
            errs.append(invalid(f"{at}.optionalOldSelf", rule.spec["optionalOldSelf"], detail))
    return errs
