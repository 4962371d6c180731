"""Kubernetes' CEL authorizer library (``k8s.io/apiserver/pkg/cel/library/authz.go``,
1.32) for admission expressions: ``authorizer.group(g).resource(r).namespace(ns)
.name(n).subresource(s).check(verb)``, ``authorizer.path(p).check(verb)``,
``authorizer.serviceAccount(ns, name)``, ``authorizer.requestResource``, and a
decision's ``allowed()``, ``reason()``, ``errored()`` and ``error()``.

Each value travels through CEL as a message holding its state as JSON (the requester
for an ``Authorizer``, the attributes built so far for a check); a check asks the
apiserver's authorizer (:func:`set_authorizer`) about the requester, as kube's does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Check = Callable[[dict[str, Any], dict[str, Any]], tuple[bool, str]]
"""(requester: name, uid, groups, extra; attributes: verb, group, resource, subresource,
namespace, name or path) → (allowed, reason)."""

MESSAGES = {
    "Authorizer": "kubernetes.authorization.Authorizer",
    "PathCheck": "kubernetes.authorization.PathCheck",
    "GroupCheck": "kubernetes.authorization.GroupCheck",
    "ResourceCheck": "kubernetes.authorization.ResourceCheck",
    "Decision": "kubernetes.authorization.Decision",
}

FIELDS = {"Authorizer": (("requestResource", "ResourceCheck", 2),)}
"""Message fields beside ``value``: ``authorizer.requestResource`` (cel-cpp reads it as a
field of ``authorizer``, where cel-go has a variable of that qualified name)."""

_MSG: dict[str, Callable[..., Any]] = {}
_CHECK: list[Check] = []


def set_message_classes(classes: dict[str, Callable[..., Any]]) -> None:
    _MSG.update(classes)


def set_authorizer(check: Check | None) -> None:
    """The apiserver's authorizer for checks (none: every check is an error)."""
    _CHECK[:] = [check] if check is not None else []


def _state(m: Any) -> dict[str, Any]:
    return json.loads(m.value or "{}")


def _make(kind: str, state: dict[str, Any]) -> Any:
    return _MSG[kind](value=json.dumps(state, sort_keys=True))


def authorizer(user: dict[str, Any], request: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``authorizer`` value (with its ``requestResource``) for a requester and the
    request's resource attributes (group, resource, subresource, namespace, name)."""
    value = _make("Authorizer", {"user": user})
    if request is not None:
        value.requestResource.value = json.dumps({"user": user, **request}, sort_keys=True)
    return {"authorizer": value}


def _path(a: Any, path: str) -> Any:
    return _make("PathCheck", {**_state(a), "path": path})


def _group(a: Any, group: str) -> Any:
    return _make("GroupCheck", {**_state(a), "group": group})


def _service_account(a: Any, namespace: str, name: str) -> Any:
    user = {
        "name": f"system:serviceaccount:{namespace}:{name}",
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
    }
    return _make("Authorizer", {"user": user})


def _setter(key: str) -> Callable[[Any, str], Any]:
    def set_field(check: Any, value: str) -> Any:
        return _make("ResourceCheck", {**_state(check), key: value})

    return set_field


def _check(check: Any, verb: str) -> Any:
    state = _state(check)
    user = state.pop("user", {})
    if not _CHECK:
        return _make("Decision", {"allowed": False, "error": "no authorizer"})
    try:
        allowed, reason = _CHECK[0](user, {**state, "verb": verb})
    except Exception as e:  # an authorizer error is the decision's error, as kube's
        return _make("Decision", {"allowed": False, "error": str(e)})
    return _make("Decision", {"allowed": allowed, "reason": reason})


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "authz_path": _path,
    "authz_group": _group,
    "authz_service_account": _service_account,
    "authz_resource": _setter("resource"),
    "authz_subresource": _setter("subresource"),
    "authz_namespace": _setter("namespace"),
    "authz_name": _setter("name"),
    "authz_check": _check,
    "authz_allowed": lambda d: bool(_state(d).get("allowed")),
    "authz_reason": lambda d: str(_state(d).get("reason") or ""),
    "authz_errored": lambda d: bool(_state(d).get("error")),
    "authz_error": lambda d: str(_state(d).get("error") or ""),
}
