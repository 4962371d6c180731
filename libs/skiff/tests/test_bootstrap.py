"""Bootstrap tokens and cluster-info discovery: the token format and its Secret, detached
JWS (checked against an independent HMAC computation), and a join's checks — signature by
the given token, CA pinned by its public key hash — with kubeadm's messages."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

import pytest

from skiff.bootstrap import (
    DiscoveryError,
    cluster_info,
    cluster_info_kubeconfig,
    detached_jws,
    generate_token,
    parse_token,
    token_secret,
    validate_cluster_info,
    verify_detached_jws,
)
from skiff.pki import CertificateAuthority, spki_sha256

TOKEN = "abcdef.0123456789abcdef"


def test_token_format() -> None:
    for _ in range(20):
        token_id, secret = parse_token(generate_token())
        assert len(token_id) == 6 and len(secret) == 16
    with pytest.raises(ValueError) as e:
        parse_token("ABCDEF.0123456789abcdef")
    assert str(e.value) == (
        'the bootstrap token "ABCDEF.0123456789abcdef" was not of the form '
        '"[a-z0-9]{6}.[a-z0-9]{16}"'
    )


def test_token_secret_as_kubeadm_writes_it() -> None:
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    secret = token_secret(TOKEN, now=now, description="join")
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert secret["stringData"] == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "expiration": "2026-12-08T12:00:00Z",
        "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        "description": "join",
    }
    assert "expiration" not in token_secret(TOKEN, ttl=None)["stringData"]


def test_detached_jws_matches_an_independent_hmac() -> None:
    content = "apiVersion: v1\nkind: Config\n"
    jws = detached_jws(content, "abcdef", "0123456789abcdef")
    header, empty, signature = jws.split(".")
    assert empty == ""
    payload = base64.urlsafe_b64encode(content.encode()).rstrip(b"=").decode()
    mac = hmac.new(b"0123456789abcdef", f"{header}.{payload}".encode(), hashlib.sha256)
    assert signature == base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    assert verify_detached_jws(content, jws, "abcdef", "0123456789abcdef")
    assert not verify_detached_jws(content + " ", jws, "abcdef", "0123456789abcdef")
    assert not verify_detached_jws(content, jws, "abcdef", "0123456789abcdeX")
    assert not verify_detached_jws(content, "not-a-jws", "abcdef", "0123456789abcdef")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("kubernetes", algorithm="ECDSA-P256")


def test_a_join_trusts_signed_and_pinned_cluster_info(ca: CertificateAuthority) -> None:
    kubeconfig = cluster_info_kubeconfig("https://10.0.0.1:6443", ca.pair.cert_pem)
    cm = cluster_info(kubeconfig, [TOKEN])
    assert cm["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert set(cm["data"]) == {"kubeconfig", "jws-kubeconfig-abcdef"}
    pin = spki_sha256(ca.pair.cert)
    server, ca_pem = validate_cluster_info(cm, TOKEN, [pin])
    assert server == "https://10.0.0.1:6443" and ca_pem == ca.pair.cert_pem


def test_a_join_refuses_what_it_cannot_trust(ca: CertificateAuthority) -> None:
    kubeconfig = cluster_info_kubeconfig("https://10.0.0.1:6443", ca.pair.cert_pem)
    cm = cluster_info(kubeconfig, [TOKEN])
    pin = spki_sha256(ca.pair.cert)
    with pytest.raises(DiscoveryError, match='This token id "zzzzzz" is invalid'):
        validate_cluster_info(cm, "zzzzzz.0123456789abcdef", [pin])
    with pytest.raises(DiscoveryError, match="failed to verify JWS signature"):
        validate_cluster_info(cm, "abcdef.xxxxxxxxxxxxxxxx", [pin])
    # A man in the middle re-serves cluster-info with its own apiserver address:
    forged = {"data": dict(cm["data"], kubeconfig=kubeconfig.replace("10.0.0.1", "10.6.6.6"))}
    with pytest.raises(DiscoveryError, match="failed to verify JWS signature"):
        validate_cluster_info(forged, TOKEN, [pin])
    # ...or with its own CA, signed with a token it somehow knows: the pin catches it.
    other = CertificateAuthority.create("evil", algorithm="ECDSA-P256")
    evil = cluster_info(
        cluster_info_kubeconfig("https://10.6.6.6:6443", other.pair.cert_pem), [TOKEN]
    )
    with pytest.raises(DiscoveryError) as e:
        validate_cluster_info(evil, TOKEN, [pin])
    assert str(e.value) == (
        "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys "
        f'"{spki_sha256(other.pair.cert)}" are pinned'
    )
