"""VolumeBinding: a pod's claims must exist, and bound volumes must be reachable from the node.

The part of kube-scheduler's ``plugins/volumebinding`` that local volumes need:

* every ``persistentVolumeClaim`` volume must name an existing claim that is not being
  deleted (else the pod is unschedulable until the claim changes);
* a bound claim's PersistentVolume ``nodeAffinity`` must match the node ("volume node
  affinity conflict"), so a pod whose data lives on one node goes back to that node;
* an unbound claim whose StorageClass is ``WaitForFirstConsumer`` fits any node (the
  volume controller provisions it where the pod lands); any other unbound claim makes the
  pod wait for the binding ("pod has unbound immediate PersistentVolumeClaims").

The claims, volumes and classes come from the service's informers, passed as look-up
callables in the plugin args (``claims``: ``"ns/name"`` → claim, ``volumes`` and
``classes``: name → object); without them the plugin does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from skiff.api.nodeselector import NodeSelectorTerm
from skiff.scheduler.framework import CycleState, Handle, PreFilterResult, Status
from skiff.scheduler.types import NodeInfo, Snapshot

NAME = "VolumeBinding"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
WAIT = "WaitForFirstConsumer"

Lookup = Callable[[str], "dict[str, Any] | None"]


class VolumeBinding:
    """Check a pod's PersistentVolumeClaims in PreFilter, their volumes' affinity in Filter."""

    name = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self._claims: Lookup | None = args.get("claims")
        self._volumes: Lookup | None = args.get("volumes")
        self._classes: Lookup | None = args.get("classes")

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
            claim = self._claims(f"{ns}/{name}")
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
                pv = self._volumes(volume_name)
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
            sc = self._classes(cls) if cls and self._classes is not None else None
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
