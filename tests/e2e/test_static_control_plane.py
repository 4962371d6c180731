"""``skiffadm init`` on this machine, as ``kubeadm init``: the certificates, kubeconfigs
and the static pod manifests of etcd, NATS, the apiserver, controller manager and
scheduler; containerd and a kubelet that runs them from the images ``make images`` builds
(before any API exists), then registers its Node, mirrors them, and runs a pod the new
control plane schedules. A second "host" — a network namespace with its own address,
containerd, kubelet and bridge — joins it with init's printed ``skiffadm join`` line.
``skiffadm reset`` then leaves nothing behind on either.

Slow and needs the Docker images: skipped unless ``SKIFF_TEST_COMPOSE=1`` (``make
test-compose`` runs it after the compose test, which builds them).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs

from skiff.kubelet.containerd_setup import ensure_shared_netns_dir

ROOT = Path(__file__).resolve().parents[2]
SKIFFADM = Path(sys.executable).parent / "skiffadm"
NODE = "sp-node"
BRIDGE = "skiffsp0"
# The second host: a network namespace joined to this machine by a veth pair.
NETNS = "skiff-sp2"
HOST_IP, NODE2_IP = "10.254.77.1", "10.254.77.2"
SERVICE_CIDR, KUBERNETES_IP = "10.112.0.0/16", "10.112.0.1"
COMPONENTS = ("etcd", "nats", "apiserver", "controller-manager", "scheduler")
# init's addon phase: the Service proxy, the cluster DNS, the pod network.
ADDONS = ("proxy", "dns", "netagent")
# The second host's own mount namespace (its file on a private mount, as ip netns does):
# the network add-on's DaemonSet names one CNI folder for every node, as on real machines.
MOUNT_NS = Path("/run/skiff-sp2-ns")
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


def _drop_second_host() -> None:
    subprocess.run(["umount", str(MOUNT_NS / "mnt")], capture_output=True)
    subprocess.run(["umount", str(MOUNT_NS)], capture_output=True)
    shutil.rmtree(MOUNT_NS, ignore_errors=True)
    subprocess.run(["ip", "netns", "del", NETNS], capture_output=True)
    subprocess.run(["ip", "link", "del", "skiffsph"], capture_output=True)


@pytest.fixture(scope="module")
def second_host() -> Iterator[str]:
    """A second machine: a network namespace with ``NODE2_IP``, joined to ``HOST_IP``
    here by a veth pair on a /30 of their own, loopback up and forwarding on, and a mount
    namespace of its own (this machine's mounts propagate in, its own stay there)."""
    _drop_second_host()
    try:
        for cmd in (
            ["ip", "netns", "add", NETNS],
            ["ip", "link", "add", "skiffsph", "type", "veth", "peer", "name", "skiffspn"],
            ["ip", "link", "set", "skiffspn", "netns", NETNS],
            ["ip", "addr", "add", f"{HOST_IP}/30", "dev", "skiffsph"],
            ["ip", "link", "set", "skiffsph", "up"],
            ["ip", "-n", NETNS, "addr", "add", f"{NODE2_IP}/30", "dev", "skiffspn"],
            ["ip", "-n", NETNS, "link", "set", "skiffspn", "up"],
            ["ip", "-n", NETNS, "link", "set", "lo", "up"],
            ["ip", "netns", "exec", NETNS, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            ["mkdir", "-p", str(MOUNT_NS)],
            ["mount", "--bind", str(MOUNT_NS), str(MOUNT_NS)],
            ["mount", "--make-private", str(MOUNT_NS)],
            ["touch", str(MOUNT_NS / "mnt")],
            ["unshare", f"--mount={MOUNT_NS / 'mnt'}", "--propagation", "slave", "true"],
        ):
            run(*cmd)
        yield NETNS
    finally:  # the veth pair goes with the network namespace
        _drop_second_host()


def on_second_host(*argv: str) -> list[str]:
    """``argv`` run on the second host: its network and mount namespaces."""
    return ["nsenter", f"--net=/run/netns/{NETNS}", f"--mount={MOUNT_NS / 'mnt'}", *argv]


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory, second_host: str) -> Iterator[Path]:
    """``skiffadm init`` on this machine, every path and port its own, advertising the
    address the second host reaches; ``skiffadm reset`` at the end, which must leave
    nothing behind."""
    base = Path(tmp_path_factory.mktemp("static-cp"))
    k8s = base / "kubernetes"
    ports = {
        "--apiserver-bind-port": free_port(), "--etcd-port": free_port(),
        "--etcd-peer-port": free_port(), "--nats-port": free_port(),
        "--scheduler-port": free_port(), "--controller-manager-port": free_port(),
        "--kubelet-port": free_port(), "--kubelet-healthz-port": free_port(),
    }  # fmt: skip
    where = [
        "--cert-dir", str(k8s / "pki"), "--kubeconfig-dir", str(k8s),
        "--manifests-dir", str(base / "manifests"), "--kubelet-dir", str(base / "node"),
        "--etcd-data-dir", str(base / "etcd"), "--nats-data-dir", str(base / "nats"),
        "--node-name", NODE, "--bridge", BRIDGE,
        "--cni-conf-dir", str(base / "cni" / "net.d"), "--cni-data-dir", str(base / "cni"),
        *(x for k, v in ports.items() for x in (k, str(v))),
    ]  # fmt: skip
    # The cluster DNS forwards other names to nothing: no query leaves the machine.
    # A Service range of its own: the joining kubelet must learn the DNS address from the
    # cluster (kubeadm's kubelet-config ConfigMap), not assume 10.96.0.10.
    advertise = ["--apiserver-advertise-address", HOST_IP, "--dns-upstream", "127.0.0.1:9",
                 "--service-cidr", SERVICE_CIDR]  # fmt: skip
    docker = run(str(ROOT / "scripts/compose.sh"), "client").strip()
    run(str(ROOT / "scripts/compose.sh"), "images")
    images = base / "control-plane.tar"
    run(docker, "save", "-o", str(images), *(f"skiff/{c}:dev" for c in COMPONENTS + ADDONS))
    # What a worker runs of ours (it cannot pull either): the add-ons.
    run(docker, "save", "-o", str(base / "addons.tar"), *(f"skiff/{c}:dev" for c in ADDONS))
    ensure_shared_netns_dir()
    t0 = time.monotonic()
    init = subprocess.run([str(SKIFFADM), "init", *where, *advertise, "--image-archive",
                           str(images)], capture_output=True, text=True, timeout=600)  # fmt: skip
    took = time.monotonic() - t0
    try:
        assert init.returncode == 0, init.stdout + init.stderr
        lines = init.stdout.splitlines()
        assert "[preflight] Running pre-flight checks" in lines
        assert "Your Kubernetes control-plane has initialized successfully!" in lines
        assert "[addons] Applied essential addon: kube-proxy" in lines
        assert any(line.startswith("[api-check] The API server is healthy after") for line in lines)
        join = next(line for line in lines if line.startswith("skiffadm join "))
        assert join == f"skiffadm join {HOST_IP}:{ports['--apiserver-bind-port']} --token " \
            f"{join.split()[4]} \\"  # fmt: skip
        images.unlink()
        (base / "init.out").write_text(init.stdout)
        print(f"skiffadm init: {took:.1f} s")
        yield base
    finally:
        reset = subprocess.run([str(SKIFFADM), "reset", *where], capture_output=True,
                               text=True, timeout=300)  # fmt: skip
        try:
            assert reset.returncode == 0, reset.stdout + reset.stderr
            assert reset.stdout.startswith("[reset] Stopping the kubelet service")
            state = base / "node" / "skiffadm"
            assert not list(state.glob("*.pid")), "reset left a process"
            assert str(base) not in Path("/proc/mounts").read_text(), "reset left a mount"
            assert not list((base / "manifests").iterdir())
            assert not (k8s / "admin.conf").exists() and not list((k8s / "pki").iterdir())
            links = subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True)
            assert links.returncode != 0, "reset left the bridge"
            nat = run("iptables", "-t", "nat", "-S")
            assert "KUBE-SERVICES" not in nat, "reset left the proxy's rules"
            routes = run("ip", "route", "show", "proto", "77")
            assert not routes.strip(), f"reset left the network add-on's routes: {routes}"
            assert not (base / "cni" / "net.d" / "10-skiff.conflist").exists()
        finally:  # whatever reset missed must not outlive the test
            mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
            for point in sorted((m for m in mounts if m.startswith(str(base))), reverse=True):
                subprocess.run(["umount", "-l", point], capture_output=True)


def test_the_control_plane_runs_as_static_pods(control_plane: Path) -> None:
    admin = control_plane / "kubernetes" / "admin.conf"
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
    # Marked as kubeadm marks it; a one-node cluster lifts the taint, as kubeadm's docs say.
    node = json.loads(kubectl(admin, "get", "node", NODE, "-o", "json").stdout)
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in (
        node["spec"]["taints"]
    )
    lift = kubectl(admin, "taint", "nodes", "--all", "node-role.kubernetes.io/control-plane-")
    assert lift.returncode == 0, lift.stderr
    # Scheduled by the static scheduler, run by the kubelet.
    # (IfNotPresent: the local busybox, never a pull from outside.)
    assert kubectl(admin, "run", "hello", "--image=busybox", "--restart=Never",
                   "--image-pull-policy=IfNotPresent",
                   "--", "sleep", "3600").returncode == 0  # fmt: skip
    phase = ["get", "pod", "hello", "-o", "jsonpath={.status.phase}"]
    wait("a pod Running", lambda: kubectl(admin, *phase).stdout == "Running")
    # The add-ons: the proxy on this node, the DNS behind kube-dns, which the pod's
    # resolver names; the DNS reads Services through the proxy's DNAT of `kubernetes`.
    for app in ("kube-proxy", "skiff-network"):
        wait_addon(admin, app, NODE, control_plane / "node" / "skiffadm" / "kubelet.log")
    ready = ["-n", "kube-system", "get", "deploy", "skiff-dns", "-o",
             "jsonpath={.status.readyReplicas}"]  # fmt: skip
    wait("the cluster DNS ready", lambda: kubectl(admin, *ready).stdout == "2")
    looked = kubectl(
        admin, "exec", "hello", "--", "nslookup", "kubernetes.default.svc.cluster.local."
    )
    assert resolved(looked.stdout, KUBERNETES_IP), looked.stdout + looked.stderr


def resolved(nslookup: str, address: str) -> bool:
    """busybox nslookup's answer (after its Server lines) names ``address``."""
    answer = nslookup.partition("Name:")[2].splitlines()
    return any(line.startswith("Address") and line.split()[-1] == address for line in answer)


def addon_ready(admin: Path, app: str, node: str) -> bool:
    """A pod of the add-on ``app`` (its k8s-app label) Ready on ``node``."""
    out = kubectl(admin, "-n", "kube-system", "get", "pods", "-l", f"k8s-app={app}",
                  "--field-selector", f"spec.nodeName={node}", "-o", "json")  # fmt: skip
    pods = json.loads(out.stdout)["items"] if out.returncode == 0 else []
    conditions = [c for p in pods for c in (p.get("status") or {}).get("conditions") or []]
    return {"type": "Ready", "status": "True"} in [
        {"type": c["type"], "status": c["status"]} for c in conditions
    ]


def wait_addon(admin: Path, app: str, node: str, kubelet_log: Path) -> None:
    """Until ``app`` is Ready on ``node``; else its pods, logs and the kubelet's log."""
    try:
        wait(f"{app} on {node}", lambda: addon_ready(admin, app, node))
    except AssertionError as e:
        pods = kubectl(admin, "-n", "kube-system", "get", "pods", "-l", f"k8s-app={app}",
                       "-o", "yaml").stdout  # fmt: skip
        logs = kubectl(admin, "-n", "kube-system", "logs", "-l", f"k8s-app={app}",
                       "--tail=30", "--prefix").stdout  # fmt: skip
        raise AssertionError(f"{e}:\n{pods}\n{logs}\n{kubelet_log.read_text()[-4000:]}") from None


def own_range(admin: Path) -> str:
    """The third octet of the first host's pod range (10.244.<n>.0/24)."""
    cidr = kubectl(admin, "get", "node", NODE, "-o", "jsonpath={.spec.podCIDR}").stdout
    return cidr.split(".")[2]


DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        imagePullPolicy: IfNotPresent
        command: [sh, -c, 'echo hello from $(hostname); sleep 3600']
"""


def test_a_second_host_joins(control_plane: Path) -> None:
    """``skiffadm join`` with init's printed command, run on the second host: discovery by
    token and CA pin over its link, the kubelet started with its bootstrap kubeconfig, its
    certificates through the certificates API; the node turns Ready, a DaemonSet lands on
    it, and ``kubectl logs``/``exec`` reach its pod at the node's own address through its
    verified serving certificate."""
    base = control_plane
    admin = base / "kubernetes" / "admin.conf"
    lines = (base / "init.out").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("skiffadm join "))
    words = (lines[first].rstrip("\\") + " " + lines[first + 1]).split()
    endpoint, token, pin = words[2], words[4], words[6]
    node2 = base / "node2"
    where = [
        "--kubeconfig-dir", str(node2 / "kubernetes"), "--kubelet-dir", str(node2 / "node"),
        "--bridge", BRIDGE, "--cni-conf-dir", str(base / "cni" / "net.d"),
    ]  # fmt: skip
    # The CNI folders at the same paths as the first host's, its own behind them.
    (node2 / "cni").mkdir(parents=True)
    run(*on_second_host("mount", "--bind", str(node2 / "cni"), str(base / "cni")))
    assert endpoint.startswith(f"{HOST_IP}:")
    joined = subprocess.run(  # the kubelet's own ports: its host is its own
        on_second_host(str(SKIFFADM), "join", endpoint, "--token", token,
                       "--discovery-token-ca-cert-hash", pin, *where, "--node-name", "sp-node2",
                       "--image-archive", str(base / "addons.tar"),
                       "--node-ip", NODE2_IP),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    try:
        assert joined.returncode == 0, joined.stdout + joined.stderr
        assert "This node has joined the cluster:" in joined.stdout
        assert "ConfigMap (clusterDNS 10.112.0.10)" in joined.stdout
        wait(
            "sp-node2 Ready", lambda: " Ready " in kubectl(admin, "get", "node", "sp-node2").stdout
        )
        who = kubectl(admin, "get", "csr", "-o", "json")
        requesters = {c["spec"]["username"] for c in json.loads(who.stdout)["items"]}
        assert "system:node:sp-node2" in requesters  # its serving certificate's request
        subprocess.run(
            ["kubectl", "--kubeconfig", str(admin), "apply", "-f", "-"], input=DAEMONSET,
            text=True, check=True, capture_output=True,
        )  # fmt: skip

        def on_both() -> list[dict]:  # type: ignore[type-arg]
            out = kubectl(admin, "get", "pods", "-l", "app=everywhere", "-o", "json")
            pods = json.loads(out.stdout)["items"] if out.returncode == 0 else []
            running = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
            return running if {p["spec"]["nodeName"] for p in running} == {NODE, "sp-node2"} else []

        wait("the DaemonSet on both nodes", on_both)
        for app in ("kube-proxy", "skiff-network"):
            wait_addon(admin, app, "sp-node2", node2 / "node" / "skiffadm" / "kubelet.log")
        node = json.loads(kubectl(admin, "get", "node", "sp-node2", "-o", "json").stdout)
        assert {"type": "InternalIP", "address": NODE2_IP} in node["status"]["addresses"]
        (pod,) = [p for p in on_both() if p["spec"]["nodeName"] == "sp-node2"]
        name = pod["metadata"]["name"]
        wait("its log", lambda: "hello from" in kubectl(admin, "logs", name).stdout)
        execd = kubectl(admin, "exec", name, "--", "echo", "exec-ok")
        assert execd.stdout.strip() == "exec-ok", execd.stderr
        # Pods talk across hosts: the network add-on gave each node a pod range and routes
        # to the other's (host-gw over the link).
        ip = pod["status"]["podIP"]
        assert ip.startswith("10.244.") and not ip.startswith(f"10.244.{own_range(admin)}.")
        ping = kubectl(admin, "exec", "hello", "--", "ping", "-c", "1", "-W", "5", ip)
        assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.stdout
        # ... and the other way: the second host's pod asks the cluster DNS, whose pods run
        # on the first host (its proxy's DNAT, then the route back over the link).
        looked = kubectl(
            admin, "exec", name, "--", "nslookup", "kubernetes.default.svc.cluster.local."
        )
        assert resolved(looked.stdout, KUBERNETES_IP), looked.stdout + looked.stderr
    finally:
        reset = subprocess.run(
            on_second_host(str(SKIFFADM), "reset", *where, "--cert-dir",
                           str(node2 / "kubernetes" / "pki"), "--manifests-dir",
                           str(node2 / "manifests"), "--etcd-data-dir", str(node2 / "etcd"),
                           "--nats-data-dir", str(node2 / "nats"), "--cni-data-dir",
                           str(base / "cni")),
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert reset.returncode == 0, reset.stdout + reset.stderr
        assert not list((node2 / "node" / "skiffadm").glob("*.pid"))
        bridge = subprocess.run(["ip", "-n", NETNS, "link", "show", BRIDGE], capture_output=True)
        assert bridge.returncode != 0, "reset left the second host's bridge"
        routes = run(*on_second_host("ip", "route", "show", "proto", "77"))
        assert not routes.strip(), f"reset left the network add-on's routes: {routes}"
        assert not (node2 / "cni" / "net.d" / "10-skiff.conflist").exists()
