"""X.509 helpers: serving certificates for components that need TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def self_signed(common_name: str, names: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """A self-signed serving certificate and its key, both PEM (as the kubelet makes one
    when no certificate is given)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


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
