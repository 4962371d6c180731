"""The control plane as static pods, as ``kubeadm init`` runs it: skiffadm writes the
certificates, kubeconfigs and the manifests of etcd, NATS, the apiserver, controller
manager and scheduler; a kubelet on a real containerd runs them from the images ``make
images`` builds (before any API exists), then registers its Node, mirrors them, and a pod
created through the new control plane is scheduled and runs.

Slow and needs the Docker images: skipped unless ``SKIFF_TEST_COMPOSE=1`` (``make
test-compose`` runs it after the compose test, which builds them).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs, start_containerd

from cluster import Proc
from skiff.cri.client import CriClient
from skiff.kubelet.containerd_setup import ensure_shared_netns_dir, teardown_network

ROOT = Path(__file__).resolve().parents[2]
SKIFFADM = Path(sys.executable).parent / "skiffadm"
NODE = "sp-node"
BRIDGE = "skiffsp0"
COMPONENTS = ("etcd", "nats", "apiserver", "controller-manager", "scheduler")
STATIC = ("etcd", "nats", "kube-apiserver", "kube-controller-manager", "kube-scheduler")

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SKIFF_TEST_COMPOSE") != "1", reason="set SKIFF_TEST_COMPOSE=1"
    ),
    needs(*CONTAINERD, "iptables", paths=(CNI_PLUGINS / "bridge",)),
    pytest.mark.timeout(900),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=600).stdout


def kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def wait(what: str, check, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = Path(tmp_path_factory.mktemp("static-cp"))
    k8s, pki, manifests = base / "kubernetes", base / "kubernetes" / "pki", base / "manifests"
    api_port = free_port()
    ports = {
        "--apiserver-bind-port": api_port, "--etcd-port": free_port(),
        "--etcd-peer-port": free_port(), "--nats-port": free_port(),
        "--scheduler-port": free_port(), "--controller-manager-port": free_port(),
    }  # fmt: skip
    flags = [x for k, v in ports.items() for x in (k, str(v))]
    common = ["--cert-dir", str(pki), "--kubeconfig-dir", str(k8s), "--node-name", NODE]
    run(str(SKIFFADM), "init", "phase", "certs", "all", "--cert-dir", str(pki),
        "--node-name", NODE)  # fmt: skip
    run(str(SKIFFADM), "init", "phase", "kubeconfig", "all", *common,
        "--control-plane-endpoint", f"127.0.0.1:{api_port}")  # fmt: skip
    where = ["--manifests-dir", str(manifests), "--etcd-data-dir", str(base / "etcd"),
             "--nats-data-dir", str(base / "nats")]  # fmt: skip
    run(str(SKIFFADM), "init", "phase", "etcd", "local", *common, *where, *flags)
    run(str(SKIFFADM), "init", "phase", "control-plane", "all", *common, *where, *flags)

    docker = run(str(ROOT / "scripts/compose.sh"), "client").strip()
    run(str(ROOT / "scripts/compose.sh"), "images")
    images = base / "control-plane.tar"
    run(docker, "save", "-o", str(images), *(f"skiff/{c}:dev" for c in COMPONENTS))
    ensure_shared_netns_dir()
    paths, containerd = start_containerd(base / "runtime")
    kubelet = Proc("kubelet", [
        sys.executable, "-m", "skiff.kubelet", "--kubeconfig", str(k8s / "kubelet.conf"),
        "--node-name", NODE, "--runtime-dir", str(base / "runtime"), "--port", "0",
        "--bridge", BRIDGE, "--network-name", BRIDGE, "--pod-cidr", "10.244.253.0/24",
        "--pod-manifest-path", str(manifests), "--file-check-frequency", "0.5",
        "--lease-period", "2",
    ], base / "kubelet.log")  # fmt: skip
    try:
        run("ctr", "--address", str(paths.socket), "-n", "k8s.io", "images", "import",
            str(images))  # fmt: skip
        images.unlink()
        kubelet.start()
        yield k8s
    finally:
        kubelet.stop()  # static pods outlive their kubelet: remove them through the CRI
        asyncio.run(_remove_sandboxes(paths.endpoint))
        containerd.stop()
        teardown_network(BRIDGE)
        _unmount_under(base)  # the pods' volumes (tmpfs) the stopped kubelet left


def _unmount_under(base: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(str(base))), reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


async def _remove_sandboxes(endpoint: str) -> None:
    async with CriClient(endpoint) as cri:
        for sb in await cri.list_pod_sandbox():
            await cri.stop_pod_sandbox(sb.id)
            await cri.remove_pod_sandbox(sb.id)


def test_the_control_plane_runs_as_static_pods(control_plane: Path) -> None:
    admin = control_plane / "super-admin.conf"
    wait("the apiserver's /readyz", lambda: kubectl(admin, "get", "--raw", "/readyz").stdout
         == "ok", timeout=240)  # fmt: skip

    def mirrored() -> bool:
        out = kubectl(admin, "-n", "kube-system", "get", "pods", "-o", "json")
        if out.returncode != 0:
            return False
        pods = {p["metadata"]["name"]: p for p in json.loads(out.stdout)["items"]}
        return all(
            (pods.get(f"{name}-{NODE}", {}).get("status") or {}).get("phase") == "Running"
            for name in STATIC
        )

    wait("the five mirror pods Running", mirrored)
    pods = json.loads(kubectl(admin, "-n", "kube-system", "get", "pods", "-o", "json").stdout)
    for p in pods["items"]:
        if p["metadata"]["name"].endswith(f"-{NODE}"):
            assert p["metadata"]["annotations"]["kubernetes.io/config.source"] == "file"
            assert p["spec"]["nodeName"] == NODE
    wait("the node Ready", lambda: " Ready " in kubectl(admin, "get", "node", NODE).stdout)
    # Scheduled by the static scheduler, run by the kubelet.
    assert kubectl(admin, "run", "hello", "--image=busybox", "--restart=Never",
                   "--", "sleep", "3600").returncode == 0  # fmt: skip
    phase = ["get", "pod", "hello", "-o", "jsonpath={.status.phase}"]
    wait("a pod Running", lambda: kubectl(admin, *phase).stdout == "Running")
