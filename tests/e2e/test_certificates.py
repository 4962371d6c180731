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
from datetime import UTC, datetime
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
            "--controllers=csrapproving,csrsigning,bootstrapsigner",
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


async def test_the_kubelet_bootstraps_its_client_certificate(
    cluster: Cluster, tmp_path: Path
) -> None:
    import yaml

    from skiff.kubelet.certificates import CURRENT, bootstrap

    assert cluster.pki is not None
    ca = base64.b64encode((cluster.pki / "ca.crt").read_bytes()).decode()
    boot = tmp_path / "bootstrap-kubelet.conf"
    boot.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "kubernetes",
                        "cluster": {"server": cluster.url, "certificate-authority-data": ca},
                    }
                ],
                "contexts": [
                    {"name": "tls-bootstrap", "context": {"cluster": "kubernetes", "user": "b"}}
                ],
                "current-context": "tls-bootstrap",
                "users": [{"name": "b", "user": {"token": TOKEN}}],
            }
        )
    )
    kubeconfig, certs = tmp_path / "kubelet.conf", tmp_path / "pki"
    assert await bootstrap(kubeconfig, boot, "n2", certs) is True
    assert (certs / CURRENT).stat().st_mode & 0o777 == 0o600
    who = kubectl(["--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"])
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == "system:node:n2"
    assert await bootstrap(kubeconfig, boot, "n2", certs) is False  # already has one

    # --rotate-certificates: the renewal is asked for with the current certificate (the
    # approver's selfnodeclient check), and the running client presents the new one.
    from skiff.client.rest import ApiClient
    from skiff.kubelet.certificates import client_certificate, rotate_client_certificate

    path = client_certificate(kubeconfig)
    assert path == certs / CURRENT
    before = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    async with ApiClient.from_kubeconfig(str(kubeconfig)) as client:
        await rotate_client_certificate(client, "n2", path, fraction=0.0)
        after = x509.load_pem_x509_certificate(path.read_bytes())
        assert after.serial_number != before
        review = await client.create(
            "selfsubjectreviews.authentication.k8s.io",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert review["status"]["userInfo"]["username"] == "system:node:n2"
    renewals = json.loads(kubectl(["--kubeconfig", str(cluster.kubeconfig()), "get", "csr",
                                   "-o", "json"]).stdout)["items"]  # fmt: skip
    assert any(c["spec"]["username"] == "system:node:n2" for c in renewals)

    # An expired certificate is bootstrapped again.
    key = new_key("ECDSA-P256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "system:node:n2")])
    old = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    assert await bootstrap(kubeconfig, boot, "n2", certs) is True
    fresh = x509.load_pem_x509_certificate(path.read_bytes())
    assert fresh.not_valid_after_utc > datetime.now(UTC)


def test_join_trusts_the_control_plane_only_by_token_and_ca_pin(
    cluster: Cluster, tmp_path: Path
) -> None:
    import asyncio

    from skiff.kubelet.certificates import bootstrap
    from skiff.pki import spki_sha256

    assert cluster.pki is not None
    endpoint = cluster.url.removeprefix("https://")
    pin = spki_sha256(x509.load_pem_x509_certificate((cluster.pki / "ca.crt").read_bytes()))

    def join(*args: str, folder: Path = tmp_path / "etc") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SKIFFADM), "join", endpoint, "--kubeconfig-dir", str(folder),
             "--skip-phases", "kubelet-start", *args],  # discovery only: no kubelet here
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    wrong = join("--token", TOKEN, "--discovery-token-ca-cert-hash", "sha256:" + "0" * 64)
    assert wrong.returncode == 1 and "error execution phase:" in wrong.stderr
    assert "public key" in wrong.stderr or "pin" in wrong.stderr, wrong.stderr
    unpinned = join("--token", TOKEN)
    assert unpinned.returncode == 1
    assert "--discovery-token-unsafe-skip-ca-verification" in unpinned.stderr
    unknown = join("--token", "zzzzzz.0123456789abcdef", "--discovery-token-ca-cert-hash", pin)
    assert unknown.returncode == 1
    assert 'This token id "zzzzzz" is invalid for this cluster' in unknown.stderr

    def signed() -> bool:
        return join("--token", TOKEN, "--discovery-token-ca-cert-hash", pin).returncode == 0

    wait_until(signed, timeout=30, what="cluster-info signed by the bootstrap signer")
    ok = join("--token", TOKEN, "--discovery-token-ca-cert-hash", pin)
    assert "[discovery] Cluster info signature and contents are valid" in ok.stdout
    folder = tmp_path / "etc"
    assert (folder / "pki" / "ca.crt").read_bytes() == (cluster.pki / "ca.crt").read_bytes()
    # The kubelet's TLS bootstrap with what join wrote: the node's own credentials.
    kubeconfig = folder / "kubelet.conf"
    assert asyncio.run(
        bootstrap(kubeconfig, folder / "bootstrap-kubelet.conf", "n3", folder / "pki")
    )
    who = kubectl(["--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"])
    assert json.loads(who.stdout)["status"]["userInfo"]["username"] == "system:node:n3"
    skipped = join("--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification",
                   folder=tmp_path / "etc2")  # fmt: skip
    assert skipped.returncode == 0 and "WARNING" in skipped.stdout
