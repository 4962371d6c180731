"""``skiffadm reset``: undo what ``skiffadm init`` put on this machine, as kubeadm reset
does: stop the kubelet, remove every pod (the static control plane too) with its volumes,
network namespaces, the bridge and CNI chains, stop the containerd init started, remove
the Service proxy's and the network add-on's routes and iptables rules and the CNI
configuration and allocations the add-on wrote (their DaemonSets ran here), unmount what is left
under the kubelet's folder, and delete the manifests, certificates, kubeconfigs and the
data of etcd and NATS."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from skiff.cni import FILE as CNI_FILE
from skiff.cni import NETWORK as CNI_NETWORK

from .init import InitOptions, alive, local_bin, pid_of

KUBECONFIG_FILES = ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                    "controller-manager.conf", "scheduler.conf", "nats.conf")  # fmt: skip


def _stop(state: Path, name: str, grace: float = 10.0) -> bool:
    pid = pid_of(state, name)
    if pid is None or not alive(pid):
        return False
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while alive(pid) and time.monotonic() < end:
        time.sleep(0.1)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    (state / f"{name}.pid").unlink(missing_ok=True)
    return True


def _mounts_under(folder: Path) -> list[str]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p == str(folder) or p.startswith(f"{folder}/")),
                  reverse=True)  # fmt: skip


def _empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run_reset(opts: InitOptions) -> list[str]:
    """Every step; kubeadm's lines."""
    cp = opts.cp
    out = ["[reset] Stopping the kubelet service"]
    _stop(opts.state, "kubelet")
    if (opts.runtime / "containerd.sock").exists() or pid_of(opts.state, "containerd"):
        cleanup = subprocess.run(
            [sys.executable, "-m", "skiff.kubelet.containerd_setup", "cleanup", "--dir",
             str(opts.runtime), "--bridge", opts.bridge, "--grace", "1"],
            capture_output=True, text=True,
        )  # fmt: skip
        if cleanup.returncode == 0:
            out.append(f"[reset] Removed the pods: {cleanup.stdout.strip()}")
    if _stop(opts.state, "containerd"):
        out.append("[reset] Stopped containerd")
    # What the add-ons' DaemonSets wrote on this node, with their own --cleanup.
    for name, what in (
        ("skiff-proxy", "the Service proxy's iptables rules (KUBE-* chains)"),
        ("skiff-netagent", "the pod network's routes and iptables rules"),
    ):
        binary = local_bin(name)
        if Path(binary).is_absolute():
            cleanup = subprocess.run([binary, "--cleanup"], capture_output=True, text=True)
            if cleanup.returncode == 0:
                out.append(f"[reset] Deleted {what}")
    cni = [opts.cni_conf_dir / CNI_FILE, opts.cni_data_dir / "networks" / CNI_NETWORK]
    out.append(f"[reset] Deleting the pod network's CNI state: [{' '.join(map(str, cni))}]")
    cni[0].unlink(missing_ok=True)
    shutil.rmtree(cni[1], ignore_errors=True)
    out.append(f'[reset] Unmounting mounted directories in "{opts.kubelet_dir}"')
    for point in _mounts_under(opts.kubelet_dir):
        subprocess.run(["umount", "-l", point], capture_output=True)
    folders = [opts.manifests, opts.kubelet_dir, cp.pki, cp.etcd_data, cp.nats_data]
    out.append(f"[reset] Deleting contents of directories: [{' '.join(map(str, folders))}]")
    for folder in folders:
        _empty(folder)
    files = [cp.kubeconfigs / f for f in KUBECONFIG_FILES]
    out.append(f"[reset] Deleting files: [{' '.join(map(str, files))}]")
    for file in files:
        file.unlink(missing_ok=True)
    out += [
        "",
        "The reset process does not clean your kubeconfig files and you must remove them manually.",
        "Please, check the contents of the $HOME/.kube/config file.",
    ]
    return out
