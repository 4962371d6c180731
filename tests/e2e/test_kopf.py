"""An operator written with kopf (PyPI) runs against Skiff unchanged: it watches its
custom resource, patches status, posts events, holds and releases a finalizer, and goes
on after the apiserver restarts (the issue's acceptance test for CRDs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterenv import started_cluster
from test_kubectl import kubectl

from cluster import Cluster, wait_until

NS = "kopf-test"
OPERATOR = Path(__file__).parent / "operators" / "kopf_crontabs.py"
CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: kopftabs.kopf.skiff.io
spec:
  group: kopf.skiff.io
  scope: Namespaced
  names: {plural: kopftabs, singular: kopftab, kind: KopfTab}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              schedule: {type: string}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"""
TAB = """\
apiVersion: kopf.skiff.io/v1
kind: KopfTab
metadata: {{name: {name}, namespace: kopf-test}}
spec: {{schedule: "{schedule}"}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A cluster of its own: a test restarts its apiserver."""
    yield from started_cluster(tmp_path_factory, "kopf")


@pytest.fixture(scope="module")
def kubeconfig(cluster: Cluster) -> Path:
    return cluster.kubeconfig(0)


@pytest.fixture(scope="module")
def operator(cluster: Cluster, kubeconfig: Path) -> Iterator[subprocess.Popen[bytes]]:
    kubectl(kubeconfig, "create", "namespace", NS)
    kubectl(kubeconfig, "apply", "-f", "-", input=CRD)
    kubectl(kubeconfig, "wait", "--for=condition=Established", "crd/kopftabs.kopf.skiff.io")
    log = (cluster.dir / "kopf.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", NS, str(OPERATOR)],
        env=dict(os.environ, KUBECONFIG=str(kubeconfig)),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _tab(kubeconfig: Path, name: str) -> dict | None:
    out = kubectl(kubeconfig, "get", "kopftab", name, "-n", NS, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def _handled(kubeconfig: Path, name: str, phase: str = "Handled") -> None:
    def check() -> bool:
        tab = _tab(kubeconfig, name)
        return tab is not None and (tab.get("status") or {}).get("phase") == phase

    wait_until(check, timeout=60, what=f"kopf to handle {name} ({phase})")


def test_kopf_handles_creates_updates_and_deletes(
    cluster: Cluster, kubeconfig: Path, operator: subprocess.Popen[bytes]
) -> None:
    kubectl(kubeconfig, "apply", "-f", "-", input=TAB.format(name="first", schedule="* * * * *"))
    _handled(kubeconfig, "first")
    tab = _tab(kubeconfig, "first")
    assert tab is not None
    assert tab["status"]["created"] == {"schedule": "* * * * *"}
    assert any(f.startswith("kopf.zalando.org/") for f in tab["metadata"]["finalizers"])

    def posted() -> bool:
        events = json.loads(kubectl(kubeconfig, "get", "events", "-n", NS, "-o", "json").stdout)
        return any(
            e["involvedObject"].get("name") == "first"
            and e["message"] == "handled first with schedule * * * * *"
            for e in events["items"]
        )

    wait_until(posted, timeout=30, what="kopf's event")

    kubectl(
        kubeconfig,
        "patch",
        "kopftab",
        "first",
        "-n",
        NS,
        "--type=merge",
        "-p",
        '{"spec":{"schedule":"0 * * * *"}}',
    )
    _handled(kubeconfig, "first", "Updated to 0 * * * *")

    kubectl(kubeconfig, "delete", "kopftab", "first", "-n", NS, "--timeout=60s")
    assert _tab(kubeconfig, "first") is None
    assert operator.poll() is None, "the operator exited"


def test_kopf_goes_on_after_an_apiserver_restart(
    cluster: Cluster, kubeconfig: Path, operator: subprocess.Popen[bytes]
) -> None:
    cluster.apiservers[0].stop()
    time.sleep(1)
    cluster.start_apiserver(0)
    kubectl(kubeconfig, "apply", "-f", "-", input=TAB.format(name="second", schedule="*/2 * * * *"))
    _handled(kubeconfig, "second")
    assert operator.poll() is None, "the operator exited"
