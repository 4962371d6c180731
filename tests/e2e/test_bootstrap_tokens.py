"""The bootstrap token controllers in a real controller-manager against a real apiserver
(``--controllers=bootstrapsigner,tokencleaner``, as kubeadm turns them on): an expired
token's Secret is deleted, and cluster-info is signed by the signing token, verifiable
with it, and unsigned again when that token goes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator

import pytest
from cmenv import Managers, until

from cluster import Cluster, start_cluster
from skiff.api.errors import ApiError
from skiff.bootstrap import (
    cluster_info,
    cluster_info_kubeconfig,
    token_secret,
    validate_cluster_info,
)
from skiff.client.rest import ApiClient
from skiff.pki import CertificateAuthority, spki_sha256

SIGNING = "abcdef.0123456789abcdef"
EXPIRED = "zzzzzz.0123456789abcdef"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("bootstrap"))
    managers = Managers(c)
    managers.start("--controllers=bootstrapsigner,tokencleaner")
    try:
        yield c
    finally:
        managers.stop()
        c.stop()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[ApiClient]:
    async with ApiClient(cluster.url) as c:
        yield c


async def gone(client: ApiClient, name: str) -> bool:
    try:
        await client.get("secrets", name, "kube-system")
    except ApiError as e:
        return e.code == 404
    return False


async def test_tokens_sign_cluster_info_and_expire(client: ApiClient) -> None:
    ca = CertificateAuthority.create("kubernetes", algorithm="ECDSA-P256")
    kubeconfig = cluster_info_kubeconfig("https://10.0.0.1:6443", ca.pair.cert_pem)
    await client.create("configmaps", cluster_info(kubeconfig), "kube-public")
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    await client.create(
        "secrets", token_secret(EXPIRED, ttl=dt.timedelta(hours=1), now=past), "kube-system"
    )
    await client.create("secrets", token_secret(SIGNING), "kube-system")

    await until(
        lambda: gone(client, "bootstrap-token-zzzzzz"), timeout=30, what="expired token deleted"
    )

    async def signed() -> dict | None:
        cm = await client.get("configmaps", "cluster-info", "kube-public")
        return cm if set(cm["data"]) == {"kubeconfig", "jws-kubeconfig-abcdef"} else None

    cm = await until(signed, timeout=30, what="cluster-info signed by the signing token only")
    server, _ = validate_cluster_info(cm, SIGNING, [spki_sha256(ca.pair.cert)])
    assert server == "https://10.0.0.1:6443"

    await client.delete("secrets", "bootstrap-token-abcdef", "kube-system")

    async def unsigned() -> bool:
        cm = await client.get("configmaps", "cluster-info", "kube-public")
        return set(cm["data"]) == {"kubeconfig"}

    await until(unsigned, timeout=30, what="the signature removed with its token")
