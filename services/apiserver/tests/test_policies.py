"""ValidatingAdmissionPolicies in the store, on the in-memory backend: policies and
bindings validated and defaulted in kube's words; a bound policy's CEL validations deny,
warn or audit as the binding says, with parameters, variables, match conditions, match
constraints and the failure policy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.apiextensions import celauthz
from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.store import DeleteOptions
from skiff.apiserver.store import WriteOptions as Opts

CONFIGMAPS = REGISTRY.core("configmaps")
POLICIES = REGISTRY.by_path("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies")
BINDINGS = REGISTRY.by_path(
    "admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings"
)


class Env(MemoryStore):
    async def policy(self, name: str, **spec: Any) -> dict[str, Any]:
        spec.setdefault(
            "matchConstraints",
            {"resourceRules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                                "apiVersions": ["v1"], "resources": ["configmaps"]}]},
        )  # fmt: skip
        got = await self.store.create(
            POLICIES, None, {"metadata": {"name": name}, "spec": spec}, Opts()
        )
        await self.settle()
        return got

    async def bind(self, name: str, policy: str, *actions: str, **spec: Any) -> None:
        spec = {"policyName": policy, "validationActions": list(actions or ["Deny"]), **spec}
        await self.store.create(BINDINGS, None, {"metadata": {"name": name}, "spec": spec}, Opts())
        await self.settle()

    async def configmap(self, name: str, ns: str = "ns", opts: Opts | None = None,
                        **data: str) -> dict[str, Any]:  # fmt: skip
        obj = {"metadata": {"name": name}, "data": data}
        return await self.store.create(CONFIGMAPS, ns, obj, opts or Opts())


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(Env, {"ns": {"env": "prod"}, "dev": {"env": "dev"}}) as e:
        yield e


SMALL = {"expression": "size(object.data) <= 2", "messageExpression":
         "'at most 2 keys, got ' + string(size(object.data))"}  # fmt: skip


async def test_defaults(env: Env) -> None:
    got = await env.policy("p", validations=[SMALL])
    assert got["spec"]["failurePolicy"] == "Fail"
    match = got["spec"]["matchConstraints"]
    assert match["matchPolicy"] == "Equivalent"
    assert match["namespaceSelector"] == {} and match["objectSelector"] == {}
    assert match["resourceRules"][0]["scope"] == "*"


async def test_deny_with_the_message_expression(env: Env) -> None:
    await env.policy("small", validations=[SMALL])
    await env.bind("small-binding", "small")
    await env.configmap("ok", a="1")
    with pytest.raises(ApiError) as e:
        await env.configmap("big", a="1", b="2", c="3")
    assert e.value.code == 422 and e.value.reason == "Invalid"
    assert e.value.message == (
        "configmaps \"big\" is forbidden: ValidatingAdmissionPolicy 'small' with binding "
        "'small-binding' denied request: at most 2 keys, got 3"
    )


async def test_warn_audit_and_reason(env: Env) -> None:
    await env.policy(
        "named",
        validations=[
            {"expression": "object.metadata.name.startsWith('x-')", "reason": "Forbidden"}
        ],
        auditAnnotations=[{"key": "name", "valueExpression": "object.metadata.name"}],
    )
    await env.bind("warn", "named", "Warn", "Audit")
    opts = Opts()
    await env.configmap("plain", opts=opts)
    assert opts.warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'named' with binding 'warn': "
        "failed expression: object.metadata.name.startsWith('x-')"
    ]
    assert opts.audit_annotations["named/name"] == "plain"
    assert (
        '"binding":"warn"'
        in opts.audit_annotations["validation.policy.admission.k8s.io/validation_failure"]
    )
    await env.bind("deny", "named", "Deny")
    with pytest.raises(ApiError) as e:
        await env.configmap("plain2")
    assert e.value.code == 403


async def test_params_variables_and_not_found_actions(env: Env) -> None:
    await env.store.create(
        CONFIGMAPS, "ns", {"metadata": {"name": "limits"}, "data": {"max": "1"}}, Opts()
    )
    await env.policy(
        "limited",
        paramKind={"apiVersion": "v1", "kind": "ConfigMap"},
        variables=[{"name": "keys", "expression": "size(object.data)"}],
        validations=[{"expression": "variables.keys <= int(params.data.max)",
                      "messageExpression": "'too many keys: ' + string(variables.keys)"}],
    )  # fmt: skip
    await env.bind(
        "limited-binding", "limited", "Deny",
        paramRef={"name": "limits", "parameterNotFoundAction": "Deny"},
        matchResources={"namespaceSelector": {"matchLabels": {"env": "prod"}}},
    )  # fmt: skip
    await env.configmap("one", a="1")
    with pytest.raises(ApiError) as e:
        await env.configmap("two", a="1", b="2")
    assert e.value.message.endswith("denied request: too many keys: 2")
    await env.configmap("free-in-dev", ns="dev", a="1", b="2")  # outside the binding
    await env.store.delete(CONFIGMAPS, "ns", "limits", DeleteOptions())
    await env.settle()
    with pytest.raises(ApiError) as e:
        await env.configmap("three", a="1")
    assert e.value.message.endswith(
        "denied request: no params found for policy binding with `Deny` parameterNotFoundAction"
    )


async def test_match_conditions_exclusions_and_failure_policy(env: Env) -> None:
    await env.policy(
        "strict",
        matchConstraints={
            "resourceRules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                               "resources": ["configmaps"]}],
            "excludeResourceRules": [{"operations": ["CREATE"], "apiGroups": [""],
                                      "apiVersions": ["v1"], "resources": ["configmaps"],
                                      "resourceNames": ["excluded"]}],
        },
        matchConditions=[{"name": "has-data", "expression": "has(object.data)"}],
        validations=[{"expression": "object.data.missing == 'x'"}],
    )  # fmt: skip
    await env.bind("strict-binding", "strict")
    await env.configmap("excluded", a="1")
    await env.store.create(CONFIGMAPS, "ns", {"metadata": {"name": "no-data"}}, Opts())
    with pytest.raises(ApiError) as e:
        await env.configmap("errs", a="1")
    assert "expression 'object.data.missing == 'x'' resulted in error: no such key" in (
        e.value.message
    )
    await env.store.delete(POLICIES, None, "strict", DeleteOptions())
    await env.policy("strict", failurePolicy="Ignore",
                     validations=[{"expression": "object.data.missing == 'x'"}])  # fmt: skip
    await env.configmap("ignored", a="1")


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({}, "spec.validations",
         "Required value: validations or auditAnnotations must contain at least one item"),
        ({"validations": [{"expression": "object.nope("}]}, "spec.validations[0].expression",
         None),
        ({"validations": [{"expression": "1"}]}, "spec.validations[0].expression",
         'Invalid value: "1": must evaluate to bool'),
        ({"validations": [SMALL], "failurePolicy": "Maybe"}, "spec.failurePolicy",
         'Unsupported value: "Maybe": supported values: "Fail", "Ignore"'),
        ({"validations": [{**SMALL, "reason": "Teapot"}]}, "spec.validations[0].reason",
         'Unsupported value: "Teapot": supported values: "Forbidden", "Invalid", '
         '"RequestEntityTooLarge"'),
        ({"validations": [SMALL], "paramKind": {"apiVersion": "v1"}}, "spec.paramKind.kind",
         "Required value"),
        ({"validations": [SMALL], "variables": [{"name": "1x", "expression": "1"}]},
         "spec.variables[0].name", 'Invalid value: "1x": name is not a valid CEL identifier'),
        ({"validations": [{"expression": "params.x == 1"}]}, "spec.validations[0].expression",
         None),
    ],
)  # fmt: skip
async def test_invalid_policies(
    env: Env, spec: dict[str, Any], field: str, message: str | None
) -> None:
    with pytest.raises(ApiError) as e:
        await env.policy("bad", **spec)
    assert e.value.code == 422
    causes = {c.field: c.message for c in e.value.causes}
    assert field in causes, causes
    if message is not None:
        assert causes[field] == message


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"validationActions": ["Deny", "Warn"]}, "spec.validationActions",
         'Invalid value: ["Deny", "Warn"]: must not contain both Deny and Warn (repeating the '
         "same validation failure information in the API response and headers serves no "
         "purpose)"),
        ({"validationActions": []}, "spec.validationActions",
         "Required value: at least one validation action is required"),
        ({"paramRef": {"name": "a"}}, "spec.paramRef.parameterNotFoundAction", "Required value"),
        ({"paramRef": {"parameterNotFoundAction": "Deny"}}, "spec.paramRef",
         "Required value: one of name or selector must be specified"),
        ({"policyName": ""}, "spec.policyName", "Required value"),
    ],
)  # fmt: skip
async def test_invalid_bindings(env: Env, spec: dict[str, Any], field: str, message: str) -> None:
    body = {"policyName": "p", "validationActions": ["Deny"], **spec}
    with pytest.raises(ApiError) as e:
        await env.store.create(BINDINGS, None, {"metadata": {"name": "b"}, "spec": body}, Opts())
    causes = {c.field: c.message for c in e.value.causes}
    assert causes.get(field) == message, causes


async def test_the_authorizer_variable_asks_the_authorizer(env: Env) -> None:
    """``authorizer`` checks the requester's access as kube's CEL authorizer library does:
    a resource check with namespace and name, a path check, ``requestResource``, a
    service account, and a decision's reason."""
    asked: list[tuple[str, dict[str, Any]]] = []

    def check(user: dict[str, Any], attrs: dict[str, Any]) -> tuple[bool, str]:
        asked.append((user["name"], attrs))
        return user["name"] == "admin", "RBAC: says so"

    celauthz.set_authorizer(check)
    try:
        await env.policy("admins-only", validations=[{
            "expression": "authorizer.group('').resource('secrets').namespace('ns')"
                          ".name('s').check('get').allowed()",
            "messageExpression": "authorizer.path('/healthz').check('get').reason()",
        }, {
            "expression": "authorizer.requestResource.check('create').allowed() && "
                          "!authorizer.serviceAccount('ns', 'sa').group('apps')"
                          ".resource('deployments').check('delete').allowed()",
        }])  # fmt: skip
        await env.bind("admins-only-binding", "admins-only")
        await env.configmap("fine", opts=Opts(user=UserInfo("admin")))
        with pytest.raises(ApiError) as e:
            await env.configmap("refused", opts=Opts(user=UserInfo("bob", groups=("dev",))))
        assert e.value.message.endswith("denied request: RBAC: says so")
    finally:
        celauthz.set_authorizer(None)
    first = {"group": "", "resource": "secrets", "namespace": "ns", "name": "s", "verb": "get"}
    assert ("admin", first) in asked
    assert ("bob", {"path": "/healthz", "verb": "get"}) in asked
    assert ("admin", {"group": "", "resource": "configmaps", "subresource": "",
                      "namespace": "ns", "name": "fine", "verb": "create"}) in asked  # fmt: skip
    assert any(user == "system:serviceaccount:ns:sa" for user, _ in asked)
