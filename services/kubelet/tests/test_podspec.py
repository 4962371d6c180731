"""Pod spec → CRI settings: environment sources and Linux resources."""

from __future__ import annotations

import base64

import pytest

from skiff.api.errors import not_found
from skiff.kubelet.podspec import ConfigError, container_env, linux_resources

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
