"""One trace follows a write from the REST request through etcd and NATS to a watcher.

Spans are received over OTLP/gRPC by an in-process collector (``otlp_sink``), exactly as
a real collector (Jaeger, the OpenTelemetry Collector) would receive them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest

from cluster import Cluster, start_cluster
from otlp_sink import Collector, grpc_server


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Collector]]:
    collector = Collector()
    server, port = grpc_server(collector, "127.0.0.1:0")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    c = start_cluster(tmp_path_factory.mktemp("traced"), env=env)
    c.start_scheduler(env={**env, "OTEL_SERVICE_NAME": "skiff-scheduler"})
    try:
        yield c, collector
    finally:
        c.stop()
        server.stop(0)


def test_trace_from_request_to_watch_delivery(traced: tuple[Cluster, Collector]) -> None:
    cluster, collector = traced
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    client_span = "00f067aa0ba902b7"
    with httpx.Client(base_url=cluster.url, timeout=10) as http:
        http.post("/api/v1/namespaces", json={"metadata": {"name": "tr"}})
        rv = http.get("/api/v1/namespaces/tr/configmaps").json()["metadata"]["resourceVersion"]
        got: list[dict] = []

        def watch() -> None:
            with (
                httpx.Client(base_url=cluster.url, timeout=10) as w,
                w.stream(
                    "GET",
                    "/api/v1/namespaces/tr/configmaps",
                    params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "5"},
                ) as s,
            ):
                for line in s.iter_lines():
                    if line:
                        got.append(orjson.loads(line))
                        return

        t = threading.Thread(target=watch)
        t.start()
        time.sleep(0.5)
        r = http.post(
            "/api/v1/namespaces/tr/configmaps",
            json={"metadata": {"name": "traced"}},
            headers={"traceparent": f"00-{trace_id}-{client_span}-01"},
        )
        assert r.status_code == 201
        t.join(10)
    assert got and got[0]["object"]["metadata"]["name"] == "traced"

    wanted = {
        "POST /api/v1/namespaces/tr/configmaps",
        "store.create",
        "etcd.txn.create",
        "nats.publish",
        "watchcache.apply",
        "watch.deliver",
    }
    deadline = time.monotonic() + 15
    spans: dict[str, object] = {}
    while time.monotonic() < deadline:
        with collector.lock:
            spans = {s.name: s for _, s in collector.spans if s.trace_id.hex() == trace_id}
        if wanted <= spans.keys():
            break
        time.sleep(0.2)
    assert wanted <= spans.keys(), sorted(spans)

    def parent(name: str) -> str:
        return spans[name].parent_span_id.hex()  # type: ignore[attr-defined]

    def sid(name: str) -> str:
        return spans[name].span_id.hex()  # type: ignore[attr-defined]

    request = "POST /api/v1/namespaces/tr/configmaps"
    assert parent(request) == client_span
    assert parent("store.create") == sid(request)
    assert parent("etcd.txn.create") == sid("store.create")
    assert parent("nats.publish") == sid("store.create")
    assert parent("watchcache.apply") == sid("nats.publish")
    assert parent("watch.deliver") == sid("watchcache.apply")


def test_scheduling_attempt_links_to_pod_creation(traced: tuple[Cluster, Collector]) -> None:
    cluster, collector = traced
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    with httpx.Client(base_url=cluster.url, timeout=10) as http:
        # Wait until the scheduler leads (and so watches): a pod it only lists carries no trace.
        lease = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kube-scheduler"
        deadline = time.monotonic() + 30
        while http.get(lease).status_code != 200:
            assert time.monotonic() < deadline, "the scheduler never took its lease"
            time.sleep(0.2)
        http.post("/api/v1/namespaces", json={"metadata": {"name": "trs"}})
        r = http.post(
            "/api/v1/namespaces/trs/pods",
            json={
                "metadata": {"name": "linked"},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
            headers={"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"},
        )
        assert r.status_code == 201
    deadline = time.monotonic() + 20
    linked = []
    while time.monotonic() < deadline and not linked:
        with collector.lock:
            linked = [
                s
                for svc, s in collector.spans
                if svc == "skiff-scheduler"
                and s.name == "schedule.attempt"
                and any(link.trace_id.hex() == trace_id for link in s.links)
            ]
        time.sleep(0.2)
    # No node exists here, so the attempt fails; it is still linked to the pod's creation.
    with collector.lock:
        seen = sorted(
            {
                (s.name, tuple(lk.trace_id.hex() for lk in s.links))
                for svc, s in collector.spans
                if svc == "skiff-scheduler"
            }
        )
    assert linked, f"no scheduling attempt linked to the pod's creation trace: {seen}"
