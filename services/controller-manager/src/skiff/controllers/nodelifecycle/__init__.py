"""The node lifecycle and taint eviction controllers.

``node-lifecycle-controller`` (``pkg/controller/nodelifecycle``) watches every Node and
its Lease in ``kube-node-lease``. A node is alive while its kubelet renews the Lease
or posts a new Ready heartbeat; the controller notes *its own* clock when it sees
either change, so clock skew between machines does not matter and a restarted
controller gives every node a fresh grace period. A node silent for longer than
the grace period gets Ready, MemoryPressure, DiskPressure and PIDPressure set to
``Unknown`` (reason ``NodeStatusUnknown``, "Kubelet stopped posting node status.").

From the node's conditions it keeps the taints Kubernetes keeps:

- ``NoSchedule`` taints for conditions (``not-ready`` for Ready=False, ``unreachable``
  for Ready=Unknown, ``memory-pressure``, ``disk-pressure``, ``pid-pressure``,
  ``network-unavailable``) and ``unschedulable`` for a cordoned node, added and
  removed at once;
- ``node.kubernetes.io/not-ready:NoExecute`` or ``unreachable:NoExecute``, added at
  ``--node-eviction-rate`` nodes per second per zone (0.1: one node every 10 s),
  slowed to ``--secondary-node-eviction-rate`` when more than 55 % of a large zone is
  unhealthy (stopped in a small one), and never added while every node of every zone is
  not ready (the controller is then more likely cut off than the nodes); removed as soon
  as the node is Ready again.

Pods on a node that became unreachable are marked Ready=False (``MarkPodsNotReady``),
so Services stop sending them traffic.

``taint-eviction-controller`` (``pkg/controller/tainteviction``) deletes the pods on a
node with ``NoExecute`` taints they do not tolerate at once, and those that tolerate
them for ``tolerationSeconds`` when that time is up (counted from the taint's
``timeAdded``, or from when the pod was scheduled if later), after marking them with
a ``DisruptionTarget`` condition (``DeletionByTaintManager``). Owners such as
ReplicaSets then replace them elsewhere.

Settings are a :class:`LifecycleSettings`, which the controller manager fills from its
flags (``--node-monitor-grace-period`` 40s, ``--node-startup-grace-period`` 60s,
``--node-eviction-rate`` 0.1, ``--secondary-node-eviction-rate`` 0.01,
``--large-cluster-size-threshold`` 50, ``--unhealthy-zone-threshold`` 0.55,
``--skiff-pod-eviction-qps`` 20; see ``__main__``).

Modules: :mod:`.node_lifecycle_controller` (health monitoring, conditions, condition
taints, zone states and eviction rates, MarkPodsNotReady), :mod:`.taint_eviction` (the
NoExecute taint manager), :mod:`.config` (the settings),
:mod:`.util` (conditions, taints, the pods-by-node index, the rate limiter).
"""

from skiff.api.timestamps import parse_duration
from skiff.controllers.nodelifecycle.config import LifecycleSettings
from skiff.controllers.nodelifecycle.node_lifecycle_controller import (
    CONDITION_TAINTS,
    EXCLUDE_DISRUPTION_LABEL,
    LEASES,
    MARK_PODS_CONCURRENCY,
    NODE_LEASE_NAMESPACE,
    REGION_LABEL,
    STALE_RETRY_SECONDS,
    UNKNOWN_CONDITIONS,
    ZONE_LABEL,
    NodeLifecycleController,
    ZoneState,
    compute_zone_state,
    ready_status,
    zone_key,
)
from skiff.controllers.nodelifecycle.taint_eviction import (
    DISRUPTION_TARGET,
    TaintEvictionController,
)
from skiff.controllers.nodelifecycle.util import (
    NO_EXECUTE,
    NO_SCHEDULE,
    POD_NODE_INDEX,
    RateLimiter,
    condition,
    no_execute_taints,
    pod_node_index,
    taints_of,
)

__all__ = [
    "CONDITION_TAINTS",
    "DISRUPTION_TARGET",
    "EXCLUDE_DISRUPTION_LABEL",
    "LEASES",
    "MARK_PODS_CONCURRENCY",
    "NODE_LEASE_NAMESPACE",
    "NO_EXECUTE",
    "NO_SCHEDULE",
    "POD_NODE_INDEX",
    "REGION_LABEL",
    "STALE_RETRY_SECONDS",
    "UNKNOWN_CONDITIONS",
    "ZONE_LABEL",
    "LifecycleSettings",
    "NodeLifecycleController",
    "RateLimiter",
    "TaintEvictionController",
    "ZoneState",
    "compute_zone_state",
    "condition",
    "no_execute_taints",
    "parse_duration",
    "pod_node_index",
    "ready_status",
    "taints_of",
    "zone_key",
]
