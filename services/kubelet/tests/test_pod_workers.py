"""The pod workers on the controller runtime's Reconciler, without containerd: what
``sync`` returns becomes a requeue (0: none), failures are retried with back-off, and
each sync is a ``kubelet.SyncPod`` span."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from skiff.controller.controller import Reconciler
from skiff.controller.fake import FakeApi
from skiff.cri.client import CriError
from skiff.kubelet import pod_workers
from skiff.kubelet.kubelet import Kubelet


async def test_sync_results_become_requeues_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(pod_workers, "_tracer", provider.get_tracer("test"))

    kubelet = Kubelet(
        FakeApi(),  # type: ignore[arg-type]
        object(),  # type: ignore[arg-type]  # sync is replaced: no CRI call is made
        "n1",
        log_root=tmp_path / "logs",
        workers=2,
    )
    assert isinstance(kubelet, Reconciler) and kubelet.informers == [kubelet.pods]
    outcomes: dict[str, Any] = {
        "ns/done/u1": 0.0,
        "ns/later/u2": 0.05,
        "ns/cri/u3": CriError(grpc.StatusCode.UNAVAILABLE, "runtime down"),
        "ns/crash/u4": RuntimeError("bug"),
    }
    seen: list[str] = []

    async def sync(key: str) -> float:
        seen.append(key)
        out = outcomes[key]
        if isinstance(out, Exception):
            raise out
        return out

    monkeypatch.setattr(kubelet, "sync", sync)
    kubelet.pods.synced.set()  # no API to list from
    task = asyncio.create_task(Reconciler.run(kubelet))  # the workers alone
    try:
        for key in outcomes:
            kubelet.queue.add(key)
        await asyncio.sleep(0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert seen.count("ns/done/u1") == 1  # 0: no re-check
    assert kubelet.queue.num_requeues("ns/done/u1") == 0
    assert seen.count("ns/later/u2") >= 2  # re-checked after 50 ms
    for key in ("ns/cri/u3", "ns/crash/u4"):
        assert seen.count(key) > 1 and kubelet.queue.num_requeues(key) > 1  # back-off
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {"kubelet.SyncPod"}
    assert {s.attributes["k8s.pod"] for s in spans if s.attributes} == set(outcomes)


def test_grace_period_zero_is_none_not_unset() -> None:
    from skiff.api.pods import grace_period

    assert grace_period({"spec": {"terminationGracePeriodSeconds": 0}}) == 0
    assert grace_period({"spec": {"terminationGracePeriodSeconds": 5}}) == 5
    assert grace_period({"spec": {}}) == 30
