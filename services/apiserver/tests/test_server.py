"""The apiserver supervises its long-lived tasks: one that dies, or ends when it should run
for ever, stops the apiserver (fail fast) instead of leaving it half alive."""

from __future__ import annotations

import asyncio

from skiff.apiserver.server import ApiServer, Settings


async def _serve() -> None:
    await asyncio.Event().wait()


async def _crash() -> None:
    await asyncio.sleep(0)
    raise ConnectionError("lost NATS for good")


async def test_a_dead_task_fails_the_apiserver() -> None:
    server = ApiServer(Settings())
    server.failed = asyncio.get_running_loop().create_future()
    server._spawn(_serve(), "http")
    server._spawn(asyncio.sleep(0), "bootstrap", forever=False)  # may end
    await asyncio.sleep(0.01)
    assert not server.failed.done()
    server._spawn(_crash(), "watch-cache")
    exc = await asyncio.wait_for(server.failed, 1)
    assert isinstance(exc, ConnectionError)
    server._stopping = True
    for t in server._tasks:
        t.cancel()
    await asyncio.gather(*server._tasks, return_exceptions=True)


async def test_a_task_that_ends_fails_the_apiserver_but_not_during_stop() -> None:
    server = ApiServer(Settings())
    server.failed = asyncio.get_running_loop().create_future()
    server._spawn(asyncio.sleep(0), "compactor")
    exc = await asyncio.wait_for(server.failed, 1)
    assert "compactor ended" in str(exc)
    quiet = ApiServer(Settings())
    quiet.failed = asyncio.get_running_loop().create_future()
    quiet._stopping = True  # a clean stop ends the http task: not a failure
    quiet._spawn(asyncio.sleep(0), "http")
    await asyncio.gather(*quiet._tasks)
    await asyncio.sleep(0)
    assert not quiet.failed.done()
