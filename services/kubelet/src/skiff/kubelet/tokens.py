"""Service-account tokens for pods' projected volumes (kube's ``pkg/kubelet/token``): each
requested from the TokenRequest API bound to its pod (so it dies with the pod), cached,
and requested again once 80% of its life has passed, or a day, whichever comes first."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from skiff.api.timestamps import parse_time

Request = Callable[[str, str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""(namespace, service account, TokenRequest) → the answered TokenRequest."""

MAX_AGE = 24 * 3600.0


@dataclass(slots=True)
class _Cached:
    token: str
    issued: float
    expires: float


class TokenManager:
    """Tokens by (pod uid, audience, lifetime)."""

    def __init__(self, request: Request, clock: Callable[[], float] = time.time) -> None:
        self.request = request
        self.clock = clock
        self._cache: dict[tuple[str, str, int], _Cached] = {}

    def _fresh(self, cached: _Cached) -> bool:
        now = self.clock()
        life = cached.expires - cached.issued
        return now < cached.issued + 0.8 * life and now < cached.issued + MAX_AGE

    async def token(self, pod: dict[str, Any], audience: str, seconds: int) -> str:
        """A token of the pod's service account, bound to the pod."""
        meta = pod["metadata"]
        key = (meta["uid"], audience, seconds)
        cached = self._cache.get(key)
        if cached is not None and self._fresh(cached):
            return cached.token
        spec: dict[str, Any] = {
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if audience:
            spec["audiences"] = [audience]
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        issued = self.clock()
        answer = await self.request(meta.get("namespace") or "default", account, {"spec": spec})
        status = answer.get("status") or {}
        expires = parse_time(status.get("expirationTimestamp")) or issued + seconds
        self._cache[key] = _Cached(str(status["token"]), issued, expires)
        return self._cache[key].token

    def forget(self, uid: str) -> None:
        """Drop the tokens of a pod that is gone."""
        for key in [k for k in self._cache if k[0] == uid]:
            del self._cache[key]
