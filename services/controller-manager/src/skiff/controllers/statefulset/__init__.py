"""The StatefulSet controller (``pkg/controller/statefulset``).

A StatefulSet of ``replicas`` runs pods ``<set>-0`` … ``<set>-<replicas-1>``, each with
hostname = its name and subdomain = ``spec.serviceName``, and one
PersistentVolumeClaim ``<template>-<set>-<ordinal>`` per ``volumeClaimTemplates``
entry, created before the pod and never deleted by scale-down or pod deletion (unless
``persistentVolumeClaimRetentionPolicy`` says Delete: the claims then get an
ownerReference that lets the garbage collector remove them with the set, or with the
pod when it is scaled away).

``OrderedReady`` creates ordinals in increasing order, each only once every lower one
is Running and Ready, and removes them from the highest down, one at a time;
``Parallel`` creates and deletes without waiting. Failed (or Succeeded) pods are
deleted and created again under the same name, with the same claims.

Templates are recorded in ControllerRevisions (:mod:`skiff.controllers.history`); a pod's
``controller-revision-hash`` label names its revision. ``RollingUpdate`` replaces
pods from the highest ordinal down to ``partition``, one at a time, each waiting for
its replacement to be Ready; ordinals below the partition keep the current revision.
``OnDelete`` only gives the new revision to pods created again after a deletion.

Pod creations and deletions are recorded in
:class:`~skiff.controller.expectations.Expectations`, so a slow cache never makes the
controller act twice on the same observation.

Modules: :mod:`.stateful_set` (the controller: informers, claiming pods, the sync),
:mod:`.stateful_set_control` (the ordered or parallel update algorithm, revisions,
status), :mod:`.stateful_pod_control` (creating and deleting pods and their claims,
restoring a pod's identity), :mod:`.utils` (names, ordinals, identity, the pod and
claims of an ordinal, the claims' owners).
"""

from skiff.controllers.statefulset.stateful_pod_control import StatefulPodControl
from skiff.controllers.statefulset.stateful_set import StatefulSetController
from skiff.controllers.statefulset.stateful_set_control import split_replicas
from skiff.controllers.statefulset.utils import (
    DELETE,
    ON_DELETE,
    PARALLEL,
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    RETAIN,
    REVISION_LABEL,
    claim_name,
    claim_owner_refs,
    claims_for,
    identity_labels,
    identity_matches,
    is_finished,
    is_member,
    is_running_and_available,
    is_running_and_ready,
    is_terminating,
    new_pod,
    ordinal_of,
    parent_and_ordinal,
    pod_name,
    replicas_of,
    retention_policy,
    revision_of,
    start_ordinal,
    storage_matches,
    storage_volumes,
)

__all__ = [
    "DELETE",
    "ON_DELETE",
    "PARALLEL",
    "POD_INDEX_LABEL",
    "POD_NAME_LABEL",
    "RETAIN",
    "REVISION_LABEL",
    "StatefulPodControl",
    "StatefulSetController",
    "claim_name",
    "claim_owner_refs",
    "claims_for",
    "identity_labels",
    "identity_matches",
    "is_finished",
    "is_member",
    "is_running_and_available",
    "is_running_and_ready",
    "is_terminating",
    "new_pod",
    "ordinal_of",
    "parent_and_ordinal",
    "pod_name",
    "replicas_of",
    "retention_policy",
    "revision_of",
    "split_replicas",
    "start_ordinal",
    "storage_matches",
    "storage_volumes",
]
