"""The request-header authenticator (kube's ``headerrequest``): a front proxy — the
aggregation layer of another apiserver — presents a client certificate of the
``--requestheader-client-ca-file`` CA whose common name is in
``--requestheader-allowed-names`` (any when empty), and names the user in headers:
``X-Remote-User``, ``X-Remote-Group`` (each value a group), ``X-Remote-Extra-<key>``
(the key lower-cased and unescaped). The same headers the aggregator's proxy sends
(:mod:`skiff.apiserver.aggregator.proxy`)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from starlette.datastructures import Headers

from .user import UserInfo


def load_certificates(path: str) -> tuple[bytes, ...]:
    """The certificates of a PEM bundle file, DER-encoded."""
    with open(path, "rb") as fh:
        certs = x509.load_pem_x509_certificates(fh.read())
    return tuple(c.public_bytes(Encoding.DER) for c in certs)


@functools.lru_cache(maxsize=1024)
def issued_by(der: bytes, cas: tuple[bytes, ...]) -> bool:
    """Whether one of ``cas`` (DER) signed the certificate ``der`` (the handshake verified
    it against every CA the server trusts; this tells which one). Remembered: every
    request of a connection brings the same certificate."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return False
    for ca_der in cas:
        try:
            cert.verify_directly_issued_by(x509.load_der_x509_certificate(ca_der))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


@functools.lru_cache(maxsize=1024)
def common_name(der: bytes) -> str:
    cert = x509.load_der_x509_certificate(der)
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else ""


@dataclass(frozen=True, slots=True)
class RequestHeaderConfig:
    """``--requestheader-*``, as kubeadm sets them."""

    client_ca_file: str
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefix: tuple[str, ...] = ("X-Remote-Extra-",)
    cas: tuple[bytes, ...] = field(default=(), compare=False)
    """The CA's certificates (DER), once :meth:`loaded`."""

    def loaded(self) -> RequestHeaderConfig:
        """With the CA bundle read."""
        return RequestHeaderConfig(
            self.client_ca_file,
            self.allowed_names,
            self.username_headers,
            self.group_headers,
            self.extra_headers_prefix,
            load_certificates(self.client_ca_file),
        )

    def strips(self, name: str) -> bool:
        """Whether a request header is one of these (never passed on by a proxy)."""
        lower = name.lower()
        return lower in {h.lower() for h in (*self.username_headers, *self.group_headers)} or any(
            lower.startswith(p.lower()) for p in self.extra_headers_prefix
        )


class RequestHeaderError(Exception):
    """A front-proxy certificate that may not name users (kube's message)."""


def authenticate(config: RequestHeaderConfig, der: bytes, headers: Headers) -> UserInfo | None:
    """The user a front proxy names, None when the certificate is not the front proxy's
    CA's or no user header is set; RequestHeaderError for a common name not allowed."""
    if not issued_by(der, config.cas):
        return None
    cn = common_name(der)
    if config.allowed_names and cn not in config.allowed_names:
        raise RequestHeaderError(f"x509: subject with cn={cn} is not in the allowed list")
    name = next((v for h in config.username_headers for v in headers.getlist(h) if v), "")
    if not name:
        return None
    groups = tuple(v for h in config.group_headers for v in headers.getlist(h) if v)
    extra: dict[str, tuple[str, ...]] = {}
    for key, value in headers.items():
        for prefix in config.extra_headers_prefix:
            if key.lower().startswith(prefix.lower()):
                k = unquote(key[len(prefix) :].lower())
                extra[k] = (*extra.get(k, ()), value)
    return UserInfo(name, groups=groups, extra=extra)
