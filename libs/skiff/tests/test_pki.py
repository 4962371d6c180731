"""The cluster's certificates: kubeadm's layout made once and kept, each signed by the
right CA with the right names and usages, and used for real TLS (Python's ssl module):
the apiserver's certificate verifies for its Service names and address, a client
certificate signed by the cluster CA gets in with its user and groups, one from another
CA does not."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.client.kubeconfig import load_kubeconfig
from skiff.clusterpki import ADMINS, PkiConfig, write_cluster_pki
from skiff.kubeconfigs import write_kubeconfigs
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
            # Skiff's own: the event stream's NATS (kubeadm has none).
            *(f"nats/{n}.{ext}" for n in ("ca", "server", "event-pump", "watch-cache")
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
        ("nats/event-pump", "nats/ca", "skiff-event-pump", [], {"client"}),
        ("nats/watch-cache", "nats/ca", "skiff-watch-cache", [], {"client"}),
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


@pytest.fixture(scope="module")
def kubeconfigs(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kubernetes")
    lines = write_kubeconfigs(folder, pki, "https://127.0.0.1:6443", "cp-1")
    assert lines[1:] == [
        '[kubeconfig] Writing "admin.conf" kubeconfig file',
        '[kubeconfig] Writing "super-admin.conf" kubeconfig file',
        '[kubeconfig] Writing "kubelet.conf" kubeconfig file',
        '[kubeconfig] Writing "controller-manager.conf" kubeconfig file',
        '[kubeconfig] Writing "scheduler.conf" kubeconfig file',
    ]
    return folder


@pytest.mark.parametrize(
    ("file", "subject"),
    [
        ("admin.conf", {"organizationName": ADMINS, "commonName": "kubernetes-admin"}),
        ("super-admin.conf", {"organizationName": "system:masters",
                              "commonName": "kubernetes-super-admin"}),
        ("kubelet.conf", {"organizationName": "system:nodes", "commonName": "system:node:cp-1"}),
        ("scheduler.conf", {"commonName": "system:kube-scheduler"}),
    ],
)  # fmt: skip
def test_kubeconfigs_present_their_identity(
    kubeconfigs: Path, tls_server: tuple[int, list[dict]], file: str, subject: dict
) -> None:
    path = kubeconfigs / file
    assert path.stat().st_mode & 0o777 == 0o600
    cfg = load_kubeconfig(str(path))
    assert cfg.server == "https://127.0.0.1:6443" and cfg.ssl_context is not None
    port, peers = tls_server
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with cfg.ssl_context.wrap_socket(raw, server_hostname="kubernetes") as tls:
            assert tls.recv(2) == b"ok"
    assert dict(x[0] for x in peers[-1]["subject"]) == subject


def test_kubeconfigs_read_by_kubectl_and_the_official_client(pki: Path, kubeconfigs: Path) -> None:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    conf = k8s_client.Configuration()
    k8s_config.load_kube_config(
        config_file=str(kubeconfigs / "admin.conf"), client_configuration=conf
    )
    assert conf.host == "https://127.0.0.1:6443" and conf.cert_file and conf.ssl_ca_cert
    if shutil.which("kubectl"):
        out = subprocess.run(
            ["kubectl", "--kubeconfig", str(kubeconfigs / "admin.conf"), "config", "view",
             "--minify", "-o", "jsonpath={.contexts[0].name}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert out == "kubernetes-admin@kubernetes"
    again = write_kubeconfigs(kubeconfigs, pki, "https://x:6443", "cp-1")
    assert all("Using" in line for line in again)


def test_etcd_and_nats_serve_their_extra_names(tmp_path: Path) -> None:
    """kubeadm's etcd serverCertSANs: etcd and NATS reached by a service name (compose)."""
    cfg = PkiConfig(node_name="n", advertise_address="10.0.0.1", etcd_sans=["etcd", "nats"])
    write_cluster_pki(tmp_path, cfg)
    for path in ("etcd/server", "nats/server"):
        sans = cert(tmp_path, path).extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert {"etcd", "nats"} <= set(sans.value.get_values_for_type(x509.DNSName))


def test_the_proxy_kubeconfig_uses_the_pods_credentials_over_https() -> None:
    import yaml

    from skiff.addons import proxy_config_map

    doc = yaml.safe_load(proxy_config_map("https://apiserver:6443")["data"]["kubeconfig.conf"])
    sa = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert doc["clusters"][0]["cluster"]["certificate-authority"] == f"{sa}/ca.crt"
    assert doc["users"] == [{"name": "default", "user": {"tokenFile": f"{sa}/token"}}]
    plain = yaml.safe_load(proxy_config_map("http://a:1")["data"]["kubeconfig.conf"])
    assert plain["users"] == []
