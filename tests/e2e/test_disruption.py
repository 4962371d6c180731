"""PodDisruptionBudgets on a real apiserver with the disruption controller running in a
controller-manager process, driven by kubectl (``create pdb`` sends protobuf,
``describe``) and the official Python client's eviction call. The pods here have no
kubelet: their status is written as a kubelet would; ``kubectl drain`` against a real
kubelet is in ``test_kubelet.py``."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cmenv import Managers, until
from kubernetes import client as k8s
from kubernetes import config
from kubernetes.client.rest import ApiException

from cluster import Cluster

NS = "disruption"
KUBECTL = "kubectl"


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", NS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def core(cluster: Cluster, kubeconfig: Path) -> Iterator[k8s.CoreV1Api]:
    managers = Managers(cluster)
    managers.start("--leader-elect=false", "--controllers=disruption")
    api = config.new_client_from_config(str(kubeconfig))
    v1 = k8s.CoreV1Api(api)
    v1.create_namespace({"metadata": {"name": NS}})
    try:
        yield v1
    finally:
        v1.delete_namespace(NS)
        managers.stop()
        api.close()


def running_pod(v1: k8s.CoreV1Api, name: str) -> None:
    """A pod reported Running and Ready, as its kubelet would."""
    body: dict[str, Any] = {
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    v1.create_namespaced_pod(NS, body)
    status = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}  # fmt: skip
    v1.patch_namespaced_pod_status(name, NS, status)


def pdb_status(v1: k8s.CoreV1Api) -> Any:
    """The budget's status, read with the client's policy/v1 model."""
    return k8s.PolicyV1Api(v1.api_client).read_namespaced_pod_disruption_budget("web", NS).status


def evict(v1: k8s.CoreV1Api, name: str) -> None:
    body = k8s.V1Eviction(metadata=k8s.V1ObjectMeta(name=name, namespace=NS))
    v1.create_namespaced_pod_eviction(name, NS, body)


async def test_a_budget_guards_evictions(core: k8s.CoreV1Api, kubeconfig: Path) -> None:
    kubectl(kubeconfig, "create", "pdb", "web", "--selector=app=web", "--min-available=1")
    for name in ("a", "b"):
        running_pod(core, name)
    await until(lambda: pdb_status(core).disruptions_allowed == 1, 20, "the budget")
    status = pdb_status(core)
    assert (status.expected_pods, status.current_healthy, status.desired_healthy) == (2, 2, 1)
    assert [(c.type, c.status, c.reason) for c in status.conditions] == [
        ("DisruptionAllowed", "True", "SufficientPods")]  # fmt: skip
    described = kubectl(kubeconfig, "describe", "pdb", "web").stdout
    assert "Min available:  1" in described and "Allowed disruptions:  1" in described

    evict(core, "a")
    with pytest.raises(ApiException) as e:
        evict(core, "b")
    assert e.value.status == 429
    refusal = json.loads(e.value.body)
    assert refusal["message"] == (
        "Cannot evict pod as it would violate the pod's disruption budget."
    )
    assert refusal["details"]["causes"] == [
        {"reason": "DisruptionBudget",
         "message": "The disruption budget web needs 1 healthy pods and has 1 currently"}
    ]  # fmt: skip
    table = kubectl(kubeconfig, "get", "pdb", "web", "--no-headers").stdout.split()
    assert table[:4] == ["web", "1", "N/A", "0"]
    names = {p.metadata.name for p in core.list_namespaced_pod(NS).items}
    assert names == {"b"}  # a had no node: gone at once; b still there

    running_pod(core, "c")  # a replacement: the budget allows one again
    await until(lambda: pdb_status(core).disruptions_allowed == 1, 20, "the replacement")
    evict(core, "b")
    assert {p.metadata.name for p in core.list_namespaced_pod(NS).items} == {"c"}
