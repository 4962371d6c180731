"""skiffadm's pre-flight checks: kubeadm's names and words, errors and warnings, and
``--ignore-preflight-errors``; a machine without the control plane's packages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from skiff.skiffadm.preflight import Host, init_checks, report

SKIFFADM = Path(sys.executable).parent / "skiffadm"


def fake_proc(tmp: Path, forward: str = "1", swap: bool = False) -> Path:
    proc = tmp / "proc"
    (proc / "sys/net/ipv4").mkdir(parents=True)
    (proc / "sys/net/ipv4/ip_forward").write_text(forward + "\n")
    header = "Filename\tType\tSize\tUsed\tPriority\n"
    (proc / "swaps").write_text(header + ("/swapfile file 1024 0 -2\n" if swap else ""))
    return proc


def test_a_ready_machine_passes(tmp_path: Path) -> None:
    host = Host(euid=lambda: 0, which=lambda b: f"/usr/bin/{b}", proc=fake_proc(tmp_path))
    problems = init_checks(host, [], tmp_path / "manifests", tmp_path / "etcd")
    assert problems == []
    assert report(problems, []) == (["[preflight] Running pre-flight checks"], True)


def test_each_problem_in_kubeadms_words(tmp_path: Path) -> None:
    manifests, etcd = tmp_path / "manifests", tmp_path / "etcd"
    manifests.mkdir()
    (manifests / "kube-apiserver.yaml").write_text("{}")
    etcd.mkdir()
    (etcd / "member").mkdir()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    host = Host(euid=lambda: 1000, which=lambda b: None if b in ("etcd", "conntrack") else b,
                proc=fake_proc(tmp_path, forward="0", swap=True))  # fmt: skip
    try:
        lines, ok = report(init_checks(host, [port], manifests, etcd), ["Swap"])
    finally:
        taken.close()
    assert not ok
    m = str(manifests).replace("/", "-")
    assert lines == [
        "[preflight] Running pre-flight checks",
        "\t[WARNING FileExisting-conntrack]: conntrack not found in system path",
        "\t[WARNING Swap]: swap is enabled; the kubelet does not account for it",
        "[preflight] Some fatal errors occurred:",
        "\t[ERROR IsPrivilegedUser]: user is not running as root",
        f"\t[ERROR Port-{port}]: Port {port} is in use",
        f"\t[ERROR FileAvailable-{m}-kube-apiserver.yaml]: {manifests}/kube-apiserver.yaml "
        "already exists",
        f"\t[ERROR DirAvailable-{str(etcd).replace('/', '-')}]: {etcd} is not empty",
        "\t[ERROR FileExisting-etcd]: etcd not found in system path",
        f"\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: {host.proc}/sys/net/ipv4/"
        "ip_forward contents are not set to 1",
        "[preflight] If you know what you are doing, you can make a check non-fatal with "
        "`--ignore-preflight-errors=...`",
    ]
    lines, ok = report(init_checks(host, [], manifests, etcd), ["all"])
    assert ok and all("WARNING" in line for line in lines[1:])


def test_a_fresh_machine_is_told_what_is_missing(tmp_path: Path) -> None:
    """Run as a user runs it, with a PATH that has none of the control plane's packages."""
    bare = tmp_path / "bin"
    bare.mkdir()
    out = subprocess.run(
        [str(SKIFFADM), "init", "phase", "preflight", "--ports", "",
         "--manifests-dir", str(tmp_path / "m"), "--etcd-data-dir", str(tmp_path / "e")],
        capture_output=True, text=True, env={**os.environ, "PATH": str(bare)}, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    for binary in ("etcd", "nats-server", "containerd", "runc", "iptables"):
        assert f"[ERROR FileExisting-{binary}]: {binary} not found in system path" in out.stderr
    ignored = subprocess.run(
        [str(SKIFFADM), "init", "phase", "preflight", "--ports", "",
         "--manifests-dir", str(tmp_path / "m"), "--etcd-data-dir", str(tmp_path / "e"),
         "--ignore-preflight-errors", "all"],
        capture_output=True, text=True, env={**os.environ, "PATH": str(bare)}, timeout=60,
    )  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr
    assert "[WARNING FileExisting-etcd]" in ignored.stdout
