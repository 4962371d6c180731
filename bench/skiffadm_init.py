"""``skiffadm init`` benchmark (``make bench``): wall time of ``skiffadm init`` on this
machine (preflight to the join command: certificates, kubeconfigs, the static pod
manifests, containerd with the control plane's images, the kubelet, the control plane
healthy, mark-control-plane, bootstrap token, the add-ons applied), then to a Ready node
(the network add-on ran), then to the cluster DNS's two replicas ready, and of ``skiffadm
reset``. Every path and port is its own (a temporary folder, free ports), as in
tests/e2e/test_static_control_plane.py. The images come from ``scripts/compose.sh
images`` (cached), saved to an archive before the clock starts. No baseline runs here; the
issue's anchors are kubeadm's control plane healthy after about 25 s and ``kind create
cluster`` in about 12-17 s.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import write_result  # noqa: E402

SKIFFADM = Path(sys.executable).parent / "skiffadm"
COMPONENTS = ("etcd", "nats", "apiserver", "controller-manager", "scheduler", "proxy", "dns",
              "netagent")  # fmt: skip
NODE = "bench-cp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(admin: Path) -> bool:
    out = subprocess.run(["kubectl", "--kubeconfig", str(admin), "get", "node", NODE,
                          "--no-headers"], capture_output=True, text=True)  # fmt: skip
    return out.returncode == 0 and out.stdout.split()[1:2] == ["Ready"]


def _dns_ready(admin: Path) -> bool:
    out = subprocess.run(["kubectl", "--kubeconfig", str(admin), "-n", "kube-system", "get",
                          "deploy", "skiff-dns", "-o", "jsonpath={.status.readyReplicas}"],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout == "2"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "skiffadm_init.json"))
    a = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="skiff-init-bench-"))
    k8s = base / "kubernetes"
    flags = [
        "--cert-dir", str(k8s / "pki"), "--kubeconfig-dir", str(k8s),
        "--manifests-dir", str(base / "manifests"), "--kubelet-dir", str(base / "node"),
        "--etcd-data-dir", str(base / "etcd"), "--nats-data-dir", str(base / "nats"),
        "--node-name", NODE, "--bridge", "skiffbench0",
        "--cni-conf-dir", str(base / "cni" / "net.d"), "--cni-data-dir", str(base / "cni"),
    ]  # fmt: skip
    for flag in ("--apiserver-bind-port", "--etcd-port", "--etcd-peer-port", "--nats-port",
                 "--scheduler-port", "--controller-manager-port", "--kubelet-port",
                 "--kubelet-healthz-port"):  # fmt: skip
        flags += [flag, str(free_port())]
    docker = subprocess.run([str(ROOT / "scripts/compose.sh"), "client"], check=True,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    subprocess.run([str(ROOT / "scripts/compose.sh"), "images"], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    archive = base / "control-plane.tar"
    subprocess.run([docker, "save", "-o", str(archive), *(f"skiff/{c}:dev" for c in COMPONENTS)],
                   check=True)  # fmt: skip
    results: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        # (The cluster DNS forwards other names nowhere: nothing leaves the machine.)
        subprocess.run([str(SKIFFADM), "init", *flags, "--image-archive", str(archive),
                        "--dns-upstream", "127.0.0.1:9"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        results["init_s"] = round(time.monotonic() - t0, 1)
        admin = k8s / "admin.conf"
        while not _ready(admin):
            if time.monotonic() - t0 > 300:
                raise TimeoutError("no Ready node in 300 s")
            time.sleep(0.2)
        results["init_to_ready_node_s"] = round(time.monotonic() - t0, 1)
        while not _dns_ready(admin):
            if time.monotonic() - t0 > 300:
                raise TimeoutError("the cluster DNS not ready in 300 s")
            time.sleep(0.2)
        results["init_to_dns_ready_s"] = round(time.monotonic() - t0, 1)
    finally:
        t1 = time.monotonic()
        subprocess.run([str(SKIFFADM), "reset", *flags], check=True, stdout=subprocess.DEVNULL)
        results["reset_s"] = round(time.monotonic() - t1, 1)
        shutil.rmtree(base, ignore_errors=True)
    write_result(a.out, results)


if __name__ == "__main__":
    main()
