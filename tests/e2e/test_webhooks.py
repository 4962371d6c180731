"""Admission webhooks with the real kubectl (1.32) and the official Python client, against
a real apiserver on etcd and NATS and a real HTTPS webhook server on loopback: a mutating
webhook patches what kubectl creates, a validating one denies with its own status, a
hanging one costs its timeout under ``Fail`` and nothing under ``Ignore``, and a bad
configuration is refused with kube's message; a ValidatingAdmissionPolicy bound to one
namespace denies there with its CEL message."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from test_kubectl import kubectl

sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "apiserver" / "tests"))
from threaded import serve_in_thread
from webhookserver import WebhookServer, allow, patch_answer

NS = "webhooks"


def _answer(path: str, review: dict[str, Any]) -> Any:
    req = review["request"]
    name = req["name"]
    if path.startswith("/mutate"):
        return patch_answer(
            review,
            [{"op": "add", "path": "/metadata/labels", "value": {"mutated-by": "webhook"}}],
        )
    if path.startswith("/hang"):
        return asyncio.sleep(30, allow(review))
    if name.startswith("forbidden"):
        return allow(
            review,
            allowed=False,
            status={"code": 403, "reason": "Forbidden", "message": f"{name} is not welcome"},
        )
    return allow(review, warnings=[f"{name} was checked"])


@pytest.fixture(scope="module")
def server() -> Iterator[WebhookServer]:
    yield from serve_in_thread(WebhookServer(_answer))


def _configuration(
    kind: str, name: str, hook: str, path: str, server: WebhookServer, **extra: Any
) -> str:
    spec: dict[str, Any] = {
        "name": hook,
        "clientConfig": {"url": server.url(path), "caBundle": server.ca_bundle},
        "rules": [
            {
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["configmaps"],
                "scope": "Namespaced",
            }
        ],
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NS}},
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }
    obj = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": name},
        "webhooks": [spec],
    }
    return json.dumps(obj)


@pytest.fixture(scope="module")
def configured(kubeconfig: Path, server: WebhookServer) -> Iterator[None]:
    kubectl(kubeconfig, "create", "namespace", NS)
    mutating = _configuration(
        "MutatingWebhookConfiguration", "labeller", "label.example.com", "/mutate", server
    )
    validating = _configuration(
        "ValidatingWebhookConfiguration", "gate", "gate.example.com", "/validate", server
    )
    kubectl(kubeconfig, "apply", "-f", "-", input=mutating)
    kubectl(kubeconfig, "apply", "-f", "-", input=validating)
    time.sleep(0.5)  # the watch cache of every apiserver sees them
    yield
    kubectl(kubeconfig, "delete", "mutatingwebhookconfiguration", "labeller", check=False)
    kubectl(kubeconfig, "delete", "validatingwebhookconfiguration", "gate", check=False)
    kubectl(kubeconfig, "delete", "namespace", NS, "--wait=false", check=False)


def test_kubectl_lists_the_configurations(kubeconfig: Path, configured: None) -> None:
    table = kubectl(kubeconfig, "get", "validatingwebhookconfigurations").stdout.splitlines()
    assert table[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert table[1].split()[:2] == ["gate", "1"]
    got = json.loads(
        kubectl(kubeconfig, "get", "mutatingwebhookconfiguration", "labeller", "-o", "json").stdout
    )
    hook = got["webhooks"][0]
    assert (hook["failurePolicy"], hook["timeoutSeconds"], hook["reinvocationPolicy"]) == (
        "Fail",
        10,
        "Never",
    )
    resources = kubectl(kubeconfig, "api-resources", "--api-group", "admissionregistration.k8s.io")
    assert "validatingadmissionpolicies" in resources.stdout


def test_kubectl_create_is_mutated_checked_and_denied(
    kubeconfig: Path, configured: None, server: WebhookServer
) -> None:
    made = kubectl(kubeconfig, "create", "configmap", "fine", "-n", NS, "--from-literal=a=b")
    assert "Warning: fine was checked" in made.stderr
    obj = json.loads(kubectl(kubeconfig, "get", "cm", "fine", "-n", NS, "-o", "json").stdout)
    assert obj["metadata"]["labels"] == {"mutated-by": "webhook"}
    denied = kubectl(kubeconfig, "create", "configmap", "forbidden-1", "-n", NS, check=False)
    assert denied.returncode == 1
    assert denied.stderr.strip() == (
        'error: failed to create configmap: admission webhook "gate.example.com" denied the '
        "request: forbidden-1 is not welcome"
    )
    gone = kubectl(kubeconfig, "get", "cm", "forbidden-1", "-n", NS, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    # Another namespace is outside the namespaceSelector.
    kubectl(kubeconfig, "create", "configmap", "forbidden-2", "-n", "default")
    kubectl(kubeconfig, "delete", "configmap", "forbidden-2", "-n", "default")
    seen = [r["request"]["name"] for _, r in server.calls]
    assert "forbidden-2" not in seen and "fine" in seen


def test_official_client_gets_the_denial_as_a_status(kubeconfig: Path, configured: None) -> None:
    api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
    with pytest.raises(ApiException) as e:
        api.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="forbidden-3"))
        )
    assert e.value.status == 403
    status = json.loads(e.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        'admission webhook "gate.example.com" denied the request: forbidden-3 is not welcome'
    )
    admission = client.AdmissionregistrationV1Api(config.new_client_from_config(str(kubeconfig)))
    names = [c.metadata.name for c in admission.list_mutating_webhook_configuration().items]
    assert "labeller" in names


def test_a_hanging_webhook_costs_its_timeout(
    kubeconfig: Path, configured: None, server: WebhookServer
) -> None:
    hanging = _configuration(
        "ValidatingWebhookConfiguration", "hang", "hang.example.com", "/hang", server,
        timeoutSeconds=2,
    )  # fmt: skip
    kubectl(kubeconfig, "apply", "-f", "-", input=hanging)
    time.sleep(0.5)
    try:
        started = time.monotonic()
        failed = kubectl(kubeconfig, "create", "configmap", "slow-1", "-n", NS, check=False)
        took = time.monotonic() - started
        assert failed.returncode == 1
        assert 'failed calling webhook "hang.example.com"' in failed.stderr
        assert "context deadline exceeded" in failed.stderr
        assert took < 8, took
        kubectl(kubeconfig, "get", "--raw", "/readyz")  # the apiserver is still answering
        ignore = _configuration(
            "ValidatingWebhookConfiguration", "hang", "hang.example.com", "/hang", server,
            timeoutSeconds=1, failurePolicy="Ignore",
        )  # fmt: skip
        kubectl(kubeconfig, "apply", "-f", "-", input=ignore)
        time.sleep(0.5)
        kubectl(kubeconfig, "create", "configmap", "slow-2", "-n", NS)
    finally:
        kubectl(kubeconfig, "delete", "validatingwebhookconfiguration", "hang", check=False)


def test_a_bad_configuration_is_refused(kubeconfig: Path, server: WebhookServer) -> None:
    bad = _configuration(
        "ValidatingWebhookConfiguration", "bad", "bad", "/validate", server, timeoutSeconds=60
    )
    out = kubectl(kubeconfig, "apply", "-f", "-", input=bad, check=False)
    assert out.returncode == 1
    assert 'The ValidatingWebhookConfiguration "bad" is invalid: ' in out.stderr
    assert (
        'webhooks[0].name: Invalid value: "bad": should be a domain with at least three '
        "segments separated by dots" in out.stderr
    )
    assert (
        "webhooks[0].timeoutSeconds: Invalid value: 60: the timeout value must be between 1 "
        "and 30 seconds" in out.stderr
    )


POLICY = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata:
  name: few-keys
spec:
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [configmaps]
  validations:
  - expression: "!has(object.data) || size(object.data) <= 2"
    messageExpression: "'at most 2 keys, not ' + string(size(object.data))"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata:
  name: few-keys-here
spec:
  policyName: few-keys
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels:
        kubernetes.io/metadata.name: policies
"""


def test_validating_admission_policy_with_kubectl(kubeconfig: Path) -> None:
    kubectl(kubeconfig, "create", "namespace", "policies")
    kubectl(kubeconfig, "apply", "-f", "-", input=POLICY)
    try:
        table = kubectl(kubeconfig, "get", "validatingadmissionpolicies").stdout.splitlines()
        assert table[0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
        assert table[1].split()[:3] == ["few-keys", "1", "<unset>"]
        time.sleep(0.5)
        kubectl(kubeconfig, "create", "configmap", "two", "-n", "policies",
                "--from-literal=a=1", "--from-literal=b=2")  # fmt: skip
        denied = kubectl(
            kubeconfig, "create", "configmap", "three", "-n", "policies",
            "--from-literal=a=1", "--from-literal=b=2", "--from-literal=c=3", check=False,
        )  # fmt: skip
        assert denied.returncode == 1
        assert (
            "ValidatingAdmissionPolicy 'few-keys' with binding 'few-keys-here' denied request: "
            "at most 2 keys, not 3" in denied.stderr
        )
        kubectl(kubeconfig, "create", "configmap", "three", "-n", "default",
                "--from-literal=a=1", "--from-literal=b=2", "--from-literal=c=3")  # fmt: skip
        kubectl(kubeconfig, "delete", "configmap", "three", "-n", "default")
    finally:
        kubectl(kubeconfig, "delete", "-f", "-", input=POLICY, check=False)
        kubectl(kubeconfig, "delete", "namespace", "policies", "--wait=false", check=False)
