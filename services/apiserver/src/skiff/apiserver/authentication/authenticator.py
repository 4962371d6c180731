"""The authenticator chain (see the package's docstring)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from skiff.api.errors import ApiError, Reason
from skiff.log import get_logger

from . import requestheader
from .bootstraptoken import BootstrapTokenAuthenticator
from .requestheader import RequestHeaderConfig, RequestHeaderError, issued_by, load_certificates
from .serviceaccount import InvalidToken, ServiceAccountTokens
from .user import ANONYMOUS_USER, UserInfo
from .x509 import user_from_certificate

__all__ = ["Authenticator", "InvalidToken", "UserInfo", "unauthorized"]

log = get_logger(__name__)

WS_TOKEN_PREFIX = "base64url.bearer.authorization.k8s.io."


def unauthorized() -> ApiError:
    """kube-apiserver's 401: a Status that says only ``Unauthorized``."""
    return ApiError(401, Reason.UNAUTHORIZED, "Unauthorized")


class Authenticator:
    """The chain of authenticators one apiserver runs."""

    def __init__(
        self,
        *,
        service_accounts: ServiceAccountTokens | None,
        bootstrap_tokens: BootstrapTokenAuthenticator | None,
        anonymous: bool = True,
        request_header: RequestHeaderConfig | None = None,
        client_ca_file: str = "",
    ) -> None:
        """``request_header``: front proxies' certificates name users in headers; the
        handshake then trusts two CAs, so a certificate names its own subject only when
        ``client_ca_file``'s CA issued it."""
        self.service_accounts = service_accounts
        self.bootstrap_tokens = bootstrap_tokens
        self.anonymous = anonymous
        self.request_header = request_header.loaded() if request_header else None
        self._client_cas = (
            load_certificates(client_ca_file) if request_header and client_ca_file else None
        )

    async def authenticate(
        self,
        headers: Mapping[str, str],
        peer_certificate: bytes | None,
        subprotocols: list[str] | None = None,
    ) -> UserInfo:
        """The user making a request, or the 401 ApiError.

        ``subprotocols`` (a WebSocket's) loses the bearer-token entry, as kube strips it.
        """
        if peer_certificate is not None:
            if self.request_header is not None:
                try:
                    proxied = requestheader.authenticate(
                        self.request_header, peer_certificate, headers
                    )
                except RequestHeaderError as e:
                    log.info("front-proxy certificate refused", reason=str(e))
                    raise unauthorized() from None
                if proxied is not None:
                    return proxied.authenticated()
            if self._client_cas is None or issued_by(peer_certificate, self._client_cas):
                user = user_from_certificate(peer_certificate)
                if user is not None:
                    return user.authenticated()
        token = bearer_token(headers.get("authorization", ""))
        if token is None and subprotocols:
            token = _websocket_token(subprotocols)
        if token is not None:
            try:
                found = await self.authenticate_token(token)
            except InvalidToken as e:
                log.info("bearer token refused", reason=str(e))
                found = None
            if found is None:
                raise unauthorized()
            return found[0].authenticated()
        if self.anonymous:
            return ANONYMOUS_USER
        raise unauthorized()

    async def authenticate_token(
        self, token: str, audiences: Sequence[str] | None = None
    ) -> tuple[UserInfo, list[str]] | None:
        """(user, accepted audiences) for a bearer token, None when no authenticator knows
        it; InvalidToken when one does and refuses it (the reason, for TokenReview)."""
        if self.service_accounts is not None:
            found = await self.service_accounts.authenticate(token, audiences)
            if found is not None:
                return found
        if self.bootstrap_tokens is not None:
            api = self.service_accounts.settings.audiences if self.service_accounts else ()
            if audiences and not set(audiences) & set(api):
                return None  # bootstrap tokens are only for the API's own audiences
            user = await self.bootstrap_tokens.authenticate(token)
            if user is not None:
                return user, list(audiences or api)
        return None


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None: no usable token)."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _websocket_token(subprotocols: list[str]) -> str | None:
    for i, p in enumerate(subprotocols):
        if p.startswith(WS_TOKEN_PREFIX):
            del subprotocols[i]
            encoded = p[len(WS_TOKEN_PREFIX) :]
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return raw.decode() or None
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None
