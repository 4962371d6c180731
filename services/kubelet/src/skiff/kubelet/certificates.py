"""TLS bootstrap (kube's ``--bootstrap-kubeconfig``): a kubelet that has no credentials of
its own yet makes a key, asks for a client certificate with a CertificateSigningRequest
(``system:node:<name>`` in ``system:nodes``, signer
``kubernetes.io/kube-apiserver-client-kubelet``) using the bootstrap token's kubeconfig,
waits for the controller manager to approve and sign it, and writes its own kubeconfig
naming the certificate (``<cert-dir>/kubelet-client-current.pem``), as kubeadm's joining
kubelet does."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.log import get_logger
from skiff.pki import new_key

log = get_logger(__name__)

CSRS = "certificatesigningrequests.certificates.k8s.io"
SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
SERVING_SIGNER = "kubernetes.io/kubelet-serving"
CURRENT = "kubelet-client-current.pem"
SERVING_CURRENT = "kubelet-server-current.pem"


class BootstrapError(Exception):
    """The certificate request was denied or failed, or never answered."""


def node_request(
    node_name: str, dns: Sequence[str] = (), ips: Sequence[str] = ()
) -> tuple[bytes, bytes]:
    """(PEM CSR, PEM private key) of a node certificate (ECDSA P-256, as kube's): a client
    one, or with ``dns``/``ips`` a serving one."""
    key = new_key("ECDSA-P256")
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"system:node:{node_name}"),
        ]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    csr = builder.sign(key, hashes.SHA256())
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return csr.public_bytes(serialization.Encoding.PEM), pem_key


async def request_certificate(
    client: ApiClient,
    node_name: str,
    *,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    timeout: float = 300.0,
) -> tuple[bytes, bytes]:
    """(PEM certificate, PEM key) once the request is approved and signed: a client
    certificate, or with ``dns``/``ips`` a serving one (signer kubelet-serving)."""
    csr_pem, key_pem = node_request(node_name, dns, ips)
    serving = bool(dns or ips)
    body = {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-" if serving else "node-csr-"},
        "spec": {
            "request": base64.b64encode(csr_pem).decode(),
            "signerName": SERVING_SIGNER if serving else SIGNER,
            "usages": ["digital signature", "server auth" if serving else "client auth"],
        },
    }
    created = await client.create(CSRS, body)
    name = created["metadata"]["name"]
    log.info("waiting for the client certificate", csr=name)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            csr = await client.get(CSRS, name)
        except ApiError as e:
            if e.code != 404:
                raise
            raise BootstrapError(f"certificate request {name} was deleted") from None
        status = csr.get("status") or {}
        for c in status.get("conditions") or []:
            if c.get("type") in ("Denied", "Failed"):
                raise BootstrapError(
                    f"certificate request {name} {c['type'].lower()}: {c.get('message', '')}"
                )
        if status.get("certificate"):
            return base64.b64decode(status["certificate"]), key_pem
        await asyncio.sleep(1.0)
    raise BootstrapError(f"certificate request {name} was not answered in {timeout:.0f} s")


async def bootstrap(
    kubeconfig: Path, bootstrap_kubeconfig: Path, node_name: str, cert_dir: Path
) -> bool:
    """Write ``kubeconfig`` with a client certificate got through the bootstrap one; False
    when ``kubeconfig`` already exists (nothing to do)."""
    if _exists(kubeconfig):
        return False
    cluster = _cluster_of(_read_yaml(bootstrap_kubeconfig))
    async with ApiClient.from_kubeconfig(
        str(bootstrap_kubeconfig), user_agent="skiff-kubelet/bootstrap"
    ) as client:
        cert, key = await request_certificate(client, node_name)
    write_credentials(kubeconfig, cert_dir, cluster, cert + key)
    log.info("client certificate issued; kubeconfig written", kubeconfig=str(kubeconfig))
    return True


def _exists(path: Path) -> bool:
    return path.exists()


def _read_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def write_credentials(
    kubeconfig: Path, cert_dir: Path, cluster: dict[str, Any], pem: bytes
) -> None:
    """``<cert_dir>/kubelet-client-current.pem`` (certificate and key, 0600) and the
    kubeconfig naming it, each replaced in one rename."""
    current = _write_pem(cert_dir, CURRENT, pem)
    user = {"client-certificate": str(current), "client-key": str(current)}
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default-cluster", "cluster": cluster}],
        "contexts": [
            {
                "name": "default-context",
                "context": {"cluster": "default-cluster", "user": "default-auth"},
            }
        ],
        "current-context": "default-context",
        "users": [{"name": "default-auth", "user": user}],
    }
    tmp = kubeconfig.with_name(f".{kubeconfig.name}.{secrets.token_hex(4)}")
    tmp.touch(mode=0o600)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(kubeconfig)


def _cluster_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap kubeconfig's current cluster (server and CA)."""
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    current = contexts.get(doc.get("current-context", ""), {})
    clusters = {c["name"]: c.get("cluster") or {} for c in doc.get("clusters") or []}
    cluster = clusters.get(current.get("cluster", ""))
    if cluster is None:
        if len(clusters) != 1:
            raise BootstrapError("the bootstrap kubeconfig names no cluster")
        cluster = next(iter(clusters.values()))
    return dict(cluster)


async def serve_with_issued_certificate(
    client: ApiClient, node_name: str, server_config: Any, cert_dir: Path
) -> None:
    """``--rotate-server-certificates``: once the Node is registered, get a serving
    certificate for its own names and addresses from the cluster CA (a kubelet-serving
    request, which Skiff's approver approves for those names only), load it into the
    running server's TLS context (``server_config``: uvicorn's), and get a new one when
    80% of its life has passed."""
    while True:
        try:
            node = await client.get("nodes", node_name)
        except ApiError:
            await asyncio.sleep(1.0)
            continue
        addresses = [
            a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
        ]
        ips = [a for a in addresses if _is_ip(a)]
        dns = sorted({node_name, *(a for a in addresses if a and not _is_ip(a))})
        try:
            cert, key = await request_certificate(client, node_name, dns=dns, ips=ips)
        except (ApiError, BootstrapError) as e:
            log.warning("no serving certificate yet", error=str(e))
            await asyncio.sleep(10.0)
            continue
        path = _write_pem(cert_dir, SERVING_CURRENT, cert + key)
        while server_config.ssl is None:  # uvicorn makes its TLS context as it starts
            await asyncio.sleep(0.1)
        # The running server's own context: new connections get the new certificate.
        server_config.ssl.load_cert_chain(str(path))
        issued = x509.load_pem_x509_certificate(cert)
        life = (issued.not_valid_after_utc - issued.not_valid_before_utc).total_seconds()
        log.info("serving with a certificate of the cluster CA", names=dns, addresses=ips)
        await asyncio.sleep(max(60.0, 0.8 * life))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _write_pem(cert_dir: Path, name: str, pem: bytes) -> Path:
    cert_dir.mkdir(parents=True, exist_ok=True)
    fresh = cert_dir / f".{name}.{secrets.token_hex(4)}"
    fresh.touch(mode=0o600)
    fresh.write_bytes(pem)
    fresh.replace(cert_dir / name)
    return cert_dir / name
