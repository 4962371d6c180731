"""``python -m skiff.addons`` installs the add-on manifests of deploy/ through a real
apiserver (as the compose deployment does at ``up``): they pass its validation, a second
run changes nothing, and a manifest it cannot apply fails with one clear line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster import ROOT, Cluster, start_cluster

DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """An apiserver of its own: no node may start the add-ons' pods meanwhile."""
    c = start_cluster(tmp_path_factory.mktemp("addons"))
    try:
        yield c
    finally:
        c.stop()


def addons(c: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "skiff.addons", "--server", c.url, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def kubectl(c: Cluster, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--server", c.url, *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_add_ons_install_and_reinstall(cluster: Cluster, tmp_path: Path) -> None:
    files = [str(DEPLOY / n) for n in ("kube-proxy.yaml", "network.yaml", "dns.yaml")]
    endpoint = ("--control-plane-endpoint", "http://apiserver:6443")
    first = addons(cluster, *endpoint, "--dns-upstream", "127.0.0.1:9", *files)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split("\n")[:15] == [
        "configmaps/kube-proxy applied",
        "configmaps/skiff-dns applied",
        "serviceaccounts/kube-proxy applied",
        "clusterrolebindings.rbac.authorization.k8s.io/kubeadm:node-proxier applied",
        "daemonsets.apps/kube-proxy applied",
        "serviceaccounts/skiff-network applied",
        "clusterroles.rbac.authorization.k8s.io/system:skiff-network applied",
        "clusterrolebindings.rbac.authorization.k8s.io/system:skiff-network applied",
        "daemonsets.apps/skiff-network applied",
        "serviceaccounts/skiff-dns applied",
        "clusterroles.rbac.authorization.k8s.io/system:skiff-dns applied",
        "clusterrolebindings.rbac.authorization.k8s.io/system:skiff-dns applied",
        "services/kube-dns applied",
        "deployments.apps/skiff-dns applied",
        "",
    ]
    cm = json.loads(kubectl(cluster, "-n", "kube-system", "get", "cm", "kube-proxy", "-o", "json"))
    assert "server: http://apiserver:6443" in cm["data"]["kubeconfig.conf"]
    ds = json.loads(kubectl(cluster, "-n", "kube-system", "get", "ds", "-o", "json"))["items"]
    generations = {d["metadata"]["name"]: d["metadata"]["generation"] for d in ds}
    assert set(generations) >= {"kube-proxy", "skiff-network"}
    again = addons(cluster, *files)
    assert again.returncode == 0, again.stderr
    ds = json.loads(kubectl(cluster, "-n", "kube-system", "get", "ds", "-o", "json"))["items"]
    assert {d["metadata"]["name"]: d["metadata"]["generation"] for d in ds} == generations

    # Only the RBAC documents, as `make up` applies them for its processes.
    rbac = addons(cluster, "--kinds", "ClusterRole", *files)
    assert rbac.stdout.split() == [
        "clusterroles.rbac.authorization.k8s.io/system:skiff-network",
        "applied",
        "clusterroles.rbac.authorization.k8s.io/system:skiff-dns",
        "applied",
    ]

    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    failed = addons(cluster, str(bad))
    assert failed.returncode == 1
    assert failed.stderr.strip() == (
        "skiff.addons: ValueError: no resource for example.com/v1 Widget"
    )
