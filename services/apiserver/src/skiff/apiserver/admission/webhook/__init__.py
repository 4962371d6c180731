"""The MutatingAdmissionWebhook and ValidatingAdmissionWebhook admission plugins (kube's
``k8s.io/apiserver/pkg/admission/plugin/webhook/{mutating,validating}``).

Mutating webhooks are called one after another, in configuration-name order, each on the
object as the ones before left it; their JSON patches are applied, and webhooks with
``reinvocationPolicy: IfNeeded`` are called once more when a later webhook changed the
object. Validating webhooks are called all at once. A webhook that cannot be called, or
answers late or wrongly, fails the request under ``failurePolicy: Fail`` (500, kube's
"failed calling webhook") and is skipped under ``Ignore``; a denial is kube's
"admission webhook ... denied the request".
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from skiff.api import errors, patch
from skiff.api.resources import ResourceInfo
from skiff.log import get_logger

from ... import conversion
from ..cel import authorizer_values
from ..interfaces import Attributes, Handler, Lister
from . import client, hooks, review
from .hooks import Hook, HookSource, MatchConditionError

log = get_logger(__name__)

MUTATING_PLUGIN = "MutatingAdmissionWebhook"
VALIDATING_PLUGIN = "ValidatingAdmissionWebhook"


def _internal(message: str) -> errors.ApiError:
    """``apierrors.NewInternalError``: 500 with the error as the one cause."""
    err = errors.internal(f"Internal error occurred: {message}")
    err.causes = [errors.Cause("", message, "")]
    return err


def denied(name: str, status: dict[str, Any] | None) -> errors.ApiError:
    """``webhookerrors.ToStatusErr``: the webhook's status, at least a 400, with kube's
    message."""
    status = status or {}
    by = f'admission webhook "{name}" denied the request'
    code = status.get("code") if isinstance(status.get("code"), int) else 0
    message, reason = str(status.get("message") or ""), str(status.get("reason") or "")
    if message:
        text = f"{by}: {message}"
    elif reason:
        text = f"{by}: {reason}"
    else:
        text = f"{by} without explanation"
    err = errors.ApiError(max(code, 400), reason, text)  # type: ignore[arg-type]
    details = status.get("details")
    if isinstance(details, dict):
        err.name, err.group, err.kind = (
            str(details.get(k) or "") for k in ("name", "group", "kind")
        )
        err.causes = [
            errors.Cause(
                str(c.get("field") or ""), str(c.get("message") or ""), str(c.get("reason") or "")
            )
            for c in details.get("causes") or ()
            if isinstance(c, dict)
        ]
    return err


class _WebhookPlugin(Handler):
    mutating: ClassVar[bool]

    def __init__(self, lister: Lister) -> None:
        self.lister = lister
        kind = (
            "mutatingwebhookconfigurations" if self.mutating else "validatingwebhookconfigurations"
        )
        self.source = HookSource(lister, hooks.admission_info(kind))
        self.clients = client.HttpsClients()

    async def _applicable(self, attrs: Attributes) -> list[tuple[Hook, ResourceInfo]]:
        """The webhooks whose rules and selectors match, each with the resource version it
        sees the request in (match conditions come later, on the object as it is when
        each is called)."""
        if hooks.exempt(attrs):
            return []
        candidates = []
        for h in self.source.hooks():
            seen_as = hooks.invocation(h.spec.get("rules"), attrs, hooks.is_equivalent(h.spec))
            if seen_as is not None:
                candidates.append((h, seen_as))
        if not candidates:
            return []
        ns_labels = await hooks.namespace_labels(self.lister, attrs)
        return [
            (h, seen_as)
            for h, seen_as in candidates
            if hooks.selectors_match(h.namespace_selector, h.object_selector, attrs, ns_labels)
        ]

    def _failed(self, hook: Hook, attrs: Attributes, reason: str) -> None:
        """A call failure: an error under ``Fail``; logged and noted under ``Ignore``."""
        message = f'failed calling webhook "{hook.name}": {reason}'
        if not hook.ignores_failures:
            raise _internal(message)
        log.warning("webhook failed open", webhook=hook.name, error=reason)
        if attrs.audit_annotations is not None:
            kind = "mutating" if self.mutating else "validating"
            key = f"failed-open.{kind}.webhook.admission.k8s.io/round_0_index_{hook.index}"
            attrs.audit_annotations[key] = hook.name

    async def _call(self, hook: Hook, attrs: Attributes) -> review.Response | None:
        """Call ``hook`` on ``attrs`` as they are now (in the version it is called in);
        None when it does not apply or failed open."""
        req = review.request(attrs)
        values = {"object": attrs.obj, "oldObject": attrs.old, "request": req}
        values.update(authorizer_values(attrs))
        try:
            if not hooks.conditions_match(hook, values):
                return None
        except MatchConditionError as e:
            self._failed(hook, attrs, f"failed to evaluate match condition: {e}")
            return None
        if attrs.dry_run and not hook.dry_run_safe:
            raise errors.bad_request(f'admission webhook "{hook.name}" does not support dry run')
        body = json.dumps(review.review(req), separators=(",", ":")).encode()
        cc = hook.spec.get("clientConfig") or {}
        try:
            where = await client.target(self.lister, cc, hook.timeout)
            answer = await self.clients.post(
                where, str(cc.get("caBundle") or ""), body, hook.timeout
            )
            if answer.status_code // 100 != 2:
                raise client.CallError(
                    f"the server responded with the status code {answer.status_code} "
                    "but did not return more information"
                )
            response = review.verify(answer.content, req["uid"])
        except client.CallError as e:
            self._failed(hook, attrs, f"failed to call webhook: {e}")
            return None
        except review.InvalidResponse as e:
            self._failed(hook, attrs, f"received invalid webhook response: {e}")
            return None
        if attrs.warnings is not None:
            attrs.warnings.extend(response.warnings)
        if attrs.audit_annotations is not None:
            for key, value in response.audit_annotations.items():
                attrs.audit_annotations[f"{hook.name}/{key}"] = value
        if not response.allowed:
            raise denied(hook.name, response.status)
        return response


class MutatingWebhook(_WebhookPlugin):
    """Calls mutating webhooks in order and applies their patches."""

    name = MUTATING_PLUGIN
    mutating = True

    async def admit(self, attrs: Attributes) -> None:
        applicable = await self._applicable(attrs)
        if not applicable:
            return
        changes = 0
        called_at: dict[int, int] = {}  # reinvocable hook → changes seen when called
        for position, (hook, seen_as) in enumerate(applicable):
            if await self._mutate(hook, seen_as, attrs, 0):
                changes += 1
            if hook.reinvoke:
                called_at[position] = changes
        again = [p for p, seen in called_at.items() if seen < changes]
        for position in sorted(again):
            await self._mutate(*applicable[position], attrs, 1)

    async def _mutate(
        self, hook: Hook, seen_as: ResourceInfo, attrs: Attributes, round_: int
    ) -> bool:
        """Call one webhook (in the version it sees the request in); whether its patch
        changed the object."""
        view = await hooks.versioned(attrs, seen_as, self.lister)
        response = await self._call(hook, view)
        if response is None or not response.patch or view.obj is None or attrs.obj is None:
            return False
        try:
            patched = patch.json_patch(view.obj, response.patch)
        except errors.ApiError as e:
            raise _internal(f'failed calling webhook "{hook.name}": {e.message}') from None
        if patched == view.obj:
            return False
        if view is not attrs:
            patched = await conversion.aconvert(patched, attrs.info, self.lister)
        attrs.obj.clear()
        attrs.obj.update(patched)
        attrs.changed = True
        if attrs.audit_annotations is not None:
            key = f"mutation.webhook.admission.k8s.io/round_{round_}_index_{hook.index}"
            attrs.audit_annotations[key] = json.dumps(
                {"configuration": hook.configuration, "webhook": hook.name, "mutated": True},
                separators=(",", ":"),
            )
        return True


class ValidatingWebhook(_WebhookPlugin):
    """Calls validating webhooks in parallel; the first refusal refuses the request."""

    name = VALIDATING_PLUGIN
    mutating = False

    async def validate(self, attrs: Attributes) -> None:
        applicable = await self._applicable(attrs)
        if not applicable:
            return
        views = [await hooks.versioned(attrs, seen_as, self.lister) for _, seen_as in applicable]
        results = await asyncio.gather(
            *(self._call(h, view) for (h, _), view in zip(applicable, views, strict=True)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
