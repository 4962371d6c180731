"""A test module's cluster and the world the cross-service tests run on it.

``started_cluster`` is the body of a cluster fixture; ``hollow_env`` opens a client and
runs a namespace, hollow nodes, a scheduler, a controller manager and the tests' own
watchers (objects with an informer) on that cluster until the block ends::

    @pytest.fixture(scope="module")
    def cc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
        yield from started_cluster(tmp_path_factory, "controllers")


    @pytest.fixture(scope="module")
    async def env(cc: Cluster) -> AsyncIterator[HollowEnv]:
        async with hollow_env(cc, "ns", nodes=3, prefix="x-", manager=(CONTROLLERS,)) as env:
            yield env
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from cmenv import Managers, until

from cluster import Cluster, start_cluster
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient
from skiff.hollownode.nodes import HollowNodes, NodeShape


def started_cluster(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kw: Any
) -> Iterator[Cluster]:
    """Yield a cluster started in a new folder ``name``; stop it when resumed.

    ``kw`` goes to :func:`cluster.start_cluster` (``apiservers``, ``env``). A fixture of
    any scope: ``yield from started_cluster(tmp_path_factory, "jobs")``.
    """
    c = start_cluster(tmp_path_factory.mktemp(name), **kw)
    try:
        yield c
    finally:
        c.stop()


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """``count`` hollow nodes named ``<prefix><i>``, all of one shape."""

    count: int
    prefix: str
    shape: NodeShape | None = None
    lease_period: float = 10.0


@dataclass(slots=True)
class HollowEnv:
    """What :func:`hollow_env` runs: ``watchers`` in the order of its ``watch``."""

    cluster: Cluster
    client: ApiClient
    managers: Managers
    nodes: list[HollowNodes] = field(default_factory=list)
    watchers: list[Any] = field(default_factory=list)


@contextlib.asynccontextmanager
async def _background(coro: Coroutine[Any, Any, Any], name: str) -> AsyncIterator[asyncio.Task]:
    """Run ``coro`` as a task for the block; cancel it and wait for it at the end.

    A task that had already failed on its own raises its error there.
    """
    task = asyncio.create_task(coro, name=name)
    try:
        yield task
    finally:
        failed = task.done() and not task.cancelled() and task.exception() is not None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if failed:
            task.result()


@contextlib.asynccontextmanager
async def hollow_nodes(
    client: ApiClient,
    count: int,
    prefix: str,
    shape: NodeShape | None = None,
    *,
    lease_period: float = 10.0,
) -> AsyncIterator[HollowNodes]:
    """Run ``count`` hollow nodes named ``<prefix><i>`` until the block ends."""
    nodes = HollowNodes(client, count, prefix=prefix, shape=shape, lease_period=lease_period)
    async with _background(nodes.run(), f"hollow-nodes-{prefix}"):
        yield nodes


def _informer(watcher: Any) -> Informer:
    return watcher if isinstance(watcher, Informer) else watcher.informer


@contextlib.asynccontextmanager
async def hollow_env(
    cluster: Cluster,
    namespace: str | None,
    *,
    nodes: int | Sequence[NodeGroup] = 3,
    prefix: str = "hollow-",
    shape: NodeShape | None = None,
    lease_period: float = 10.0,
    scheduler: bool = True,
    manager: Sequence[str] | None = None,
    manager_env: dict[str, str] | None = None,
    watch: Sequence[Callable[[ApiClient], Any]] = (),
    wait_nodes: bool = True,
) -> AsyncIterator[HollowEnv]:
    """A client on ``cluster`` and, while the block runs, the world the tests need.

    In order: the client; ``namespace`` created (None: none); hollow nodes (``nodes``
    of ``prefix``/``shape``/``lease_period``, or groups of their own) and the informers
    of ``watch`` (each a factory of the client returning an :class:`Informer` or an
    object with an ``informer``) run as tasks; one ``skiff-scheduler`` when
    ``scheduler``; one controller manager with the arguments ``manager`` (None: none;
    ``()``: every controller) and the environment ``manager_env``; the informers
    synced; every node registered when ``wait_nodes``. At the end the controller
    managers (those started later on ``env.managers`` too) are stopped and the tasks
    cancelled; the scheduler lives as long as the cluster.
    """
    if isinstance(nodes, int):
        groups: Sequence[NodeGroup] = [NodeGroup(nodes, prefix, shape, lease_period)]
    else:
        groups = nodes
    async with contextlib.AsyncExitStack() as stack:
        client = await stack.enter_async_context(cluster.client())
        if namespace is not None:
            await client.create("namespaces", {"metadata": {"name": namespace}})
        env = HollowEnv(cluster, client, Managers(cluster))
        tasks = []
        for g in groups:
            hollow = HollowNodes(
                client, g.count, prefix=g.prefix, shape=g.shape, lease_period=g.lease_period
            )
            env.nodes.append(hollow)
            tasks.append(
                await stack.enter_async_context(
                    _background(hollow.run(), f"hollow-nodes-{g.prefix}")
                )
            )
        env.watchers = [make(client) for make in watch]
        informers = [_informer(w) for w in env.watchers]
        for inf in informers:
            await stack.enter_async_context(_background(inf.run(), f"informer-{inf.name}"))
        stack.callback(env.managers.stop)
        if scheduler:
            cluster.start_scheduler()
        if manager is not None:
            env.managers.start(*manager, env=manager_env)
        for inf in informers:
            await inf.wait_synced(timeout=10)
        if wait_nodes:
            want = {name for n in env.nodes for name in n.names}

            async def registered() -> bool:
                for t in tasks:
                    if t.done():
                        t.result()  # a node task that ended: its error, not a timeout
                items = (await client.list("nodes"))["items"]
                return want <= {n["metadata"]["name"] for n in items}

            await until(registered, timeout=30, what=f"{len(want)} hollow nodes registered")
        yield env
