"""Publishing DNS servers as kube-dns: each renews its heartbeat; a server that stopped
renewing (killed) is taken out by the others."""

from __future__ import annotations

import time

from skiff.api.timestamps import parse_time, rfc3339
from skiff.controller.fake import FakeApi
from skiff.dns.publish import HEARTBEAT, _remove_stale, endpoint_slice, keep_published


async def test_stale_servers_are_removed_by_the_live_ones() -> None:
    api = FakeApi()
    for name, age in (("kube-dns-a", 2), ("kube-dns-dead", 60), ("kube-dns-me", 90)):
        es = endpoint_slice("10.0.0.1", 1053, name)
        es["metadata"]["annotations"] = {HEARTBEAT: rfc3339(time.time() - age)}
        await api.create("endpointslices", es, "kube-system")
    await _remove_stale(api, "kube-dns-me", stale_after=15)  # type: ignore[arg-type]
    assert sorted(api.keys("endpointslices")) == [
        "kube-system/kube-dns-a",
        "kube-system/kube-dns-me",
    ]


async def test_keep_published_writes_service_and_heartbeat() -> None:
    import asyncio
    import contextlib

    api = FakeApi()
    task = asyncio.create_task(
        keep_published(api, "10.0.0.5", 1053, "10.96.0.10", "kube-dns-x", period=0.01)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    svc = await api.get("services", "kube-dns", "kube-system")
    assert svc["spec"]["clusterIP"] == "10.96.0.10"
    es = await api.get("endpointslices", "kube-dns-x", "kube-system")
    assert es["endpoints"][0]["addresses"] == ["10.0.0.5"]
    beat = parse_time(es["metadata"]["annotations"][HEARTBEAT])
    assert beat is not None and time.time() - beat < 5
