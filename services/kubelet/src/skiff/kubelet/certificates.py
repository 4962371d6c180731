"""TLS bootstrap (kube's ``--bootstrap-kubeconfig``): a kubelet that has no credentials of
its own yet (or only an expired certificate) makes a key, asks for a client certificate
with a CertificateSigningRequest (``system:node:<name>`` in ``system:nodes``, signer
``kubernetes.io/kube-apiserver-client-kubelet``) using the bootstrap token's kubeconfig,
waits for the controller manager to approve and sign it, and writes its own kubeconfig
naming the certificate (``<cert-dir>/kubelet-client-current.pem``), as kubeadm's joining
kubelet does. With ``--rotate-certificates`` it asks for the next one with its current
certificate (a renewal) once 70-90% of its life has passed, and the running client
presents it from then on; ``--rotate-server-certificates`` does the same for serving."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
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
    when ``kubeconfig`` already exists with a certificate that has not expired."""
    if _exists(kubeconfig) and not _expired(client_certificate(kubeconfig)):
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


def client_certificate(kubeconfig: Path) -> Path | None:
    """The file holding both the certificate and key of ``kubeconfig``'s current user, as
    the TLS bootstrap writes it; None for other credentials."""
    try:
        doc = _read_yaml(kubeconfig)
    except (OSError, yaml.YAMLError):
        return None
    contexts = {c["name"]: c.get("context") or {} for c in doc.get("contexts") or []}
    name = contexts.get(doc.get("current-context", ""), {}).get("user", "")
    users = {u["name"]: u.get("user") or {} for u in doc.get("users") or []}
    user = users.get(name) or (next(iter(users.values())) if len(users) == 1 else {})
    cert = user.get("client-certificate")
    if not cert or user.get("client-key") != cert:
        return None
    path = Path(cert)
    return path if path.is_absolute() else kubeconfig.parent / path


def _load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _expired(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        cert = _load_certificate(path)
    except (OSError, ValueError):
        return True  # named but missing or unreadable: get a new one
    return cert.not_valid_after_utc <= datetime.now(UTC)


def _renewal_due(cert: x509.Certificate, fraction: float) -> float:
    """Seconds until ``fraction`` of ``cert``'s life has passed."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    due = start + (end - start) * fraction
    return max(0.0, (due - datetime.now(UTC)).total_seconds())


async def rotate_client_certificate(
    client: ApiClient, node_name: str, path: Path, *, fraction: float | None = None
) -> None:
    """``--rotate-certificates``: renew the client certificate in ``path`` (certificate and
    key) with the current one once ``fraction`` of its life has passed (kube's jittered
    70-90% when None), write it in one rename, and have ``client`` present it."""
    while True:
        try:
            cert = _load_certificate(path)
        except (OSError, ValueError) as e:
            log.warning("no client certificate to rotate", path=str(path), error=str(e))
            return
        share = fraction if fraction is not None else 0.7 + 0.2 * secrets.randbelow(1000) / 1000
        await asyncio.sleep(_renewal_due(cert, share))
        try:
            new, key = await request_certificate(client, node_name)
        except (ApiError, BootstrapError) as e:
            log.warning("client certificate not renewed yet", error=str(e))
            await asyncio.sleep(10.0)
            continue
        _write_pem(path.parent, path.name, new + key)
        client.use_client_certificate(str(path))
        issued = x509.load_pem_x509_certificate(new)
        log.info("client certificate rotated", expires=issued.not_valid_after_utc.isoformat())
        if fraction is not None and fraction <= 0:
            return  # renewing at once again would never end (tests)


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
