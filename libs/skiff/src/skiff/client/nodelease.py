"""A node's heartbeat: its Lease in ``kube-node-lease``, renewed with one write per beat."""

from __future__ import annotations

from typing import Any

from skiff.api.errors import ApiError
from skiff.api.timestamps import micro_time

LEASE_NS = "kube-node-lease"
LEASES = "leases.coordination.k8s.io"
LEASE_DURATION = 40


class NodeLease:
    """Renews ``kube-node-lease/<node>``: updates the Lease it holds, re-reads it only when
    that write conflicts (or the Lease is gone), and creates it when missing."""

    def __init__(self, client: Any, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self._lease: dict[str, Any] | None = None

    async def renew(self) -> None:
        if self._lease is not None:
            self._lease["spec"]["renewTime"] = micro_time()
            try:
                self._lease = await self.client.update(LEASES, self._lease, LEASE_NS)
                return
            except ApiError as e:
                if e.code not in (404, 409):
                    raise
        try:
            lease = await self.client.get(LEASES, self.node_name, LEASE_NS)
            lease["spec"]["renewTime"] = micro_time()
            lease["spec"]["holderIdentity"] = self.node_name
            self._lease = await self.client.update(LEASES, lease, LEASE_NS)
        except ApiError as e:
            if e.code != 404:
                raise
            self._lease = await self.client.create(
                LEASES,
                {
                    "metadata": {"name": self.node_name, "namespace": LEASE_NS},
                    "spec": {
                        "holderIdentity": self.node_name,
                        "leaseDurationSeconds": LEASE_DURATION,
                        "renewTime": micro_time(),
                    },
                },
                LEASE_NS,
            )
