"""``skiffadm init phase mark-control-plane``: as kubeadm, once this node's kubelet has
registered it, label the Node ``node-role.kubernetes.io/control-plane`` (``kubectl get
nodes`` shows the role) and ``node.kubernetes.io/exclude-from-external-load-balancers``,
and taint it ``node-role.kubernetes.io/control-plane:NoSchedule`` so that only pods that
tolerate it (the control plane's own, the node add-ons) run there."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from skiff.api.errors import ApiError
from skiff.client.rest import ApiClient

ROLE = "node-role.kubernetes.io/control-plane"
LABELS = (ROLE, "node.kubernetes.io/exclude-from-external-load-balancers")
TAINT = {"key": ROLE, "effect": "NoSchedule"}


async def mark_control_plane(
    client: ApiClient, node_name: str, *, timeout: float = 240.0
) -> list[str]:
    """Label and taint ``node_name`` (waiting for it to register); kubeadm's lines."""
    end = time.monotonic() + timeout
    while True:
        try:
            node = await client.get("nodes", node_name)
            break
        except ApiError as e:
            if e.code != 404 or time.monotonic() > end:
                raise
            await asyncio.sleep(1.0)
    taints: list[dict[str, Any]] = list((node.get("spec") or {}).get("taints") or [])
    if not any(t.get("key") == ROLE and t.get("effect") == "NoSchedule" for t in taints):
        taints.append(dict(TAINT))
    await client.patch(
        "nodes",
        node_name,
        {"metadata": {"labels": dict.fromkeys(LABELS, "")}, "spec": {"taints": taints}},
    )
    return [
        f"[mark-control-plane] Marking the node {node_name} as control-plane by adding the "
        f"labels: [{' '.join(LABELS)}]",
        f"[mark-control-plane] Marking the node {node_name} as control-plane by adding the "
        f"taints [{ROLE}:NoSchedule]",
    ]
