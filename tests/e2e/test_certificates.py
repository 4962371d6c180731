"""The certificates API with a real apiserver and controller manager (as kubeadm runs
them): a node's bootstrap token gets its client certificate approved and issued, a
user's request waits for ``kubectl certificate approve``, who may approve is RBAC's, and
``system:masters`` is never issued by the client signer."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterenv import started_cluster
from cmenv import Managers
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from cluster import Cluster, wait_until
from skiff.pki import new_key

TOKEN = "abcdef.0123456789abcdef"
SKIFFADM = Path(sys.executable).parent / "skiffadm"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for c in started_cluster(tmp_path_factory, "certificates", secure=True):
        assert c.pki is not None
        subprocess.run(
            [str(SKIFFADM), "init", "phase", "bootstrap-token", "--kubeconfig",
             str(c.kubeconfig()), "--cert-dir", str(c.pki), "--token", TOKEN],
            check=True, capture_output=True,
        )  # fmt: skip
        managers = Managers(c)
        managers.start(
            "--controllers=csrapproving,csrsigning",
            "--use-service-account-credentials",
            f"--kubeconfig={c.user_kubeconfig('system:kube-controller-manager')}",
            f"--cluster-signing-cert-file={c.pki / 'ca.crt'}",
            f"--cluster-signing-key-file={c.pki / 'ca.key'}",
        )
        try:
            yield c
        finally:
            managers.stop()


def csr(
    name: str, cn: str, orgs: tuple[str, ...], signer: str, usages: list[str]
) -> tuple[str, bytes]:
    key = new_key("ECDSA-P256")
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    subject += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    req = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(subject))
        .sign(key, hashes.SHA256())
    )
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": {
            "request": base64.b64encode(req.public_bytes(serialization.Encoding.PEM)).decode(),
            "signerName": signer,
            "usages": usages,
        },
    }
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return json.dumps(body), pem


def kubectl(args: list[str], input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True)


def issued(kc: list[str], name: str) -> bytes:
    out = kubectl([*kc, "get", "csr", name, "-o", "jsonpath={.status.certificate}"])
    return base64.b64decode(out.stdout) if out.returncode == 0 and out.stdout else b""


def whoami_with(cluster: Cluster, cert: bytes, key: bytes, tmp: Path) -> str:
    assert cluster.pki is not None
    (tmp / "c.crt").write_bytes(cert)
    (tmp / "c.key").write_bytes(key)
    out = kubectl(
        ["--kubeconfig=/dev/null", f"--server={cluster.url}",
         f"--certificate-authority={cluster.pki / 'ca.crt'}",
         f"--client-certificate={tmp / 'c.crt'}", f"--client-key={tmp / 'c.key'}",
         "auth", "whoami", "-o", "json"]
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["status"]["userInfo"]["username"]


def test_a_bootstrap_token_gets_a_node_client_certificate(cluster: Cluster, tmp_path: Path) -> None:
    assert cluster.pki is not None
    token = ["--kubeconfig=/dev/null", f"--server={cluster.url}",
             f"--certificate-authority={cluster.pki / 'ca.crt'}", f"--token={TOKEN}"]  # fmt: skip
    body, key = csr(
        "node-csr-n1", "system:node:n1", ("system:nodes",),
        "kubernetes.io/kube-apiserver-client-kubelet",
        ["digital signature", "client auth"],
    )  # fmt: skip
    created = kubectl([*token, "create", "-f", "-"], input=body)
    assert created.returncode == 0, created.stderr
    wait_until(lambda: issued(token, "node-csr-n1"), timeout=20, what="the node's certificate")
    got = json.loads(kubectl([*token, "get", "csr", "node-csr-n1", "-o", "json"]).stdout)
    assert got["spec"]["username"] == "system:bootstrap:abcdef"
    (approved,) = [c for c in got["status"]["conditions"] if c["type"] == "Approved"]
    assert approved["reason"] == "AutoApproved"
    assert whoami_with(cluster, issued(token, "node-csr-n1"), key, tmp_path) == "system:node:n1"


def test_a_user_request_waits_for_an_approver(cluster: Cluster, tmp_path: Path) -> None:
    admin = ["--kubeconfig", str(cluster.kubeconfig())]
    body, key = csr("bob", "bob", ("dev",), "kubernetes.io/kube-apiserver-client", ["client auth"])
    assert kubectl([*admin, "create", "-f", "-"], input=body).returncode == 0
    table = kubectl([*admin, "get", "csr", "bob"]).stdout
    assert "kubernetes.io/kube-apiserver-client" in table and "Pending" in table
    jane = ["--kubeconfig", str(cluster.user_kubeconfig("jane", ("dev",)))]
    refused = kubectl([*jane, "certificate", "approve", "bob"])
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr
    approved = kubectl([*admin, "certificate", "approve", "bob"])
    assert approved.returncode == 0, approved.stderr
    wait_until(lambda: issued(admin, "bob"), timeout=20, what="bob's certificate")
    assert "Approved,Issued" in kubectl([*admin, "get", "csr", "bob"]).stdout
    assert whoami_with(cluster, issued(admin, "bob"), key, tmp_path) == "bob"


def test_the_client_signer_never_issues_system_masters(cluster: Cluster) -> None:
    admin = ["--kubeconfig", str(cluster.kubeconfig())]
    body, _ = csr(
        "root", "mallory", ("system:masters",), "kubernetes.io/kube-apiserver-client",
        ["client auth"],
    )  # fmt: skip
    refused = kubectl([*admin, "create", "-f", "-"], input=body)
    assert refused.returncode != 0
    assert (
        "use of kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed"
    ) in refused.stderr
