"""Client certificates (kube's ``x509`` authenticator): the TLS handshake verified the
chain against ``--client-ca-file``; the user is the subject's common name and the groups
its organizations."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skiff.log import get_logger

from .user import UserInfo

log = get_logger(__name__)

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


def user_from_certificate(der: bytes) -> UserInfo | None:
    """The user a verified client certificate names; None when it names none (no common
    name) or is not meant for client authentication."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and (
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages
        ):
            log.info("client certificate without the client-auth usage", subject=str(cert.subject))
            return None
    except x509.ExtensionNotFound:
        pass
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not cn or not cn[0]:
        return None
    groups = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    fingerprint = hashlib.sha256(der).hexdigest()
    return UserInfo(
        str(cn[0]), groups=groups, extra={CREDENTIAL_ID: (f"X509SHA256={fingerprint}",)}
    )
