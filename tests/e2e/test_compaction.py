"""The apiserver compacts etcd history; a continue token past compaction is a 410."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from cluster import Cluster, start_cluster


@pytest.fixture(scope="module")
def compacting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(
        tmp_path_factory.mktemp("compacting"),
        env={"SKIFF_COMPACTION_INTERVAL": "0.5", "SKIFF_COMPACTION_KEEP": "5"},
    )
    try:
        yield c
    finally:
        c.stop()


def test_continue_after_compaction_is_gone(compacting: Cluster) -> None:
    with httpx.Client(base_url=compacting.url, timeout=10) as http:
        http.post("/api/v1/namespaces", json={"metadata": {"name": "c"}})
        for i in range(20):
            r = http.post("/api/v1/namespaces/c/configmaps", json={"metadata": {"name": f"m{i}"}})
            assert r.status_code == 201
        page = http.get("/api/v1/namespaces/c/configmaps", params={"limit": "5"}).json()
        token = page["metadata"]["continue"]
        # Writes move etcd on; the compactor then drops the revision the token pins.
        for i in range(20):
            http.post("/api/v1/namespaces/c/configmaps", json={"metadata": {"name": f"n{i}"}})
        deadline = time.monotonic() + 15
        while True:
            r = http.get(
                "/api/v1/namespaces/c/configmaps", params={"limit": "5", "continue": token}
            )
            if r.status_code == 410 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert r.status_code == 410, r.text
        body = r.json()
        assert body["reason"] == "Expired" and "continue parameter is too old" in body["message"]
        # The current state is intact and consistent.
        items = http.get("/api/v1/namespaces/c/configmaps").json()["items"]
        assert len(items) == 40
