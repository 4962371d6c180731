"""The ServiceAccount controller (``pkg/controller/serviceaccount``).

Every Active namespace has the ServiceAccounts it must have (``default``): one is
created when a namespace appears, and again when it is deleted. Keys are namespace
names; a Terminating namespace is left alone (the API server would refuse the
create anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from skiff.api.errors import ApiError, namespace_terminating
from skiff.client.rest import Obj
from skiff.controller.controller import Controller, ControllerContext

DEFAULT_SERVICE_ACCOUNTS = ("default",)


class ServiceAccountsController(Controller):
    """Creates the required ServiceAccounts of every Active namespace."""

    name: ClassVar[str] = "serviceaccount-controller"

    def __init__(
        self,
        ctx: ControllerContext,
        *,
        workers: int = 1,
        service_accounts: Iterable[str] = DEFAULT_SERVICE_ACCOUNTS,
    ) -> None:
        super().__init__(ctx, workers=workers)
        self.required = tuple(service_accounts)
        self.namespaces = self.watch("namespaces")
        self.accounts = self.watch("serviceaccounts")
        self.namespaces.add_handler(self.enqueue, lambda _o, n: self.enqueue(n))
        self.accounts.add_handler(on_delete=self._account_deleted)

    def _account_deleted(self, sa: Obj) -> None:
        name = sa["metadata"].get("name")
        if name in self.required:
            self.queue.add(sa["metadata"].get("namespace") or "")

    async def reconcile(self, key: str) -> float | None:
        ns = self.namespaces.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp"):
            return None
        if (ns.get("status") or {}).get("phase", "Active") != "Active":
            return None
        for name in self.required:
            if self.accounts.get(f"{key}/{name}") is not None:
                continue
            try:
                await self.client.create(
                    "serviceaccounts", {"metadata": {"name": name, "namespace": key}}, key
                )
            except ApiError as e:
                if e.code == 409:
                    continue  # the cache is late: it exists
                if e.code == 404 or namespace_terminating(e):
                    return None  # the namespace is gone or going
                raise
            self.log.info("created service account", namespace=key, name=name)
        return None
