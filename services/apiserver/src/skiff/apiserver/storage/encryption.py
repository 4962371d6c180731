"""Encryption at rest (``--encryption-provider-config``): kube-apiserver's
``EncryptionConfiguration`` (apiserver.config.k8s.io/v1) and its value formats.

For each resource the configuration names, values are written with the first provider and
read with whichever provider's prefix they carry, so keys rotate as in Kubernetes: add a
new key second, restart, move it first, restart, rewrite the objects (``kubectl get
secrets -A -o json | kubectl replace -f -``), then drop the old key.

Formats, as kube-apiserver writes them: ``k8s:enc:aescbc:v1:<key>:`` + a 16-byte IV + AES-CBC
(PKCS#7); ``k8s:enc:aesgcm:v1:<key>:`` + a 12-byte nonce + AES-GCM with the etcd key as
authenticated data; ``k8s:enc:secretbox:v1:<key>:`` + a 24-byte nonce + NaCl's secretbox
(XSalsa20-Poly1305, the tag before the ciphertext, 32-byte keys); ``identity`` stores
plaintext.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl.exceptions import CryptoError
from nacl.secret import SecretBox as _NaclBox

API_VERSIONS = ("apiserver.config.k8s.io/v1", "apiserver.config.k8s.io/v1beta1")


class EncryptionError(Exception):
    """A value that no configured provider can read, or a configuration that is wrong."""


class Provider(Protocol):
    prefix: bytes

    def encrypt(self, key: str, data: bytes) -> bytes: ...

    def decrypt(self, key: str, data: bytes) -> bytes: ...


class Identity:
    prefix = b""

    def encrypt(self, key: str, data: bytes) -> bytes:
        return data

    def decrypt(self, key: str, data: bytes) -> bytes:
        return data


class AesCbc:
    """``aescbc``: no authentication of its own, as in Kubernetes (which calls it weak)."""

    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:aescbc:v1:{name}:".encode()
        self.secret = secret

    def encrypt(self, key: str, data: bytes) -> bytes:
        iv = os.urandom(16)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(data) + padder.finalize()
        enc = Cipher(algorithms.AES(self.secret), modes.CBC(iv)).encryptor()
        return self.prefix + iv + enc.update(padded) + enc.finalize()

    def decrypt(self, key: str, data: bytes) -> bytes:
        body = data[len(self.prefix) :]
        if len(body) < 32 or len(body) % 16:
            raise EncryptionError("the stored data is not a whole number of AES-CBC blocks")
        dec = Cipher(algorithms.AES(self.secret), modes.CBC(body[:16])).decryptor()
        padded = dec.update(body[16:]) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise EncryptionError("invalid padding on input (wrong key?)") from None


class AesGcm:
    """``aesgcm``: authenticated, with the etcd key as additional data (a value moved to
    another key does not decrypt)."""

    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:aesgcm:v1:{name}:".encode()
        self.aead = AESGCM(secret)

    def encrypt(self, key: str, data: bytes) -> bytes:
        nonce = os.urandom(12)
        return self.prefix + nonce + self.aead.encrypt(nonce, data, key.encode())

    def decrypt(self, key: str, data: bytes) -> bytes:
        body = data[len(self.prefix) :]
        try:
            return self.aead.decrypt(body[:12], body[12:], key.encode())
        except Exception:
            raise EncryptionError("the stored data does not authenticate (wrong key?)") from None


class SecretBox:
    """``secretbox``: authenticated (Poly1305) but without additional data, as in
    Kubernetes."""

    def __init__(self, name: str, secret: bytes) -> None:
        self.prefix = f"k8s:enc:secretbox:v1:{name}:".encode()
        self.box = _NaclBox(secret)

    def encrypt(self, key: str, data: bytes) -> bytes:
        nonce = os.urandom(_NaclBox.NONCE_SIZE)
        return self.prefix + bytes(self.box.encrypt(data, nonce))

    def decrypt(self, key: str, data: bytes) -> bytes:
        body = data[len(self.prefix) :]
        if len(body) < _NaclBox.NONCE_SIZE + _NaclBox.MACBYTES:
            raise EncryptionError("the stored data is too short for secretbox")
        try:
            return self.box.decrypt(body)
        except CryptoError:
            raise EncryptionError("the stored data does not authenticate (wrong key?)") from None


_KEY_SIZES = {"aescbc": (16, 24, 32), "aesgcm": (16, 24, 32), "secretbox": (32,)}
_PROVIDERS: dict[str, type[AesCbc] | type[AesGcm] | type[SecretBox]] = {
    "aescbc": AesCbc,
    "aesgcm": AesGcm,
    "secretbox": SecretBox,
}


def _matches(pattern: str, plural: str, group: str) -> bool:
    """kube's resource names: ``secrets``, ``deployments.apps``, ``*.apps``, ``*.*``."""
    qualified = f"{plural}.{group}" if group else plural
    if pattern in ("*.*", qualified):
        return True
    if pattern == "*." and not group:
        return True
    return pattern.startswith("*.") and bool(group) and pattern[2:] == group


@dataclass(slots=True)
class _Rule:
    resources: list[str]
    providers: list[Provider] = field(default_factory=list)


class Transformer:
    """Encrypts and decrypts etcd values by key (``/registry/<group>/<plural>/...``)."""

    def __init__(self, rules: Sequence[_Rule]) -> None:
        self.rules = list(rules)
        self._cache: dict[str, list[Provider] | None] = {}

    def providers_for(self, key: str) -> list[Provider] | None:
        parts = key.split("/")
        if len(parts) < 4 or parts[1] != "registry":
            return None
        prefix = "/".join(parts[:4])
        if prefix not in self._cache:
            group = "" if parts[2] == "core" else parts[2]
            found = None
            for rule in self.rules:
                if any(_matches(p, parts[3], group) for p in rule.resources):
                    found = rule.providers
                    break
            self._cache[prefix] = found
        return self._cache[prefix]

    def encode(self, key: str, value: bytes) -> bytes:
        providers = self.providers_for(key)
        return value if not providers else providers[0].encrypt(key, value)

    def decode(self, key: str, value: bytes) -> bytes:
        return self.read(key, value)[0]

    def read(self, key: str, value: bytes) -> tuple[bytes, bool]:
        """(plaintext, stale): stale when not written by the first provider, so that an
        update rewrites it with that one."""
        providers = self.providers_for(key)
        if not providers:
            return value, False
        for p in providers:
            if p.prefix and value.startswith(p.prefix):
                return p.decrypt(key, value), p is not providers[0]
        if any(isinstance(p, Identity) for p in providers):
            # Written before encryption was configured.
            return value, not isinstance(providers[0], Identity)
        raise EncryptionError(f"no matching prefix found for the stored value of {key}")


def _key(provider: str, entry: dict[str, Any], where: str) -> tuple[str, bytes]:
    name = str(entry.get("name") or "")
    if not name:
        raise EncryptionError(f"{where}.name: Required value")
    try:
        secret = base64.b64decode(str(entry.get("secret") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(f"{where}.secret: Invalid value: secrets must be base64") from None
    sizes = _KEY_SIZES[provider]
    if len(secret) not in sizes:
        allowed = " or ".join(str(n) for n in sizes) if len(sizes) < 3 else "16, 24 or 32"
        raise EncryptionError(
            f"{where}.secret: Invalid value: {provider} key must be {allowed} bytes "
            f"long, not {len(secret)}"
        )
    return name, secret


def load(path: str | Path) -> Transformer:
    """Read an EncryptionConfiguration file (EncryptionError with a field path if wrong)."""
    doc = yaml.safe_load(Path(path).read_text()) or {}
    if doc.get("kind") != "EncryptionConfiguration" or doc.get("apiVersion") not in API_VERSIONS:
        raise EncryptionError(
            f"{path}: not an EncryptionConfiguration of {' or '.join(API_VERSIONS)}"
        )
    rules = []
    for i, res in enumerate(doc.get("resources") or []):
        rule = _Rule([str(r) for r in res.get("resources") or []])
        if not rule.resources:
            raise EncryptionError(f"resources[{i}].resources: Required value")
        for j, entry in enumerate(res.get("providers") or []):
            where = f"resources[{i}].providers[{j}]"
            (kind, spec), *more = entry.items() if isinstance(entry, dict) else [(None, None)]
            if kind is None or more:
                raise EncryptionError(f"{where}: exactly one provider must be given")
            if kind == "identity":
                rule.providers.append(Identity())
            elif kind in _PROVIDERS:
                keys = (spec or {}).get("keys") or []
                if not keys:
                    raise EncryptionError(f"{where}.{kind}.keys: Required value")
                for k, key in enumerate(keys):
                    name, secret = _key(kind, key, f"{where}.{kind}.keys[{k}]")
                    rule.providers.append(_PROVIDERS[kind](name, secret))
            else:
                raise EncryptionError(f"{where}: unknown provider {kind!r}")
        if not rule.providers:
            raise EncryptionError(f"resources[{i}].providers: Required value")
        rules.append(rule)
    return Transformer(rules)
