"""Admission webhooks in the store, on the in-memory backend, against a real HTTPS webhook
server on loopback: configurations validated and defaulted in kube's words; mutating
webhooks patch in order (and are called again when asked); validating ones deny; failure
policies, timeouts, bad answers, selectors, match conditions, dry run, Services resolved
through their Endpoints."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running
from webhookserver import WebhookServer, allow, patch_answer

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.apiextensions import celauthz
from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.store import DeleteOptions
from skiff.apiserver.store import WriteOptions as Opts

CONFIGMAPS = REGISTRY.core("configmaps")
SERVICES = REGISTRY.core("services")
ENDPOINTS = REGISTRY.core("endpoints")
MUTATING = REGISTRY.by_path("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = REGISTRY.by_path(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations"
)


class Env(MemoryStore):
    async def configure(self, info: Any, name: str, *hooks: dict[str, Any]) -> None:
        obj = {"metadata": {"name": name}, "webhooks": list(hooks)}
        await self.store.create(info, None, obj, Opts())
        await self.settle()

    async def configmap(self, name: str, ns: str = "ns", **extra: Any) -> dict[str, Any]:
        opts = extra.pop("opts", None) or Opts()
        obj = {"metadata": {"name": name, **extra.pop("meta", {})}, "data": {"a": "1"}, **extra}
        return await self.store.create(CONFIGMAPS, ns, obj, opts)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running(Env, {"ns": {"team": "a"}, "other": {"team": "b"}}) as e:
        yield e


def hook(
    server: WebhookServer, name: str = "cm.example.com", path: str = "/", **spec: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle},
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    }
    out.update(spec)
    return out


# -- the configurations' own rules ------------------------------------------------------


async def test_defaults(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r)) as server:
        spec = hook(server)
        spec["clientConfig"] = {"service": {"name": "w", "namespace": "ns"}}
        await env.configure(MUTATING, "m", spec)
    got = (await env.store.get(MUTATING, None, "m"))["webhooks"][0]
    assert got["failurePolicy"] == "Fail"
    assert got["matchPolicy"] == "Equivalent"
    assert got["namespaceSelector"] == {} and got["objectSelector"] == {}
    assert got["timeoutSeconds"] == 10
    assert got["reinvocationPolicy"] == "Never"
    assert got["rules"][0]["scope"] == "*"
    assert got["clientConfig"]["service"]["port"] == 443


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "short"}, "webhooks[0].name",
         'Invalid value: "short": should be a domain with at least three segments separated '
         "by dots"),
        ({"sideEffects": None}, "webhooks[0].sideEffects",
         "Required value: must specify one of None, NoneOnDryRun"),
        ({"sideEffects": "Some"}, "webhooks[0].sideEffects",
         'Unsupported value: "Some": supported values: "None", "NoneOnDryRun"'),
        ({"timeoutSeconds": 31}, "webhooks[0].timeoutSeconds",
         "Invalid value: 31: the timeout value must be between 1 and 30 seconds"),
        ({"failurePolicy": "Maybe"}, "webhooks[0].failurePolicy",
         'Unsupported value: "Maybe": supported values: "Fail", "Ignore"'),
        ({"admissionReviewVersions": []}, "webhooks[0].admissionReviewVersions",
         "Required value: must specify one of v1, v1beta1"),
        ({"admissionReviewVersions": ["v2"]}, "webhooks[0].admissionReviewVersions",
         'Invalid value: ["v2"]: must include at least one of v1, v1beta1'),
        ({"clientConfig": {}}, "webhooks[0].clientConfig",
         "Required value: exactly one of url or service is required"),
        ({"clientConfig": {"url": "http://x.example.com/a"}}, "webhooks[0].clientConfig.url",
         "Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: "
         "https://host[/path]"),
        ({"clientConfig": {"url": "https://x.example.com/a?b=c"}}, "webhooks[0].clientConfig.url",
         'Invalid value: "b=c": query parameters are not permitted in the URL'),
        ({"clientConfig": {"service": {"name": "w", "namespace": "ns", "path": "/a//b"}}},
         "webhooks[0].clientConfig.service.path",
         'Invalid value: "/a//b": segment[1] may not be empty'),
        ({"rules": [{"operations": ["CREATE", "*"], "apiGroups": [""], "apiVersions": ["v1"],
                     "resources": ["pods"]}]}, "webhooks[0].rules[0].operations",
         "Invalid value: [\"CREATE\", \"*\"]: if '*' is present, must not specify other "
         "operations"),
        ({"rules": [{"operations": ["PATCH"], "apiGroups": [""], "apiVersions": ["v1"],
                     "resources": ["pods"]}]}, "webhooks[0].rules[0].operations[0]",
         'Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", '
         '"UPDATE"'),
        ({"rules": [{"operations": ["*"], "apiGroups": [""], "apiVersions": ["v1"],
                     "resources": ["*/*", "pods"]}]}, "webhooks[0].rules[0].resources",
         "Invalid value: [\"*/*\", \"pods\"]: if '*/*' is present, must not specify other "
         "resources"),
        ({"matchConditions": [{"name": "a", "expression": "object.metadata.name"}]},
         "webhooks[0].matchConditions[0].expression", None),
        ({"matchConditions": [{"name": "a", "expression": "nope == 1"}]},
         "webhooks[0].matchConditions[0].expression",
         "Invalid value: \"nope == 1\": compilation failed: ERROR: <input>:1:1: undeclared "
         "reference to 'nope' (in container '')\n | nope == 1\n | ^"),
    ],
)  # fmt: skip
async def test_invalid_configurations(
    env: Env, change: dict[str, Any], field: str, message: str | None
) -> None:
    async with WebhookServer(lambda p, r: allow(r)) as server:
        spec = hook(server)
    spec.update(change)
    spec = {k: v for k, v in spec.items() if v is not None}
    with pytest.raises(ApiError) as e:
        await env.configure(VALIDATING, "v", spec)
    assert e.value.code == 422
    causes = {c.field: c.message for c in e.value.causes}
    assert field in causes, causes
    if message is not None:
        assert causes[field] == message
    assert e.value.message.startswith(
        'ValidatingWebhookConfiguration.admissionregistration.k8s.io "v" is invalid: '
    )
    assert await _absent(env, VALIDATING, None, "v")


async def test_duplicate_webhook_names(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r)) as server:
        with pytest.raises(ApiError) as e:
            await env.configure(VALIDATING, "v", hook(server), hook(server))
    assert [(c.field, c.message) for c in e.value.causes] == [
        ("webhooks[1].name", 'Duplicate value: "cm.example.com"')
    ]


# -- calling webhooks --------------------------------------------------------------------


async def test_mutating_webhooks_patch_in_name_order(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        obj = review["request"]["object"]
        if path.startswith("/first"):
            return patch_answer(review, [{"op": "add", "path": "/data/first", "value": "1"}])
        seen = "yes" if "first" in obj["data"] else "no"
        return patch_answer(review, [{"op": "add", "path": "/data/second", "value": seen}])

    async with WebhookServer(handler) as server:
        await env.configure(MUTATING, "b", hook(server, "second.example.com", "/second"))
        await env.configure(MUTATING, "a", hook(server, "first.example.com", "/first"))
        opts = Opts()
        created = await env.configmap("c", opts=opts)
    assert created["data"] == {"a": "1", "first": "1", "second": "yes"}
    stored = await env.store.get(CONFIGMAPS, "ns", "c")
    assert stored["data"] == created["data"]
    request = server.calls[0][1]["request"]
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["operation"] == "CREATE" and request["namespace"] == "ns"
    assert request["name"] == "c" and request["oldObject"] is None
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
    assert server.calls[0][0] == "/first?timeout=10s"
    mutation = opts.audit_annotations["mutation.webhook.admission.k8s.io/round_0_index_0"]
    assert '"webhook":"first.example.com"' in mutation


async def test_a_patched_object_is_validated_again(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        return patch_answer(review, [{"op": "add", "path": "/data/bad key", "value": "x"}])

    async with WebhookServer(handler) as server:
        await env.configure(MUTATING, "m", hook(server))
        with pytest.raises(ApiError) as e:
            await env.configmap("c")
    assert e.value.code == 422
    assert e.value.causes[0].field == "data[bad key]"
    assert await _absent(env, CONFIGMAPS, "ns", "c")


async def test_reinvocation_if_needed(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        data = review["request"]["object"]["data"]
        if path.startswith("/a"):
            return patch_answer(
                review, [{"op": "add", "path": "/data/a-saw", "value": str(len(data))}]
            )
        if "b" in data:
            return allow(review)
        return patch_answer(review, [{"op": "add", "path": "/data/b", "value": "1"}])

    async with WebhookServer(handler) as server:
        await env.configure(
            MUTATING, "1", hook(server, "a.example.com", "/a", reinvocationPolicy="IfNeeded")
        )
        await env.configure(MUTATING, "2", hook(server, "b.example.com", "/b"))
        created = await env.configmap("c")
    assert [p for p, _ in server.calls] == ["/a?timeout=10s", "/b?timeout=10s", "/a?timeout=10s"]
    assert created["data"]["a-saw"] == "3"  # a, a-saw (its own first patch) and b


async def test_validating_webhook_denies_with_its_status(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        name = review["request"]["name"]
        if name == "bad":
            return allow(
                review,
                allowed=False,
                status={"code": 403, "reason": "Forbidden", "message": "bad is a bad name"},
            )
        if name == "plain":
            return allow(review, allowed=False)
        return allow(review, warnings=["think again"], auditAnnotations={"seen": "yes"})

    async with WebhookServer(handler) as server:
        await env.configure(VALIDATING, "v", hook(server))
        with pytest.raises(ApiError) as e:
            await env.configmap("bad")
        assert e.value.code == 403
        assert e.value.message == (
            'admission webhook "cm.example.com" denied the request: bad is a bad name'
        )
        with pytest.raises(ApiError) as e:
            await env.configmap("plain")
        assert e.value.code == 400
        assert e.value.message == (
            'admission webhook "cm.example.com" denied the request without explanation'
        )
        opts = Opts()
        await env.configmap("good", opts=opts)
    assert opts.warnings == ["think again"]
    assert opts.audit_annotations == {"cm.example.com/seen": "yes"}
    assert await _absent(env, CONFIGMAPS, "ns", "bad")


async def test_failure_policies_and_timeouts(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        if path.startswith("/slow"):
            await asyncio.sleep(5)
        if path.startswith("/garbage"):
            return b"not json"
        if path.startswith("/wronguid"):
            review["request"]["uid"] = "nope"
        if path.startswith("/500"):
            return 500, b"{}"
        return allow(review)

    async with WebhookServer(handler) as server:
        await env.configure(
            VALIDATING, "v", hook(server, "slow.example.com", "/slow", timeoutSeconds=1)
        )
        started = time.monotonic()
        with pytest.raises(ApiError) as e:
            await env.configmap("c1")
        assert time.monotonic() - started < 3
        assert e.value.code == 500
        assert e.value.message == (
            'Internal error occurred: failed calling webhook "slow.example.com": failed to call '
            f'webhook: Post "{server.url("/slow")}?timeout=1s": context deadline exceeded'
        )
        for path, why in (
            ("/garbage", "received invalid webhook response: couldn't get version/kind"),
            ("/wronguid", "received invalid webhook response: expected response.uid="),
            ("/500", "failed to call webhook: the server responded with the status code 500"),
        ):
            await env.store.delete(VALIDATING, None, "v", DeleteOptions())
            await env.configure(VALIDATING, "v", hook(server, "x.example.com", path))
            with pytest.raises(ApiError) as e:
                await env.configmap("c2")
            assert e.value.code == 500 and why in e.value.message, e.value.message
        await env.store.delete(VALIDATING, None, "v", DeleteOptions())
        await env.configure(
            VALIDATING,
            "v",
            hook(server, "slow.example.com", "/slow", timeoutSeconds=1, failurePolicy="Ignore"),
        )
        opts = Opts()
        await env.configmap("c3", opts=opts)
    assert opts.audit_annotations == {
        "failed-open.validating.webhook.admission.k8s.io/round_0_index_0": "slow.example.com"
    }


async def test_unknown_certificate_authority_fails_closed(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r)) as server:
        spec = hook(server)
        spec["clientConfig"].pop("caBundle")
        await env.configure(VALIDATING, "v", spec)
        with pytest.raises(ApiError) as e:
            await env.configmap("c")
    assert "certificate signed by unknown authority" in e.value.message
    assert server.calls == []


async def test_selectors_scope_and_match_conditions(env: Env) -> None:
    async def handler(path: str, review: dict[str, Any]) -> Any:
        return allow(review, allowed=False)

    async with WebhookServer(handler) as server:
        await env.configure(
            VALIDATING,
            "v",
            hook(
                server,
                namespaceSelector={"matchLabels": {"team": "a"}},
                objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]},
                matchConditions=[
                    {"name": "not-kept", "expression": "object.metadata.name != 'kept'"},
                    {
                        "name": "not-system",
                        "expression": "!request.userInfo.username.startsWith('system:')",
                    },
                ],
            ),
        )
        await env.configmap("in-other-namespace", ns="other")
        await env.configmap("skipped", meta={"labels": {"skip": "yes"}})
        await env.configmap("kept")
        with pytest.raises(ApiError):
            await env.configmap("denied")
    assert [r["request"]["name"] for _, r in server.calls] == ["denied"]


async def test_match_conditions_ask_the_authorizer(env: Env) -> None:
    """A match condition with ``authorizer``: the webhook is called only for requesters
    who may not list Secrets."""
    celauthz.set_authorizer(lambda user, attrs: (user["name"] == "admin", ""))
    try:
        async with WebhookServer(lambda p, r: allow(r)) as server:
            condition = ("!authorizer.group('').resource('secrets').namespace('ns')"
                         ".check('list').allowed()")  # fmt: skip
            conditions = [{"name": "not-readers", "expression": condition}]
            await env.configure(VALIDATING, "v", hook(server, matchConditions=conditions))
            await env.configmap("by-admin", opts=Opts(user=UserInfo("admin")))
            await env.configmap("by-bob", opts=Opts(user=UserInfo("bob")))
    finally:
        celauthz.set_authorizer(None)
    assert [r["request"]["name"] for _, r in server.calls] == ["by-bob"]


async def test_dry_run_needs_a_webhook_without_side_effects(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r)) as server:
        spec = hook(server, sideEffects="NoneOnDryRun")
        await env.configure(VALIDATING, "v", spec)
        await env.configmap("c", opts=Opts(dry_run=True))
    assert server.calls[0][1]["request"]["dryRun"] is True


async def test_service_resolved_through_its_endpoints(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r), names=("hooks.ns.svc",)) as server:
        await env.backend.create(
            SERVICES.etcd_key("ns", "hooks"),
            _json({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "hooks", "namespace": "ns"},
                   "spec": {"ports": [{"name": "https", "port": 443, "targetPort": server.port}]}}),
        )  # fmt: skip
        await env.backend.create(
            ENDPOINTS.etcd_key("ns", "hooks"),
            _json({"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": "hooks", "namespace": "ns"},
                   "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                                "ports": [{"name": "https", "port": server.port}]}]}),
        )  # fmt: skip
        spec = hook(server)
        spec["clientConfig"] = {
            "service": {"name": "hooks", "namespace": "ns", "path": "/check"},
            "caBundle": server.ca_bundle,
        }
        await env.configure(VALIDATING, "v", spec)
        await env.configmap("c")
        spec["clientConfig"]["service"]["name"] = "missing"
        await env.store.delete(VALIDATING, None, "v", DeleteOptions())
        await env.configure(VALIDATING, "v", spec)
        with pytest.raises(ApiError) as e:
            await env.configmap("d")
    assert server.calls[0][0] == "/check?timeout=10s"
    assert e.value.message.endswith(
        'Post "https://missing.ns.svc:443/check?timeout=10s": service "missing" not found'
    )


async def test_webhook_configurations_are_exempt(env: Env) -> None:
    async with WebhookServer(lambda p, r: allow(r, allowed=False)) as server:
        spec = hook(server)
        spec["rules"][0].update(apiGroups=["*"], resources=["*"])
        await env.configure(VALIDATING, "v", spec)
        await env.configure(VALIDATING, "w", hook(server, "other.example.com"))
    assert server.calls == []


def _json(obj: dict[str, Any]) -> bytes:
    import json

    return json.dumps(obj).encode()


async def _absent(env: Env, info: Any, ns: str | None, name: str) -> bool:
    with pytest.raises(ApiError) as e:
        await env.store.get(info, ns, name)
    return e.value.code == 404


# -- matchPolicy: the request seen in another version of the resource -----------------

HPA_V1 = REGISTRY.by_path("autoscaling", "v1", "horizontalpodautoscalers")
HPA_V2 = REGISTRY.by_path("autoscaling", "v2", "horizontalpodautoscalers")


def hpa_rules(version: str) -> list[dict[str, Any]]:
    return [{"operations": ["CREATE"], "apiGroups": ["autoscaling"], "apiVersions": [version],
             "resources": ["horizontalpodautoscalers"]}]  # fmt: skip


def hpa_v2(name: str, cpu: int) -> dict[str, Any]:
    target = {"type": "AverageValue", "averageValue": "5"}
    pods = {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": target}}
    cpu_metric = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": cpu}}}  # fmt: skip
    return {"metadata": {"name": name}, "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
        "metrics": [pods, cpu_metric]}}  # fmt: skip


async def test_an_equivalent_webhook_sees_the_request_in_its_own_version(env: Env) -> None:
    """A webhook for autoscaling/v1 (``matchPolicy: Equivalent``, the default) gets a v2
    request converted to v1, with ``requestKind`` v2; its v1 patch lands on the v2 object;
    under ``Exact`` it is not called."""

    def handler(path: str, review: dict[str, Any]) -> Any:
        if path.startswith("/exact"):
            return allow(review)
        return patch_answer(review, [{"op": "replace", "path": "/spec/maxReplicas", "value": 7}])

    async with WebhookServer(handler) as server:
        await env.configure(
            MUTATING, "m",
            hook(server, "v1.hpa.example.com", "/v1", rules=hpa_rules("v1")),
            hook(server, "exact.hpa.example.com", "/exact", rules=hpa_rules("v1"),
                 matchPolicy="Exact"),
        )  # fmt: skip
        created = await env.store.create(HPA_V2, "ns", hpa_v2("h", 50), Opts())
        assert created["spec"]["maxReplicas"] == 7
        assert [m["type"] for m in created["spec"]["metrics"]] == ["Pods", "Resource"]
        assert [p for p, _ in server.calls] == ["/v1?timeout=10s"]
        req = server.calls[0][1]["request"]
        assert req["kind"] == {"group": "autoscaling", "version": "v1",
                               "kind": "HorizontalPodAutoscaler"}  # fmt: skip
        assert req["requestKind"]["version"] == "v2"
        assert req["resource"]["version"] == "v1" and req["requestResource"]["version"] == "v2"
        assert req["object"]["apiVersion"] == "autoscaling/v1"
        assert req["object"]["spec"]["targetCPUUtilizationPercentage"] == 50
        # A v1 request matches the Exact webhook too, and is seen as v1 by both.
        body = {"metadata": {"name": "g"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 2}}  # fmt: skip
        await env.store.create(HPA_V1, "ns", body, Opts())
        assert sorted(p for p, _ in server.calls[1:]) == ["/exact?timeout=10s", "/v1?timeout=10s"]
        assert server.calls[1][1]["request"]["requestKind"]["version"] == "v1"


async def test_an_equivalent_policy_evaluates_the_converted_object(env: Env) -> None:
    policy = {"metadata": {"name": "cpu-cap"}, "spec": {
        "failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": hpa_rules("v1")},
        "validations": [{"expression": "object.spec.targetCPUUtilizationPercentage <= 90",
                         "message": "at most 90% CPU"}]}}  # fmt: skip
    binding = {"metadata": {"name": "cpu-cap"},
               "spec": {"policyName": "cpu-cap", "validationActions": ["Deny"]}}  # fmt: skip
    policies = REGISTRY.by_path("admissionregistration.k8s.io", "v1",
                                "validatingadmissionpolicies")  # fmt: skip
    bindings = REGISTRY.by_path("admissionregistration.k8s.io", "v1",
                                "validatingadmissionpolicybindings")  # fmt: skip
    await env.store.create(policies, None, policy, Opts())
    await env.store.create(bindings, None, binding, Opts())
    await env.settle()
    await env.store.create(HPA_V2, "ns", hpa_v2("ok", 80), Opts())
    with pytest.raises(ApiError) as e:
        await env.store.create(HPA_V2, "ns", hpa_v2("hot", 95), Opts())
    assert e.value.code == 422 and "at most 90% CPU" in e.value.message
