"""The webhooks admission calls, as kube's ``configuration`` and ``generic`` packages
(``k8s.io/apiserver/pkg/admission/plugin/webhook``): every configuration of one kind in
the watch cache, compiled once per change (selectors, match conditions), in name order;
and whether one webhook applies to a request (rules with scope, namespace and object
selectors, match conditions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from skiff.api import errors
from skiff.api.resources import REGISTRY, ResourceInfo
from skiff.api.selectors import LabelSelector, selector_from_dict

from ... import conversion
from ..cel import EvaluationError, Expression, compile_expression
from ..interfaces import Attributes, Lister

ADMISSION_GROUP = "admissionregistration.k8s.io"
_NAMESPACES = REGISTRY.core("namespaces")


@dataclass(slots=True)
class Hook:
    """One webhook of a configuration, ready to match."""

    configuration: str
    index: int
    """The webhook's place among every webhook of its kind (kube's invocation index)."""
    spec: dict[str, Any]
    namespace_selector: LabelSelector
    object_selector: LabelSelector
    conditions: list[tuple[str, Expression]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "")

    @property
    def ignores_failures(self) -> bool:
        return self.spec.get("failurePolicy") == "Ignore"

    @property
    def timeout(self) -> int:
        t = self.spec.get("timeoutSeconds")
        return t if isinstance(t, int) and t > 0 else 10

    @property
    def reinvoke(self) -> bool:
        return self.spec.get("reinvocationPolicy") == "IfNeeded"

    @property
    def dry_run_safe(self) -> bool:
        return self.spec.get("sideEffects") in ("None", "NoneOnDryRun")


def admission_info(plural: str) -> ResourceInfo:
    """An admissionregistration.k8s.io/v1 resource."""
    info = REGISTRY.by_path(ADMISSION_GROUP, "v1", plural)
    assert info is not None
    return info


def parse_selector(raw: Any) -> LabelSelector:
    """A label selector of a configuration (``{}`` when absent; one that does not parse,
    which validation refuses, matches nothing)."""
    try:
        return selector_from_dict(raw if isinstance(raw, dict) else {})
    except errors.ApiError:
        return LabelSelector.nothing()


def _compile(configuration: dict[str, Any]) -> list[Hook]:
    name = configuration["metadata"]["name"]
    out = []
    for spec in configuration.get("webhooks") or ():
        conditions = [
            (str(mc.get("name") or ""), compile_expression(str(mc.get("expression") or "").strip()))
            for mc in spec.get("matchConditions") or ()
            if isinstance(mc, dict)
        ]
        out.append(
            Hook(
                name,
                0,
                spec,
                parse_selector(spec.get("namespaceSelector")),
                parse_selector(spec.get("objectSelector")),
                conditions,
            )
        )
    return out


class HookSource:
    """The webhooks of every configuration of ``info`` in the cache, sorted by
    configuration name (kube's ``sort.Sort(WebhookAccessorsByName)``)."""

    def __init__(self, lister: Lister, info: ResourceInfo) -> None:
        self.lister = lister
        self.info = info
        self._generation = -1
        self._hooks: list[Hook] = []

    def hooks(self) -> list[Hook]:
        cache = getattr(self.lister, "cache", None)
        generation = cache.of(self.info).generation if cache is not None else None
        if generation is None or generation != self._generation:
            configurations = sorted(
                self.lister.list(self.info), key=lambda c: c["metadata"]["name"]
            )
            self._hooks = [h for c in configurations for h in _compile(c)]
            for i, h in enumerate(self._hooks):
                h.index = i
            self._generation = generation if generation is not None else -1
        return self._hooks


# -- matching ----------------------------------------------------------------------------


def exempt(attrs: Attributes) -> bool:
    """Requests on webhook configurations and admission policies never go to webhooks
    (``IsExemptAdmissionConfigurationResource``), so that a broken webhook cannot lock
    them out."""
    return attrs.info.group == ADMISSION_GROUP


def _listed(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_listed(resources: Any, resource: str, subresource: str) -> bool:
    for entry in resources if isinstance(resources, list) else ():
        res, _, sub = str(entry).partition("/")
        if (res == "*" or res == resource) and (sub == "*" or sub == subresource):
            return True
    return False


def _scope_matches(scope: Any, attrs: Attributes) -> bool:
    if scope in (None, "*"):
        return True
    is_namespace = attrs.info.group == "" and attrs.info.plural == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and bool(attrs.namespace)
    if scope == "Cluster":
        return is_namespace or not attrs.namespace
    return False


def rule_matches(rule: dict[str, Any], attrs: Attributes, info: ResourceInfo) -> bool:
    """``rules.Matcher.Matches`` of ``attrs`` as a request for ``info`` (its own resource
    version, or an equivalent one): operation, group, version, resource/subresource,
    scope."""
    return (
        _listed(rule.get("operations"), attrs.operation.value)
        and _listed(rule.get("apiGroups"), info.group)
        and _listed(rule.get("apiVersions"), info.version)
        and _resource_listed(rule.get("resources"), info.plural, attrs.subresource)
        and _scope_matches(rule.get("scope"), attrs)
    )


Matcher = Callable[[dict[str, Any], Attributes, ResourceInfo], bool]


def invocation(
    rules: Any, attrs: Attributes, equivalent: bool, match: Matcher = rule_matches
) -> ResourceInfo | None:
    """The resource version a webhook or policy with ``rules`` sees the request in: the
    request's own when a rule matches it; else, under ``matchPolicy: Equivalent``, the
    first other served version of the same resource that a rule matches (rules in order,
    as kube's dispatcher tries them); None when it does not apply."""
    rules = [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []
    asked = attrs.requested
    if any(match(r, attrs, asked) for r in rules):
        return asked
    if not equivalent:
        return None
    others = [
        r
        for r in REGISTRY.resources
        if r.group == asked.group and r.plural == asked.plural and r is not asked
    ]
    for rule in rules:
        for other in others:
            if match(rule, attrs, other):
                return other
    return None


async def versioned(attrs: Attributes, info: ResourceInfo, lister: Lister) -> Attributes:
    """``attrs`` as a request for ``info`` (kube's ``VersionedAttributes``): the objects
    converted to its version; ``attrs`` itself when they are in it already."""
    if info is attrs.info:
        return attrs
    obj = await conversion.aconvert(attrs.obj, info, lister) if attrs.obj is not None else None
    old = await conversion.aconvert(attrs.old, info, lister) if attrs.old is not None else None
    return dataclasses.replace(attrs, info=info, obj=obj, old=old, request_info=attrs.requested)


def is_equivalent(spec: dict[str, Any]) -> bool:
    """``matchPolicy`` is ``Equivalent`` (v1's default) rather than ``Exact``."""
    return spec.get("matchPolicy", "Equivalent") != "Exact"


def _labels(obj: dict[str, Any] | None) -> dict[str, str] | None:
    if obj is None:
        return None
    return (obj.get("metadata") or {}).get("labels") or {}


async def namespace_labels(lister: Lister, attrs: Attributes) -> dict[str, str] | None:
    """The labels a namespaceSelector is matched against: the namespace object's own for a
    request on a namespace, else the request namespace's (None: cluster-scoped, where
    every namespaceSelector matches)."""
    info = attrs.info
    if info.group == "" and info.plural == "namespaces" and not attrs.subresource:
        return _labels(attrs.obj if attrs.obj is not None else attrs.old) or {}
    if not attrs.namespace:
        return None
    namespace = await lister.get(_NAMESPACES, None, attrs.namespace)
    return _labels(namespace) or {}


def selectors_match(
    namespace_selector: LabelSelector,
    object_selector: LabelSelector,
    attrs: Attributes,
    ns_labels: dict[str, str] | None,
) -> bool:
    """The namespace selector (on the namespace's labels, see :func:`namespace_labels`) and
    the object selector (on the new or the old object's labels)."""
    if ns_labels is not None and not namespace_selector.matches(ns_labels):
        return False
    if object_selector.empty:
        return True
    return any(
        labels is not None and object_selector.matches(labels)
        for labels in (_labels(attrs.obj), _labels(attrs.old))
    )


class MatchConditionError(Exception):
    """A match condition failed to evaluate (the webhook's failure policy decides)."""


def conditions_match(hook: Hook, values: dict[str, Any]) -> bool:
    """Whether every match condition is true (kube stops at the first false one; an error
    is reported only when no condition is false)."""
    failures: list[str] = []
    for name, expr in hook.conditions:
        if expr.program is None:
            failures.append(f"{name}: {expr.error}")
            continue
        try:
            result = expr.evaluate(values)
        except EvaluationError as e:
            failures.append(f"{name}: {e}")
            continue
        if result is not True:
            if isinstance(result, bool):
                return False
            failures.append(f"{name}: expression must evaluate to bool")
    if failures:
        raise MatchConditionError("; ".join(failures))
    return True
