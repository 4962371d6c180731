"""The root CA certificate publisher (``pkg/controller/certificates/rootcacertpublisher``):
every namespace has the ConfigMap ``kube-root-ca.crt`` whose ``ca.crt`` is the CA that
signed the apiserver's certificate, so that pods can verify ``kubernetes.default.svc``
(service-account token volumes mount it). A changed or deleted copy is put back."""

from __future__ import annotations

from typing import ClassVar

from skiff.api.errors import ApiError, namespace_terminating
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

NAME = "kube-root-ca.crt"
DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters."
)


class RootCACertPublisher(Controller):
    """Keeps ``kube-root-ca.crt`` in every namespace."""

    name: ClassVar[str] = "root-ca-certificate-publisher-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 1, root_ca: str = "") -> None:
        super().__init__(ctx, workers=workers)
        self.root_ca = root_ca
        self.namespaces = self.watch("namespaces")
        self.configmaps = self.watch("configmaps")
        self.namespaces.add_handler(self.enqueue, lambda _o, n: self.enqueue(n))
        self.configmaps.add_handler(
            on_update=lambda _o, cm: self._configmap(cm), on_delete=self._configmap
        )

    def _configmap(self, cm: Obj) -> None:
        if cm["metadata"].get("name") == NAME:
            self.queue.add(cm["metadata"].get("namespace") or "")

    def desired(self) -> dict[str, str]:
        return {"ca.crt": self.root_ca}

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or not self.root_ca:
            return None
        current = self.configmaps.get(f"{key}/{NAME}")
        try:
            if current is None:
                await self.client.create(
                    "configmaps",
                    {
                        "metadata": {
                            "name": NAME,
                            "annotations": {"kubernetes.io/description": DESCRIPTION},
                        },
                        "data": self.desired(),
                    },
                    key,
                )
                self.log.info("published the root CA", namespace=key)
            elif current.get("data") != self.desired():
                await self.client.update("configmaps", dict(current, data=self.desired()), key)
                self.log.info("restored the root CA", namespace=key)
        except ApiError as e:
            if e.code in (404, 409) or namespace_terminating(e):
                return None  # gone, going, or the cache is behind: the watch brings it back
            raise
        return None
