"""The informer against a scripted client: list then watch, resuming from the last
resourceVersion, relisting on 410 with deletes for what vanished, bookmarks, indexes,
late handlers, failing handlers and resync. The real apiserver's side is in
``tests/e2e/test_informer.py``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from skiff.api.errors import ApiError, Reason
from skiff.client.informer import Informer

Obj = dict[str, Any]


def cm(name: str, rv: int, ns: str = "default", **labels: str) -> Obj:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels}
    }


class ScriptedClient:
    """``list_all`` answers from ``lists`` in turn; each ``watch`` plays the next script:
    a list of ``(type, obj)`` events, then an ``ApiError`` to raise or None to end the
    stream. With no script left, a watch waits forever."""

    def __init__(self, lists: list[tuple[list[Obj], str]], watches: list[list[Any]]) -> None:
        self.lists = lists
        self.watches = watches
        self.list_calls = 0
        self.watch_rvs: list[str] = []

    async def list_all(self, res: Any, namespace: Any = None, **_: Any) -> tuple[list[Obj], str]:
        items, rv = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return [dict(o) for o in items], rv

    async def watch(
        self, res: Any, namespace: Any = None, *, resource_version: str = "", **_: Any
    ) -> AsyncIterator[tuple[str, Obj]]:
        self.watch_rvs.append(resource_version)
        if not self.watches:
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, Exception):
                raise step
            await asyncio.sleep(0)
            yield step


class Recorder:
    def __init__(self, informer: Informer) -> None:
        self.events: list[tuple[str, str]] = []
        informer.add_handler(
            on_add=lambda o: self.events.append(("add", self._id(o))),
            on_update=lambda old, new: self.events.append(
                ("update", f"{self._id(old)}->{new['metadata']['resourceVersion']}")
            ),
            on_delete=lambda o: self.events.append(("delete", self._id(o))),
        )

    @staticmethod
    def _id(o: Obj) -> str:
        return f"{o['metadata']['name']}@{o['metadata']['resourceVersion']}"


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)


GONE = ApiError(410, Reason.GONE, "too old resource version: 5 (9)")


async def test_list_then_watch_events_and_bookmarks() -> None:
    client = ScriptedClient(
        [([cm("a", 3), cm("b", 4)], "5")],
        [
            [
                ("ADDED", cm("c", 6)),
                ("MODIFIED", cm("a", 7)),
                ("DELETED", cm("b", 8)),
                ("BOOKMARK", {"metadata": {"resourceVersion": "12"}}),
                None,
            ]
        ],
    )
    inf = Informer(client, "configmaps")  # type: ignore[arg-type]
    rec = Recorder(inf)
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: len(client.watch_rvs) == 2)
    finally:
        task.cancel()
    assert rec.events == [
        ("add", "a@3"),
        ("add", "b@4"),
        ("add", "c@6"),
        ("update", "a@3->7"),
        ("delete", "b@8"),
    ]
    assert sorted(inf.store.keys()) == ["default/a", "default/c"]
    # The first watch starts at the list's version; the next one resumes after the
    # bookmark, without a relist.
    assert client.watch_rvs == ["5", "12"] and client.list_calls == 1


async def test_expired_watch_relists_and_reports_what_changed_meanwhile() -> None:
    client = ScriptedClient(
        [
            ([cm("keep", 1), cm("change", 2), cm("vanish", 3)], "5"),
            ([cm("keep", 1), cm("change", 9), cm("new", 10)], "11"),
        ],
        [[GONE]],
    )
    inf = Informer(client, "configmaps")  # type: ignore[arg-type]
    rec = Recorder(inf)
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: len(client.watch_rvs) == 2)
    finally:
        task.cancel()
    assert client.list_calls == 2 and client.watch_rvs == ["5", "11"]
    assert rec.events[3:] == [("update", "change@2->9"), ("add", "new@10"), ("delete", "vanish@3")]
    assert sorted(inf.store.keys()) == ["default/change", "default/keep", "default/new"]


async def test_other_errors_retry_without_relisting() -> None:
    unavailable = ApiError(503, Reason.SERVICE_UNAVAILABLE, "apiserver restarting")
    client = ScriptedClient([([cm("a", 1)], "5")], [[("ADDED", cm("b", 6)), unavailable]])
    inf = Informer(client, "configmaps")  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: len(client.watch_rvs) == 2)
    finally:
        task.cancel()
    assert client.list_calls == 1 and client.watch_rvs == ["5", "6"]


async def test_indexes_follow_updates_and_deletes() -> None:
    client = ScriptedClient(
        [([cm("a", 1, app="web"), cm("b", 2, app="db")], "5")],
        [[("MODIFIED", cm("a", 6, app="db")), ("DELETED", cm("b", 7, app="db"))]],
    )
    inf = Informer(client, "configmaps")  # type: ignore[arg-type]
    inf.store.add_index("app", lambda o: [o["metadata"]["labels"].get("app", "")])
    task = asyncio.create_task(inf.run())
    try:
        await inf.wait_synced(timeout=5)
        assert [o["metadata"]["name"] for o in inf.store.by_index("app", "db")] == ["b"]
        await until(lambda: inf.resource_version == "7")
    finally:
        task.cancel()
    assert [o["metadata"]["name"] for o in inf.store.by_index("app", "db")] == ["a"]
    assert inf.store.by_index("app", "web") == []


async def test_late_handlers_failing_handlers_and_coroutines() -> None:
    client = ScriptedClient([([cm("a", 1), cm("b", 2)], "5")], [])
    inf = Informer(client, "configmaps")  # type: ignore[arg-type]

    def boom(_: Obj) -> None:
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=boom)
    task = asyncio.create_task(inf.run())
    try:
        await inf.wait_synced(timeout=5)
        # A handler added after the first list gets an add for every cached object; the
        # failing one before it changed nothing.
        late = Recorder(inf)
        assert sorted(late.events) == [("add", "a@1"), ("add", "b@2")]
        assert not task.done()

        async def coro(_: Obj) -> None: ...

        with pytest.raises(TypeError, match="plain callables"):
            inf.add_handler(on_add=coro)
    finally:
        task.cancel()


async def test_resync_revisits_every_object() -> None:
    client = ScriptedClient([([cm("a", 1)], "5")], [])
    inf = Informer(client, "configmaps", resync_period=0.01)  # type: ignore[arg-type]
    rec = Recorder(inf)
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: rec.events.count(("update", "a@1->1")) >= 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
