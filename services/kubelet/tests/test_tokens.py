"""The kubelet's token manager: bound tokens, cached until 80% of their life or a day."""

from __future__ import annotations

from typing import Any

from skiff.api.timestamps import rfc3339
from skiff.kubelet.tokens import TokenManager

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
    "spec": {"serviceAccountName": "robot"},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_tokens_are_cached_then_renewed() -> None:
    clock = Clock()
    asked: list[dict[str, Any]] = []

    async def request(namespace: str, account: str, body: dict[str, Any]) -> dict[str, Any]:
        assert (namespace, account) == ("ns", "robot")
        asked.append(body)
        seconds = body["spec"]["expirationSeconds"]
        return {
            "status": {
                "token": f"t{len(asked)}",
                "expirationTimestamp": rfc3339(clock.now + seconds),
            }
        }

    tokens = TokenManager(request, clock)
    assert await tokens.token(POD, "", 3600) == "t1"
    clock.now += 0.79 * 3600
    assert await tokens.token(POD, "", 3600) == "t1"
    clock.now += 0.02 * 3600  # past 80% of its life
    assert await tokens.token(POD, "", 3600) == "t2"
    # Another audience is another token; a day-long one is renewed after a day at most.
    assert await tokens.token(POD, "vault", 3600) == "t3"
    assert asked[-1]["spec"]["audiences"] == ["vault"]
    assert await tokens.token(POD, "", 7 * 86400) == "t4"
    clock.now += 86400 + 1
    assert await tokens.token(POD, "", 7 * 86400) == "t5"
    tokens.forget("u1")
    assert await tokens.token(POD, "vault", 3600) == "t6"
