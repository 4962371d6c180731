"""The cluster's certificates: kubeadm's layout made once and kept, each signed by the
right CA with the right names and usages, and used for real TLS (Python's ssl module):
the apiserver's certificate verifies for its Service names and address, a client
certificate signed by the cluster CA gets in with its user and groups, one from another
CA does not."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.clusterpki import ADMINS, PkiConfig, write_cluster_pki
from skiff.pki import CertificateAuthority, KeyPair, spki_sha256

CFG = PkiConfig(node_name="cp-1", advertise_address="192.168.50.10", cert_sans=["api.example"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    write_cluster_pki(folder, CFG)
    return folder


def cert(folder: Path, path: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((folder / f"{path}.crt").read_bytes())


def test_kubeadm_layout_made_once_and_kept(pki: Path) -> None:
    files = sorted(str(p.relative_to(pki)) for p in pki.rglob("*") if p.is_file())
    assert files == sorted(
        [
            *(f"{n}.{ext}" for n in ("ca", "apiserver", "apiserver-kubelet-client",
                                     "front-proxy-ca", "front-proxy-client",
                                     "apiserver-etcd-client") for ext in ("crt", "key")),
            *(f"etcd/{n}.{ext}" for n in ("ca", "server", "peer", "healthcheck-client")
              for ext in ("crt", "key")),
            "sa.key", "sa.pub",
        ]
    )  # fmt: skip
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in pki.rglob("*.key"))
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    again = write_cluster_pki(pki, CFG)
    assert all("Using" in line for line in again)
    assert before == {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("path", "ca", "cn", "groups", "usages"),
    [
        ("apiserver", "ca", "kube-apiserver", [], {"server"}),
        ("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", [ADMINS], {"client"}),
        ("front-proxy-client", "front-proxy-ca", "front-proxy-client", [], {"client"}),
        ("etcd/server", "etcd/ca", "cp-1", [], {"server", "client"}),
        ("apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client", [], {"client"}),
    ],
)
def test_each_certificate_is_signed_by_its_ca(
    pki: Path, path: str, ca: str, cn: str, groups: list[str], usages: set[str]
) -> None:
    leaf, issuer = cert(pki, path), cert(pki, ca)
    leaf.verify_directly_issued_by(issuer)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert [
        a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    ] == groups
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    names = {ExtendedKeyUsageOID.SERVER_AUTH: "server", ExtendedKeyUsageOID.CLIENT_AUTH: "client"}
    assert {names[u] for u in eku} == usages
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_the_ca_pin_is_stable(pki: Path) -> None:
    pin = spki_sha256(cert(pki, "ca"))
    assert pin.startswith("sha256:") and len(pin) == 7 + 64
    assert spki_sha256(KeyPair.load(pki, "ca").cert) == pin
    assert spki_sha256(cert(pki, "etcd/ca")) != pin


@pytest.fixture
def tls_server(pki: Path) -> Iterator[tuple[int, list[dict]]]:
    """The apiserver's certificate on loopback, asking for client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_OPTIONAL
    peers: list[dict] = []
    sock = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    peers.append(tls.getpeercert() or {})
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                peers.append({"refused": True})

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], peers
    finally:
        sock.close()


def connect(pki: Path, port: int, server_name: str, client: str | None = None) -> bytes:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if client:
        ctx.load_cert_chain(pki / f"{client}.crt", pki / f"{client}.key")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.recv(2)


@pytest.mark.parametrize(
    "name",
    ["kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "10.96.0.1", "cp-1",
     "192.168.50.10", "api.example"],
)  # fmt: skip
def test_the_apiserver_certificate_verifies_for_its_names(
    pki: Path, tls_server: tuple[int, list[dict]], name: str
) -> None:
    assert connect(pki, tls_server[0], name) == b"ok"


def test_a_wrong_name_fails_verification(pki: Path, tls_server: tuple[int, list[dict]]) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        connect(pki, tls_server[0], "kubernetes.example.org")


def test_client_certificates_carry_user_and_groups(
    pki: Path, tls_server: tuple[int, list[dict]], tmp_path: Path
) -> None:
    port, peers = tls_server
    assert connect(pki, port, "kubernetes", client="apiserver-kubelet-client") == b"ok"
    subject = dict(x[0] for x in peers[-1]["subject"])
    assert subject == {"organizationName": ADMINS, "commonName": "kube-apiserver-kubelet-client"}
    # A client certificate from another CA (etcd's) is refused by the server.
    with pytest.raises((ssl.SSLError, OSError)):
        connect(pki, port, "kubernetes", client="apiserver-etcd-client")
    for _ in range(50):  # the server records it just after the client gives up
        if peers[-1] == {"refused": True}:
            break
        time.sleep(0.02)
    assert peers[-1] == {"refused": True}
    # ECDSA works too, for those who ask for it.
    ca = CertificateAuthority.create("other", algorithm="ECDSA-P256")
    pair = ca.issue("x", usages=("client",), algorithm="ECDSA-P256")
    pair.cert.verify_directly_issued_by(ca.pair.cert)
