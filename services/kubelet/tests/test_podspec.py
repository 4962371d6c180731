"""Pod spec → CRI settings: environment sources and Linux resources."""

from __future__ import annotations

import base64

import pytest

from skiff.api.errors import not_found
from skiff.kubelet.podspec import (
    ConfigError,
    container_env,
    expand,
    linux_resources,
    service_env,
)

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {
        "nodeName": "n1",
        "serviceAccountName": "default",
        "containers": [{"name": "c", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}}],
    },
}
OBJECTS = {
    ("configmaps", "cm"): {"data": {"A": "1", "B": "2"}},
    ("secrets", "sec"): {"data": {"TOKEN": base64.b64encode(b"s3cr3t").decode()}},
}


async def lookup(kind: str, ns: str, name: str) -> dict:
    try:
        return OBJECTS[(kind, name)]
    except KeyError:
        raise not_found(kind, name) from None


async def test_env_sources_and_expansion() -> None:
    container = {
        "name": "c",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "GREETING", "value": "hi $(POD) $$(POD) $(NOPE)"},
        ],
    }
    env = dict(await container_env(POD, container, lookup, pod_ip="10.0.0.9"))
    assert env == {
        "CM_A": "1",
        "CM_B": "2",
        "POD": "p",
        "APP": "web",
        "IP": "10.0.0.9",
        "TOKEN": "s3cr3t",
        "MEM": "128",
        "GREETING": "hi p $(POD) $(NOPE)",
    }


async def test_missing_sources() -> None:
    missing = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}],
    }
    with pytest.raises(ConfigError, match='configmap "nope" not found'):
        await container_env(POD, missing, lookup)
    optional = {
        "name": "c",
        "env": [
            {
                "name": "X",
                "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": True}},
            }
        ],
    }
    assert await container_env(POD, optional, lookup) == []
    bad_key = {
        "name": "c",
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "Z"}}}],
    }
    with pytest.raises(ConfigError, match="couldn't find key Z"):
        await container_env(POD, bad_key, lookup)


def test_linux_resources() -> None:
    assert linux_resources(
        {"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "1", "memory": "64Mi"}}}
    ) == {
        "cpu_shares": 256,
        "cpu_period": 100000,
        "cpu_quota": 100000,
        "memory_limit_in_bytes": 64 * 1024 * 1024,
    }
    assert linux_resources({}) == {"cpu_shares": 2}
    assert linux_resources({"resources": {"limits": {"cpu": "2"}}})["cpu_shares"] == 2048


def _svc(ns: str, name: str, ip: str, *ports: dict) -> dict:
    meta = {"namespace": ns, "name": name}
    return {"metadata": meta, "spec": {"clusterIP": ip, "ports": list(ports)}}


SERVICES = [
    _svc("default", "kubernetes", "10.96.0.1", {"name": "https", "port": 443, "protocol": "TCP"}),
    _svc("ns", "redis-primary", "10.96.0.20", {"port": 6379},
         {"name": "metrics", "port": 9121, "protocol": "TCP"}),
    _svc("ns", "dns", "10.96.0.10", {"name": "dns", "port": 53, "protocol": "UDP"}),
    _svc("ns", "headless", "None", {"port": 80}),
    _svc("other", "elsewhere", "10.96.0.30", {"port": 80}),
]  # fmt: skip


def test_service_env_as_the_kubelet_writes_it() -> None:
    env = service_env(SERVICES, "ns")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.96.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.96.0.1"
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.96.0.20"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_PRIMARY_PORT_9121_TCP"] == "tcp://10.96.0.20:9121"
    assert env["DNS_PORT"] == "udp://10.96.0.10:53"
    assert env["DNS_PORT_53_UDP_PROTO"] == "udp"
    assert not any(k.startswith(("HEADLESS_", "ELSEWHERE_")) for k in env)
    # enableServiceLinks: false keeps only the kubernetes Service's.
    assert {k for k in service_env(SERVICES, "ns", False)} == {
        k for k in env if k.startswith("KUBERNETES_")
    }


async def test_service_env_is_last_and_expandable() -> None:
    links = service_env(SERVICES, "ns")
    container = {
        "name": "c",
        "env": [
            {"name": "DNS_SERVICE_HOST", "value": "mine"},
            {"name": "URL", "value": "redis://$(REDIS_PRIMARY_SERVICE_HOST):6379"},
        ],
    }
    env = await container_env(POD, container, lookup, services=links)
    names = [k for k, _ in env]
    assert names[:2] == ["DNS_SERVICE_HOST", "URL"]  # the container's own first
    values = dict(env)
    assert values["DNS_SERVICE_HOST"] == "mine"
    assert values["URL"] == "redis://10.96.0.20:6379"
    assert values["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"


def test_expand_command() -> None:
    env = {"A": "1"}
    assert expand("x $(A) $$(A) $(B)", env) == "x 1 $(A) $(B)"
    assert expand("$(B)", env, {"B": "2"}) == "2"
