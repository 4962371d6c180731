"""Compact JWS/JWT: RS256 and ES256 round trips, kube-apiserver's key id, and every way a
token can fail to verify."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from skiff.jose import (
    JoseError,
    b64url,
    key_id,
    load_public_keys,
    load_signing_key,
    sign,
    unb64url,
    unverified_claims,
    verify,
)
from skiff.pki import CertificateAuthority, new_key

CLAIMS = {"iss": "https://kubernetes.default.svc.cluster.local", "sub": "x", "exp": 1}


@pytest.mark.parametrize("algorithm,alg", [("RSA-2048", "RS256"), ("ECDSA-P256", "ES256")])
def test_sign_and_verify(algorithm: str, alg: str) -> None:
    key = new_key(algorithm)  # type: ignore[arg-type]
    token = sign(CLAIMS, key)
    header = json.loads(unb64url(token.split(".")[0]))
    assert header == {"alg": alg, "kid": key_id(key.public_key())}
    assert verify(token, [new_key().public_key(), key.public_key()]) == CLAIMS
    assert unverified_claims(token) == CLAIMS


def test_key_id_is_kube_apiservers() -> None:
    key = new_key()
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
    assert key_id(key.public_key()) == expected


def test_tampered_forged_and_unsigned_tokens_fail() -> None:
    key = new_key("ECDSA-P256")
    token = sign(CLAIMS, key)
    header, _, signature = token.split(".")
    tampered = f"{header}.{b64url(json.dumps(dict(CLAIMS, sub='admin')).encode())}.{signature}"
    with pytest.raises(JoseError, match="invalid signature"):
        verify(tampered, [key.public_key()])
    with pytest.raises(JoseError, match="invalid signature"):
        verify(token, [new_key("ECDSA-P256").public_key()])
    none_header = b64url(json.dumps({"alg": "none"}).encode())
    none = f"{none_header}.{token.split('.')[1]}."
    with pytest.raises(JoseError, match="unsupported signing algorithm"):
        verify(none, [key.public_key()])
    for bad in ("", "a.b", "!!.??.##"):
        with pytest.raises(JoseError):
            verify(bad, [key.public_key()])


def test_keys_load_from_every_pem_form(tmp_path: Path) -> None:
    ca = CertificateAuthority.create("kubernetes")
    (tmp_path / "ca.crt").write_bytes(ca.pair.cert_pem)
    (tmp_path / "sa.key").write_bytes(ca.pair.key_pem)
    pub = ca.pair.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "both.pem").write_bytes(
        pub
        + new_key("ECDSA-P256")
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    kid = key_id(ca.pair.key.public_key())
    assert [key_id(k) for k in load_public_keys(tmp_path / "ca.crt")] == [kid]
    assert [key_id(k) for k in load_public_keys(tmp_path / "sa.key")] == [kid]
    assert len(load_public_keys(tmp_path / "both.pem")) == 2
    token = sign(CLAIMS, load_signing_key(tmp_path / "sa.key"))
    assert verify(token, load_public_keys(tmp_path / "both.pem")) == CLAIMS
    (tmp_path / "empty.pem").write_text("nothing here\n")
    with pytest.raises(ValueError, match="no RSA or ECDSA public key"):
        load_public_keys(tmp_path / "empty.pem")
