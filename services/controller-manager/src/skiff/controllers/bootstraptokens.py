"""The bootstrap token controllers (kube's ``pkg/controller/bootstrap``), off by default
as in kube-controller-manager (kubeadm turns them on: ``--controllers=*,bootstrapsigner,
tokencleaner``).

``token-cleaner-controller`` deletes a ``bootstrap-token-<id>`` Secret of kube-system
once its ``expiration`` has passed (requeued until then). ``bootstrap-signer-controller``
keeps ``kube-public/cluster-info`` signed: one ``jws-kubeconfig-<id>`` per token that is
for signing and not expired, stale signatures removed (:mod:`skiff.bootstrap`).
"""

from __future__ import annotations

from typing import ClassVar

from skiff.api.errors import ApiError
from skiff.bootstrap import JWS_PREFIX, detached_jws, seconds_left, token_fields
from skiff.client.informer import key_of
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

NAMESPACE = "kube-system"
CLUSTER_INFO = "kube-public/cluster-info"


class TokenCleaner(Controller):
    """Deletes expired bootstrap token Secrets."""

    name: ClassVar[str] = "token-cleaner-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.secrets = self.watch("secrets")
        self.secrets.add_handler(self._changed, lambda _o, n: self._changed(n))

    def _changed(self, secret: Obj) -> None:
        if token_fields(secret).get("expiration"):
            self.enqueue(secret)

    async def reconcile(self, key: str) -> float | None:
        secret = self.secrets.get(key)
        if secret is None:
            return None
        left = seconds_left(token_fields(secret), self.ctx.clock())
        if left is None:
            return None
        if left > 0:
            return left + 0.05
        meta = secret["metadata"]
        try:
            await self.client.delete(
                "secrets", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]}
            )
        except ApiError as e:
            if e.code not in (404, 409):
                raise
        self.log.info("deleted an expired bootstrap token", secret=key)
        return None


class BootstrapSigner(Controller):
    """Keeps kube-public/cluster-info signed by every signing bootstrap token."""

    name: ClassVar[str] = "bootstrap-signer-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1) -> None:
        super().__init__(ctx, workers=workers)
        self.secrets = self.watch("secrets")
        self.configmaps = self.watch("configmaps")
        queue = lambda *_a: self.queue.add(CLUSTER_INFO)  # noqa: E731
        self.secrets.add_handler(queue, queue, queue)
        self.configmaps.add_handler(
            lambda cm: self._cm(cm), lambda _o, cm: self._cm(cm), lambda cm: None
        )

    def _cm(self, cm: Obj) -> None:
        if key_of(cm) == CLUSTER_INFO:
            self.queue.add(CLUSTER_INFO)

    def signers(self) -> dict[str, str]:
        """token id → secret of every signing token that has not expired."""
        now = self.ctx.clock()
        out = {}
        for secret in self.secrets.list():
            f = token_fields(secret)
            if f.get("usage-bootstrap-signing") != "true" or not f.get("token-id"):
                continue
            left = seconds_left(f, now)
            if left is not None and left <= 0:
                continue
            out[f["token-id"]] = f.get("token-secret", "")
        return out

    async def reconcile(self, key: str) -> float | None:
        cm = self.configmaps.get(CLUSTER_INFO)
        if cm is None:
            return None
        data = dict(cm.get("data") or {})
        kubeconfig = data.get("kubeconfig")
        if not kubeconfig:
            return None
        want = {k: v for k, v in data.items() if not k.startswith(JWS_PREFIX)}
        signers = self.signers()
        for token_id, secret in signers.items():
            want[JWS_PREFIX + token_id] = detached_jws(kubeconfig, token_id, secret)
        if want == data:
            return None
        updated = dict(cm, data=want)
        try:
            await self.client.update("configmaps", updated, "kube-public")
        except ApiError as e:
            if e.code != 409:
                raise
            return 0.5  # a newer copy is coming through the informer
        self.log.info("cluster-info signed", tokens=sorted(signers))
        # Expiring tokens drop their signature when they expire.
        now = self.ctx.clock()
        lefts = [
            left
            for s in self.secrets.list()
            if (left := seconds_left(token_fields(s), now)) is not None and left > 0
        ]
        return min(lefts) + 0.05 if lefts else None
