"""Authentication and authorization of the kubelet's API, as kube's kubelet server: client
certificates signed by ``--client-ca-file``, bearer tokens checked with the apiserver
(TokenReview, ``--authentication-token-webhook``), anonymous requests only with
``--anonymous-auth``; then, with ``--authorization-mode Webhook``, a SubjectAccessReview
for the node: ``nodes/proxy`` for exec, attach, port-forward, pods and health, and
``nodes/log``, ``nodes/stats``, ``nodes/metrics``, ``nodes/spec`` for those paths.
Answers are cached as the kubelet caches them (2 minutes for tokens; 5 minutes for an
allow, 30 seconds for a deny)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from skiff.client.rest import ApiClient
from skiff.log import get_logger
from skiff.tlsserving import certificate_identity, peer_certificate

log = get_logger(__name__)

TOKEN_TTL = 120.0
ALLOW_TTL = 300.0
DENY_TTL = 30.0
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/spec", "spec"))


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(slots=True)
class AuthSettings:
    """The kubelet's ``authentication``/``authorization`` configuration."""

    anonymous: bool = True
    token_webhook: bool = False
    authorization: str = "AlwaysAllow"
    """``AlwaysAllow`` or ``Webhook``."""

    @property
    def enforced(self) -> bool:
        return not self.anonymous or self.token_webhook or self.authorization != "AlwaysAllow"


def subresource_for(path: str) -> str:
    """The ``nodes`` subresource a kubelet path is authorized as."""
    for prefix, sub in _SUBRESOURCES:
        if path == prefix or path.startswith(prefix + "/"):
            return sub
    return "proxy"


class KubeletAuth:
    """Decides who a request is and whether it may go on."""

    def __init__(self, client: ApiClient | None, node_name: str, settings: AuthSettings) -> None:
        self.client = client
        self.node_name = node_name
        self.settings = settings
        self._tokens: dict[str, tuple[float, User | None]] = {}
        self._decisions: dict[tuple[Any, ...], tuple[float, bool]] = {}

    async def authenticate(self, scope: dict[str, Any], headers: dict[str, str]) -> User | None:
        der = peer_certificate(scope)
        if der is not None and (identity := certificate_identity(der)) is not None:
            return User(*identity)
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return await self._token(token.strip()) if self.settings.token_webhook else None
        return ANONYMOUS if self.settings.anonymous else None

    async def _token(self, token: str) -> User | None:
        now = time.monotonic()
        cached = self._tokens.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        user = None
        if self.client is not None:
            try:
                review = await self.client.create(
                    "tokenreviews.authentication.k8s.io",
                    {
                        "apiVersion": "authentication.k8s.io/v1",
                        "kind": "TokenReview",
                        "spec": {"token": token},
                    },
                )
                status = review.get("status") or {}
                if status.get("authenticated"):
                    u = status.get("user") or {}
                    user = User(
                        u.get("username", ""), tuple(u.get("groups") or ()), u.get("uid", "")
                    )
            except Exception as e:  # the apiserver is away: no one, for now
                log.warning("token review failed", error=str(e))
                return None
        self._tokens[token] = (now + TOKEN_TTL, user)
        return user

    async def authorize(self, user: User, method: str, path: str) -> tuple[bool, str, str]:
        """(allowed, verb, subresource)."""
        verb = _VERBS.get(method.upper(), method.lower())
        sub = subresource_for(path)
        if self.settings.authorization != "Webhook" or self.client is None:
            return True, verb, sub
        key = (user.name, user.groups, verb, sub)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > now:
            return cached[1], verb, sub
        review = await self.client.create(
            "subjectaccessreviews.authorization.k8s.io",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SubjectAccessReview",
                "spec": {
                    "user": user.name,
                    "groups": list(user.groups),
                    "uid": user.uid,
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": "nodes",
                        "subresource": sub,
                        "name": self.node_name,
                        "version": "v1",
                    },
                },
            },
        )
        allowed = bool((review.get("status") or {}).get("allowed"))
        self._decisions[key] = (now + (ALLOW_TTL if allowed else DENY_TTL), allowed)
        return allowed, verb, sub


class AuthMiddleware:
    """ASGI middleware: 401 for no one, 403 for someone not allowed, as the kubelet says."""

    def __init__(self, app: Any, auth: KubeletAuth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] not in ("http", "websocket") or not self.auth.settings.enforced:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        user = await self.auth.authenticate(scope, headers)
        if user is None:
            await _deny(scope, send, 401, b"Unauthorized")
            return
        method = scope.get("method", "GET") if scope["type"] == "http" else "GET"
        allowed, verb, sub = await self.auth.authorize(user, method, scope["path"])
        if not allowed:
            text = f"Forbidden (user={user.name}, verb={verb}, resource=nodes, subresource={sub})"
            await _deny(scope, send, 403, text.encode())
            return
        await self.app(scope, receive, send)


async def _deny(scope: dict[str, Any], send: Any, code: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    # A WebSocket upgrade is answered with a plain HTTP response (the ASGI extension).
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": code, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})
