"""The audit log of a real apiserver (``--audit-policy-file``, ``--audit-log-path``) with
requests from the real kubectl: each recorded at its policy level, Secrets' bodies kept
out, the authorization decision annotated, denials and their codes recorded."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import Cluster, start_cluster, wait_until

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  verbs: [get, list, watch]
  resources: [{group: "", resources: [pods]}]
- level: Metadata
  resources: [{group: "", resources: [secrets]}]
- level: RequestResponse
  resources: [{group: "", resources: [configmaps]}]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/api*", "/openapi*"]
- level: Metadata
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("audit")
    (base / "policy.yaml").write_text(POLICY)
    c = start_cluster(base, apiservers=0, secure=True)
    c.apiserver_args = [
        f"--audit-policy-file={base / 'policy.yaml'}",
        f"--audit-log-path={base / 'audit.log'}",
    ]
    try:
        c.start_apiserver()
        yield c
    finally:
        c.stop()


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
    )


def events(c: Cluster) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (c.dir / "audit.log").read_text().splitlines()]


def test_requests_are_audited_at_their_policy_level(cluster: Cluster) -> None:
    admin = cluster.kubeconfig()
    kubectl(admin, "create", "secret", "generic", "s", "--from-literal=password=hunter2")
    kubectl(admin, "create", "configmap", "c", "--from-literal=k=v")
    kubectl(admin, "get", "pods")
    jane = cluster.user_kubeconfig("jane", ("dev",))
    kubectl(jane, "delete", "configmap", "c", check=False)

    def written() -> bool:
        return any(e["verb"] == "delete" for e in events(cluster))

    wait_until(written, timeout=10, what="the denied delete audited")
    log = events(cluster)
    assert all(e["stage"] == "ResponseComplete" for e in log)  # RequestReceived omitted
    assert not [e for e in log if e.get("objectRef", {}).get("resource") == "pods"]
    (secret,) = [
        e for e in log if e["verb"] == "create" and e["objectRef"]["resource"] == "secrets"
    ]
    assert secret["level"] == "Metadata"
    assert secret["apiVersion"] == "audit.k8s.io/v1" and secret["kind"] == "Event"
    assert secret["user"]["username"] == "kubernetes-super-admin"
    assert secret["objectRef"] == {
        "resource": "secrets",
        "namespace": "default",
        "apiVersion": "v1",
    }
    assert secret["responseStatus"]["code"] == 201
    assert "requestObject" not in secret and "hunter2" not in json.dumps(secret)
    assert secret["annotations"]["authorization.k8s.io/decision"] == "allow"
    (configmap,) = [
        e for e in log if e["verb"] == "create" and e["objectRef"]["resource"] == "configmaps"
    ]
    assert configmap["level"] == "RequestResponse"
    assert configmap["requestObject"]["data"] == {"k": "v"}
    assert configmap["responseObject"]["metadata"]["name"] == "c"
    (denied,) = [e for e in log if e["verb"] == "delete"]
    assert denied["user"]["username"] == "jane"
    assert denied["objectRef"]["name"] == "c"
    assert denied["responseStatus"]["code"] == 403
    assert denied["responseStatus"]["reason"] == "Forbidden"
    assert denied["annotations"]["authorization.k8s.io/decision"] == "forbid"
    for e in log:
        assert e["auditID"] and e["requestReceivedTimestamp"] <= e["stageTimestamp"]


def test_pod_security_audit_violations_are_annotated(cluster: Cluster) -> None:
    """A namespace labelled ``audit=restricted`` admits a plain pod; its audit event says
    what it would violate (and which enforce policy judged it)."""
    admin = cluster.kubeconfig()
    kubectl(admin, "create", "namespace", "audited")
    kubectl(admin, "label", "namespace", "audited", "pod-security.kubernetes.io/audit=restricted",
            "pod-security.kubernetes.io/enforce=baseline")  # fmt: skip
    kubectl(admin, "-n", "audited", "run", "plain", "--image=busybox", "--restart=Never")

    def created() -> list[dict]:  # type: ignore[type-arg]
        return [e for e in events(cluster) if e["verb"] == "create"
                and e.get("objectRef", {}).get("resource") == "pods"
                and e["objectRef"].get("namespace") == "audited"]  # fmt: skip

    wait_until(created, timeout=10, what="the pod's create audited")
    (event,) = created()
    notes = event["annotations"]
    assert notes["pod-security.kubernetes.io/enforce-policy"] == "baseline:latest"
    assert notes["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false'
    )


def test_a_bad_policy_is_refused_at_start(tmp_path: Path) -> None:
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Everything\n")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "skiff-apiserver"), f"--audit-policy-file={bad}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert 'rules[0].level: Unsupported value: "Everything"' in out.stderr
