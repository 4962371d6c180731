"""Compact JSON Web Signatures and JSON Web Tokens (RFC 7515, RFC 7519), made with
``cryptography``: what the service-account tokens and bootstrap discovery need.

Tokens are signed RS256 (RSA keys) or ES256 (P-256 keys); the key id is kube-apiserver's
(``kid``: the unpadded base64url SHA-256 of the public key's DER SubjectPublicKeyInfo),
so a verifier holding several keys picks the right one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class JoseError(ValueError):
    """A token that is not well formed or whose signature does not verify."""


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JOSE writes every part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    """The bytes of unpadded base64url (ValueError when it is not)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def key_id(key: PublicKey) -> str:
    """kube-apiserver's key id: base64url(SHA-256(DER SubjectPublicKeyInfo))."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(der).digest())


def _algorithm(key: PublicKey | SigningKey) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise JoseError(f"unsupported key: EC curve {key.curve.name} (only P-256 is used)")


def sign(claims: Mapping[str, Any], key: SigningKey) -> str:
    """The compact JWS of ``claims`` (a JWT) signed with ``key``, its ``kid`` in the header."""
    alg = _algorithm(key)
    header = {"alg": alg, "kid": key_id(key.public_key())}
    signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}".encode()
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode()}.{b64url(signature)}"


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWT without checking anything (to see whose it is)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not a compact JWS")
    try:
        claims = json.loads(unb64url(parts[1]))
    except (ValueError, UnicodeDecodeError) as e:
        raise JoseError(f"malformed claims: {e}") from None
    if not isinstance(claims, dict):
        raise JoseError("the claims are not a JSON object")
    return claims


def verify(token: str, keys: Iterable[PublicKey]) -> dict[str, Any]:
    """The claims of ``token`` if one of ``keys`` signed it (its ``kid`` first); else JoseError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("not a compact JWS")
    try:
        header = json.loads(unb64url(parts[0]))
        signature = unb64url(parts[2])
    except (ValueError, UnicodeDecodeError) as e:
        raise JoseError(f"malformed token: {e}") from None
    if not isinstance(header, dict) or header.get("alg") not in ("RS256", "ES256"):
        raise JoseError("unsupported signing algorithm")
    candidates = list(keys)
    kid = header.get("kid")
    if kid:
        candidates.sort(key=lambda k: key_id(k) != kid)
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    for key in candidates:
        if _algorithm(key) != header["alg"]:
            continue
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            else:
                if len(signature) != 64:
                    continue
                der = encode_dss_signature(
                    int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
                )
                key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return unverified_claims(token)
    raise JoseError("invalid signature")


def load_public_keys(path: str | Path) -> list[PublicKey]:
    """Every public key in a PEM file: public keys, certificates, or private keys (whose
    public half is used), as ``--service-account-key-file`` accepts."""
    data = Path(path).read_bytes()
    keys: list[PublicKey] = []
    for block in _pem_blocks(data):
        label = block.split(b"\n", 1)[0]
        if b"CERTIFICATE" in label:
            key = x509.load_pem_x509_certificate(block).public_key()
        elif b"PRIVATE KEY" in label:
            key = serialization.load_pem_private_key(block, None).public_key()
        elif b"PUBLIC KEY" in label:
            key = serialization.load_pem_public_key(block)
        else:
            continue
        if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            keys.append(key)
    if not keys:
        raise ValueError(f"{path}: no RSA or ECDSA public key found")
    return keys


def load_signing_key(path: str | Path) -> SigningKey:
    """The private key of ``--service-account-signing-key-file``."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an RSA or ECDSA private key")
    _algorithm(key)
    return key


def _pem_blocks(data: bytes) -> list[bytes]:
    blocks, current = [], []
    for line in data.splitlines():
        if line.startswith(b"-----BEGIN "):
            current = [line]
        elif line.startswith(b"-----END ") and current:
            current.append(line)
            blocks.append(b"\n".join(current) + b"\n")
            current = []
        elif current:
            current.append(line)
    return blocks
