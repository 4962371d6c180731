"""Bootstrap tokens (kube's ``bootstrap`` token authenticator): ``<id>.<secret>`` checked
against the Secret ``kube-system/bootstrap-token-<id>``; the user is
``system:bootstrap:<id>`` in ``system:bootstrappers`` and the groups the Secret names."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING

from skiff.api.resources import REGISTRY
from skiff.bootstrap import TOKEN_RE, seconds_left, token_fields
from skiff.log import get_logger

from .user import BOOTSTRAP_PREFIX, BOOTSTRAPPERS, UserInfo

if TYPE_CHECKING:
    from ..store.base import CachedLister

log = get_logger(__name__)

_SECRETS = REGISTRY.core("secrets")


class BootstrapTokenAuthenticator:
    """Users from bootstrap tokens whose Secret allows authentication and has not expired."""

    def __init__(self, lister: CachedLister) -> None:
        self.lister = lister

    async def authenticate(self, token: str) -> UserInfo | None:
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        token_id, secret_part = m.groups()
        secret = await self.lister.get(_SECRETS, "kube-system", f"bootstrap-token-{token_id}")
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            log.info("bootstrap token has no Secret", token_id=token_id)
            return None
        fields = token_fields(secret)
        if not hmac.compare_digest(fields.get("token-secret", ""), secret_part):
            log.info("bootstrap token does not match its Secret", token_id=token_id)
            return None
        left = seconds_left(fields, time.time())
        if left is not None and left <= 0:
            log.info("bootstrap token has expired", token_id=token_id)
            return None
        if fields.get("usage-bootstrap-authentication") != "true":
            log.info("bootstrap token is not for authentication", token_id=token_id)
            return None
        extra = [g.strip() for g in fields.get("auth-extra-groups", "").split(",") if g.strip()]
        if any(not g.startswith(BOOTSTRAPPERS + ":") for g in extra):
            log.info("bootstrap token names groups outside system:bootstrappers", token_id=token_id)
            return None
        return UserInfo(BOOTSTRAP_PREFIX + token_id, groups=(BOOTSTRAPPERS, *extra))
