"""Which routes a node wants, and which nodes it refuses to route to."""

from __future__ import annotations

from typing import Any

from skiff.netagent.routes import plan


def node(
    name: str, cidr: str | None, ip: str | None, created: str = "2026-01-01T00:00:00Z"
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"podCIDR": cidr} if cidr else {},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}] if ip else []},
    }
    return out


def test_routes_to_every_other_node() -> None:
    p = plan(
        [
            node("a", "10.244.0.0/24", "192.168.1.1"),
            node("b", "10.244.1.0/24", "192.168.1.2"),
            node("c", "10.244.2.0/24", "192.168.1.3"),
            node("new", None, "192.168.1.4"),  # no CIDR yet: nothing to route
            node("addressless", "10.244.3.0/24", None),
        ],
        "a",
    )
    assert p.routes == {"10.244.1.0/24": "192.168.1.2", "10.244.2.0/24": "192.168.1.3"}
    assert p.problems == {}


def test_overlapping_and_invalid_cidrs_are_refused() -> None:
    p = plan(
        [
            node("a", "10.244.0.0/24", "192.168.1.1", "2026-01-01T00:00:00Z"),
            node("b", "10.244.1.0/24", "192.168.1.2", "2026-01-01T00:00:01Z"),
            node("late", "10.244.1.128/25", "192.168.1.9", "2026-01-02T00:00:00Z"),
            node("mine", "10.244.0.0/16", "192.168.1.8", "2026-01-02T00:00:00Z"),
            node("bad", "10.244.5.7/24", "192.168.1.7"),
        ],
        "b",
    )
    assert p.routes == {"10.244.0.0/24": "192.168.1.1"}
    assert p.problems == {
        "late": "pod CIDR 10.244.1.128/25 overlaps node b's",
        "mine": "pod CIDR 10.244.0.0/16 overlaps node b's",
        "bad": "pod CIDR '10.244.5.7/24' is not a network",
    }
