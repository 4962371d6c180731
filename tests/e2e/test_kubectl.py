"""The real kubectl (1.32) against a real apiserver on real etcd and NATS."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

KUBECTL = os.environ.get("KUBECTL", "kubectl")
PROTOBUF = "application/vnd.kubernetes.protobuf"

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: {image}
        ports:
        - containerPort: 80
      - name: sidecar
        image: busybox
        command: ["sleep", "3600"]
"""


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The lines a running kubectl prints, as they come (None at its end)."""
    out: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip():
                out.put(line.rstrip("\n"))
        out.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return out


def _next_line(lines: queue.Queue[str | None], what: str, timeout: float = 30) -> str:
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"kubectl printed no {what} within {timeout} s") from None
    assert line is not None, f"kubectl ended before printing {what}"
    return line


def kubectl(
    kubeconfig: Path, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture(scope="module")
def ns(kubeconfig: Path) -> str:
    kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input="apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kt\n",
    )
    return "kt"


def test_create_namespace_and_objects_typed(kubeconfig: Path) -> None:
    """Typed ``kubectl create`` commands send protobuf bodies, which the server decodes."""
    out = kubectl(kubeconfig, "create", "namespace", "typed").stdout
    assert "namespace/typed created" in out
    # -v=8 logs the request headers kubectl sent.
    proc = kubectl(
        kubeconfig, "-n", "typed", "create", "configmap", "c", "--from-literal=a=b", "-v=8"
    )
    sent, in_request = [], False
    for line in proc.stderr.splitlines():
        if "Request Headers:" in line or "Response Headers:" in line:
            in_request = "Request Headers:" in line
        elif in_request and "Content-Type:" in line:
            sent.append(line.split("Content-Type:")[1].strip())
    assert sent == [PROTOBUF], proc.stderr
    kubectl(
        kubeconfig, "-n", "typed", "create", "deployment", "d", "--image=busybox", "--replicas=2"
    )
    kubectl(kubeconfig, "-n", "typed", "create", "secret", "generic", "s", "--from-literal=k=v")
    cm = json.loads(kubectl(kubeconfig, "-n", "typed", "get", "cm", "c", "-o", "json").stdout)
    assert cm["data"] == {"a": "b"}
    dep = json.loads(kubectl(kubeconfig, "-n", "typed", "get", "deploy", "d", "-o", "json").stdout)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    sec = json.loads(kubectl(kubeconfig, "-n", "typed", "get", "secret", "s", "-o", "json").stdout)
    assert sec["data"] == {"k": "dg=="}


def test_version_picks_matching_kubectl(kubeconfig: Path) -> None:
    out = kubectl(kubeconfig, "version", "-o", "json").stdout
    server = json.loads(out)["serverVersion"]
    assert server["major"] == "1" and server["minor"] == "32"


def test_api_resources(kubeconfig: Path) -> None:
    out = kubectl(kubeconfig, "api-resources").stdout
    for name in (
        "pods",
        "deployments",
        "statefulsets",
        "cronjobs",
        "leases",
        "endpointslices",
        "clusterroles",
        "configmaps",
    ):
        assert name in out
    assert "deploy" in out  # short names


def test_apply_change_and_reapply(kubeconfig: Path, ns: str) -> None:
    out = kubectl(
        kubeconfig, "-n", ns, "apply", "-f", "-", input=DEPLOYMENT.format(image="busybox:1.35")
    ).stdout
    assert "deployment.apps/web created" in out
    out = kubectl(
        kubeconfig, "-n", ns, "apply", "-f", "-", input=DEPLOYMENT.format(image="busybox:1.36")
    ).stdout
    assert "deployment.apps/web configured" in out
    dep = json.loads(kubectl(kubeconfig, "-n", ns, "get", "deploy", "web", "-o", "json").stdout)
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app", "sidecar"]
    assert containers[0]["image"] == "busybox:1.36"
    assert containers[1]["command"] == ["sleep", "3600"]
    assert dep["metadata"]["generation"] == 2
    # Unchanged: applying again changes nothing.
    out = kubectl(
        kubeconfig, "-n", ns, "apply", "-f", "-", input=DEPLOYMENT.format(image="busybox:1.36")
    ).stdout
    assert "unchanged" in out


def test_get_table_and_yaml(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", input=DEPLOYMENT.format(image="busybox"))
    out = kubectl(kubeconfig, "-n", ns, "get", "deployments").stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out.splitlines()[1].split()[0] == "web"
    out = kubectl(kubeconfig, "-n", ns, "get", "deploy", "web", "-o", "yaml").stdout
    assert "kind: Deployment" in out and "resourceVersion:" in out


def test_label_annotate_scale_describe(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", input=DEPLOYMENT.format(image="busybox"))
    kubectl(kubeconfig, "-n", ns, "label", "deploy", "web", "tier=frontend")
    kubectl(kubeconfig, "-n", ns, "annotate", "deploy", "web", "owner=team-a")
    out = kubectl(kubeconfig, "-n", ns, "scale", "deploy", "web", "--replicas=5").stdout
    assert "scaled" in out
    dep = json.loads(kubectl(kubeconfig, "-n", ns, "get", "deploy", "web", "-o", "json").stdout)
    assert dep["metadata"]["labels"]["tier"] == "frontend"
    assert dep["metadata"]["annotations"]["owner"] == "team-a"
    assert dep["spec"]["replicas"] == 5
    out = kubectl(kubeconfig, "-n", ns, "get", "deploy", "-l", "tier=frontend", "-o", "name").stdout
    assert out.strip() == "deployment.apps/web"
    out = kubectl(kubeconfig, "-n", ns, "describe", "deploy", "web").stdout
    assert "Name:" in out and "web" in out and "Replicas:" in out


def test_get_watch_sees_change(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "-n", ns, "create", "configmap", "watched", "--from-literal=a=1")
    proc = subprocess.Popen(
        [
            KUBECTL,
            "--kubeconfig",
            str(kubeconfig),
            "-n",
            ns,
            "get",
            "configmap",
            "watched",
            "-w",
            "-o",
            "json",
            "--output-watch-events",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _lines(proc)
    try:
        first = json.loads(_next_line(lines, "the initial ADDED event"))
        kubectl(
            kubeconfig,
            "-n",
            ns,
            "patch",
            "configmap",
            "watched",
            "--type=merge",
            "-p",
            '{"data":{"a":"2"}}',
        )
        second = json.loads(_next_line(lines, "the MODIFIED event"))
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
    assert [first["type"], second["type"]] == ["ADDED", "MODIFIED"]
    assert second["object"]["data"] == {"a": "2"}


def test_get_watch_table(kubeconfig: Path, ns: str) -> None:
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", ns, "get", "configmaps", "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _lines(proc)
    try:
        header = _next_line(lines, "the table header")
        assert header.split()[:2] == ["NAME", "DATA"], header
        kubectl(kubeconfig, "-n", ns, "create", "configmap", "tabled", "--from-literal=x=1")
        while "tabled" not in (row := _next_line(lines, "the row of the new ConfigMap")):
            pass  # rows of ConfigMaps already there
        assert row.split()[:2] == ["tabled", "1"]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_delete_waits_until_gone(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "-n", ns, "create", "configmap", "doomed", "--from-literal=a=1")
    out = kubectl(kubeconfig, "-n", ns, "delete", "configmap", "doomed").stdout
    assert 'configmap "doomed" deleted' in out
    proc = kubectl(kubeconfig, "-n", ns, "get", "configmap", "doomed", check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr


def test_delete_pod_unscheduled(kubeconfig: Path, ns: str) -> None:
    kubectl(kubeconfig, "-n", ns, "run", "lonely", "--image=busybox", "--restart=Never")
    out = kubectl(kubeconfig, "-n", ns, "get", "pods").stdout
    assert out.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "Pending" in out
    out = kubectl(kubeconfig, "-n", ns, "delete", "pod", "lonely").stdout
    assert 'pod "lonely" deleted' in out
    proc = kubectl(kubeconfig, "-n", ns, "get", "pod", "lonely", check=False)
    assert proc.returncode != 0 and 'pods "lonely" not found' in proc.stderr


def test_apply_server_side(kubeconfig: Path, ns: str) -> None:
    manifest = DEPLOYMENT.format(image="busybox:1.35").replace("name: web", "name: ssa", 1)
    out = kubectl(kubeconfig, "-n", ns, "apply", "--server-side", "-f", "-", input=manifest).stdout
    assert "serverside-applied" in out
    out = kubectl(
        kubeconfig,
        "-n",
        ns,
        "apply",
        "--server-side",
        "-f",
        "-",
        input=manifest.replace("busybox:1.35", "busybox:1.36"),
    ).stdout
    assert "serverside-applied" in out
    dep = json.loads(
        kubectl(
            kubeconfig, "-n", ns, "get", "deploy", "ssa", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox:1.36"
    managers = {m["manager"]: m["operation"] for m in dep["metadata"]["managedFields"]}
    assert managers.get("kubectl") == "Apply"


def test_bad_input_is_a_status(kubeconfig: Path, ns: str) -> None:
    bad = DEPLOYMENT.format(image="busybox").replace("replicas: 2", "replicas: two")
    proc = kubectl(
        kubeconfig,
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=bad.replace("name: web", "name: bad", 1),
        check=False,
    )
    assert proc.returncode != 0
    assert "Error from server (BadRequest)" in proc.stderr
    assert 'Deployment in version "v1" cannot be handled as a Deployment' in proc.stderr
    assert "spec.replicas in body must be of type integer" in proc.stderr
    unknown = DEPLOYMENT.format(image="busybox").replace("replicas: 2", "replicas: 2\n  bogus: 1")
    proc = kubectl(
        kubeconfig,
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        input=unknown.replace("name: web", "name: bad2", 1),
        check=False,
    )
    assert proc.returncode != 0
    assert 'unknown field "spec.bogus"' in proc.stderr
    proc = kubectl(kubeconfig, "-n", ns, "get", "deploy", "bad", "bad2", check=False)
    assert "NotFound" in proc.stderr


def test_system_namespaces_exist(kubeconfig: Path) -> None:
    out = kubectl(kubeconfig, "get", "namespaces", "-o", "name").stdout.split()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert f"namespace/{ns}" in out
    kubectl(kubeconfig, "run", "in-default", "--image=busybox", "--restart=Never")
    out = kubectl(kubeconfig, "get", "pod", "in-default", "-o", "jsonpath={.metadata.namespace}")
    assert out.stdout == "default"


def test_priority_classes(kubeconfig: Path) -> None:
    out = kubectl(kubeconfig, "get", "priorityclasses").stdout.splitlines()
    assert out[0].split() == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"]
    assert any(line.startswith("system-node-critical") for line in out)
    kubectl(
        kubeconfig,
        "apply",
        "-f",
        "-",
        input=(
            "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: batch-low\n"
            "value: 10\npreemptionPolicy: Never\n"
        ),
    )
    out = kubectl(kubeconfig, "get", "pc", "batch-low", "-o", "jsonpath={.value}").stdout
    assert out == "10"


NETWORK_POLICY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-web}
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {app: web}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{port: 5432, protocol: TCP}]
"""


def test_network_policies_are_served(kubeconfig: Path, ns: str) -> None:
    """networking.k8s.io/v1 NetworkPolicy: stored and listed as kubectl shows them (the
    proxy does not enforce them yet)."""
    kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", input=NETWORK_POLICY)
    out = kubectl(kubeconfig, "-n", ns, "get", "netpol").stdout.splitlines()
    assert out[0].split() == ["NAME", "POD-SELECTOR", "AGE"]
    assert out[1].split()[:2] == ["db-from-web", "app=db"]
    got = kubectl(kubeconfig, "-n", ns, "get", "networkpolicy", "db-from-web", "-o", "json").stdout
    assert '"except": [\n' in got or '"10.1.0.0/16"' in got
    bad = kubectl(
        kubeconfig,
        "-n",
        ns,
        "apply",
        "-f",
        "-",
        check=False,
        input=NETWORK_POLICY.replace("port: 5432", "port: [5432]"),
    )
    assert bad.returncode != 0 and "spec.ingress[0].ports[0].port" in bad.stderr
    kubectl(kubeconfig, "-n", ns, "delete", "netpol", "db-from-web")


INGRESS_CLASS = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: kt-default
  annotations:
    ingressclass.kubernetes.io/is-default-class: "true"
spec:
  controller: example.com/ingress-controller
"""


def test_ingresses_and_ingress_classes(kubeconfig: Path, ns: str) -> None:
    """``kubectl create ingress`` (a protobuf body) gets the default IngressClass; get and
    describe show it as kubectl does against Kubernetes; a bad rule is refused."""
    kubectl(kubeconfig, "apply", "-f", "-", input=INGRESS_CLASS)
    try:
        out = kubectl(kubeconfig, "get", "ingressclass", "kt-default").stdout.splitlines()
        assert out[0].split() == ["NAME", "CONTROLLER", "PARAMETERS", "AGE"]
        assert out[1].split()[:3] == ["kt-default", "example.com/ingress-controller", "<none>"]
        kubectl(kubeconfig, "-n", ns, "create", "ingress", "web",
                "--rule=foo.com/bar=svc1:8080,tls=my-cert")  # fmt: skip
        ing = json.loads(kubectl(kubeconfig, "-n", ns, "get", "ing", "web", "-o", "json").stdout)
        assert ing["spec"]["ingressClassName"] == "kt-default"
        assert ing["spec"]["rules"][0]["http"]["paths"][0] == {
            "path": "/bar", "pathType": "Exact",
            "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}  # fmt: skip
        out = kubectl(kubeconfig, "-n", ns, "get", "ingress").stdout.splitlines()
        assert out[0].split() == ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
        assert out[1].split()[:4] == ["web", "kt-default", "foo.com", "80,"]
        described = kubectl(kubeconfig, "-n", ns, "describe", "ingress", "web").stdout
        assert "my-cert terminates foo.com" in described and "svc1:8080" in described
        bad = kubectl(kubeconfig, "-n", ns, "create", "ingress", "bad",
                      "--rule=10.0.0.1/x=svc1:80", check=False)  # fmt: skip
        assert bad.returncode != 0
        assert 'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name' in bad.stderr
        kubectl(kubeconfig, "-n", ns, "delete", "ingress", "web")
    finally:
        kubectl(kubeconfig, "delete", "ingressclass", "kt-default", check=False)


def test_component_statuses_and_pod_templates(kubeconfig: Path, ns: str) -> None:
    """``kubectl get cs`` probes etcd (healthy here) and the scheduler and controller
    manager on this machine, with kube's deprecation warning; PodTemplates are served."""
    proc = kubectl(kubeconfig, "get", "componentstatuses")
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert set(rows) == {"controller-manager", "etcd-0", "scheduler"}
    assert rows["etcd-0"] == ["Healthy", "ok"]
    cs = json.loads(kubectl(kubeconfig, "get", "cs", "etcd-0", "-o", "json").stdout)
    assert cs["conditions"][0]["status"] == "True"
    template = (
        "apiVersion: v1\nkind: PodTemplate\nmetadata:\n  name: t\ntemplate:\n"
        "  metadata:\n    labels: {app: web}\n  spec:\n"
        "    containers: [{name: app, image: busybox}]\n"
    )
    kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", input=template)
    out = kubectl(kubeconfig, "-n", ns, "get", "podtemplates").stdout.splitlines()
    assert out[0].split() == ["NAME", "CONTAINERS", "IMAGES", "POD", "LABELS"]
    assert out[1].split() == ["t", "app", "busybox", "app=web"]
    bad = kubectl(kubeconfig, "-n", ns, "apply", "-f", "-", check=False,
                  input=template.replace(", image: busybox", ""))  # fmt: skip
    assert "template.spec.containers[0].image: Required value" in bad.stderr
    kubectl(kubeconfig, "-n", ns, "delete", "podtemplate", "t")


def test_events_are_one_resource_in_two_groups(kubeconfig: Path, ns: str) -> None:
    """An events.k8s.io/v1 Event (what client-go's events recorder writes) is a core/v1
    Event too: ``kubectl get events`` and ``kubectl events`` show its note; a bad one gets
    kube's 422 at the internal field's path."""
    event = (
        "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: e2e-note\n"
        "eventTime: 2026-12-07T10:00:00.000000Z\nreportingController: skiff.io/e2e\n"
        "reportingInstance: e2e-1\naction: Testing\nreason: Tested\ntype: Normal\n"
        "note: written through events.k8s.io\n"
        f"regarding: {{apiVersion: v1, kind: Pod, namespace: {ns}, name: ghost}}\n"
    )
    kubectl(kubeconfig, "-n", ns, "create", "-f", "-", input=event)
    core = json.loads(kubectl(kubeconfig, "-n", ns, "get", "event", "e2e-note", "-o",
                              "json").stdout)  # fmt: skip
    assert core["apiVersion"] == "v1"
    assert core["message"] == "written through events.k8s.io"
    assert core["involvedObject"]["name"] == "ghost"
    listed = kubectl(kubeconfig, "-n", ns, "events", "--for", "pod/ghost").stdout
    assert "written through events.k8s.io" in listed and "Tested" in listed
    new = json.loads(kubectl(kubeconfig, "-n", ns, "get", "events.events.k8s.io", "e2e-note",
                             "-o", "json").stdout)  # fmt: skip
    assert new["note"] == "written through events.k8s.io"
    bad = kubectl(kubeconfig, "-n", ns, "create", "-f", "-", check=False,
                  input=event.replace("e2e-note", "e2e-bad").replace("type: Normal",
                                                                     "type: Odd"))  # fmt: skip
    assert 'type: Invalid value: "": has invalid value: Odd' in bad.stderr
    kubectl(kubeconfig, "-n", ns, "delete", "events.events.k8s.io", "e2e-note")


@pytest.mark.parametrize("apply", [["apply"], ["apply", "--server-side"]])
def test_secret_string_data_is_stored_in_data(kubeconfig: Path, ns: str, apply: list[str]) -> None:
    """stringData is write-only: stored base64 in data, overwriting what data had."""
    name = "sd-" + ("ssa" if "--server-side" in apply else "csa")
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {"a": "b2xk", "keep": "eA=="},
        "stringData": {"a": "new", "token-id": "abcdef"},
    }
    kubectl(kubeconfig, "-n", ns, *apply, "-f", "-", input=json.dumps(doc))
    got = json.loads(kubectl(kubeconfig, "-n", ns, "get", "secret", name, "-o", "json").stdout)
    assert got["data"] == {"a": "bmV3", "keep": "eA==", "token-id": "YWJjZGVm"}
    assert "stringData" not in got


PRIVILEGED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
  volumes:
  - name: host
    hostPath: {path: /}
"""


def test_pod_security_admission(kubeconfig: Path) -> None:
    """A namespace labelled ``enforce=baseline`` refuses a privileged pod with kube's message;
    ``warn=restricted`` admits a plain pod and kubectl prints the warning."""
    kubectl(kubeconfig, "create", "namespace", "pss")
    kubectl(
        kubeconfig,
        "label",
        "namespace",
        "pss",
        "pod-security.kubernetes.io/enforce=baseline",
        "pod-security.kubernetes.io/warn=restricted",
    )
    bad = kubectl(kubeconfig, "-n", "pss", "apply", "-f", "-", input=PRIVILEGED_POD, check=False)
    assert bad.returncode != 0
    assert (
        'pods "root" is forbidden: violates PodSecurity "baseline:latest": privileged '
        '(container "c" must not set securityContext.privileged=true), hostPath volumes '
        '(volume "host")'
    ) in bad.stderr
    ok = kubectl(kubeconfig, "-n", "pss", "run", "plain", "--image=busybox", "--restart=Never")
    assert 'Warning: would violate PodSecurity "restricted:latest": ' in ok.stderr
    assert "allowPrivilegeEscalation != false" in ok.stderr
    kubectl(kubeconfig, "delete", "namespace", "pss", "--wait=false")


def test_priority_and_fairness_configuration(kubeconfig: Path) -> None:
    """The apiserver creates kube's bootstrap FlowSchemas and priority levels, marks each
    schema's Dangling status, and names the schema and level a request was classified to
    in kube's response headers (kubectl -v=8 prints them)."""
    deadline = time.monotonic() + 30
    while True:
        out = kubectl(kubeconfig, "get", "flowschemas").stdout.splitlines()
        if len(out) == 14 and out[1].split()[-1] == "False":
            break
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    assert out[0].split() == ["NAME", "PRIORITYLEVEL", "MATCHINGPRECEDENCE",
                              "DISTINGUISHERMETHOD", "AGE", "MISSINGPL"]  # fmt: skip
    assert out[1].split()[:4] == ["exempt", "exempt", "1", "<none>"]
    assert out[-1].split()[:4] == ["catch-all", "catch-all", "10000", "ByUser"]
    levels = kubectl(kubeconfig, "get", "prioritylevelconfigurations").stdout.splitlines()
    assert levels[0].split() == ["NAME", "TYPE", "NOMINALCONCURRENCYSHARES", "QUEUES",
                                 "HANDSIZE", "QUEUELENGTHLIMIT", "AGE"]  # fmt: skip
    rows = {line.split()[0]: line.split()[1:6] for line in levels[1:]}
    assert rows["exempt"] == ["Exempt", "<none>", "<none>", "<none>", "<none>"]
    assert rows["workload-low"] == ["Limited", "100", "128", "6", "50"]
    exempt = json.loads(kubectl(kubeconfig, "get", "flowschema", "exempt", "-o", "json").stdout)
    verbose = kubectl(kubeconfig, "get", "namespace", "default", "-v=8").stderr.lower()
    assert f"x-kubernetes-pf-flowschema-uid: {exempt['metadata']['uid']}" in verbose
    bad = kubectl(kubeconfig, "apply", "-f", "-", check=False, input=(
        "apiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: PriorityLevelConfiguration\n"
        "metadata: {name: jail}\nspec: {type: Limited, limited: {limitResponse: {type: Queue}}}\n"
    ))  # fmt: skip
    assert ("spec.limited.limitResponse.queuing: Required value: must not be empty if "
            "limited.limitResponse.type is Limited") in bad.stderr  # fmt: skip
