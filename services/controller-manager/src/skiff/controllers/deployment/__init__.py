"""The Deployment controller (``pkg/controller/deployment``), cut as Kubernetes cuts it.

A Deployment owns ReplicaSets named ``<deployment>-<pod-template-hash>``, one per pod
template it has had; the hash is added as the ``pod-template-hash`` label to each
ReplicaSet's selector and template, so their pods never overlap. The ReplicaSet whose
template equals the Deployment's (ignoring the hash) is the *new* one; the others are
*old*. A sync, as ``syncDeployment`` does it:

1. claims the ReplicaSets (adopting matching orphans, releasing those that stopped
   matching) through :class:`~skiff.controller.owners.ControllerRefManager`;
2. records ``DeploymentPaused`` / ``DeploymentResumed`` in the Progressing condition;
3. paused, or scaled (``spec.replicas`` differs from a ReplicaSet's
   ``deployment.kubernetes.io/desired-replicas``): scales the ReplicaSets in proportion
   to their sizes, with no rollout;
4. otherwise rolls out: **RollingUpdate** scales the new ReplicaSet up as far as
   ``maxSurge`` allows and the old ones down as far as ``maxUnavailable`` allows
   (unhealthy old replicas first); **Recreate** scales every old ReplicaSet to 0, waits
   until their pods are gone, then creates and scales up the new one;
5. writes status (replicas, updatedReplicas, readyReplicas, availableReplicas,
   unavailableReplicas, observedGeneration, collisionCount) and the Available and
   Progressing conditions, timing out progress after ``progressDeadlineSeconds``; a
   complete rollout deletes the oldest empty ReplicaSets beyond
   ``revisionHistoryLimit``.

Revisions live in the ``deployment.kubernetes.io/revision`` annotation of each
ReplicaSet (and of the Deployment): a new template gets the highest revision plus
one; a rollback to an older template reuses its ReplicaSet and moves it to the top,
keeping its former numbers in ``deployment.kubernetes.io/revision-history``. That is
what ``kubectl rollout history`` and ``kubectl rollout undo`` read.

One deliberate difference from Kubernetes makes the surge and availability bounds
hold at every moment even when the ReplicaSet controller lags a scale: how far the
new ReplicaSet may surge counts each ReplicaSet as ``max(spec.replicas,
status.replicas)``, and how far old ones may shrink counts each ReplicaSet's available
pods as ``min(spec.replicas, status.availableReplicas)``. Kubernetes reads the
specification alone there, so a scale-down its ReplicaSet controller has not carried
out yet counts as done.

Modules: :mod:`.deployment_controller` (the controller: informers, handlers, the sync's
dispatch), :mod:`.sync` (one sync: the new ReplicaSet, scaling, cleanup, status),
:mod:`.rolling` and :mod:`.recreate` (the two strategies), :mod:`.progress` (the
Progressing condition and its deadline), :mod:`.util` (names, revisions, hashes,
replica counts). Conditions are set with :mod:`skiff.api.conditions`.
"""

from skiff.controllers.deployment.deployment_controller import DeploymentController
from skiff.controllers.deployment.progress import (
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    sync_rollout_status,
)
from skiff.controllers.deployment.recreate import rollout_recreate
from skiff.controllers.deployment.rolling import (
    rolling_scale_down_plan,
    rollout_rolling,
    unhealthy_cleanup_plan,
)
from skiff.controllers.deployment.sync import (
    DeploymentSync,
    calculate_status,
    cleanup_candidates,
    proportional_sizes,
)
from skiff.controllers.deployment.util import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    POD_TEMPLATE_HASH,
    REVISION,
    REVISION_HISTORY,
    compute_hash,
    equal_ignore_hash,
    find_active_or_latest,
    max_surge,
    max_unavailable,
    new_rs_new_replicas,
    resolve_fenceposts,
    scaled_value,
    set_new_replica_set_annotations,
)

__all__ = [
    "DESIRED_REPLICAS",
    "MAX_REPLICAS",
    "POD_TEMPLATE_HASH",
    "REVISION",
    "REVISION_HISTORY",
    "DeploymentController",
    "DeploymentSync",
    "calculate_status",
    "cleanup_candidates",
    "compute_hash",
    "deployment_complete",
    "deployment_progressing",
    "deployment_timed_out",
    "equal_ignore_hash",
    "find_active_or_latest",
    "max_surge",
    "max_unavailable",
    "new_rs_new_replicas",
    "proportional_sizes",
    "resolve_fenceposts",
    "rolling_scale_down_plan",
    "rollout_recreate",
    "rollout_rolling",
    "scaled_value",
    "set_new_replica_set_annotations",
    "sync_rollout_status",
    "unhealthy_cleanup_plan",
]
