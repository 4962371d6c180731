"""What the node lifecycle and taint eviction controllers share.

A status condition by type, the pods-by-node index both keep on the shared pods
informer, a node's taints (its ``NoExecute`` ones), and :class:`RateLimiter`, the token
bucket that paces both NoExecute tainting per zone and pod evictions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from skiff.client.rest import Obj

POD_NODE_INDEX = "spec.nodeName"
NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"


def condition(obj: Obj, ctype: str) -> Obj | None:
    """The status condition of type ``ctype``, if any."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def pod_node_index(pod: Obj) -> list[str]:
    """Index function for :data:`POD_NODE_INDEX`: the node a pod is bound to."""
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def taints_of(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or ())


def no_execute_taints(node: Obj) -> list[Obj]:
    return [t for t in taints_of(node) if t.get("effect") == NO_EXECUTE]


def taint_id(t: Obj) -> tuple[str, str]:
    return (t.get("key") or "", t.get("effect") or "")


@dataclass(slots=True)
class RateLimiter:
    """A token bucket on the controller's clock (``flowcontrol.NewTokenBucketRateLimiter``)."""

    qps: float
    burst: int = 1
    tokens: float = field(default=-1.0)
    last: float | None = None

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = float(self.burst)

    def reserve(self, now: float) -> float | None:
        """0 when a token was taken; else seconds until one is due (None: never)."""
        if self.qps <= 0:
            return None
        if self.last is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.qps)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.qps

    def refund(self) -> None:
        """Give back a token whose action failed."""
        self.tokens = min(float(self.burst), self.tokens + 1)
