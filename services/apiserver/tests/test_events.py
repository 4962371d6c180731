"""Events are one resource in two groups, as in kube: written through events.k8s.io/v1
or core/v1, stored once (etcd under /registry/core/events/), read, listed, selected and
watched through both, each in its own shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.fields import parse_field_selector
from skiff.api.resources import REGISTRY
from skiff.apiserver.store import ListOptions
from skiff.apiserver.store import WriteOptions as Opts
from skiff.apiserver.watchcache import Event

CORE = REGISTRY.core("events")
NEW = REGISTRY.by_path("events.k8s.io", "v1", "events")
NOW = "2026-12-07T10:00:00.000000Z"


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


def new_event(name: str = "e", pod: str = "p") -> dict[str, Any]:
    return {"metadata": {"name": name}, "eventTime": NOW, "reportingController": "skiff.io/x",
            "reportingInstance": "x-1", "action": "Pulling", "reason": "Pulling",
            "note": "pulling the image", "type": "Normal",
            "regarding": {"kind": "Pod", "namespace": "default", "name": pod}}  # fmt: skip


def test_both_groups_share_one_etcd_prefix() -> None:
    assert NEW.etcd_prefix() == CORE.etcd_prefix() == "/registry/core/events/"
    assert REGISTRY.storage_for(NEW) is CORE


async def test_an_event_written_through_one_group_is_read_through_both(
    env: MemoryStore,
) -> None:
    created = await env.store.create(NEW, "default", new_event(), Opts())
    assert created["apiVersion"] == "events.k8s.io/v1" and created["note"] == "pulling the image"
    core = await env.store.get(CORE, "default", "e")
    assert core["apiVersion"] == "v1"
    assert core["message"] == "pulling the image"
    assert core["involvedObject"]["name"] == "p"
    assert core["reportingComponent"] == "skiff.io/x"
    old = {"metadata": {"name": "legacy"}, "involvedObject": {"kind": "Pod", "namespace":
           "default", "name": "q"}, "reason": "Started", "message": "started", "count": 3,
           "source": {"component": "kubelet"}}  # fmt: skip
    await env.store.create(CORE, "default", old, Opts())
    seen = await env.store.get(NEW, "default", "legacy")
    assert seen["note"] == "started" and seen["deprecatedCount"] == 3
    assert seen["regarding"]["name"] == "q"
    assert seen["deprecatedSource"] == {"component": "kubelet"}
    both = await env.store.list(NEW, "default", ListOptions())
    assert sorted(o["metadata"]["name"] for o in both.items) == ["e", "legacy"]
    selected = await env.store.list(
        NEW, "default", ListOptions(field_selector=parse_field_selector("regarding.name=q"))
    )
    assert [o["metadata"]["name"] for o in selected.items] == ["legacy"]


async def test_watches_of_each_group_see_its_own_shape(env: MemoryStore) -> None:
    await env.settle()
    seen: dict[str, list[dict[str, Any]]] = {}
    watches = []
    for info in (CORE, NEW):
        lines = seen.setdefault(info.api_version, [])

        def render(e: Event, lines: list[dict[str, Any]] = lines) -> bytes:
            lines.append(e.obj)
            return e.json_line()

        w, _, _ = await env.store.watch(
            info, "default", ListOptions(), render=render, render_key=("json",)
        )
        watches.append((info, w))
    await env.store.create(NEW, "default", new_event(), Opts())
    for _, w in watches:
        assert await asyncio.wait_for(w.next(2), 3)
    assert seen["v1"][0]["message"] == "pulling the image"
    assert seen["events.k8s.io/v1"][0]["note"] == "pulling the image"
    for info, w in watches:
        env.store.unwatch(info, w)
