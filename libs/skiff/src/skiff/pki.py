"""X.509 for the cluster, made with ``cryptography`` (no openssl): certificate
authorities, the certificates they sign, the kubeadm-style PKI folder of a control plane
(:func:`write_cluster_pki`), the CA pin that ``join`` checks (:func:`spki_sha256`), and a
self-signed serving certificate for components given none.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
Algorithm = Literal["RSA-2048", "ECDSA-P256"]
Usage = Literal["server", "client"]

CA_DAYS = 3650
"""A CA lives ten years, as kubeadm's do."""
CERT_DAYS = 365
"""A leaf certificate lives one year, as kubeadm's do."""


def new_key(algorithm: Algorithm = "RSA-2048") -> PrivateKey:
    """A private key (kubeadm's default is RSA 2048)."""
    if algorithm == "ECDSA-P256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, until: dt.datetime
) -> x509.CertificateBuilder:
    """A certificate's common part: names, key, serial and validity (from 5 minutes ago,
    for clocks a little behind)."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        .not_valid_after(until)
    )


def _key_usage(*, cert_sign: bool, encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=encipherment,
        key_cert_sign=cert_sign,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def save(self, folder: Path, name: str) -> tuple[Path, Path]:
        """``folder/<name>.crt`` and ``.key`` (the key readable by its owner only)."""
        folder.mkdir(parents=True, exist_ok=True)
        crt, key = folder / f"{name}.crt", folder / f"{name}.key"
        key.touch(mode=0o600)
        key.chmod(0o600)
        key.write_bytes(self.key_pem)
        crt.write_bytes(self.cert_pem)
        return crt, key

    @classmethod
    def load(cls, folder: Path, name: str) -> KeyPair:
        cert = x509.load_pem_x509_certificate((folder / f"{name}.crt").read_bytes())
        key = serialization.load_pem_private_key((folder / f"{name}.key").read_bytes(), None)
        if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError(f"{folder / name}.key: not an RSA or ECDSA key")
        return cls(cert, key)


class CertificateAuthority:
    """A CA that signs serving and client certificates."""

    def __init__(self, pair: KeyPair) -> None:
        self.pair = pair

    @classmethod
    def create(
        cls, common_name: str, *, days: int = CA_DAYS, algorithm: Algorithm = "RSA-2048"
    ) -> CertificateAuthority:
        key = new_key(algorithm)
        subject = _name(common_name)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            _builder(subject, subject, key, until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=True, encipherment=True), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(KeyPair(cert, key))

    def issue(
        self,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        names: Iterable[str] = (),
        usages: Sequence[Usage] = ("server",),
        days: int = CERT_DAYS,
        algorithm: Algorithm = "RSA-2048",
    ) -> KeyPair:
        """A certificate for ``common_name`` (a client's user; ``organizations`` its
        groups), with ``names`` (host names and addresses) as subject alternative names."""
        key = new_key(algorithm)
        ekus = {
            "server": ExtendedKeyUsageOID.SERVER_AUTH,
            "client": ExtendedKeyUsageOID.CLIENT_AUTH,
        }
        issuer = self.pair.cert
        until = min(dt.datetime.now(dt.UTC) + dt.timedelta(days=days), issuer.not_valid_after_utc)
        rsa_key = isinstance(key, rsa.RSAPrivateKey)
        builder = (
            _builder(_name(common_name, organizations), issuer.subject, key, until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(cert_sign=False, encipherment=rsa_key), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ekus[u] for u in usages]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
        )
        names = list(names)
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        return KeyPair(builder.sign(self.pair.key, hashes.SHA256()), key)


def spki_sha256(cert: x509.Certificate) -> str:
    """``sha256:<hex>`` of the certificate's SubjectPublicKeyInfo: the CA pin of
    ``join --discovery-token-ca-cert-hash``."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def self_signed(common_name: str, names: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed serving certificate and its key, both PEM (as the kubelet makes one
    when no certificate is given)."""
    key = new_key("ECDSA-P256")
    subject = _name(common_name)
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    cert = (
        _builder(subject, subject, key, until)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(cert, key)
    return pair.cert_pem, pair.key_pem


def ensure_serving_cert(folder: Path, common_name: str, names: list[str]) -> tuple[Path, Path]:
    """``folder/<cn>.crt`` and ``.key``, made once and kept (key file mode 0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    crt, key = folder / f"{common_name}.crt", folder / f"{common_name}.key"
    if not (crt.exists() and key.exists()):
        cert_pem, key_pem = self_signed(common_name, names)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        crt.write_bytes(cert_pem)
    return crt, key
