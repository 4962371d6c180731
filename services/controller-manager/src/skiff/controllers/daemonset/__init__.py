"""The DaemonSet controller (``pkg/controller/daemon``).

A DaemonSet runs one pod on every node its pods may run on: the template's
nodeSelector and required node affinity must match the node, and every NoSchedule or
NoExecute taint must be tolerated. Daemon pods get the tolerations Kubernetes gives
them (not-ready and unreachable NoExecute, the node-pressure and unschedulable
NoSchedule taints, network-unavailable for hostNetwork pods), so node problems do not
evict them. A pod is pinned to its node with a required node affinity on the node's
``metadata.name`` (``matchFields``) and the scheduler binds it, as Kubernetes does.

Nodes joining get a pod at once (node events requeue every DaemonSet); pods on nodes
that stop matching are deleted, and so are pods bound to nodes that no longer exist
(force-deleted: no kubelet is left to finish them). Failed daemon pods are deleted
with a per-node back-off and replaced.

Templates are recorded in ControllerRevisions named ``<ds>-<hash>``; pods carry
``controller-revision-hash: <hash>``. ``RollingUpdate`` replaces out-of-date pods while
at most ``maxUnavailable`` of the desired pods are unavailable, or with ``maxSurge``
starts the new pod beside the old one and deletes the old one once the new one is
available; ``OnDelete`` only updates pods that are deleted.

Modules: :mod:`.daemon_controller` (the controller: informers, handlers, the sync,
``manage`` and the status), :mod:`.update` (the revision history and the rolling
update), :mod:`.util` (node eligibility, tolerations, pinning a pod to its node,
surge and unavailability values).
"""

from skiff.controllers.daemonset.daemon_controller import (
    BURST_REPLICAS,
    FAILED_BACKOFF_INITIAL,
    FAILED_BACKOFF_MAX,
    TEMPLATE_GENERATION_ANNOTATION,
    TEMPLATE_GENERATION_LABEL,
    DaemonSetController,
)
from skiff.controllers.daemonset.util import (
    NO_EXECUTE,
    NO_SCHEDULE,
    add_daemon_tolerations,
    daemon_tolerations,
    node_affinity_matches,
    pin_to_node,
    pod_hash,
    scaled_value,
    should_run,
    target_node,
)

__all__ = [
    "BURST_REPLICAS",
    "FAILED_BACKOFF_INITIAL",
    "FAILED_BACKOFF_MAX",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "TEMPLATE_GENERATION_ANNOTATION",
    "TEMPLATE_GENERATION_LABEL",
    "DaemonSetController",
    "add_daemon_tolerations",
    "daemon_tolerations",
    "node_affinity_matches",
    "pin_to_node",
    "pod_hash",
    "scaled_value",
    "should_run",
    "target_node",
]
