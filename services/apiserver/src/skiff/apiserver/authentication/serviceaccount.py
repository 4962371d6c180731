"""Service-account tokens: JWTs signed with the cluster's service-account key
(``--service-account-signing-key-file``), issued by the TokenRequest subresource and
checked by kube's ``serviceaccount`` token authenticator.

A token is bound: to its ServiceAccount (by uid) and optionally to a Pod, Secret or Node
(by uid); it stops authenticating once any of them is gone or replaced, and after its
``exp``. Claims are kube-apiserver's (``iss``, ``sub``, ``aud``, ``exp``, ``iat``,
``nbf``, ``jti`` and the private ``kubernetes.io`` claim).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skiff.api.resources import REGISTRY
from skiff.api.timestamps import parse_time
from skiff.jose import JoseError, PublicKey, SigningKey, sign, unverified_claims, verify
from skiff.log import get_logger

from .user import UserInfo, service_account_groups, service_account_user
from .x509 import CREDENTIAL_ID

if TYPE_CHECKING:
    from ..store.base import CachedLister

log = get_logger(__name__)

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
"""kubeadm's ``--service-account-issuer``."""
LEEWAY = 60
"""Seconds of clock skew allowed on ``exp`` and ``nbf``, as kube's JWT validation."""
INVALIDATED_AFTER = 60
"""A token bound to an object being deleted stops working this long after the deletion
began, as kube-apiserver's validator."""

CACHE_SECONDS = 10.0
"""How long an authenticated token is trusted without checking it again (kube's token
cache: a deleted pod's token may work this long after)."""
CACHE_SIZE = 10_000
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
NODE_NAME = "authentication.kubernetes.io/node-name"
NODE_UID = "authentication.kubernetes.io/node-uid"


class InvalidToken(Exception):
    """A token this authenticator issued that no longer (or never did) authenticate."""


@dataclass(slots=True)
class TokenSettings:
    """The apiserver's service-account token flags."""

    issuer: str = DEFAULT_ISSUER
    api_audiences: tuple[str, ...] = ()
    """Audiences the API accepts (``--api-audiences``; default: the issuer)."""
    signing_key: SigningKey | None = None
    public_keys: list[PublicKey] = field(default_factory=list)
    max_expiration: int = 0
    """Longest lifetime granted, in seconds (0: whatever is asked)."""

    @property
    def audiences(self) -> tuple[str, ...]:
        return self.api_audiences or (self.issuer,)


class ServiceAccountTokens:
    """Issues bound tokens and authenticates them."""

    def __init__(self, settings: TokenSettings, lister: CachedLister) -> None:
        self.settings = settings
        self.lister = lister
        self._cache: dict[tuple[str, tuple[str, ...]], tuple[float, UserInfo, list[str]]] = {}

    @property
    def can_issue(self) -> bool:
        return self.settings.signing_key is not None

    def issue(
        self,
        service_account: dict[str, Any],
        *,
        audiences: Sequence[str],
        expiration_seconds: int,
        bound: dict[str, Any] | None = None,
        node: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A signed token for ``service_account``: (token, expiry as a Unix time).

        ``bound`` is the Pod, Secret or Node it is bound to; ``node`` the pod's node.
        """
        assert self.settings.signing_key is not None
        now = int(time.time() if now is None else now)
        if self.settings.max_expiration:
            expiration_seconds = min(expiration_seconds, self.settings.max_expiration)
        meta = service_account["metadata"]
        private: dict[str, Any] = {
            "namespace": meta["namespace"],
            "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")},
        }
        if bound is not None:
            bmeta = bound["metadata"]
            private[bound["kind"].lower()] = {"name": bmeta["name"], "uid": bmeta.get("uid", "")}
        if node is not None:
            private["node"] = {"name": node["metadata"]["name"], "uid": node["metadata"]["uid"]}
        exp = now + expiration_seconds
        claims = {
            "iss": self.settings.issuer,
            "sub": service_account_user(meta["namespace"], meta["name"]),
            "aud": list(audiences),
            "exp": exp,
            "iat": now,
            "nbf": now,
            "jti": str(uuid.uuid4()),
            "kubernetes.io": private,
        }
        return sign(claims, self.settings.signing_key), exp

    async def authenticate(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> tuple[UserInfo, list[str]] | None:
        """(user, the token's audiences that were accepted), None when the token is not a
        service-account token of this issuer; InvalidToken when it is one but fails.

        A success is remembered for :data:`CACHE_SECONDS` (kube-apiserver's token cache):
        the signature and the bound objects are not checked again on every request."""
        key = (token, tuple(audiences or ()))
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        found = await self._authenticate(token, audiences)
        if found is not None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = (now + CACHE_SECONDS, *found)
        return found

    async def _authenticate(
        self, token: str, audiences: Sequence[str] | None
    ) -> tuple[UserInfo, list[str]] | None:
        try:
            claims = unverified_claims(token)
        except JoseError:
            return None
        if claims.get("iss") != self.settings.issuer or not self.settings.public_keys:
            return None
        try:
            verify(token, self.settings.public_keys)
        except JoseError as e:
            raise InvalidToken(f"service account token is not valid: {e}") from None
        now = time.time()
        if _number(claims.get("exp"), now) + LEEWAY < now:
            raise InvalidToken("service account token has expired")
        if _number(claims.get("nbf"), 0) - LEEWAY > now:
            raise InvalidToken("service account token is not valid yet")
        aud = claims.get("aud")
        token_audiences = [aud] if isinstance(aud, str) else list(aud or [])
        wanted = list(audiences) if audiences else list(self.settings.audiences)
        accepted = [a for a in wanted if a in token_audiences]
        if not accepted:
            raise InvalidToken(
                f"token audiences {token_audiences!r} is invalid for the target "
                f"audiences {wanted!r}"
            )
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            raise InvalidToken("service account token claims are not bound (kubernetes.io)")
        return await self._bound_user(private, claims), accepted

    async def _bound_user(self, private: dict[str, Any], claims: dict[str, Any]) -> UserInfo:
        namespace = str(private.get("namespace") or "")
        sa_ref = private.get("serviceaccount") or {}
        if not namespace or not isinstance(sa_ref, dict) or not sa_ref.get("name"):
            raise InvalidToken("service account token has no namespace or service account")
        sa = await self._live("serviceaccounts", namespace, sa_ref)
        extra: dict[str, tuple[str, ...]] = {}
        for kind, namespaced in (("pod", True), ("secret", True), ("node", False)):
            ref = private.get(kind)
            if not isinstance(ref, dict):
                continue
            await self._live(kind + "s", namespace if namespaced else None, ref)
            if kind in ("pod", "node"):
                extra[POD_NAME if kind == "pod" else NODE_NAME] = (str(ref.get("name")),)
                extra[POD_UID if kind == "pod" else NODE_UID] = (str(ref.get("uid")),)
        if claims.get("jti"):
            extra[CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        name = str(sa_ref["name"])
        return UserInfo(
            service_account_user(namespace, name),
            uid=str(sa["metadata"].get("uid", "")),
            groups=service_account_groups(namespace),
            extra=extra,
        )

    async def _live(
        self, plural: str, namespace: str | None, ref: dict[str, Any]
    ) -> dict[str, Any]:
        """The object a token is bound to, if it still exists with the same uid."""
        obj = await self.lister.get(REGISTRY.core(plural), namespace, str(ref.get("name")))
        what = f"{plural[:-1]} {namespace + '/' if namespace else ''}{ref.get('name')}"
        if obj is None:
            log.info("token bound to an object that is gone", object=what)
            raise InvalidToken("service account token has been invalidated")
        meta = obj.get("metadata") or {}
        if ref.get("uid") and meta.get("uid") != ref["uid"]:
            log.info("token bound to a replaced object", object=what)
            raise InvalidToken("service account token has been invalidated")
        deleting = meta.get("deletionTimestamp")
        if deleting and _deleted_before(deleting, time.time() - INVALIDATED_AFTER):
            raise InvalidToken("service account token has been invalidated")
        return obj


def _number(value: object, default: float) -> float:
    return float(value) if isinstance(value, int | float) else default


def _deleted_before(timestamp: str, when: float) -> bool:
    t = parse_time(timestamp)
    return t is not None and t < when
