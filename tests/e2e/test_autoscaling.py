"""HorizontalPodAutoscalers in autoscaling/v2 and v1 through the real kubectl (1.32) and
the official Python client, against a real apiserver on etcd and NATS: one object, stored
as v2, read, written and watched in either version."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from test_kubectl import KUBECTL

NS = "hpa"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: busybox}]}
"""

HPA_V2 = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: queue}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: packets-per-second}
      target: {type: AverageValue, averageValue: 1k}
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 60}
"""


def kubectl(kubeconfig: Path, *args: str, input: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:  # fmt: skip
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "-n", NS, *args],
                          input=input, capture_output=True, text=True, timeout=60)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def as_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    return json.loads(kubectl(kubeconfig, *args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def ns(kubeconfig: Path) -> str:
    subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "create", "namespace", NS],
                   check=True, capture_output=True)  # fmt: skip
    kubectl(kubeconfig, "apply", "-f", "-", input=DEPLOYMENT)
    return NS


def test_kubectl_autoscale_creates_a_v1_object_served_as_v2(kubeconfig: Path, ns: str) -> None:
    out = kubectl(kubeconfig, "autoscale", "deployment", "web", "--max=5", "--cpu-percent=60")
    assert out.stdout.strip() == "horizontalpodautoscaler.autoscaling/web autoscaled"
    lines = kubectl(kubeconfig, "get", "hpa").stdout.splitlines()
    assert lines[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                "REPLICAS", "AGE"]  # fmt: skip
    assert lines[1].split()[:7] == ["web", "Deployment/web", "cpu:", "<unknown>/60%", "1", "5",
                                    "0"]  # fmt: skip
    # kubectl reads the preferred version, v2; v1 stays available by its full name.
    v2 = as_json(kubeconfig, "get", "hpa", "web", "--show-managed-fields")
    assert v2["apiVersion"] == "autoscaling/v2"
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]  # fmt: skip
    # Field ownership is recorded in the version kubectl wrote.
    owners = [(m["manager"], m["apiVersion"]) for m in v2["metadata"]["managedFields"]]
    assert owners == [("kubectl-autoscale", "autoscaling/v1")]
    v1 = as_json(kubeconfig, "get", "horizontalpodautoscalers.v1.autoscaling", "web")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 60
    assert v1["status"] == {"currentReplicas": 0, "desiredReplicas": 0}
    assert v1["metadata"]["resourceVersion"] == v2["metadata"]["resourceVersion"]
    listed = kubectl(kubeconfig, "get", "all", "-o", "name").stdout.split()
    assert "horizontalpodautoscaler.autoscaling/web" in listed
    bad = kubectl(kubeconfig, "autoscale", "deployment", "web", "--name=zero", "--max=5",
                  "--cpu-percent=0", check=False)  # fmt: skip
    assert bad.returncode != 0
    assert ("spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be "
            "greater than 0") in bad.stderr  # fmt: skip


def test_v2_fields_travel_through_v1_and_survive_a_v1_edit(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", input=HPA_V2)
    v1 = as_json(kubeconfig, "get", "horizontalpodautoscalers.v1.autoscaling", "queue")
    notes = v1["metadata"]["annotations"]
    assert v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert json.loads(notes["autoscaling.alpha.kubernetes.io/metrics"]) == [
        {"type": "Pods", "pods": {"metricName": "packets-per-second",
                                  "targetAverageValue": "1k"}}]  # fmt: skip
    assert json.loads(notes["autoscaling.alpha.kubernetes.io/behavior"])["ScaleDown"][
        "StabilizationWindowSeconds"] == 60  # fmt: skip
    # A v1 client's read-modify-write keeps what only v2 can say.
    v1["spec"]["maxReplicas"] = 12
    kubectl(kubeconfig, "replace", "-f", "-", input=json.dumps(v1))
    v2 = as_json(kubeconfig, "get", "hpa", "queue")
    assert v2["spec"]["maxReplicas"] == 12
    assert [m["type"] for m in v2["spec"]["metrics"]] == ["Pods", "Resource"]
    assert v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert v2["spec"]["behavior"]["scaleUp"]["policies"]  # defaulted
    assert "annotations" not in v2["metadata"] or not any(
        k.startswith("autoscaling.alpha") for k in v2["metadata"]["annotations"]
    )
    line = kubectl(kubeconfig, "get", "hpa", "queue").stdout.splitlines()[1]
    assert "<unknown>/1k, cpu: <unknown>/50%" in line
    described = kubectl(kubeconfig, "describe", "hpa", "queue").stdout
    assert '"packets-per-second" on pods:' in described
    assert "resource cpu on pods  (as a percentage of request):  <unknown> / 50%" in described
    assert "Stabilization Window: 60 seconds" in described


def test_the_official_client_in_both_versions(kubeconfig: Path, ns: str) -> None:
    api = config.new_client_from_config(str(kubeconfig))
    v1, v2 = client.AutoscalingV1Api(api), client.AutoscalingV2Api(api)
    seen: list[Any] = []
    ready = threading.Event()

    def follow() -> None:
        w = watch.Watch()
        for event in w.stream(v1.list_namespaced_horizontal_pod_autoscaler, NS,
                              field_selector="metadata.name=py", timeout_seconds=20):  # fmt: skip
            seen.append(event["object"])
            if len(seen) == 2:
                w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    ready.wait(1)
    memory = {"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}}  # fmt: skip
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    body = {"metadata": {"name": "py"},
            "spec": {"scaleTargetRef": ref, "maxReplicas": 3, "metrics": [memory]}}  # fmt: skip
    created = v2.create_namespaced_horizontal_pod_autoscaler(NS, body)
    assert created.spec.metrics[0].resource.target.average_value == "64Mi"
    got = v1.read_namespaced_horizontal_pod_autoscaler("py", NS)
    assert got.spec.target_cpu_utilization_percentage is None
    assert "autoscaling.alpha.kubernetes.io/metrics" in got.metadata.annotations
    got.spec.max_replicas = 4
    v1.replace_namespaced_horizontal_pod_autoscaler("py", NS, got)
    thread.join(25)
    assert [h.spec.max_replicas for h in seen] == [3, 4]
    assert all(h.api_version == "autoscaling/v1" for h in seen)
    now = v2.read_namespaced_horizontal_pod_autoscaler("py", NS)
    assert now.spec.max_replicas == 4
    assert now.spec.metrics[0].resource.name == "memory"
    v1.delete_namespaced_horizontal_pod_autoscaler("py", NS)
