"""The bootstrap token controllers against an in-memory API: expired tokens deleted,
cluster-info signed by every signing token and only by those, off by default."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from skiff.bootstrap import cluster_info, token_secret, verify_detached_jws
from skiff.controller.controller import ControllerContext
from skiff.controller.fake import FakeApi
from skiff.controller.informers import SharedInformers
from skiff.controllers.bootstraptokens import CLUSTER_INFO, BootstrapSigner, TokenCleaner
from skiff.controllers.manager import CONTROLLERS, resolve_controllers

NOW = 1_800_000_000.0


def stored(secret: dict[str, Any]) -> dict[str, Any]:
    """The Secret as the apiserver stores it (stringData merged into data)."""
    data = {k: base64.b64encode(v.encode()).decode() for k, v in secret.pop("stringData").items()}
    return secret | {"data": data}


def token(tok: str, *, ttl_s: float | None = 3600, signing: bool = True) -> dict[str, Any]:
    import datetime as dt

    now = dt.datetime.fromtimestamp(NOW, dt.UTC)
    usages = ("signing", "authentication") if signing else ("authentication",)
    ttl = dt.timedelta(seconds=ttl_s) if ttl_s is not None else None
    return stored(token_secret(tok, ttl=ttl, usages=usages, now=now))


@contextlib.asynccontextmanager
async def running(cls: type) -> AsyncIterator[tuple[FakeApi, Any]]:
    fake = FakeApi()
    informers = SharedInformers(fake)  # type: ignore[arg-type]
    c = cls(ControllerContext(fake, informers, clock=lambda: NOW))  # type: ignore[arg-type]
    informers.start()
    try:
        await informers.wait_synced(timeout=5)
        yield fake, c
    finally:
        await informers.stop()


async def test_expired_tokens_are_deleted_and_others_wait() -> None:
    async with running(TokenCleaner) as (fake, c):
        await fake.create("secrets", token("aaaaaa.0123456789abcdef", ttl_s=-1), "kube-system")
        await fake.create("secrets", token("bbbbbb.0123456789abcdef", ttl_s=60), "kube-system")
        await fake.create("secrets", token("cccccc.0123456789abcdef", ttl_s=None), "kube-system")
        await fake.settle(*c.informers)
        assert await c.reconcile("kube-system/bootstrap-token-aaaaaa") is None
        assert 60 <= (await c.reconcile("kube-system/bootstrap-token-bbbbbb") or 0) < 61
        assert await c.reconcile("kube-system/bootstrap-token-cccccc") is None
        await fake.settle(*c.informers)
        assert set(fake.store("secrets")) == {
            "kube-system/bootstrap-token-bbbbbb",
            "kube-system/bootstrap-token-cccccc",
        }


async def test_cluster_info_is_signed_by_signing_tokens_only() -> None:
    async with running(BootstrapSigner) as (fake, c):
        await fake.create(
            "configmaps", cluster_info("apiVersion: v1\nkind: Config\n"), "kube-public"
        )
        await fake.create("secrets", token("aaaaaa.0123456789abcdef"), "kube-system")
        await fake.create("secrets", token("bbbbbb.0123456789abcdef", signing=False), "kube-system")
        await fake.create("secrets", token("cccccc.0123456789abcdef", ttl_s=-5), "kube-system")
        await fake.settle(*c.informers)
        await c.reconcile(CLUSTER_INFO)
        cm = await fake.get("configmaps", "cluster-info", "kube-public")
        assert set(cm["data"]) == {"kubeconfig", "jws-kubeconfig-aaaaaa"}
        assert verify_detached_jws(
            cm["data"]["kubeconfig"],
            cm["data"]["jws-kubeconfig-aaaaaa"],
            "aaaaaa",
            "0123456789abcdef",
        )
        await fake.delete("secrets", "bootstrap-token-aaaaaa", "kube-system")
        await fake.settle(*c.informers)
        await c.reconcile(CLUSTER_INFO)
        cm = await fake.get("configmaps", "cluster-info", "kube-public")
        assert set(cm["data"]) == {"kubeconfig"}


def test_off_by_default_as_in_kube_controller_manager() -> None:
    assert "bootstrap-signer-controller" not in resolve_controllers(["*"], CONTROLLERS)
    enabled = resolve_controllers(["*", "bootstrapsigner", "tokencleaner"], CONTROLLERS)
    assert {"bootstrap-signer-controller", "token-cleaner-controller"} <= set(enabled)
