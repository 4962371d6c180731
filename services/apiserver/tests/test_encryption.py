"""Encryption at rest: kube-apiserver's EncryptionConfiguration, value formats, rotation."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from nacl.bindings import crypto_secretbox, crypto_secretbox_open

from skiff.apiserver.storage.encryption import EncryptionError, load

SECRET_KEY = "/registry/core/secrets/default/s"
CM_KEY = "/registry/core/configmaps/default/c"


def b64(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def config(tmp_path: Path, providers: str, resources: str = "[secrets]") -> Path:
    path = tmp_path / f"enc-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        f"resources:\n- resources: {resources}\n  providers:\n{providers}"
    )
    return path


@pytest.mark.parametrize("kind", ["aescbc", "aesgcm", "secretbox"])
def test_round_trip_and_formats(tmp_path: Path, kind: str) -> None:
    key = b64()
    t = load(config(tmp_path, f"  - {kind}:\n      keys: [{{name: key1, secret: {key}}}]\n"))
    stored = t.encode(SECRET_KEY, b'{"data":{}}')
    assert stored.startswith(f"k8s:enc:{kind}:v1:key1:".encode())
    assert b"data" not in stored
    assert t.decode(SECRET_KEY, stored) == b'{"data":{}}'
    assert t.encode(CM_KEY, b"plain") == b"plain"  # configmaps are not named
    assert t.encode(SECRET_KEY, b"x") != t.encode(SECRET_KEY, b"x")  # a fresh IV or nonce
    # No identity provider: plaintext (written before encryption) cannot be read.
    with pytest.raises(EncryptionError, match="no matching prefix"):
        t.decode(SECRET_KEY, b'{"data":{}}')


def test_gcm_binds_the_value_to_its_key(tmp_path: Path) -> None:
    t = load(config(tmp_path, f"  - aesgcm:\n      keys: [{{name: k, secret: {b64()}}}]\n"))
    stored = t.encode(SECRET_KEY, b"v")
    with pytest.raises(EncryptionError, match="does not authenticate"):
        t.decode("/registry/core/secrets/default/other", stored)


def test_secretbox_is_nacl_secretbox(tmp_path: Path) -> None:
    """Kubernetes' layout: prefix, 24-byte nonce, then NaCl's sealed box (tag first), so a
    value written by kube-apiserver's secretbox opens here and the other way round."""
    key = os.urandom(32)
    secret = base64.b64encode(key).decode()
    t = load(config(tmp_path, f"  - secretbox:\n      keys: [{{name: k1, secret: {secret}}}]\n"))
    stored = t.encode(SECRET_KEY, b"payload")
    prefix = b"k8s:enc:secretbox:v1:k1:"
    body = stored[len(prefix) :]
    assert len(body) == 24 + 16 + len(b"payload")
    assert crypto_secretbox_open(body[24:], body[:24], key) == b"payload"
    written_elsewhere = prefix + body[:24] + crypto_secretbox(b"from kube", body[:24], key)
    assert t.decode(SECRET_KEY, written_elsewhere) == b"from kube"
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    with pytest.raises(EncryptionError, match="does not authenticate"):
        t.decode(SECRET_KEY, tampered)


def test_rotation(tmp_path: Path) -> None:
    old, new = b64(), b64()
    first = load(
        config(
            tmp_path,
            f"  - aescbc:\n      keys: [{{name: old, secret: {old}}}]\n  - identity: {{}}\n",
        )
    )
    plain, encrypted = b"written before", first.encode(SECRET_KEY, b"written with old")
    assert first.decode(SECRET_KEY, plain) == plain  # identity reads the unencrypted
    rotated = load(
        config(
            tmp_path,
            f"  - aescbc:\n      keys:\n      - {{name: new, secret: {new}}}\n"
            f"      - {{name: old, secret: {old}}}\n  - identity: {{}}\n",
        )
    )
    assert rotated.decode(SECRET_KEY, encrypted) == b"written with old"
    assert rotated.read(SECRET_KEY, encrypted) == (b"written with old", True)  # rewrite it
    assert rotated.read(SECRET_KEY, plain) == (plain, True)
    assert rotated.read(SECRET_KEY, rotated.encode(SECRET_KEY, b"y")) == (b"y", False)
    assert rotated.encode(SECRET_KEY, b"x").startswith(b"k8s:enc:aescbc:v1:new:")
    wrong = load(config(tmp_path, f"  - aescbc:\n      keys: [{{name: old, secret: {b64()}}}]\n"))
    with pytest.raises(EncryptionError):
        wrong.decode(SECRET_KEY, encrypted)


def test_resource_patterns(tmp_path: Path) -> None:
    t = load(
        config(
            tmp_path,
            f"  - aesgcm:\n      keys: [{{name: k, secret: {b64(16)}}}]\n",
            resources="['*.apps', configmaps]",
        )
    )
    assert t.encode("/registry/apps/deployments/ns/d", b"x") != b"x"
    assert t.encode(CM_KEY, b"x") != b"x"
    assert t.encode(SECRET_KEY, b"x") == b"x"
    assert t.encode("/skiff/allocations/serviceips/10.96.0.9", b"x") == b"x"


@pytest.mark.parametrize(
    "providers,message",
    [
        ("  - aescbc:\n      keys: [{name: k, secret: 'c2hvcnQ='}]\n", "must be 16, 24 or 32"),
        ("  - aescbc:\n      keys: [{secret: 'c2hvcnQ='}]\n", "keys[0].name: Required value"),
        ("  - aesgcm: {}\n", "aesgcm.keys: Required value"),
        (
            f"  - secretbox:\n      keys: [{{name: k, secret: {b64(16)}}}]\n",
            "secretbox key must be 32 bytes long, not 16",
        ),
        ("  - rot13: {}\n", "unknown provider 'rot13'"),
    ],
)
def test_bad_configurations(tmp_path: Path, providers: str, message: str) -> None:
    with pytest.raises(EncryptionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load(config(tmp_path, providers))
    bad = tmp_path / "x.yaml"
    bad.write_text("kind: Something\n")
    with pytest.raises(EncryptionError, match="not an EncryptionConfiguration"):
        load(bad)
