"""Service allocation rules that need no etcd (test_services covers the stored part)."""

from __future__ import annotations

import pytest

from skiff.apiserver import allocators
from skiff.apiserver.allocators import ServiceRanges, held, normalize, validate


def test_ranges_parse() -> None:
    r = ServiceRanges.parse("10.96.0.0/12", "30000-32767")
    assert r.family == "IPv4" and r.ip_offsets() == (1, 2**20 - 2)
    assert ServiceRanges.parse("fd00::/108", "30000-30001").family == "IPv6"
    for bad in (("10.96.0.1/12", "30000-32767"), ("10.0.0.0/30", "1-2"), ("10.0.0.0/24", "9-3")):
        with pytest.raises(ValueError):
            ServiceRanges.parse(*bad)


def test_normalize_fills_both_fields() -> None:
    spec = {"clusterIP": "10.96.0.10"}
    normalize(spec, None)
    assert spec["clusterIPs"] == ["10.96.0.10"]
    spec = {"clusterIPs": ["10.96.0.11"]}
    normalize(spec, None)
    assert spec["clusterIP"] == "10.96.0.11"


def test_normalize_keeps_assigned_values_on_update() -> None:
    old = {
        "type": "NodePort",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30100}],
    }
    new = {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}
    normalize(new, old)
    assert new["clusterIP"] == "10.96.0.10" and new["ports"][0]["nodePort"] == 30100


def test_normalize_drops_what_the_new_type_does_not_use() -> None:
    old = {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 1}]}
    new = {"type": "ClusterIP", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 1}]}
    normalize(new, old)
    assert "nodePort" not in new["ports"][0] and new["clusterIP"] == "10.96.0.10"
    ext = {"type": "ExternalName", "clusterIP": "10.96.0.10", "externalName": "x.test"}
    normalize(ext, old)
    assert "clusterIP" not in ext


def test_validate_messages() -> None:
    def messages(spec: dict, old: dict | None = None) -> list[str]:
        return [f"{c.field}: {c.message}" for c in validate(spec, old)]

    assert messages({"clusterIPs": ["bad"], "clusterIP": "bad"}) == [
        'spec.clusterIPs[0]: Invalid value: "bad": must be a valid IP address, '
        "(e.g. 10.9.8.7 or 2001:db8::ffff)"
    ]
    assert (
        "may not be set to 'None' for NodePort services"
        in messages({"type": "NodePort", "clusterIP": "None", "clusterIPs": ["None"]})[0]
    )
    assert messages(
        {"clusterIP": "10.96.0.2", "clusterIPs": ["10.96.0.2"]},
        {"clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"]},
    ) == ['spec.clusterIPs[0]: Invalid value: "10.96.0.2": may not change once set']
    assert messages({"ports": [{"port": 80, "nodePort": 30001}]}) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert "not configured for dual-stack" in messages({"clusterIPs": ["10.0.0.1", "fd00::1"]})[0]


def test_held_keys() -> None:
    svc = {
        "metadata": {"namespace": "a", "name": "b"},
        "spec": {
            "type": "NodePort",
            "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053},
                      {"port": 53, "protocol": "TCP", "nodePort": 30053}],
        },
    }  # fmt: skip
    assert sorted(held(svc)) == [
        "/skiff/allocations/nodeports/30053",
        "/skiff/allocations/serviceips/10.96.0.5",
    ]
    assert held({"spec": {"clusterIP": "None", "clusterIPs": ["None"]}}) == {}
    assert held({"spec": {"type": "ExternalName", "externalName": "x"}}) == {}


def test_pick_prefers_upper_band_then_scans() -> None:
    used = {allocators.port_key(p) for p in range(30016, 30100)}
    got = allocators._pick(30016, 30099, allocators.port_key, used)
    assert got is None
    assert allocators._pick(30000, 30015, allocators.port_key, used) in range(30000, 30016)


class _CountingEtcd:
    def __init__(self, taken: list[str]) -> None:
        self.taken = taken
        self.reads = 0

    async def range_all(self, prefix: str):  # type: ignore[no-untyped-def]
        self.reads += 1

        class KV:
            def __init__(self, key: str) -> None:
                self.key = key

        return [KV(k) for k in self.taken if k.startswith(prefix)], 0


async def test_picks_blind_until_conflicts_then_reads() -> None:
    etcd = _CountingEtcd([allocators.port_key(p) for p in range(30000, 30099)])
    allocator = allocators.ServiceAllocator(etcd, ServiceRanges.parse("10.0.0.0/24", PORTS))  # type: ignore[arg-type]
    svc = {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    await allocator.assign(svc, None)
    assert etcd.reads == 0  # a sparse range: the write's transaction is the check
    svc = {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    avoid = {allocators.port_key(p) for p in (30100, 30101, 30102)}
    await allocator.assign(svc, None, avoid)
    assert etcd.reads == 1
    assert svc["spec"]["ports"][0]["nodePort"] == 30099  # the only one left


PORTS = "30000-30102"
