"""Test helpers for controllers: controller-manager processes, a pod tracker, polling."""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cluster import VENV_BIN, Cluster, Proc
from skiff.client.informer import Informer
from skiff.client.rest import ApiClient

LEASE_FLAGS = (
    "--leader-elect-lease-duration=2",
    "--leader-elect-renew-deadline=1.5",
    "--leader-elect-retry-period=0.5",
)


class Managers:
    """skiff-controller-manager processes of one cluster (stopped by pid at the end)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.procs: list[Proc] = []

    def start(self, *extra: str, port: int = 0, env: dict[str, str] | None = None) -> Proc:
        """Start one controller-manager process; ``env`` adds environment variables."""
        index = len(self.procs)
        server = ["--server", self.cluster.url]
        if self.cluster.pki is not None:
            server = ["--kubeconfig", str(self.cluster.kubeconfig())]
        args = [
            str(VENV_BIN / "skiff-controller-manager"),
            *server,
            "--port",
            str(port),
            *LEASE_FLAGS,
            *extra,
        ]
        proc = Proc(
            f"controller-manager-{index}",
            args,
            self.cluster.dir / f"controller-manager-{index}.log",
            dict(os.environ, SKIFF_LOG_LEVEL="info", **(env or {})),
        )
        proc.start()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


class PodTracker:
    """Per controller uid: pods created with its reference, and active pods at every event."""

    def __init__(self, client: ApiClient, namespace: str) -> None:
        self.informer = Informer(client, "pods", namespace)
        self.created: dict[str, set[str]] = defaultdict(set)
        self.active: dict[str, set[str]] = defaultdict(set)
        self.max_active: dict[str, int] = defaultdict(int)
        self.informer.add_handler(self._added, lambda _o, n: self._seen(n), self._deleted)

    @staticmethod
    def _owner(pod: dict[str, Any]) -> str | None:
        for ref in pod["metadata"].get("ownerReferences") or ():
            if ref.get("controller"):
                return ref["uid"]
        return None

    def _added(self, pod: dict[str, Any]) -> None:
        owner = self._owner(pod)
        if owner is not None:
            self.created[owner].add(pod["metadata"]["uid"])
        self._seen(pod)

    def _seen(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        for pods in self.active.values():
            pods.discard(uid)
        owner = self._owner(pod)
        phase = (pod.get("status") or {}).get("phase")
        if owner is None or pod["metadata"].get("deletionTimestamp"):
            return
        if phase in ("Succeeded", "Failed"):
            return
        self.active[owner].add(uid)
        self.max_active[owner] = max(self.max_active[owner], len(self.active[owner]))

    def _deleted(self, pod: dict[str, Any]) -> None:
        for pods in self.active.values():
            pods.discard(pod["metadata"]["uid"])

    def reset_max(self, owner: str) -> None:
        self.max_active[owner] = len(self.active[owner])


async def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    last: Any = None
    while loop.time() < end:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
