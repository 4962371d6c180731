"""Mutating- and ValidatingWebhookConfigurations (kube's
``pkg/registry/admissionregistration`` and its validation): v1 defaults, then every
webhook's name, rules, policies, selectors, client config, review versions and match
conditions, with the relaxations an update of an older object gets."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import Cause
from skiff.api.names import is_dns1035_label

from ...validation import invalid, label_selector, not_supported, required
from ..strategy import Obj, Strategy
from . import clientconfig, rules

SIDE_EFFECTS = ["None", "NoneOnDryRun", "Some", "Unknown"]
NO_SIDE_EFFECTS = ["None", "NoneOnDryRun"]
REINVOCATION_POLICIES = ["IfNeeded", "Never"]
REVIEW_VERSIONS = ["v1", "v1beta1"]


def _webhooks(obj: Obj) -> list[dict[str, Any]]:
    hooks = obj.get("webhooks")
    return [h for h in hooks if isinstance(h, dict)] if isinstance(hooks, list) else []


def default_webhook(hook: dict[str, Any], mutating: bool) -> None:
    """``SetDefaults_{Validating,Mutating}Webhook``, ``SetDefaults_Rule`` and
    ``SetDefaults_ServiceReference``."""
    for key, value in (
        ("failurePolicy", "Fail"),
        ("matchPolicy", "Equivalent"),
        ("namespaceSelector", {}),
        ("objectSelector", {}),
        ("timeoutSeconds", 10),
    ):
        if hook.get(key) is None:
            hook[key] = value
    if mutating and hook.get("reinvocationPolicy") is None:
        hook["reinvocationPolicy"] = "Never"
    rules.default_rules(hook.get("rules"))
    service = (hook.get("clientConfig") or {}).get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


def _review_versions(versions: Any, path: str, require_known: bool) -> list[Cause]:
    listed = rules.strings(versions)
    if not listed:
        return [required(path, f"must specify one of {', '.join(REVIEW_VERSIONS)}")]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, v in enumerate(listed):
        if v in seen:
            causes.append(invalid(f"{path}[{i}]", v, "duplicate version"))
            continue
        seen.add(v)
        causes.extend(invalid(f"{path}[{i}]", v, m) for m in is_dns1035_label(v))
    if require_known and not seen & set(REVIEW_VERSIONS):
        causes.append(
            invalid(path, listed, f"must include at least one of {', '.join(REVIEW_VERSIONS)}")
        )
    return causes


class _Options:
    """What an update of an older object relaxes (kube's ``validationOptions``)."""

    def __init__(self, old: Obj | None, new: Obj) -> None:
        hooks = _webhooks(old) if old is not None else None
        self.ignore_match_conditions = hooks is not None and [
            h.get("matchConditions") for h in hooks
        ] == [h.get("matchConditions") for h in _webhooks(new)]
        self.require_no_side_effects = hooks is None or all(
            h.get("sideEffects") in NO_SIDE_EFFECTS for h in hooks
        )
        self.require_known_versions = hooks is None or all(
            not rules.strings(h.get("admissionReviewVersions"))
            or set(rules.strings(h.get("admissionReviewVersions"))) & set(REVIEW_VERSIONS)
            for h in hooks
        )
        names = [h.get("name") for h in hooks or ()]
        self.require_unique_names = hooks is None or len(names) == len(set(names))


def _webhook(hook: dict[str, Any], path: str, mutating: bool, opts: _Options) -> list[Cause]:
    causes = rules.fully_qualified_name(str(hook.get("name") or ""), f"{path}.name")
    for i, rule in enumerate(hook.get("rules") or []):
        if isinstance(rule, dict):
            causes.extend(rules.rule_with_operations(rule, f"{path}.rules[{i}]"))
    for key, allowed in (
        ("failurePolicy", rules.FAILURE_POLICIES),
        ("matchPolicy", rules.MATCH_POLICIES),
    ):
        if hook.get(key) is not None and hook[key] not in allowed:
            causes.append(not_supported(f"{path}.{key}", hook[key], allowed))
    side_effects = NO_SIDE_EFFECTS if opts.require_no_side_effects else SIDE_EFFECTS
    if hook.get("sideEffects") is None:
        causes.append(
            required(f"{path}.sideEffects", f"must specify one of {', '.join(side_effects)}")
        )
    elif hook["sideEffects"] not in side_effects:
        causes.append(not_supported(f"{path}.sideEffects", hook["sideEffects"], side_effects))
    timeout = hook.get("timeoutSeconds")
    if isinstance(timeout, int) and not 1 <= timeout <= 30:
        causes.append(
            invalid(
                f"{path}.timeoutSeconds",
                timeout,
                "the timeout value must be between 1 and 30 seconds",
            )
        )
    causes.extend(label_selector(hook.get("namespaceSelector"), f"{path}.namespaceSelector"))
    causes.extend(label_selector(hook.get("objectSelector"), f"{path}.objectSelector"))
    policy = hook.get("reinvocationPolicy")
    if mutating and policy is not None and policy not in REINVOCATION_POLICIES:
        causes.append(not_supported(f"{path}.reinvocationPolicy", policy, REINVOCATION_POLICIES))
    cc = hook.get("clientConfig") if isinstance(hook.get("clientConfig"), dict) else {}
    url, service = cc.get("url"), cc.get("service")
    if (url is None) == (service is None):
        causes.append(required(f"{path}.clientConfig", "exactly one of url or service is required"))
    elif url is not None:
        causes.extend(clientconfig.url_errors(str(url), f"{path}.clientConfig.url"))
    elif isinstance(service, dict):
        causes.extend(clientconfig.service_errors(service, f"{path}.clientConfig.service"))
    if not opts.ignore_match_conditions:
        causes.extend(
            rules.match_conditions(
                hook.get("matchConditions"), f"{path}.matchConditions", params=False
            )
        )
    return causes


class WebhookConfigurationStrategy(Strategy):
    """Both configuration kinds; ``mutating`` tells them apart."""

    allow_unconditional_update = False  # kube: "must be specified for an update"

    @property
    def mutating(self) -> bool:
        return self.info.kind == "MutatingWebhookConfiguration"

    def normalize(self, obj: Obj, old: Obj | None) -> None:
        for hook in _webhooks(obj):
            default_webhook(hook, self.mutating)

    def validate(self, obj: Obj) -> list[Cause]:
        return self._validate(obj, _Options(None, obj))

    def validate_update(self, obj: Obj, old: Obj) -> list[Cause]:
        return self._validate(obj, _Options(old, obj))

    def _validate(self, obj: Obj, opts: _Options) -> list[Cause]:
        causes: list[Cause] = []
        names: set[str] = set()
        for i, hook in enumerate(_webhooks(obj)):
            path = f"webhooks[{i}]"
            causes.extend(_webhook(hook, path, self.mutating, opts))
            causes.extend(
                _review_versions(
                    hook.get("admissionReviewVersions"),
                    f"{path}.admissionReviewVersions",
                    opts.require_known_versions,
                )
            )
            name = hook.get("name")
            if opts.require_unique_names and name:
                if name in names:
                    causes.append(rules.duplicate(f"{path}.name", name))
                names.add(name)
        return causes
