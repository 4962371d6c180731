"""HTTPS servers that authenticate client certificates (the apiserver's and the
kubelet's APIs): uvicorn's HTTP protocol, told the client certificate, and who a
certificate names.

Released uvicorn does not put the peer certificate in the ASGI scope (the ASGI TLS
extension), so the protocol reads it from the TLS transport when a connection is made
(after the handshake verified it against the client CA) and hands it to every request
and WebSocket of that connection through the per-connection ``state``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PEER_CERTIFICATE = "skiff.peer_certificate"
"""Key in ``scope["state"]``: the client certificate (DER) or None."""


class ClientCertHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that records the TLS peer's certificate for the application."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # A copy per connection: uvicorn shares app_state between connections.
        self.app_state = {**self.app_state, PEER_CERTIFICATE: der}


@dataclass(frozen=True, slots=True)
class ServingCertificates:
    """``--tls-cert-file``, ``--tls-private-key-file``, ``--client-ca-file`` and the
    other CAs whose client certificates the handshake accepts (the apiserver's
    ``--requestheader-client-ca-file``: front proxies)."""

    cert_file: str
    key_file: str
    client_ca_file: str = ""
    extra_ca_files: tuple[str, ...] = ()

    def _trusted(self) -> str:
        files = [f for f in (self.client_ca_file, *self.extra_ca_files) if f]
        if len(files) < 2:
            return files[0] if files else ""
        pem = b"".join(Path(f).read_bytes().rstrip() + b"\n" for f in files)
        fd, path = tempfile.mkstemp(prefix="skiff-client-cas-", suffix=".pem")
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return path

    def uvicorn_options(self) -> dict[str, Any]:
        """uvicorn.Config keywords: serve TLS, and ask for (not require) a client certificate
        signed by the client CA, as kube-apiserver does."""
        options: dict[str, Any] = {
            "ssl_certfile": self.cert_file,
            "ssl_keyfile": self.key_file,
            "http": ClientCertHttpProtocol,
        }
        trusted = self._trusted()
        if trusted:
            options["ssl_ca_certs"] = trusted
            options["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
        return options


def peer_certificate(scope: dict[str, Any]) -> bytes | None:
    """The verified client certificate of the connection a request came on."""
    return (scope.get("state") or {}).get(PEER_CERTIFICATE)


@functools.lru_cache(maxsize=4096)
def certificate_identity(der: bytes) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) a verified client certificate names: the subject's common name and
    organizations. None when it names no one or is not meant for client authentication.
    Remembered: every request of a connection brings the same certificate."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.CLIENT_AUTH not in usages and (
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages
        ):
            return None
    except x509.ExtensionNotFound:
        pass
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not cn or not cn[0]:
        return None
    groups = tuple(
        str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    return str(cn[0]), groups
