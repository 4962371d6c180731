"""What the parts of one pod sync share: the runtime labels that tie sandboxes and
containers to their pod, :class:`PodContext` (what a sync learned about the pod, for its
actions and its status), and the small helpers they share (``pod_ref``, the restart
and pull back-off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from skiff.cri.client import pb

# Labels on sandboxes and containers, as kuberuntime's labels.go.
POD_UID = "io.kubernetes.pod.uid"
POD_NAME = "io.kubernetes.pod.name"
POD_NS = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"

BACKOFF_INITIAL, BACKOFF_MAX = 10.0, 300.0


def backoff_delay(restarts: int) -> float:
    """Delay before restart number ``restarts + 1``: 0, 10 s, 20 s, … up to 5 min."""
    if restarts <= 0:
        return 0.0
    return min(BACKOFF_INITIAL * 2 ** (restarts - 1), BACKOFF_MAX)


def pod_ref(pod: dict[str, Any]) -> str:
    """``name_namespace(uid)``, as the kubelet names pods in messages."""
    m = pod["metadata"]
    return f"{m['name']}_{m['namespace']}({m['uid']})"


@dataclass
class PodContext:
    """What one sync learned about a pod's containers, for its actions and its status."""

    pod: dict[str, Any]
    sandbox_id: str = ""
    sandbox_config: pb.PodSandboxConfig | None = None
    pod_ip: str = ""
    history: dict[str, list[pb.Container]] = field(default_factory=dict)
    statuses: dict[str, pb.ContainerStatus] = field(default_factory=dict)
    waiting: dict[str, tuple[str, str]] = field(default_factory=dict)
    init_done: bool = False
    init_failed: bool = False
    requeue: float = 0.0

    def after(self, seconds: float) -> None:
        """Ask for a re-sync in ``seconds`` (the soonest request wins)."""
        seconds = max(seconds, 0.05)
        self.requeue = seconds if not self.requeue else min(self.requeue, seconds)
