"""authorization.k8s.io's reviews, answered and never stored: SubjectAccessReview (may
this user do this?), LocalSubjectAccessReview (the same, in one namespace),
SelfSubjectAccessReview (may I? — ``kubectl auth can-i``) and SelfSubjectRulesReview
(what may I do here? — ``kubectl auth can-i --list``)."""

from __future__ import annotations

from typing import Any

from skiff.api import errors
from skiff.api.errors import Cause

from ..authentication.user import UserInfo
from . import Authorizer
from .attributes import RequestAttributes

GROUP = "authorization.k8s.io"
Obj = dict[str, Any]


def _invalid(kind: str, path: str, detail: str, cause: str) -> errors.ApiError:
    return errors.invalid(kind, "", GROUP, [Cause(path, detail, cause)])


def _attributes(kind: str, user: UserInfo, spec: Obj) -> RequestAttributes:
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if not resource and not non_resource:
        raise _invalid(
            kind,
            "spec.resourceAttributes",
            "Required value: exactly one of nonResourceAttributes or resourceAttributes "
            "must be specified",
            "FieldValueRequired",
        )
    if resource and non_resource:
        raise _invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: cannot be specified in combination with resourceAttributes",
            "FieldValueInvalid",
        )
    if non_resource:
        return RequestAttributes(
            user,
            str(non_resource.get("verb") or ""),
            False,
            path=str(non_resource.get("path") or ""),
        )
    return RequestAttributes(
        user,
        str(resource.get("verb") or ""),
        True,
        api_group=str(resource.get("group") or ""),
        api_version=str(resource.get("version") or ""),
        resource=str(resource.get("resource") or ""),
        subresource=str(resource.get("subresource") or ""),
        namespace=str(resource.get("namespace") or ""),
        name=str(resource.get("name") or ""),
    )


def _answer(kind: str, spec: Obj, authorizer: Authorizer | None, a: RequestAttributes) -> Obj:
    allowed, reason = authorizer.authorize(a) if authorizer else (True, "")
    status: Obj = {"allowed": allowed}
    if reason:
        status["reason"] = reason
    if not allowed and authorizer is not None and "AlwaysDeny" in authorizer.modes:
        status["denied"] = True
    return {
        "kind": kind,
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": status,
    }


def _subject(kind: str, spec: Obj) -> UserInfo:
    user, groups = spec.get("user") or "", [str(g) for g in spec.get("groups") or []]
    if not user and not groups:
        raise _invalid(
            kind,
            "spec.user",
            'Invalid value: "": at least one of user or group must be specified',
            "FieldValueInvalid",
        )
    extra = {str(k): tuple(v or []) for k, v in (spec.get("extra") or {}).items()}
    return UserInfo(str(user), str(spec.get("uid") or ""), tuple(groups), extra)


def subject_access_review(authorizer: Authorizer | None, body: Obj) -> Obj:
    spec = body.get("spec") or {}
    kind = "SubjectAccessReview"
    return _answer(kind, spec, authorizer, _attributes(kind, _subject(kind, spec), spec))


def local_subject_access_review(authorizer: Authorizer | None, body: Obj, namespace: str) -> Obj:
    spec = body.get("spec") or {}
    kind = "LocalSubjectAccessReview"
    if spec.get("nonResourceAttributes"):
        raise _invalid(
            kind,
            "spec.nonResourceAttributes",
            "Invalid value: disallowed on this kind of request",
            "FieldValueInvalid",
        )
    a = _attributes(kind, _subject(kind, spec), spec)
    if a.namespace != namespace:
        raise errors.bad_request(
            f"spec.resourceAttributes.namespace must match namespace: {namespace}"
        )
    out = _answer(kind, spec, authorizer, a)
    out["metadata"]["namespace"] = namespace
    return out


def self_subject_access_review(authorizer: Authorizer | None, body: Obj, user: UserInfo) -> Obj:
    spec = body.get("spec") or {}
    kind = "SelfSubjectAccessReview"
    return _answer(kind, spec, authorizer, _attributes(kind, user, spec))


def self_subject_rules_review(authorizer: Authorizer | None, body: Obj, user: UserInfo) -> Obj:
    spec = body.get("spec") or {}
    namespace = spec.get("namespace") or ""
    if not namespace:
        raise errors.bad_request("no namespace on request")
    resource_rules: list[Obj] = []
    non_resource_rules: list[Obj] = []
    everything = authorizer is None or "AlwaysAllow" in authorizer.modes
    if everything:
        resource_rules.append({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
        non_resource_rules.append({"verbs": ["*"], "nonResourceURLs": ["*"]})
    elif authorizer is not None and authorizer.rbac is not None:
        for rule in authorizer.rbac.rules_for(user, namespace):
            if rule.get("nonResourceURLs"):
                non_resource_rules.append(
                    {"verbs": rule.get("verbs") or [], "nonResourceURLs": rule["nonResourceURLs"]}
                )
            if rule.get("resources"):
                out = {k: rule[k] for k in ("verbs", "apiGroups", "resources") if k in rule}
                if rule.get("resourceNames"):
                    out["resourceNames"] = rule["resourceNames"]
                resource_rules.append(out)
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": f"{GROUP}/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {
            "resourceRules": resource_rules,
            "nonResourceRules": non_resource_rules,
            "incomplete": False,
        },
    }
