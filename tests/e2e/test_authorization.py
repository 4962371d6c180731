"""RBAC enforced by a real apiserver (``--authorization-mode=RBAC``) with Kubernetes'
default roles, the aggregation controller in a real controller-manager, and the real
kubectl and official client: 403s in Kubernetes' words, bindings by user, group and
service account, resourceNames, ``kubectl auth can-i`` (also ``--list``) and the access
reviews."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import kubernetes
import pytest
from clusterenv import started_cluster
from cmenv import Managers

from cluster import Cluster, wait_until

KUBECTL = "kubectl"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for c in started_cluster(tmp_path_factory, "authz", secure=True):
        managers = Managers(c)
        managers.start("--controllers=clusterrole-aggregation")
        try:
            yield c
        finally:
            managers.stop()


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> Path:
    return cluster.kubeconfig()


@pytest.fixture(scope="module")
def jane(cluster: Cluster) -> Path:
    return cluster.user_kubeconfig("jane", ("dev",))


def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBECTL, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        check=check,
    )


def can_i(kubeconfig: Path, *args: str) -> str:
    return kubectl(kubeconfig, "auth", "can-i", *args, check=False).stdout.strip()


def test_the_default_roles_exist_and_aggregate(admin: Path) -> None:
    roles = kubectl(admin, "get", "clusterroles", "-o", "name").stdout.split()
    for name in (
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
        "system:public-info-viewer",
        "system:node-bootstrapper",
        "system:kube-scheduler",
        "system:kube-controller-manager",
        "system:node-proxier",
        "system:kube-dns",
        "system:node",
    ):
        assert f"clusterrole.rbac.authorization.k8s.io/{name}" in roles

    def view_aggregated() -> bool:
        view = json.loads(kubectl(admin, "get", "clusterrole", "view", "-o", "json").stdout)
        return any("pods" in (r.get("resources") or []) for r in view.get("rules") or [])

    wait_until(view_aggregated, timeout=20, what="view aggregated from aggregate-to-view")
    admin_role = json.loads(kubectl(admin, "get", "clusterrole", "admin", "-o", "json").stdout)
    resources = {res for r in admin_role["rules"] for res in r.get("resources") or []}
    # admin holds edit's and view's rules too, and its own.
    assert {"pods", "secrets", "roles", "rolebindings", "localsubjectaccessreviews"} <= resources


def test_a_user_without_bindings_is_forbidden(jane: Path) -> None:
    result = kubectl(jane, "get", "pods", check=False)
    assert result.returncode != 0
    assert (
        'Error from server (Forbidden): pods is forbidden: User "jane" cannot list resource '
        '"pods" in API group "" in the namespace "default"'
    ) in result.stderr
    result = kubectl(jane, "get", "nodes", check=False)
    assert (
        'nodes is forbidden: User "jane" cannot list resource "nodes" in API group "" at the '
        "cluster scope"
    ) in result.stderr
    named = kubectl(jane, "get", "deployment.apps", "web", check=False)
    assert (
        'deployments.apps "web" is forbidden: User "jane" cannot get resource "deployments" in '
        'API group "apps" in the namespace "default"'
    ) in named.stderr
    # What every authenticated user may do (system:basic-user, system:discovery).
    assert can_i(jane, "create", "selfsubjectaccessreviews.authorization.k8s.io") == "yes"
    assert can_i(jane, "get", "/api") == "yes"
    assert can_i(jane, "list", "pods") == "no"


def test_role_bindings_grant_in_their_namespace(admin: Path, jane: Path) -> None:
    kubectl(admin, "create", "namespace", "team")
    kubectl(
        admin,
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "team",
    )
    wait_until(lambda: can_i(jane, "list", "pods", "-n", "team") == "yes", timeout=20, what="view")
    assert kubectl(jane, "get", "pods", "-n", "team").returncode == 0
    assert can_i(jane, "get", "secrets", "-n", "team") == "no"  # view leaves Secrets out
    assert can_i(jane, "create", "pods", "-n", "team") == "no"
    assert can_i(jane, "list", "pods", "-n", "default") == "no"
    # edit, to her group.
    kubectl(
        admin,
        "create",
        "rolebinding",
        "dev-edit",
        "--clusterrole=edit",
        "--group=dev",
        "-n",
        "team",
    )
    wait_until(
        lambda: can_i(jane, "create", "configmaps", "-n", "team") == "yes", timeout=20, what="edit"
    )
    kubectl(jane, "create", "configmap", "made-by-jane", "-n", "team", "--from-literal=a=b")
    # Removing the binding takes the permission away at once.
    kubectl(admin, "delete", "rolebinding", "dev-edit", "-n", "team")
    wait_until(
        lambda: can_i(jane, "create", "configmaps", "-n", "team") == "no",
        timeout=10,
        what="revoked",
    )


def test_resource_names_limit_a_rule(admin: Path, jane: Path) -> None:
    kubectl(admin, "create", "namespace", "named")
    for name in ("one", "two"):
        kubectl(admin, "create", "configmap", name, "-n", "named")
    kubectl(
        admin,
        "create",
        "role",
        "one-only",
        "--verb=get",
        "--resource=configmaps",
        "--resource-name=one",
        "-n",
        "named",
    )
    kubectl(
        admin, "create", "rolebinding", "one-only", "--role=one-only", "--user=jane", "-n", "named"
    )
    wait_until(
        lambda: (
            kubectl(jane, "get", "configmap", "one", "-n", "named", check=False).returncode == 0
        ),
        timeout=10,
        what="get one",
    )
    assert kubectl(jane, "get", "configmap", "two", "-n", "named", check=False).returncode != 0
    assert kubectl(jane, "get", "configmaps", "-n", "named", check=False).returncode != 0


def test_can_i_list(admin: Path, jane: Path) -> None:
    out = kubectl(jane, "auth", "can-i", "--list", "-n", "team").stdout
    assert "selfsubjectreviews.authentication.k8s.io" in out
    assert "[/api/*]" in out
    assert "pods" in out  # view in team, from the earlier binding
    full = kubectl(admin, "auth", "can-i", "--list", "-n", "team").stdout
    assert "*.*" in full


def test_service_accounts_are_bound_by_subject(cluster: Cluster, admin: Path) -> None:
    kubectl(admin, "create", "serviceaccount", "reader", "-n", "team")
    kubectl(
        admin,
        "create",
        "rolebinding",
        "reader-view",
        "--clusterrole=view",
        "--serviceaccount=team:reader",
        "-n",
        "team",
    )
    token = kubectl(admin, "create", "token", "reader", "-n", "team").stdout.strip()
    assert cluster.pki is not None
    conf = kubernetes.client.Configuration()
    conf.host = cluster.url
    conf.ssl_ca_cert = str(cluster.pki / "ca.crt")
    conf.api_key = {"authorization": f"Bearer {token}"}
    with kubernetes.client.ApiClient(conf) as c:
        core = kubernetes.client.CoreV1Api(c)
        wait_until(lambda: core.list_namespaced_pod("team") is not None, timeout=10, what="list")
        with pytest.raises(kubernetes.client.ApiException) as e:
            core.list_namespaced_secret("team")
        assert e.value.status == 403
        body = json.loads(e.value.body)
        assert body["reason"] == "Forbidden"
        assert body["details"] == {"kind": "secrets"}
        assert body["message"] == (
            'secrets is forbidden: User "system:serviceaccount:team:reader" cannot list resource '
            '"secrets" in API group "" in the namespace "team"'
        )


def test_access_reviews(cluster: Cluster, admin: Path) -> None:
    with kubernetes.config.new_client_from_config(config_file=str(admin)) as c:
        authz = kubernetes.client.AuthorizationV1Api(c)
        review = authz.create_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": "jane",
                    "resourceAttributes": {"namespace": "team", "verb": "list", "resource": "pods"},
                },
            }
        )
        assert review.status.allowed is True
        assert 'RoleBinding "jane-view"' in review.status.reason
        review = authz.create_subject_access_review(
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "groups": ["system:masters"],
                    "nonResourceAttributes": {"path": "/x", "verb": "get"},
                },
            }
        )
        assert review.status.allowed is True
        with pytest.raises(kubernetes.client.ApiException) as e:
            authz.create_subject_access_review(
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}},
                }
            )
        assert e.value.status == 422
        assert json.loads(e.value.body)["message"] == (
            'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
            "at least one of user or group must be specified"
        )
        local = authz.create_namespaced_local_subject_access_review(
            "team",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "LocalSubjectAccessReview",
                "spec": {
                    "user": "jane",
                    "resourceAttributes": {
                        "namespace": "team",
                        "verb": "delete",
                        "resource": "pods",
                    },
                },
            },
        )
        assert local.status.allowed is False
        with pytest.raises(kubernetes.client.ApiException) as e:
            authz.create_namespaced_local_subject_access_review(
                "team",
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "LocalSubjectAccessReview",
                    "spec": {
                        "user": "jane",
                        "resourceAttributes": {
                            "namespace": "other",
                            "verb": "get",
                            "resource": "pods",
                        },
                    },
                },
            )
        assert e.value.status == 400
        assert "spec.resourceAttributes.namespace must match namespace: team" in e.value.body


def test_anonymous_requests_get_only_public_information(cluster: Cluster) -> None:
    import ssl
    import urllib.error
    import urllib.request

    assert cluster.pki is not None
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    with urllib.request.urlopen(f"{cluster.url}/healthz", context=context) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(
            f"{cluster.url}/api/v1/namespaces/kube-system/secrets", context=context
        )
    assert e.value.code == 403
    assert json.loads(e.value.read())["message"] == (
        'secrets is forbidden: User "system:anonymous" cannot list resource "secrets" in API group '
        '"" in the namespace "kube-system"'
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{cluster.url}/apis", context=context)
    assert e.value.code == 403
    assert json.loads(e.value.read())["message"] == (
        'forbidden: User "system:anonymous" cannot get path "/apis"'
    )


def test_no_one_grants_more_than_they_hold(admin: Path, jane: Path) -> None:
    kubectl(admin, "create", "namespace", "esc")
    kubectl(
        admin,
        "create",
        "rolebinding",
        "jane-admin",
        "--clusterrole=admin",
        "--user=jane",
        "-n",
        "esc",
    )
    wait_until(
        lambda: can_i(jane, "create", "roles", "-n", "esc") == "yes", timeout=20, what="admin"
    )
    # What she holds she may hand on...
    kubectl(jane, "create", "role", "cm-reader", "--verb=get", "--resource=configmaps", "-n", "esc")
    kubectl(
        jane, "create", "rolebinding", "bob-view", "--clusterrole=view", "--user=bob", "-n", "esc"
    )
    # ... but not what she does not hold.
    role = kubectl(
        jane,
        "create",
        "role",
        "node-reader",
        "--verb=list",
        "--resource=nodes",
        "-n",
        "esc",
        check=False,
    )
    assert role.returncode != 0
    assert (
        'roles.rbac.authorization.k8s.io "node-reader" is forbidden: user "jane" '
        '(groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n{APIGroups:[""], Resources:["nodes"], Verbs:["list"]}'
    ) in role.stderr
    bind = kubectl(
        jane,
        "create",
        "rolebinding",
        "me-root",
        "--clusterrole=cluster-admin",
        "--user=jane",
        "-n",
        "esc",
        check=False,
    )
    assert bind.returncode != 0
    assert (
        'rolebindings.rbac.authorization.k8s.io "me-root" is forbidden: user "jane"' in bind.stderr
    )
    # Widening her own role afterwards is refused too.
    patch = kubectl(
        jane,
        "patch",
        "role",
        "cm-reader",
        "-n",
        "esc",
        "--type=json",
        '-p=[{"op":"add","path":"/rules/0/verbs/-","value":"escalate"}]',
        check=False,
    )
    assert patch.returncode != 0 and "attempting to grant RBAC permissions" in patch.stderr
    # The bind verb on a role lets her bind it without holding it.
    kubectl(
        admin,
        "create",
        "role",
        "binder",
        "--verb=bind",
        "--resource=clusterroles",
        "--resource-name=system:node-proxier",
        "-n",
        "esc",
    )
    kubectl(
        admin, "create", "rolebinding", "jane-binder", "--role=binder", "--user=jane", "-n", "esc"
    )
    wait_until(
        lambda: (
            kubectl(
                jane,
                "create",
                "rolebinding",
                "proxy",
                "--clusterrole=system:node-proxier",
                "--user=bob",
                "-n",
                "esc",
                check=False,
            ).returncode
            == 0
        ),
        timeout=10,
        what="bind allowed",
    )


def _apply(kubeconfig: Path, *objects: dict) -> None:  # type: ignore[type-arg]
    """``kubectl create`` of ``objects``; raises with kubectl's words when refused. (One
    document each: a ``List`` would need /openapi/v2 for kubectl's validation.)"""
    for obj in objects:
        result = subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "create", "-f", "-"],
            input=json.dumps(obj),
            text=True,
            capture_output=True,
        )
        if result.returncode != 0:
            raise AssertionError(result.stderr)


def _pod(name: str, node: str, secret: str, configmap: str = "") -> dict:  # type: ignore[type-arg]
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": configmap, "key": "x"}}}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "kubelets"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": "worker",
            "containers": [{"name": "c", "image": "x", "env": env if configmap else []}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}],
        },
    }


def test_kubelets_reach_only_what_their_pods_use(cluster: Cluster, admin: Path) -> None:
    kubectl(admin, "create", "namespace", "kubelets")
    kubectl(admin, "create", "serviceaccount", "worker", "-n", "kubelets")
    for name in ("node-a", "node-b"):
        _apply(admin, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    for name in ("s-a", "s-b"):
        kubectl(admin, "create", "secret", "generic", name, "-n", "kubelets", "--from-literal=k=v")
    kubectl(admin, "create", "configmap", "cm-a", "-n", "kubelets", "--from-literal=x=1")
    _apply(admin, _pod("p-a", "node-a", "s-a", "cm-a"), _pod("p-b", "node-b", "s-b"))
    a = cluster.user_kubeconfig("system:node:node-a", ("system:nodes",))
    ns = ("-n", "kubelets")

    def ok(*args: str) -> None:
        result = kubectl(a, *args, check=False)
        assert result.returncode == 0, result.stderr

    def refused(expected: str, *args: str) -> None:
        result = kubectl(a, *args, check=False)
        assert result.returncode != 0 and expected in result.stderr, result.stderr

    ok("get", "secret", "s-a", *ns)
    ok("get", "configmap", "cm-a", *ns)
    refused(
        'secrets "s-b" is forbidden: User "system:node:node-a" cannot get resource "secrets" in '
        'API group "" in the namespace "kubelets": no relationship found between node '
        "'node-a' and this object",
        "get",
        "secret",
        "s-b",
        *ns,
    )
    refused("secrets is forbidden", "get", "secrets", *ns)
    ok("get", "pods", "-A")  # the system:node role's reads
    ok("label", "node", "node-a", "seen=yes")
    refused(
        'nodes "node-b" is forbidden: node "node-a" is not allowed to modify node "node-b"',
        "label",
        "node",
        "node-b",
        "seen=yes",
    )
    refused(
        'node "node-a" can only delete pods with spec.nodeName set to itself',
        "delete",
        "pod",
        "p-b",
        *ns,
    )
    refused("can only create mirror pods", "run", "x", "--image=x", *ns)
    # Pod status, as a kubelet writes it (a PATCH, without reading pods/status first).
    with kubernetes.config.new_client_from_config(config_file=str(a)) as c:
        core = kubernetes.client.CoreV1Api(c)
        body = {"status": {"message": "hi"}}
        core.patch_namespaced_pod_status("p-a", "kubelets", body)
        with pytest.raises(kubernetes.client.ApiException) as e:
            core.patch_namespaced_pod_status("p-b", "kubelets", body)
        assert e.value.status == 403
        assert "can only update pod status for pods with spec.nodeName set to itself" in (
            e.value.body
        )
    ok("create", "token", "worker", *ns, "--bound-object-kind=Pod", "--bound-object-name=p-a")
    refused("node requested token not bound to a pod", "create", "token", "worker", *ns)
    refused(
        "node requested token bound to a pod scheduled on a different node",
        "create",
        "token",
        "worker",
        *ns,
        "--bound-object-kind=Pod",
        "--bound-object-name=p-b",
    )
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "node-a", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "node-a"},
    }
    _apply(a, lease)
    other = dict(lease, metadata={"name": "node-b", "namespace": "kube-node-lease"})
    with pytest.raises(AssertionError, match="can only access node lease with the same name"):
        _apply(a, other)
    refused(
        'leases.coordination.k8s.io "node-b" is forbidden',
        "get",
        "lease",
        "node-b",
        "-n",
        "kube-node-lease",
    )


async def test_grpc_is_tls_with_token_authentication_and_the_same_authorization(
    cluster: Cluster, admin: Path
) -> None:
    from skiff.api.errors import ApiError
    from skiff.client.grpc import ObjectClient, ref

    assert cluster.pki is not None
    target = f"127.0.0.1:{cluster.grpc_ports[0]}"
    ca = (cluster.pki / "ca.crt").read_bytes()
    kubectl(admin, "create", "serviceaccount", "grpc-admin", "-n", "kube-system")
    kubectl(admin, "create", "clusterrolebinding", "grpc-admin", "--clusterrole=cluster-admin",
            "--serviceaccount=kube-system:grpc-admin")  # fmt: skip
    kubectl(admin, "create", "serviceaccount", "grpc-nobody")
    root = kubectl(admin, "create", "token", "grpc-admin", "-n", "kube-system").stdout.strip()
    nobody = kubectl(admin, "create", "token", "grpc-nobody").stdout.strip()

    async with ObjectClient(target, ca=ca, token=root) as c:
        items, _, _ = await c.list(ref("namespaces"))
        assert "kube-system" in {n["metadata"]["name"] for n in items}
    async with ObjectClient(target, ca=ca, token=nobody) as c:
        with pytest.raises(ApiError) as e:
            await c.list(ref("secrets", namespace="default"))
        assert e.value.code == 403
        assert e.value.message == (
            'secrets is forbidden: User "system:serviceaccount:default:grpc-nobody" cannot list '
            'resource "secrets" in API group "" in the namespace "default"'
        )
    async with ObjectClient(target, ca=ca, token="not-a-token") as c:
        with pytest.raises(ApiError) as e:
            await c.list(ref("pods", namespace="default"))
        assert e.value.code == 401
    async with ObjectClient(target, ca=ca) as anonymous:
        with pytest.raises(ApiError) as e:
            await anonymous.list(ref("pods", namespace="default"))
        assert e.value.code == 403
    async with ObjectClient(target) as plain:  # plain text to a TLS port
        with pytest.raises(ApiError) as e:
            await plain.list(ref("pods", namespace="default"))
        assert e.value.code == 503


JAIL = """\
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: PriorityLevelConfiguration
metadata: {name: jail}
spec: {type: Limited, limited: {nominalConcurrencyShares: 0, limitResponse: {type: Reject}}}
---
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata: {name: jailed}
spec:
  priorityLevelConfiguration: {name: jail}
  matchingPrecedence: 100
  distinguisherMethod: {type: ByUser}
  rules:
  - subjects: [{kind: User, user: {name: jailed}}]
    resourceRules: [{verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"],
                     clusterScope: true}]
    nonResourceRules: [{verbs: ["*"], nonResourceURLs: ["*"]}]
"""


def test_priority_and_fairness_refuses_a_level_with_no_seats(cluster: Cluster, admin: Path) -> None:
    """A priority level with no share of the server's seats and ``Reject`` refuses every
    request of the FlowSchema that leads to it with kube's 429 and ``Retry-After``; other
    users are served."""
    subprocess.run([KUBECTL, "--kubeconfig", str(admin), "apply", "-f", "-"],
                   input=JAIL, text=True, capture_output=True, check=True)  # fmt: skip
    schema = json.loads(kubectl(admin, "get", "flowschema", "jailed", "-o", "json").stdout)
    cert, key = cluster.user_certificate("jailed")
    assert cluster.pki is not None
    tls = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    tls.load_cert_chain(str(cert), str(key))
    with httpx.Client(verify=tls) as web:
        deadline = time.monotonic() + 20
        while True:
            resp = web.get(f"{cluster.url}/api/v1/namespaces/default/pods")
            if resp.status_code == 429 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert resp.status_code == 429, resp.text
        assert resp.text == "Too many requests, please try again later.\n"
        assert resp.headers["Retry-After"] == "1"
        assert resp.headers["X-Kubernetes-PF-FlowSchema-UID"] == schema["metadata"]["uid"]
    assert kubectl(admin, "get", "--raw", "/api").returncode == 0
    kubectl(admin, "delete", "flowschema", "jailed")
    kubectl(admin, "delete", "prioritylevelconfiguration", "jail")


def test_admission_policies_ask_the_authorizer(admin: Path, jane: Path) -> None:
    """A ValidatingAdmissionPolicy's ``authorizer`` asks RBAC about the requester: only
    who may read Secrets in a namespace may label a ConfigMap there ``tier=secret``."""
    kubectl(admin, "create", "namespace", "authz-cel")
    kubectl(admin, "create", "role", "cm-writer", "--verb=create,get,list",
            "--resource=configmaps", "-n", "authz-cel")  # fmt: skip
    kubectl(admin, "create", "rolebinding", "jane-cm", "--role=cm-writer", "--user=jane",
            "-n", "authz-cel")  # fmt: skip
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "secret-tier"},
        "spec": {
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                "resources": ["configmaps"]}]},
            "validations": [{
                "expression": "!has(object.metadata.labels) || "
                              "!('tier' in object.metadata.labels) || "
                              "object.metadata.labels.tier != 'secret' || "
                              "authorizer.group('').resource('secrets')"
                              ".namespace(object.metadata.namespace).check('list').allowed()",
                "message": "only who may list Secrets may create secret-tier ConfigMaps"}],
        },
    }  # fmt: skip
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": "secret-tier"},
        "spec": {"policyName": "secret-tier", "validationActions": ["Deny"]},
    }  # fmt: skip
    _apply(admin, policy, binding)
    kubectl(admin, "create", "role", "secret-reader", "--verb=list", "--resource=secrets",
            "-n", "authz-cel")  # fmt: skip

    wait_until(lambda: can_i(jane, "create", "configmaps", "-n", "authz-cel") == "yes",
               timeout=20, what="cm-writer")  # fmt: skip
    secret_tier = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels: {{tier: secret}}\n"
    )

    def create_secret_tier(kubeconfig: Path, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, "--kubeconfig", str(kubeconfig), "-n", "authz-cel", "create", "-f", "-"],
            input=secret_tier.format(n=name), text=True, capture_output=True,
        )  # fmt: skip

    def jane_refused() -> bool:
        proc = create_secret_tier(jane, f"j-{time.monotonic_ns()}")
        return proc.returncode != 0 and "only who may list Secrets" in proc.stderr

    wait_until(jane_refused, timeout=20, what="the policy refusing jane")
    assert create_secret_tier(admin, "by-admin").returncode == 0
    kubectl(admin, "create", "rolebinding", "jane-secrets", "--role=secret-reader",
            "--user=jane", "-n", "authz-cel")  # fmt: skip
    wait_until(lambda: create_secret_tier(jane, f"j-{time.monotonic_ns()}").returncode == 0,
               timeout=20, what="jane allowed once she may list Secrets")  # fmt: skip
    kubectl(admin, "delete", "validatingadmissionpolicybinding", "secret-tier")
    kubectl(admin, "delete", "validatingadmissionpolicy", "secret-tier")
