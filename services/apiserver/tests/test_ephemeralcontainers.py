"""``pods/ephemeralcontainers`` (``kubectl debug``) on a store over the memory backend:
ephemeral containers are added only through the subresource, never changed or removed,
validated with Kubernetes' messages."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.store import WriteOptions as Opts

PODS = REGISTRY.core("pods")
DEBUGGER = {"name": "debugger", "image": "busybox", "targetContainerName": "app", "stdin": True}
SMP = "application/strategic-merge-patch+json"


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"ns": {}}) as e:
        pod = {"metadata": {"name": "p"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}  # fmt: skip
        await e.store.create(PODS, "ns", pod, Opts())
        yield e


async def add(env: MemoryStore, *containers: dict[str, Any]) -> dict[str, Any]:
    patch = {"spec": {"ephemeralContainers": list(containers)}}
    return await env.store.patch_object(
        PODS, "ns", "p", SMP, patch, Opts(), subresource="ephemeralcontainers"
    )


async def test_debug_containers_are_added_through_the_subresource_only(env: MemoryStore) -> None:
    pod = await add(env, DEBUGGER)
    [ec] = pod["spec"]["ephemeralContainers"]
    assert (ec["name"], ec["targetContainerName"]) == ("debugger", "app")
    # A second one is merged in by name; the main resource cannot drop or change them.
    pod = await add(env, {"name": "second", "image": "busybox"})
    assert sorted(c["name"] for c in pod["spec"]["ephemeralContainers"]) == ["debugger", "second"]
    plain = copy.deepcopy(pod)
    plain["spec"]["ephemeralContainers"] = []
    plain["metadata"]["labels"] = {"x": "y"}
    updated = await env.store.update_object(PODS, "ns", "p", plain, Opts())
    assert len(updated["spec"]["ephemeralContainers"]) == 2
    got = await env.store.get(PODS, "ns", "p", subresource="ephemeralcontainers")
    assert got["metadata"]["labels"] == {"x": "y"}


@pytest.mark.parametrize(
    ("container", "want"),
    [
        ({"name": "app", "image": "busybox"},
         ("spec.ephemeralContainers[0].name", 'Duplicate value: "app"')),
        ({"name": "d", "image": "busybox", "ports": [{"containerPort": 80}]},
         ("spec.ephemeralContainers[0].ports",
          "Forbidden: cannot be set for an Ephemeral Container")),
        ({"name": "d", "image": "busybox", "targetContainerName": "nope"},
         ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"')),
        ({"name": "d"}, ("spec.ephemeralContainers[0].image", "Required value")),
    ],
)  # fmt: skip
async def test_bad_ephemeral_containers(
    env: MemoryStore, container: dict[str, Any], want: tuple[str, str]
) -> None:
    with pytest.raises(ApiError) as e:
        await add(env, container)
    assert e.value.code == 422
    assert any((c.field, c.message) == want for c in e.value.causes), e.value.causes


async def test_existing_ones_may_not_be_changed_or_removed(env: MemoryStore) -> None:
    await add(env, DEBUGGER)
    pod = await env.store.get(PODS, "ns", "p")
    pod["spec"]["ephemeralContainers"][0]["image"] = "alpine"
    with pytest.raises(ApiError) as e:
        await env.store.update_object(
            PODS, "ns", "p", pod, Opts(), subresource="ephemeralcontainers"
        )
    assert 'existing ephemeral containers "debugger" may not be changed' in e.value.message
    pod["spec"]["ephemeralContainers"] = []
    with pytest.raises(ApiError) as e:
        await env.store.update_object(
            PODS, "ns", "p", pod, Opts(), subresource="ephemeralcontainers"
        )
    assert 'existing ephemeral containers "debugger" may not be removed' in e.value.message


async def test_a_new_pod_may_not_bring_them(env: MemoryStore) -> None:
    pod = {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "app", "image": "x"}],
                                               "ephemeralContainers": [DEBUGGER]}}  # fmt: skip
    with pytest.raises(ApiError) as e:
        await env.store.create(PODS, "ns", pod, Opts())
    assert "spec.ephemeralContainers: Forbidden: cannot be set on create" in e.value.message
