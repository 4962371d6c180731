"""``--use-service-account-credentials`` (kube's ``SAControllerClientBuilder``): each
controller writes as its own ServiceAccount, ``kube-system/<name>``, holding only its own
role (``system:controller:<name>``); the controller manager's identity only reads (the
shared informers), creates those accounts and asks for their tokens. Tokens come from the
TokenRequest API and are renewed at 80% of their life."""

from __future__ import annotations

import asyncio
import contextlib

from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient
from skiff.log import get_logger

log = get_logger(__name__)

NAMESPACE = "kube-system"
TOKEN_SECONDS = 3600


class ServiceAccountCredentials:
    """One API client per controller, each authenticated by its ServiceAccount's token."""

    def __init__(self, root: ApiClient, *, expiration: int = TOKEN_SECONDS) -> None:
        self.root = root
        self.expiration = expiration
        self.clients: dict[str, ApiClient] = {}
        self._renewals: list[asyncio.Task[None]] = []

    async def client_for(self, account: str) -> ApiClient:
        """The client of ``kube-system/<account>`` (made, with its account, on first use)."""
        client = self.clients.get(account)
        if client is None:
            await self._ensure_account(account)
            token = await self._token(account)
            client = self.root.with_token(token, user_agent=f"skiff-controller-manager/{account}")
            self.clients[account] = client
            self._renewals.append(
                asyncio.create_task(self._renew(account, client), name=f"token:{account}")
            )
        return client

    async def _ensure_account(self, account: str) -> None:
        try:
            await self.root.get("serviceaccounts", account, NAMESPACE)
        except ApiError as e:
            if e.code != 404:
                raise
            try:
                await self.root.create(
                    "serviceaccounts", {"metadata": {"name": account}}, NAMESPACE
                )
                log.info("created controller service account", account=account)
            except ApiError as e2:
                if e2.code != 409:
                    raise

    async def _token(self, account: str) -> str:
        answer = await self.root.create_subresource(
            "serviceaccounts",
            account,
            "token",
            {"spec": {"expirationSeconds": self.expiration}},
            NAMESPACE,
        )
        return str(answer["status"]["token"])

    async def _renew(self, account: str, client: ApiClient) -> None:
        delay = self.expiration * 0.8
        while True:
            await asyncio.sleep(delay)
            try:
                client.set_token(await self._token(account))
                delay = self.expiration * 0.8
            except (ApiError, OSError) as e:
                log.warning("cannot renew controller token", account=account, error=str(e))
                delay = 10.0

    async def close(self) -> None:
        for t in self._renewals:
            t.cancel()
        for t in self._renewals:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for c in self.clients.values():
            await c.aclose()
        self.clients.clear()
        self._renewals.clear()
