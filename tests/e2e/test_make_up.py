"""``make up``'s cluster, as the README promises it (``scripts/cluster.sh up``, in a state
folder and on ports of its own): a pod finds Services by name through the cluster DNS
and reaches them through the proxy's rules; a NetworkPolicy denies, then allows; ``make
down`` leaves no proxy or policy rule, bridge or process behind.

It programs this machine's iptables (the proxy runs next to the kubelet, as kube-proxy
does), so it stays away when another Skiff cluster uses the default ports here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from runtime import CNI_PLUGINS, CONTAINERD, needs

from cluster import ROOT, VENV_BIN, free_port

VENV = VENV_BIN.parent

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
                "KUBELET_HEALTHZ",
                "PROXY",
                "NETAGENT",
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
    # endpoint is the apiserver's loopback address, reached through route_localnet). It
    # speaks TLS now, which busybox's own TLS client cannot (it lacks OpenSSL 3's
    # signature algorithms): a connection is what is checked here.
    request = "nc -w 3 kubernetes.default 443 </dev/null && echo connected"
    reached = kubectl(up, "exec", "client", "--", "sh", "-c", request, check=False)
    assert "connected" in reached, reached
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


POLICY_PODS = """
apiVersion: v1
kind: Pod
metadata: {name: np-server, labels: {app: np}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: [sh, -c, "mkdir -p /w && echo np-hello > /w/index.html && exec httpd -f -p 8080 -h /w"]
    ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: np-friend, labels: {role: friend}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: np-stranger}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: busybox, command: [sleep, "3600"]}
"""

DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-np}
spec:
  podSelector: {matchLabels: {app: np}}
  policyTypes: [Ingress]
"""

ALLOW_FRIENDS = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-friends}
spec:
  podSelector: {matchLabels: {app: np}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: friend}}}]
    ports: [{port: http}]
"""


def test_network_policy_denies_then_allows(up: dict[str, str]) -> None:
    def apply(doc: str) -> None:
        subprocess.run(
            ["kubectl", "apply", "-f", "-"], env=up, input=doc, text=True, check=True, timeout=60
        )

    apply(POLICY_PODS)
    pods = ("pod/np-server", "pod/np-friend", "pod/np-stranger")
    kubectl(up, "wait", "--for=condition=Ready", *pods, "--timeout=90s")
    ip = json.loads(kubectl(up, "get", "pod", "np-server", "-o", "json"))["status"]["podIP"]

    def get(pod: str) -> Callable[[], str]:
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} 8080"
        return lambda: kubectl(up, "exec", pod, "--", "sh", "-c", request, check=False)

    def allowed(out: str) -> bool:
        return "np-hello" in out

    assert allowed(eventually(get("np-stranger"), allowed))
    apply(DENY)  # default deny for app=np: nobody gets in
    assert not allowed(eventually(get("np-stranger"), lambda out: not allowed(out)))
    assert not allowed(get("np-friend")())
    apply(ALLOW_FRIENDS)  # friends, on the named port "http"
    assert allowed(eventually(get("np-friend"), allowed))
    assert not allowed(get("np-stranger")())
    kubectl(up, "delete", "networkpolicy", "deny-np", "allow-friends")
    assert allowed(eventually(get("np-stranger"), allowed))


def test_tls_rbac_and_every_component_under_its_own_identity(up: dict[str, str]) -> None:
    state = Path(up["SKIFF_STATE"])
    # The user's kubeconfig is kubeadm's admin.conf: a client certificate and the CA.
    me = json.loads(kubectl(up, "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert me["username"] == "kubernetes-admin"
    assert "kubeadm:cluster-admins" in me["groups"]
    server = kubectl(
        up, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    )
    assert server == f"https://127.0.0.1:{up['SKIFF_API_PORT']}"
    # Without credentials: only what RBAC gives anonymous users.
    ca = str(state / "pki" / "ca.crt")
    anonymous = subprocess.run(
        ["curl", "-s", "--cacert", ca, f"{server}/api/v1/namespaces/kube-system/secrets"],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    assert json.loads(anonymous)["code"] == 403
    public = subprocess.run(
        [
            "curl",
            "-sf",
            "--cacert",
            ca,
            f"{server}/api/v1/namespaces/kube-public/configmaps/cluster-info",
        ],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    assert "kubeconfig" in json.loads(public)["data"]
    # etcd takes only clients with a certificate of its own CA (the apiserver's).
    etcd = ["etcdctl", f"--endpoints=https://127.0.0.1:{up['SKIFF_ETCD_PORT']}",
            f"--cacert={state / 'pki' / 'etcd' / 'ca.crt'}", "--dial-timeout=3s",
            "get", "/registry/", "--prefix", "--keys-only", "--limit=1"]  # fmt: skip
    assert subprocess.run(etcd, capture_output=True, timeout=30).returncode != 0
    # The kubelet serves a certificate of the cluster CA (a kubelet-serving request the
    # controller manager approved for the node's own names, and signed).
    csrs = json.loads(kubectl(up, "get", "csr", "-o", "json"))["items"]
    serving = [c for c in csrs if c["spec"]["signerName"] == "kubernetes.io/kubelet-serving"]
    assert serving and serving[0]["spec"]["username"] == "system:node:makeup-node"
    assert serving[0]["status"].get("certificate")
    verified = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca,
         f"https://127.0.0.1:{up['SKIFF_KUBELET_PORT']}/pods"],
        capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    assert verified == "401", verified
    # The kubelet's API answers no one without credentials.
    kubelet = f"https://127.0.0.1:{up['SKIFF_KUBELET_PORT']}"
    for path in ("/pods", "/exec/default/client/c?command=id"):
        code = subprocess.run(
            ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", kubelet + path],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        assert code == "401", (path, code)
    # Each controller writes as its own service account; nothing was refused.
    accounts = kubectl(up, "get", "serviceaccounts", "-n", "kube-system", "-o", "name")
    for name in ("deployment-controller", "node-controller", "namespace-controller"):
        assert f"serviceaccount/{name}" in accounts
    for log in ("scheduler", "controller-manager", "kubelet", "proxy", "netagent", "dns"):
        text = (state / "logs" / f"{log}.log").read_text()
        assert "forbidden" not in text.lower(), f"{log}: {text[-2000:]}"


def _host_python_pod(name: str) -> str:
    """A busybox pod that can run this machine's Python and its venv (mounted read-only
    from the host): the official client, in a pod, with the pod's own credentials."""
    base = Path(sys.base_prefix).resolve()
    mounts = {"usr": "/usr", "lib": "/usr/lib", "lib64": "/usr/lib64", "python": str(base)}
    mounts["venv"] = str(VENV)
    targets = {"lib": "/lib", "lib64": "/lib64"}
    volumes = [{"name": k, "hostPath": {"path": v}} for k, v in mounts.items()]
    volume_mounts = [
        {"name": k, "mountPath": targets.get(k, v), "readOnly": True} for k, v in mounts.items()
    ]
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "volumeMounts": volume_mounts,
                    }
                ],
                "volumes": volumes,
            },
        }
    )


IN_CLUSTER = """
from kubernetes import client, config
config.load_incluster_config()
pods = client.CoreV1Api().list_namespaced_pod("default")
print(sorted(p.metadata.name for p in pods.items))
"""


def test_a_pod_uses_its_service_account_token_until_it_is_deleted(up: dict[str, str]) -> None:
    kubectl(up, "create", "rolebinding", "default-view", "--clusterrole=view",
            "--serviceaccount=default:default")  # fmt: skip
    subprocess.run(
        ["kubectl", "apply", "-f", "-"], env=up, input=_host_python_pod("incluster"),
        text=True, check=True, timeout=60,
    )  # fmt: skip
    kubectl(up, "wait", "--for=condition=Ready", "pod/incluster", "--timeout=90s")
    pod = json.loads(kubectl(up, "get", "pod", "incluster", "-o", "json"))
    access = [v for v in pod["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(access) == 1 and pod["spec"]["serviceAccountName"] == "default"
    python = str(VENV / "bin" / "python")
    listed = kubectl(up, "exec", "incluster", "--", python, "-c", IN_CLUSTER)
    assert "'incluster'" in listed, listed
    files = kubectl(
        up, "exec", "incluster", "--", "ls", "/var/run/secrets/kubernetes.io/serviceaccount"
    )
    assert files.split() == ["ca.crt", "namespace", "token"]
    token = kubectl(up, "exec", "incluster", "--", "cat",
                    "/var/run/secrets/kubernetes.io/serviceaccount/token")  # fmt: skip
    state = Path(up["SKIFF_STATE"])
    server = f"https://127.0.0.1:{up['SKIFF_API_PORT']}"

    def status_with_token() -> int:
        out = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert",
             str(state / "pki" / "ca.crt"), "-H", f"Authorization: Bearer {token}",
             f"{server}/api/v1/namespaces/default/pods"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
        return int(out.stdout)

    assert status_with_token() == 200
    kubectl(up, "delete", "pod", "incluster", "--wait=true")
    got = eventually(status_with_token, lambda code: code == 401)
    assert got == 401


def test_make_down_leaves_nothing_behind(up: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "scripts" / "cluster.sh"), "down"], env=up, check=True, timeout=120)
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert "KUBE-" not in saved and "SKIFF-NETPOL" not in saved
    assert "SKIFF-FORWARD" not in saved and "SKIFF-POSTROUTING" not in saved
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert BRIDGE not in links
    assert not list((Path(up["SKIFF_STATE"]) / "pids").glob("*.pid"))
    # Pods' tmpfs volumes (secrets, service-account tokens) are unmounted too.
    mounts = Path("/proc/self/mounts").read_text()
    assert up["SKIFF_STATE"] not in mounts
