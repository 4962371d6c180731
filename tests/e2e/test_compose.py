"""The docker compose deployment (issue 6), end to end with the real Docker engine.

Slow (builds images, starts containers): skipped unless ``SKIFF_TEST_COMPOSE=1``
(``make test-compose``). Runs as its own compose project on its own API port, so it does not
touch a `make compose-up` cluster.

It runs with the ``tracing`` profile. Jaeger's public image cannot be pulled where no
registry is reachable; unless it is already loaded, ``otlp_sink`` (an OTLP receiver that
answers Jaeger's ``/api/services``) stands in for it, in an image built on skiff/python.

Every step runs with a ``docker`` first on PATH that fails as a fresh machine's other
Docker CLI does, so the test proves that compose.sh installs and uses the engine's own
client (on a machine without docker.io, this run is the fresh path).
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from skiff.api.nodes import internal_ip

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("SKIFF_TEST_COMPOSE") != "1", reason="set SKIFF_TEST_COMPOSE=1"
    ),
    pytest.mark.timeout(1200),
]

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "skiff-test"
# A fresh machine's other docker CLI (no buildx): first on PATH in every step of this test.
FAILING_DOCKER = """#!/bin/sh
echo "ERROR: BuildKit is enabled but the buildx component is missing or broken." >&2
exit 1
"""
JAEGER = "jaegertracing/all-in-one:1.62.0"
SINK = "skiff/otlp-sink:test"
SINK_DOCKERFILE = """
ARG PYTHON_IMAGE
FROM ${PYTHON_IMAGE}
COPY otlp_sink.py /opt/otlp_sink.py
USER 10001:10001
ENTRYPOINT ["python3", "/opt/otlp_sink.py"]
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bb}
spec:
  replicas: 3
  selector: {matchLabels: {app: bb}}
  template:
    metadata: {labels: {app: bb}}
    spec:
      containers:
      - name: bb
        image: busybox
        command: [sh, -c, 'echo hello from $(hostname); sleep 3600']
"""

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: web}}}
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
  ports: [{port: 80, targetPort: 8080}]
"""

WEB_LB = """
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8088, targetPort: 8080}]
"""

NODE_RESOLVER = """
apiVersion: v1
kind: Pod
metadata: {name: node-resolver}
spec:
  restartPolicy: Never
  dnsPolicy: Default
  containers:
  - {name: c, image: busybox, command: [nslookup, -type=a, apiserver]}
"""

WEB_POLICIES = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-deny}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow-client}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress:
  - from: [{podSelector: {matchLabels: {run: client}}}]
"""

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds}
spec:
  selector: {matchLabels: {app: ds}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers:
      - {name: c, image: busybox, command: [sleep, "3600"]}
"""


_engine_client: list[str] = []


def docker() -> str:
    """The engine's own client, as ``compose.sh client`` resolved it in the fixture."""
    return _engine_client[0]


def _env(state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "COMPOSE_PROJECT_NAME": PROJECT,
        "SKIFF_STATE": str(state),
        # Where compose.sh puts the kubeconfig and the nodes' add-on images; the test's own
        # docker-compose calls (scaling the nodes) must mount the same folder.
        "SKIFF_COMPOSE_OUT": str(state / "compose"),
        "SKIFF_API_PORT": os.environ.get("SKIFF_TEST_COMPOSE_API_PORT", "16443"),
        "SKIFF_JAEGER_UI_PORT": os.environ.get("SKIFF_TEST_COMPOSE_JAEGER_PORT", "26686"),
        "TRACING": "1",
        # The cluster DNS forwards outside names to nothing (a port where no one listens):
        # a test never sends a lookup off this machine.
        "SKIFF_DNS_UPSTREAM": "127.0.0.1:9",
    }


def _jaeger_image(env: dict[str, str]) -> str:
    """Jaeger when it is loaded, else the OTLP sink built on skiff/python."""
    have = subprocess.run([docker(), "image", "inspect", JAEGER], capture_output=True)
    if have.returncode == 0:
        return JAEGER
    tag = env.get("SKIFF_IMAGE_TAG", "dev")
    subprocess.run(
        [
            docker(),
            "build",
            "-q",
            "-t",
            SINK,
            "--build-arg",
            f"PYTHON_IMAGE=skiff/python:{tag}",
            "-f",
            "-",
            str(ROOT / "tests" / "e2e"),
        ],
        input=SINK_DOCKERFILE,
        text=True,
        env=env | {"DOCKER_BUILDKIT": "1"},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return SINK


def _project_objects(kind: str) -> list[str]:
    out = subprocess.run(
        [docker(), kind, "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}"]
        if kind != "container"
        else [docker(), "ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("compose")
    env = _env(state)
    stubs = state / "stub-bin"
    stubs.mkdir()
    (stubs / "docker").write_text(FAILING_DOCKER)
    (stubs / "docker").chmod(0o755)
    env["PATH"] = f"{stubs}:{env['PATH']}"
    client = subprocess.run(
        [str(ROOT / "scripts/compose.sh"), "client"], env=env, capture_output=True, text=True
    )
    assert client.returncode == 0, client.stderr
    _engine_client[:] = [client.stdout.strip()]
    assert Path(docker()).is_absolute(), docker()  # not the stub, not a bare "docker"
    # compose.sh starts a dockerd when none answers: stop that one (only) at the end.
    own_dockerd = subprocess.run([docker(), "info"], capture_output=True).returncode != 0
    try:
        try:
            subprocess.run([str(ROOT / "scripts/compose.sh"), "images"], env=env, check=True)
            env["SKIFF_JAEGER_IMAGE"] = _jaeger_image(env)
            subprocess.run([str(ROOT / "scripts/compose.sh"), "up"], env=env, check=True)
            yield env | {"KUBECONFIG": str(state / "compose.kubeconfig")}
        finally:
            subprocess.run([str(ROOT / "scripts/compose.sh"), "down"], env=env, check=False)
        # down -v leaves nothing behind: no container, network, volume or CNI iptables rule.
        assert _project_objects("container") == []
        assert _project_objects("network") == []
        assert _project_objects("volume") == []
        # iptables is one of make test's packages: its absence is a failure, not a pass.
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
        assert "CNI-" not in rules.stdout
    finally:
        if own_dockerd:
            _stop_dockerd(state / "dockerd.pid")


def _stop_dockerd(pidfile: Path) -> None:
    if not pidfile.exists():
        return
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 30
    while time.monotonic() < end:
        stat = Path(f"/proc/{pid}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return  # gone, or exited and not yet reaped
        time.sleep(0.2)


def kubectl(env: dict[str, str], *args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["kubectl", *args], env=env, input=input, capture_output=True, text=True, check=True
    ).stdout


def wait(what: str, check, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if check():
                return
        except subprocess.CalledProcessError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def test_deployment_logs_exec(compose: dict[str, str]) -> None:
    kubectl(compose, "apply", "-f", "-", input=DEPLOYMENT)
    kubectl(compose, "wait", "--for=condition=Available", "deploy/bb", "--timeout=120s")
    pods = kubectl(compose, "get", "pods", "-l", "app=bb", "-o", "name").split()
    assert len(pods) == 3
    wait("logs", lambda: "hello from" in kubectl(compose, "logs", pods[0]))
    assert kubectl(compose, "exec", pods[0], "--", "echo", "exec-ok").strip() == "exec-ok"


def test_secured_as_kubeadm(compose: dict[str, str]) -> None:
    """The admin is a client certificate in kubeadm:cluster-admins; the node joined by a
    bootstrap token and got its client and serving certificates through the certificates
    API; an anonymous request reaches nothing but what RBAC grants system:anonymous."""
    who = json.loads(kubectl(compose, "auth", "whoami", "-o", "json"))["status"]["userInfo"]
    assert who["username"] == "kubernetes-admin"
    assert "kubeadm:cluster-admins" in who["groups"]
    csrs = json.loads(kubectl(compose, "get", "csr", "-o", "json"))["items"]
    issued = {
        (c["spec"]["signerName"], c["spec"]["username"].split(":")[1])
        for c in csrs
        if (c.get("status") or {}).get("certificate")
    }
    assert ("kubernetes.io/kube-apiserver-client-kubelet", "bootstrap") in issued
    assert ("kubernetes.io/kubelet-serving", "node") in issued
    url = f"https://127.0.0.1:{compose['SKIFF_API_PORT']}"
    context = ssl._create_unverified_context()  # the test's own request; kubectl verifies
    with urllib.request.urlopen(f"{url}/version", context=context, timeout=5) as r:
        assert r.status == 200  # system:public-info-viewer
    try:
        urllib.request.urlopen(f"{url}/api/v1/secrets", context=context, timeout=5)
        raise AssertionError("an anonymous list of secrets was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 403
        message = json.loads(e.read())["message"]
        assert 'User "system:anonymous" cannot list resource "secrets"' in message


def test_apiserver_crash_recovers(compose: dict[str, str]) -> None:
    before = sorted(kubectl(compose, "get", "pods,deploy", "-A", "-o", "name").split())
    cid = subprocess.run(
        [
            docker(),
            "ps",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={PROJECT}",
            "--filter",
            "label=com.docker.compose.service=apiserver",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    pid = subprocess.run(
        [docker(), "inspect", "-f", "{{.State.Pid}}", cid],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    os.kill(int(pid), 9)  # a crash: the restart policy brings it back (docker kill would not)
    wait("the apiserver back", lambda: kubectl(compose, "get", "--raw", "/readyz") == "ok")
    after = sorted(kubectl(compose, "get", "pods,deploy", "-A", "-o", "name").split())
    assert after == before
    kubectl(compose, "wait", "--for=condition=Available", "deploy/bb", "--timeout=60s")


def _jaeger(env: dict[str, str], path: str) -> list[str]:
    url = f"http://127.0.0.1:{env['SKIFF_JAEGER_UI_PORT']}{path}"
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)["data"] or []


def test_traces_reach_jaeger_and_nothing_needs_it(compose: dict[str, str]) -> None:
    kubectl(compose, "scale", "deploy/bb", "--replicas=4")  # a write, scheduling, a pod start
    want = {"skiff-apiserver", "skiff-scheduler", "skiff-controller-manager", "skiff-kubelet"}
    seen: set[str] = set()

    def every_component() -> bool:
        seen.update(_jaeger(compose, "/api/services"))
        return want <= seen

    try:
        wait("spans from every component in Jaeger", every_component, timeout=90)
    except AssertionError:
        raise AssertionError(f"services seen: {sorted(seen)}") from None
    assert "schedule.attempt" in _jaeger(compose, "/api/services/skiff-scheduler/operations")
    assert "kubelet.SyncPod" in _jaeger(compose, "/api/services/skiff-kubelet/operations")
    # Without the collector every component goes on: the name stops resolving, spans stop.
    compose_cmd = ["docker-compose", "-f", str(ROOT / "compose.yaml"), "--profile", "tracing"]
    subprocess.run([*compose_cmd, "rm", "-sf", "jaeger"], env=compose, check=True)
    kubectl(compose, "scale", "deploy/bb", "--replicas=3")
    kubectl(compose, "run", "after-jaeger", "--image=busybox", "--", "sleep", "3600")
    kubectl(compose, "wait", "--for=condition=Ready", "pod/after-jaeger", "--timeout=60s")
    kubectl(compose, "wait", "--for=condition=Available", "deploy/bb", "--timeout=60s")


def test_three_nodes_daemonset(compose: dict[str, str]) -> None:
    subprocess.run(
        [
            "docker-compose",
            "-f",
            str(ROOT / "compose.yaml"),
            "up",
            "-d",
            "--scale",
            "node=3",
            "node",
        ],
        env=compose,
        check=True,
    )
    # At once, while the new nodes register: pods for them to take (a new node once
    # handed out its first addresses from the first node's range).
    kubectl(compose, "scale", "deploy/bb", "--replicas=8")

    def three_ready() -> bool:
        nodes = json.loads(kubectl(compose, "get", "nodes", "-o", "json"))["items"]
        ready = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions", [])
            )
        ]
        return len(ready) == 3 and len({n["spec"].get("podCIDR") for n in ready}) == 3

    wait("three Ready nodes with their own pod CIDRs", three_ready, timeout=180)

    # The node add-ons are DaemonSets (deploy/, applied by the addons service): a
    # kube-proxy and a skiff-network pod on every node, the latter having written the
    # node's CNI configuration (without which the node would not be Ready).
    def add_ons_everywhere() -> bool:
        items = json.loads(kubectl(compose, "-n", "kube-system", "get", "ds", "-o", "json"))
        ready = {d["metadata"]["name"]: d["status"].get("numberReady") for d in items["items"]}
        return ready.get("kube-proxy") == 3 and ready.get("skiff-network") == 3

    wait("kube-proxy and skiff-network on every node", add_ons_everywhere, timeout=120)
    kubectl(compose, "apply", "-f", "-", input=DAEMONSET)

    def one_per_node() -> bool:
        pods = json.loads(kubectl(compose, "get", "pods", "-l", "app=ds", "-o", "json"))["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return len(running) == 3 and len({p["spec"]["nodeName"] for p in running}) == 3

    wait("a DaemonSet pod Running on each node", one_per_node, timeout=120)

    def all_running() -> bool:
        pods = json.loads(kubectl(compose, "get", "pods", "-l", "app=bb", "-o", "json"))["items"]
        return len([p for p in pods if p["status"].get("phase") == "Running"]) == 8

    wait("8 replicas Running", all_running, timeout=120)
    # No two pods on the pod network share an address, and each is from its node's range.
    nodes = json.loads(kubectl(compose, "get", "nodes", "-o", "json"))["items"]
    cidr = {n["metadata"]["name"]: ipaddress.ip_network(n["spec"]["podCIDR"]) for n in nodes}
    pods = json.loads(kubectl(compose, "get", "pods", "-A", "-o", "json"))["items"]
    ips = [
        p["status"]["podIP"]
        for p in pods
        if p["status"].get("podIP") and not p["spec"].get("hostNetwork")  # those share the node's
    ]
    assert len(ips) == len(set(ips)), sorted(ips)
    for p in pods:
        if p["status"].get("podIP") and not p["spec"].get("hostNetwork"):
            node = p["spec"]["nodeName"]
            assert ipaddress.ip_address(p["status"]["podIP"]) in cidr[node], (node, p["status"])

    # Services across nodes: a pod finds one by name (the cluster DNS behind kube-dns)
    # and reaches its endpoints on every node (each node's proxy, and the pod network
    # add-on's routes between nodes).
    kubectl(compose, "apply", "-f", "-", input=WEB)
    kubectl(compose, "wait", "--for=condition=Available", "deploy/web", "--timeout=120s")
    web = json.loads(kubectl(compose, "get", "pods", "-l", "app=web", "-o", "json"))["items"]
    assert len({p["spec"]["nodeName"] for p in web}) >= 2  # spread over several nodes
    kubectl(compose, "run", "client", "--image=busybox", "--restart=Never", "--", "sleep", "3600")
    kubectl(compose, "wait", "--for=condition=Ready", "pod/client", "--timeout=60s")
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80"

    def served() -> bool:
        return "hello-from-web" in kubectl(compose, "exec", "client", "--", "sh", "-c", request)

    wait("the web Service by name from a pod", served, timeout=60)
    answers = [kubectl(compose, "exec", "client", "--", "sh", "-c", request) for _ in range(12)]
    assert all("hello-from-web" in a for a in answers), answers
    # Every endpoint, on every node, answers by its pod IP from the client's node too.
    for p in web:
        direct = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {p['status']['podIP']} 8080"
        assert "hello-from-web" in kubectl(compose, "exec", "client", "--", "sh", "-c", direct)

    # A LoadBalancer Service without a cloud (ServiceLB): the nodes' addresses are its
    # ingress, and each serves the port, from this machine to the node containers.
    kubectl(compose, "apply", "-f", "-", input=WEB_LB)
    node_ips = {internal_ip(n) for n in nodes}

    def lb_ingress() -> set[str]:
        svc = json.loads(kubectl(compose, "get", "svc", "web-lb", "-o", "json"))
        status = svc.get("status") or {}
        return {i["ip"] for i in status.get("loadBalancer", {}).get("ingress") or []}

    wait("the LoadBalancer's ingress on every node", lambda: lb_ingress() == node_ips, timeout=60)
    for ip in sorted(node_ips):

        def lb_answers(ip: str = ip) -> bool:
            try:
                with urllib.request.urlopen(f"http://{ip}:8088/", timeout=3) as r:
                    return b"hello-from-web" in r.read()
            except OSError:
                return False

        wait(f"the LoadBalancer port on {ip}", lb_answers, timeout=30)
    kubectl(compose, "delete", "svc", "web-lb")

    # NetworkPolicy across nodes, enforced by the agent on the web pod's node: default
    # deny for web, then the client allowed by its label.
    client_node = json.loads(kubectl(compose, "get", "pod", "client", "-o", "json"))["spec"]
    far = [p for p in web if p["spec"]["nodeName"] != client_node["nodeName"]] or web
    to_far = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {far[0]['status']['podIP']} 8080; true"

    def far_answers() -> bool:
        return "hello-from-web" in kubectl(compose, "exec", "client", "--", "sh", "-c", to_far)

    deny, allow = WEB_POLICIES.split("---")
    kubectl(compose, "apply", "-f", "-", input=deny)
    wait("the policy to deny the client", lambda: not far_answers(), timeout=60)
    kubectl(compose, "apply", "-f", "-", input=allow)
    wait("the policy to allow the client", far_answers, timeout=60)
    kubectl(compose, "delete", "networkpolicy", "web-deny", "web-allow-client")

    # Cluster DNS is the skiff-dns Deployment (two replicas behind kube-dns, from
    # deploy/dns.yaml). One replica's server is killed (SIGKILL, no clean shutdown): its
    # pod turns not ready and leaves the Service's endpoints, the proxies drop their UDP
    # entries to it, lookups go on, and the kubelet restarts it.
    def dns_endpoints() -> list[str]:
        items = json.loads(
            kubectl(
                compose,
                "get",
                "endpointslices",
                "-n",
                "kube-system",
                "-o",
                "json",
                "-l",
                "kubernetes.io/service-name=kube-dns",
            )
        )["items"]
        return [
            a
            for es in items
            for ep in es.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") is not False
            for a in ep["addresses"]
        ]

    def dns_pods() -> list[dict]:
        selector = ["-l", "k8s-app=kube-dns", "-o", "json"]
        return json.loads(kubectl(compose, "-n", "kube-system", "get", "pods", *selector))["items"]

    wait("two DNS replicas ready", lambda: len(dns_endpoints()) == 2, timeout=120)
    node = dns_pods()[0]["spec"]["nodeName"]  # a node container's name is its hostname
    pids = subprocess.run(
        [docker(), "exec", node, "pgrep", "-f", "skiff.dns"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    subprocess.run([docker(), "exec", node, "kill", "-9", pids[0]], check=True)
    streak = {"n": 0}

    def answering() -> bool:
        try:
            out = kubectl(compose, "exec", "client", "--", "sh", "-c", request)
        except subprocess.CalledProcessError:
            out = ""
        streak["n"] = streak["n"] + 1 if "hello-from-web" in out else 0
        return streak["n"] >= 8

    wait("lookups answered by the surviving replica", answering, timeout=90)

    def restarted() -> bool:
        pods = dns_pods()
        restarts = sum(
            c.get("restartCount", 0) for p in pods for c in p["status"].get("containerStatuses", [])
        )
        return restarts >= 1 and len(dns_endpoints()) == 2

    wait("the killed replica restarted and ready again", restarted, timeout=90)

    # A pod on its node's resolvers (dnsPolicy Default, as skiff-dns itself) reaches
    # Docker's resolver through the node's address: a compose service's name resolves
    # (Docker answers it itself: nothing leaves the machine).
    kubectl(compose, "apply", "-f", "-", input=NODE_RESOLVER)

    def resolved() -> bool:
        phase = kubectl(compose, "get", "pod", "node-resolver", "-o", "jsonpath={.status.phase}")
        return phase == "Succeeded" and "Address" in kubectl(compose, "logs", "node-resolver")

    wait("a compose service name from a pod with dnsPolicy Default", resolved, timeout=60)
