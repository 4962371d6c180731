"""Client certificates (kube's ``x509`` authenticator): the TLS handshake verified the
chain against ``--client-ca-file``; the user is the subject's common name and the groups
its organizations (:func:`skiff.tlsserving.certificate_identity`)."""

from __future__ import annotations

import functools
import hashlib

from skiff.tlsserving import certificate_identity

from .user import UserInfo

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"


@functools.lru_cache(maxsize=4096)
def user_from_certificate(der: bytes) -> UserInfo | None:
    """The user a verified client certificate names (None: it names none)."""
    identity = certificate_identity(der)
    if identity is None:
        return None
    name, groups = identity
    fingerprint = hashlib.sha256(der).hexdigest()
    return UserInfo(name, groups=groups, extra={CREDENTIAL_ID: (f"X509SHA256={fingerprint}",)})
