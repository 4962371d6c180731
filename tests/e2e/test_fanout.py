"""Watch fan-out through NATS: two apiservers agree, and faults lose nothing.

Watchers behave like informers: list, watch from the list's resourceVersion,
re-watch from the last seen resourceVersion when a stream breaks, relist on 410.
Every watcher's events are compared with etcd's own history.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest

from cluster import Cluster, start_cluster, wait_until
from skiff.apiserver.storage import EventType
from skiff.apiserver.storage.etcd import EtcdBackend

NS = "fanout"
PREFIX = f"/registry/core/configmaps/{NS}/"


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("fanout"), apiservers=2)
    try:
        import urllib.request

        req = urllib.request.Request(
            f"{c.url}/api/v1/namespaces",
            method="POST",
            data=orjson.dumps({"metadata": {"name": NS}}),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=10).read()
        yield c
    finally:
        c.stop()


@dataclass
class Watcher:
    """An informer-like watcher of configmaps in NS; records (rv, type, name)."""

    name: str
    urls: list[str]
    events: list[tuple[int, str, str]] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)  # list revisions (start of each segment)
    relists: int = 0
    reconnects: int = 0
    rv: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=15)) as http:
            await self._list(http)
            while not stop.is_set():
                url = self.urls[0]
                try:
                    params = {
                        "watch": "1",
                        "resourceVersion": str(self.rv),
                        "allowWatchBookmarks": "true",
                        "timeoutSeconds": "30",
                    }
                    async with http.stream(
                        "GET", f"{url}/api/v1/namespaces/{NS}/configmaps", params=params
                    ) as resp:
                        if resp.status_code != 200:
                            raise httpx.TransportError(f"status {resp.status_code}")
                        async for line in resp.aiter_lines():
                            if not line:
                                continue
                            ev = orjson.loads(line)
                            obj = ev["object"]
                            if ev["type"] == "ERROR":
                                if obj.get("code") == 410:
                                    await self._list(http)
                                    break
                                raise httpx.TransportError(str(obj))
                            rv = int(obj["metadata"]["resourceVersion"])
                            if ev["type"] != "BOOKMARK":
                                self.events.append((rv, ev["type"], obj["metadata"]["name"]))
                            self.rv = rv
                except (httpx.HTTPError, OSError):
                    self.reconnects += 1
                    self.urls.append(self.urls.pop(0))  # try the other apiserver next
                    await asyncio.sleep(0.2)

    async def _list(self, http: httpx.AsyncClient) -> None:
        while True:
            try:
                r = await http.get(f"{self.urls[0]}/api/v1/namespaces/{NS}/configmaps")
                if r.status_code == 200:
                    self.rv = int(r.json()["metadata"]["resourceVersion"])
                    self.segments.append(self.rv)
                    self.relists += 1
                    return
            except httpx.HTTPError:
                pass
            self.urls.append(self.urls.pop(0))
            await asyncio.sleep(0.2)


async def writer(urls: list[str], stop: asyncio.Event, acked: list[int]) -> None:
    """Create, update and delete configmaps, on whichever apiserver answers."""
    rng = random.Random(7)
    names: list[str] = []
    i = 0
    async with httpx.AsyncClient(timeout=5) as http:
        while not stop.is_set():
            url = urls[i % len(urls)]
            base = f"{url}/api/v1/namespaces/{NS}/configmaps"
            try:
                op = rng.random()
                if op < 0.5 or len(names) < 3:
                    name = f"cm-{i}"
                    r = await http.post(
                        base, json={"metadata": {"name": name}, "data": {"i": str(i)}}
                    )
                    if r.status_code == 201:
                        names.append(name)
                elif op < 0.85:
                    name = rng.choice(names)
                    r = await http.patch(
                        f"{base}/{name}",
                        json={"data": {"i": str(i)}},
                        headers={"Content-Type": "application/merge-patch+json"},
                    )
                else:
                    name = names.pop(rng.randrange(len(names)))
                    r = await http.delete(f"{base}/{name}")
                if r.status_code in (200, 201):
                    acked.append(int(r.json()["metadata"]["resourceVersion"]))
            except httpx.HTTPError:
                pass
            i += 1
            await asyncio.sleep(0.01)


async def etcd_history(endpoint: str, after: int, until: int) -> list[tuple[int, str, str]]:
    """(revision, type, name) of every change under PREFIX in (after, until]."""
    out: list[tuple[int, str, str]] = []
    async with EtcdBackend(endpoint) as etcd:
        if until <= after:
            return out
        async for batch in etcd.watch(PREFIX, after + 1):
            for e in batch:
                if e.revision > until:
                    return out
                kind = (
                    "DELETED"
                    if e.type is EventType.DELETE
                    else ("ADDED" if e.created else "MODIFIED")
                )
                out.append((e.revision, kind, e.key.rsplit("/", 1)[1]))
            # etcd sends no more events past the last write; stop once caught up.
            if batch[-1].revision >= until:
                return out
    return out


def check_against_history(w: Watcher, history: list[tuple[int, str, str]]) -> None:
    revs = [rv for rv, _, _ in w.events]
    assert revs == sorted(set(revs)), f"{w.name}: events duplicated or out of order"
    first = w.segments[0]
    expected = [h for h in history if h[0] > first]
    if w.relists == 1:
        assert w.events == expected, f"{w.name}: events differ from etcd history"
    else:
        # After a 410 and relist, only changes after the new list revision are owed.
        last_list = w.segments[-1]
        tail_seen = [e for e in w.events if e[0] > last_list]
        assert tail_seen == [h for h in history if h[0] > last_list], w.name


async def _run_scenario(two: Cluster, fault) -> list[Watcher]:  # type: ignore[no-untyped-def]
    urls = [f"http://127.0.0.1:{p}" for p in two.api_ports]
    stop = asyncio.Event()
    watchers = [Watcher(f"w{i}", [urls[i % 2], urls[(i + 1) % 2]]) for i in range(4)]
    tasks = [asyncio.create_task(w.run(stop)) for w in watchers]
    await asyncio.sleep(1.0)
    acked: list[int] = []
    wstop = asyncio.Event()
    wtask = asyncio.create_task(writer(list(urls), wstop, acked))
    await asyncio.sleep(2.0)
    await fault()
    await asyncio.sleep(3.0)
    wstop.set()
    await wtask
    async with EtcdBackend(two.etcd_endpoint) as etcd:
        final = await etcd.current_revision()
    # Every watcher catches up to the final revision (bookmarks carry it when idle).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 40
    while loop.time() < deadline and any(w.rv < final for w in watchers):
        await asyncio.sleep(0.2)
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert acked, "the writer got no write acknowledged"
    history = await etcd_history(two.etcd_endpoint, min(w.segments[0] for w in watchers), final)
    acked_set = {h[0] for h in history}
    assert set(acked) <= acked_set, "an acknowledged write is missing from etcd"
    for w in watchers:
        assert w.rv >= final, f"{w.name} stopped at {w.rv}, etcd is at {final}"
        assert len(w.events) > 50, f"{w.name} saw only {len(w.events)} events"
        check_against_history(w, history)
    return watchers


async def test_two_apiservers_serve_same_events(two: Cluster) -> None:
    async def nothing() -> None:
        return None

    watchers = await _run_scenario(two, nothing)
    assert watchers[0].events == watchers[1].events  # one per apiserver


async def _leader_index(two: Cluster) -> int:
    async with EtcdBackend(two.etcd_endpoint) as etcd:
        kv = await etcd.get("/registry/skiff.io/leader/event-pump")
    ident = kv.value.decode() if kv else ""
    pid = int(ident.rsplit("-", 1)[1])
    for i, p in enumerate(two.apiservers):
        if p.popen is not None and p.popen.pid == pid:
            return i
    raise AssertionError(f"pump leader {ident} is not one of our apiservers")


async def test_kill_pump_leader(two: Cluster) -> None:
    async def fault() -> None:
        i = await _leader_index(two)
        two.apiservers[i].kill(signal.SIGKILL)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(two.start_apiserver, i)

    watchers = await _run_scenario(two, fault)
    assert any(w.reconnects for w in watchers), "no watcher noticed the apiserver dying"


async def test_kill_nats(two: Cluster) -> None:
    async def fault() -> None:
        assert two.nats is not None
        two.nats.kill(signal.SIGKILL)
        await asyncio.sleep(1.0)
        two.start_nats()

    await _run_scenario(two, fault)


async def test_kill_apiserver_not_leader(two: Cluster) -> None:
    async def fault() -> None:
        i = 1 - await _leader_index(two)
        two.apiservers[i].kill(signal.SIGKILL)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(two.start_apiserver, i)

    await _run_scenario(two, fault)


def test_apiservers_ready_after_faults(two: Cluster) -> None:
    for port in two.api_ports:
        wait_until(
            lambda p=port: httpx.get(f"http://127.0.0.1:{p}/readyz").status_code == 200,
            what="readyz",
        )
