"""VolumeBinding: a pod's claims must exist, and bound volumes must be reachable from the node.

The part of kube-scheduler's ``plugins/volumebinding`` that local volumes need:

* every ``persistentVolumeClaim`` volume must name an existing claim that is not being
  deleted (else the pod is unschedulable until the claim changes);
* a bound claim's PersistentVolume ``nodeAffinity`` must match the node ("volume node
  affinity conflict"), so a pod whose data lives on one node goes back to that node;
* an unbound claim whose StorageClass is ``WaitForFirstConsumer`` fits any node (the
  volume controller provisions it where the pod lands); any other unbound claim makes the
  pod wait for the binding ("pod has unbound immediate PersistentVolumeClaims").

The claims, volumes and classes come from the scheduler's informers, read through the
framework handle's listers (``handle.shared_listers()``); without the claim and volume
listers the plugin does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skiff.api.nodeselector import NodeSelectorTerm
from skiff.scheduler.framework.interface import (
    CycleState,
    Handle,
    Lister,
    PreFilterResult,
    SharedListers,
    Status,
)
from skiff.scheduler.snapshot import Snapshot
from skiff.scheduler.types import NodeInfo

NAME = "VolumeBinding"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
WAIT = "WaitForFirstConsumer"


class VolumeBinding:
    """Check a pod's PersistentVolumeClaims in PreFilter, their volumes' affinity in Filter."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        listers = handle.shared_listers() if handle is not None else SharedListers()
        self._claims: Lister | None = listers.persistent_volume_claims
        self._volumes: Lister | None = listers.persistent_volumes
        self._classes: Lister | None = listers.storage_classes

    def pre_filter(
        self, state: CycleState, pod: dict[str, Any], snapshot: Snapshot
    ) -> tuple[PreFilterResult | None, Status | None]:
        names = [
            v["persistentVolumeClaim"]["claimName"]
            for v in (pod.get("spec") or {}).get("volumes") or []
            if (v.get("persistentVolumeClaim") or {}).get("claimName")
        ]
        if not names or self._claims is None or self._volumes is None:
            return None, Status.skip()
        ns = pod["metadata"].get("namespace") or "default"
        affinities: list[tuple[NodeSelectorTerm, ...]] = []
        for name in names:
            claim = self._claims.get(f"{ns}/{name}")
            if claim is None:
                return None, Status.unresolvable(
                    f'persistentvolumeclaim "{name}" not found', plugin=NAME
                )
            if claim["metadata"].get("deletionTimestamp"):
                return None, Status.unresolvable(
                    f'persistentvolumeclaim "{name}" is being deleted', plugin=NAME
                )
            spec = claim.get("spec") or {}
            if volume_name := spec.get("volumeName"):
                pv = self._volumes.get(volume_name)
                if pv is None:
                    return None, Status.unresolvable(
                        "pvc(s) bound to non-existent pv(s)", plugin=NAME
                    )
                required = ((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required")
                if required:
                    affinities.append(
                        tuple(
                            NodeSelectorTerm.compile(t)
                            for t in required.get("nodeSelectorTerms") or ()
                        )
                    )
                continue
            cls = spec.get("storageClassName") or ""
            sc = self._classes.get(cls) if cls and self._classes is not None else None
            if (sc or {}).get("volumeBindingMode") != WAIT:
                return None, Status.unresolvable(ERR_UNBOUND_IMMEDIATE, plugin=NAME)
        if not affinities:
            return None, Status.skip()
        state.write(NAME, affinities)
        return None, None

    def filter(self, state: CycleState, pod: dict[str, Any], node_info: NodeInfo) -> Status | None:
        for terms in state.get(NAME, ()):
            if not any(t.matches(node_info.labels, node_info.name) for t in terms):
                return Status.unschedulable(ERR_NODE_CONFLICT, plugin=NAME)
        return None
