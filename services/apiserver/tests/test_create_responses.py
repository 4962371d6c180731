"""Create responses as kube-apiserver writes them: a kind's status struct is there even
when nothing set it, with the fields Go always encodes at their zero values."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator

import pytest
from memstore import MemoryStore, running

from skiff.api.resources import REGISTRY
from skiff.apiserver.store import WriteOptions as Opts

TEMPLATE = {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}  # fmt: skip
SELECTED = {"selector": {"matchLabels": {"a": "b"}}, "template": TEMPLATE}


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


@pytest.mark.parametrize(
    ("group", "plural", "spec", "status"),
    [
        ("apps", "deployments", SELECTED, {}),
        ("apps", "replicasets", SELECTED, {"replicas": 0}),
        ("apps", "daemonsets", SELECTED, {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                                          "desiredNumberScheduled": 0, "numberReady": 0}),
        ("", "services", {"ports": [{"port": 80}]}, {"loadBalancer": {}}),
        ("networking.k8s.io", "ingresses", {"defaultBackend": {"service": {
            "name": "s", "port": {"number": 80}}}}, {"loadBalancer": {}}),
        ("", "configmaps", None, None),
    ],
)  # fmt: skip
async def test_create_answers_with_kubes_zero_status(
    env: MemoryStore, group: str, plural: str, spec: dict | None, status: dict | None
) -> None:
    info = REGISTRY.by_path(group, "v1", plural)
    body: dict = {"metadata": {"name": "x"}}
    if spec is not None:
        body["spec"] = copy.deepcopy(spec)
    created = await env.store.create(info, "default", body, Opts())
    assert created.get("status") == status
