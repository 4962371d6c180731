"""``make up``'s cluster, as the README promises it (``scripts/cluster.sh up``, in a state
folder and on ports of its own): a pod finds Services by name through the cluster DNS
and reaches them through the proxy's rules; ``make down`` leaves no proxy rule, bridge or
process behind.

It programs this machine's iptables (the proxy runs next to the kubelet, as kube-proxy
does), so it stays away when another Skiff cluster uses the default ports here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs

from cluster import ROOT, free_port

pytestmark = needs(
    *CONTAINERD,
    "iptables",
    "etcd",
    "etcdctl",
    "nats-server",
    "curl",
    "kubectl",
    paths=(CNI_PLUGINS / "bridge",),
)

BRIDGE = "skiffmu0"


def _in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if _in_use(10256) or _in_use(6443):
        pytest.skip("another Skiff cluster runs on this machine (make up)")
    state = tmp_path_factory.mktemp("makeup")
    env = dict(os.environ)
    env.update(
        SKIFF_STATE=str(state),
        SKIFF_BRIDGE=BRIDGE,
        SKIFF_NODE_NAME="makeup-node",
        **{
            f"SKIFF_{name}_PORT": str(free_port())
            for name in (
                "ETCD",
                "ETCD_PEER",
                "NATS",
                "API",
                "SCHEDULER",
                "CONTROLLER_MANAGER",
                "KUBELET",
                "PROXY",
                "DNS",
                "DNS_READY",
            )
        },
    )
    env["KUBECONFIG"] = str(state / "kubeconfig")
    # Nothing a test pod sends may leave this machine: names outside the cluster go to a
    # port where nothing listens, and the pods' bridge may not forward anywhere but back.
    env["SKIFF_DNS_UPSTREAM"] = f"127.0.0.1:{free_port()}"
    # After every filter rule (mangle POSTROUTING), so that it hides nothing the proxy
    # and CNI do: only what would really leave is dropped.
    guard = ["-t", "mangle", "POSTROUTING", "-s", "10.244.0.0/16", "!", "-o", BRIDGE, "-j", "DROP"]
    subprocess.run(["iptables", guard[0], guard[1], "-A", *guard[2:]], check=True)
    script = str(ROOT / "scripts" / "cluster.sh")
    try:
        subprocess.run([script, "up"], env=env, check=True, timeout=300)
        yield env
    finally:
        subprocess.run([script, "down"], env=env, timeout=120)
        subprocess.run(["iptables", guard[0], guard[1], "-D", *guard[2:]])


def kubectl(env: dict[str, str], *args: str, check: bool = True) -> str:
    out = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=120)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stdout}{out.stderr}")
    return out.stdout + out.stderr


WEB = """
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command:
    - sh
    - -c
    - mkdir -p /w && echo hello-from-web > /w/index.html && exec httpd -f -p 8080 -h /w
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
"""


def http_get(env: dict[str, str], host: str) -> str:
    """GET / from the client pod (busybox nc: its static wget crashes on some hosts)."""
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 " + host + " 80"
    return kubectl(env, "exec", "client", "--", "sh", "-c", request, check=False)


def eventually(check: Callable[[], str], ok: Callable[[str], bool], timeout: float = 30) -> str:
    end = time.monotonic() + timeout
    while True:
        out = check()
        if ok(out) or time.monotonic() > end:
            return out
        time.sleep(0.5)


def test_pods_find_services_by_name_and_reach_them(up: dict[str, str]) -> None:
    subprocess.run(
        ["kubectl", "apply", "-f", "-"], env=up, input=WEB, text=True, check=True, timeout=60
    )
    kubectl(up, "wait", "--for=condition=Ready", "pod/web", "pod/client", "--timeout=90s")
    resolv = kubectl(up, "exec", "client", "--", "cat", "/etc/resolv.conf")
    assert "nameserver 10.96.0.10" in resolv and "ndots:5" in resolv
    # By short name (the search path), by namespace, by FQDN: DNS, then the proxy's rules.
    for name in ("web", "web.default", "web.default.svc.cluster.local"):
        got = eventually(lambda n=name: http_get(up, n), lambda out: "hello-from-web" in out)
        assert "hello-from-web" in got, (name, got)
    ip = json.loads(kubectl(up, "get", "svc", "web", "-o", "json"))["spec"]["clusterIP"]
    looked = kubectl(up, "exec", "client", "--", "nslookup", "web.default.svc.cluster.local")
    assert ip in looked, looked
    # The apiserver's own Service name resolves too.
    ping = kubectl(
        up, "exec", "client", "--", "ping", "-c1", "-W1", "kubernetes.default", check=False
    )
    assert "(10.96.0.1)" in ping, ping
    # A pod reaches the apiserver through its Service (as in-cluster clients do; the
    # endpoint is the apiserver's loopback address, reached through route_localnet).
    request = "printf 'GET /version HTTP/1.0\\r\\n\\r\\n' | nc -w 3 kubernetes.default 443"
    version = kubectl(up, "exec", "client", "--", "sh", "-c", request, check=False)
    assert '"gitVersion":"v1.32.0-skiff"' in version.replace(" ", ""), version
    # ... in one round trip: the DNS server walked the pod's search path (autopath).
    metrics_url = f"http://127.0.0.1:{up['SKIFF_DNS_READY_PORT']}/metrics"
    with urllib.request.urlopen(metrics_url, timeout=5) as r:
        metrics = r.read().decode()
    walked = [ln for ln in metrics.splitlines() if ln.startswith("coredns_autopath_success_total")]
    assert any('where="zone"' in ln and float(ln.split()[-1]) >= 1 for ln in walked), walked
    # No endpoint left: refused at once, not a timeout.
    kubectl(up, "delete", "pod", "web", "--wait=true")
    got = eventually(lambda: http_get(up, "web"), lambda out: "refused" in out)
    assert "refused" in got, got


def test_make_down_leaves_nothing_behind(up: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "down"], env=up, check=True, timeout=120)
    assert "KUBE-" not in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert BRIDGE not in links
    assert not list((Path(up["SKIFF_STATE"]) / "pids").glob("*.pid"))
