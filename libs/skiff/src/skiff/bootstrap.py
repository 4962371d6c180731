"""Bootstrap tokens and the signed ``cluster-info`` that lets a new node trust the control
plane before it holds any credential (kubeadm's token discovery).

A token is ``<id>.<secret>`` (``[a-z0-9]{6}.[a-z0-9]{16}``), stored as the Secret
``kube-system/bootstrap-token-<id>``. The ``kube-public/cluster-info`` ConfigMap holds a
kubeconfig naming the apiserver and its CA and, per signing token, a detached JWS of it
(``jws-kubeconfig-<id>``: RFC 7515 appendix F, HS256 keyed with the token's secret, the
token id as ``kid``). Joining, a node reads cluster-info anonymously, checks the signature
with the token it was given, and pins the CA by the SHA-256 of its public key
(``--discovery-token-ca-cert-hash``): both must hold before it trusts the apiserver.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import string
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from cryptography import x509

from skiff.api.timestamps import parse_time
from skiff.jose import b64url, unb64url
from skiff.pki import spki_sha256

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_FORMAT = "[a-z0-9]{6}.[a-z0-9]{16}"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"
JWS_PREFIX = "jws-kubeconfig-"
_ALPHABET = string.ascii_lowercase + string.digits


class DiscoveryError(Exception):
    """cluster-info cannot be trusted with this token and these pins."""


def generate_token() -> str:
    """A new random token."""
    pick = secrets.choice
    return (
        "".join(pick(_ALPHABET) for _ in range(6))
        + "."
        + "".join(pick(_ALPHABET) for _ in range(16))
    )


def parse_token(token: str) -> tuple[str, str]:
    """(id, secret) of a token, or ValueError in kubeadm's words."""
    m = TOKEN_RE.match(token)
    if m is None:
        raise ValueError(f'the bootstrap token "{token}" was not of the form "{TOKEN_FORMAT}"')
    return m.group(1), m.group(2)


def token_secret(
    token: str,
    *,
    ttl: dt.timedelta | None = dt.timedelta(hours=24),
    usages: Iterable[str] = ("signing", "authentication"),
    groups: Iterable[str] = (DEFAULT_GROUP,),
    description: str = "",
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The ``kube-system/bootstrap-token-<id>`` Secret of a token (``ttl`` None: never
    expires)."""
    token_id, secret = parse_token(token)
    data = {"token-id": token_id, "token-secret": secret}
    if ttl is not None:
        expires = (now or dt.datetime.now(dt.UTC)) + ttl
        data["expiration"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    for usage in usages:
        data[f"usage-bootstrap-{usage}"] = "true"
    groups = list(groups)
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    if description:
        data["description"] = description
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": data,
    }


def token_fields(secret: Mapping[str, Any]) -> dict[str, str]:
    """A bootstrap token Secret's fields, decoded ({} when it is not one)."""
    meta = secret.get("metadata") or {}
    if secret.get("type") != SECRET_TYPE or meta.get("namespace") != "kube-system":
        return {}
    out = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[key] = base64.b64decode(value).decode()
        except (binascii.Error, UnicodeDecodeError, TypeError):
            continue
    return out


def seconds_left(fields: dict[str, str], now: float) -> float | None:
    """Seconds until the token expires (None: no expiration, or an unreadable one)."""
    raw = fields.get("expiration")
    when = parse_time(raw) if raw else None
    return None if when is None else when - now


def detached_jws(content: str, token_id: str, token_secret: str) -> str:
    """``<header>..<signature>``: the compact JWS of ``content`` with the payload left out."""
    header = b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{b64url(content.encode())}".encode()
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{b64url(mac)}"


def verify_detached_jws(content: str, jws: str, token_id: str, token_secret: str) -> bool:
    """Whether ``jws`` signs ``content`` with this token (HS256 only, ``kid`` must match)."""
    parts = jws.split(".")
    if len(parts) != 3 or parts[1] != "":
        return False
    try:
        header = json.loads(unb64url(parts[0]))
        signature = unb64url(parts[2])
    except (ValueError, UnicodeDecodeError):
        return False
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        return False
    if header.get("kid") not in (None, token_id):
        return False
    signing_input = f"{parts[0]}.{b64url(content.encode())}".encode()
    expected = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def cluster_info_kubeconfig(server: str, ca_pem: bytes) -> str:
    """The kubeconfig cluster-info carries: the apiserver and its CA, no credentials."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "",
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server,
                },
            }
        ],
        "contexts": [],
        "current-context": "",
        "preferences": {},
        "users": [],
    }
    return yaml.safe_dump(config, sort_keys=False)


def cluster_info(kubeconfig: str, signing_tokens: Iterable[str] = ()) -> dict[str, Any]:
    """The ``kube-public/cluster-info`` ConfigMap, signed by each of ``signing_tokens``."""
    data = {"kubeconfig": kubeconfig}
    for token in signing_tokens:
        token_id, secret = parse_token(token)
        data[JWS_PREFIX + token_id] = detached_jws(kubeconfig, token_id, secret)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
        "data": data,
    }


def validate_cluster_info(
    configmap: Mapping[str, Any], token: str, ca_pins: Iterable[str]
) -> tuple[str, bytes]:
    """(server, CA PEM) of a cluster-info ConfigMap that this token signed and whose CA
    one of ``ca_pins`` (``sha256:<hex>``) names; DiscoveryError otherwise (no pins: the
    CA is not checked, as ``--discovery-token-unsafe-skip-ca-verification``)."""
    token_id, secret = parse_token(token)
    data = configmap.get("data") or {}
    kubeconfig = data.get("kubeconfig")
    if not kubeconfig:
        raise DiscoveryError("there is no kubeconfig in the cluster-info ConfigMap")
    jws = data.get(JWS_PREFIX + token_id)
    if not jws:
        raise DiscoveryError(
            "there is no JWS signed token in the cluster-info ConfigMap. This token id "
            f'"{token_id}" is invalid for this cluster, can\'t connect'
        )
    if not verify_detached_jws(kubeconfig, jws, token_id, secret):
        raise DiscoveryError(
            "failed to verify JWS signature of received cluster info object, "
            "can't trust this API Server"
        )
    try:
        cluster = yaml.safe_load(kubeconfig)["clusters"][0]["cluster"]
        server = cluster["server"]
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        ca = x509.load_pem_x509_certificate(ca_pem)
    except (KeyError, IndexError, TypeError, ValueError, yaml.YAMLError) as e:
        raise DiscoveryError(f"the cluster-info kubeconfig is not usable: {e}") from None
    pins = [p.lower() for p in ca_pins]
    if pins and spki_sha256(ca) not in pins:
        raise DiscoveryError(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
            f'"{spki_sha256(ca)}" are pinned'
        )
    return server, ca_pem
