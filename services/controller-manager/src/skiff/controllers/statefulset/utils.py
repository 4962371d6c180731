"""A StatefulSet's pods and claims as pure functions (``stateful_set_utils.go``).

Identity: the set and ordinal in a pod's name, the ``<set>-<ordinal>`` pod names and
``<template>-<set>-<ordinal>`` claim names, the identity labels
(``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index``) and the
revision label. The pod of an ordinal from a revision's template (``newStatefulSetPod``:
hostname, subdomain, a volume per claim template), the claims of an ordinal, the claims'
owner references under ``persistentVolumeClaimRetentionPolicy``, and the pod states the
update algorithm asks about.
"""

from __future__ import annotations

import re

from skiff.client.rest import Obj
from skiff.controller.controller import writable
from skiff.controller.owners import new_controller_ref
from skiff.controller.podcontrol import pod_from_template

from ..history import CONTROLLER_REVISION_HASH_LABEL
from ..pods import available_at, is_ready

SET_API_VERSION, SET_KIND = "apps/v1", "StatefulSet"
"""``controllerKind``: what the owner references of a set's pods and claims name."""
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
REVISION_LABEL = CONTROLLER_REVISION_HASH_LABEL
"""``apps.StatefulSetRevisionLabel``: the name of the pod's ControllerRevision."""
PARALLEL = "Parallel"
ON_DELETE = "OnDelete"
RETAIN = "Retain"
DELETE = "Delete"
_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")


# -- identity ------------------------------------------------------------------------------


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """The set name and ordinal in a pod's name (``("", -1)`` when it has none)."""
    m = _ORDINAL_RE.match(pod["metadata"].get("name", ""))
    if m is None:
        return "", -1
    return m.group(1), int(m.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def pod_name(set_name: str, ordinal: int) -> str:
    return f"{set_name}-{ordinal}"


def claim_name(template_name: str, set_name: str, ordinal: int) -> str:
    """``<template>-<set>-<ordinal>``: the claim of one ordinal."""
    return f"{template_name}-{set_name}-{ordinal}"


def is_member(sts: Obj, pod: Obj) -> bool:
    """Whether the pod's name makes it one of the set's (``isMemberOf``)."""
    parent, ordinal = parent_and_ordinal(pod)
    return ordinal >= 0 and parent == sts["metadata"]["name"]


def revision_of(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(REVISION_LABEL, "")


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    """Failed or Succeeded: the pod is deleted and created again."""
    return (pod.get("status") or {}).get("phase") in ("Failed", "Succeeded")


def is_running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod)


def is_running_and_available(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    if (pod.get("status") or {}).get("phase") != "Running":
        return False
    at = available_at(pod, min_ready_seconds)
    return at is not None and at <= now


def spec_of(sts: Obj) -> Obj:
    return sts.get("spec") or {}


def replicas_of(sts: Obj) -> int:
    return int(spec_of(sts).get("replicas", 1) or 0)


def start_ordinal(sts: Obj) -> int:
    return int((spec_of(sts).get("ordinals") or {}).get("start") or 0)


def retention_policy(sts: Obj) -> tuple[str, str]:
    """(whenDeleted, whenScaled) of ``persistentVolumeClaimRetentionPolicy``."""
    policy = spec_of(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return policy.get("whenDeleted") or RETAIN, policy.get("whenScaled") or RETAIN


def identity_labels(sts: Obj, ordinal: int) -> dict[str, str]:
    return {
        POD_NAME_LABEL: pod_name(sts["metadata"]["name"], ordinal),
        POD_INDEX_LABEL: str(ordinal),
    }


def identity_matches(sts: Obj, pod: Obj, ordinal: int) -> bool:
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in identity_labels(sts, ordinal).items())


def claims_for(sts: Obj, ordinal: int) -> dict[str, Obj]:
    """The claim of each volumeClaimTemplate for ``ordinal`` (``getPersistentVolumeClaims``)."""
    meta = sts["metadata"]
    match = ((spec_of(sts).get("selector")) or {}).get("matchLabels") or {}
    out: dict[str, Obj] = {}
    for template in spec_of(sts).get("volumeClaimTemplates") or ():
        tmeta = template.get("metadata") or {}
        tname = tmeta.get("name", "")
        claim_meta: Obj = {
            "name": claim_name(tname, meta["name"], ordinal),
            "namespace": meta.get("namespace"),
            "labels": {**(tmeta.get("labels") or {}), **match},
        }
        if tmeta.get("annotations"):
            claim_meta["annotations"] = dict(tmeta["annotations"])
        out[tname] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": claim_meta,
            "spec": writable(template.get("spec") or {}),
        }
    return out


def storage_volumes(sts: Obj, ordinal: int, volumes: list[Obj]) -> list[Obj]:
    """``updateStorage``: a volume per claim template first, then the template's others."""
    claims = claims_for(sts, ordinal)
    out: list[Obj] = [
        {"name": name, "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
        for name, c in claims.items()
    ]
    out.extend(v for v in volumes if v.get("name") not in claims)
    return out


def storage_matches(sts: Obj, pod: Obj, ordinal: int) -> bool:
    volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or ()}
    for name, claim in claims_for(sts, ordinal).items():
        source = (volumes.get(name) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim["metadata"]["name"]:
            return False
    return True


def new_pod(sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
    """The pod of ``ordinal`` from ``template`` at ``revision`` (``newStatefulSetPod``)."""
    meta = sts["metadata"]
    ref = new_controller_ref(sts, SET_API_VERSION, SET_KIND)
    pod = pod_from_template(template, meta["namespace"], "", ref)
    name = pod_name(meta["name"], ordinal)
    pmeta = pod["metadata"]
    pmeta.pop("generateName", None)
    pmeta["name"] = name
    pmeta["labels"] = {
        **(pmeta.get("labels") or {}),
        **identity_labels(sts, ordinal),
        REVISION_LABEL: revision,
    }
    spec = pod["spec"]
    spec["hostname"] = name
    if service := spec_of(sts).get("serviceName"):
        spec["subdomain"] = service
    if spec_of(sts).get("volumeClaimTemplates"):
        spec["volumes"] = storage_volumes(sts, ordinal, list(spec.get("volumes") or ()))
    return pod


def claim_owner_refs(claim: Obj, sts: Obj, pod: Obj | None, scaled_down: bool) -> list[Obj]:
    """The claim's ownerReferences under the set's retention policy.

    whenDeleted=Delete makes the set an owner (the garbage collector deletes the claim
    with the set); whenScaled=Delete makes the pod the owner of a claim whose ordinal
    was scaled away (``updateClaimOwnerRefForSetAndPod``). Other owners are kept.
    """
    when_deleted, when_scaled = retention_policy(sts)
    set_uid = sts["metadata"]["uid"]
    pod_uid = pod["metadata"].get("uid") if pod is not None else None
    want_set = when_deleted == DELETE and not (when_scaled == DELETE and scaled_down)
    want_pod = when_scaled == DELETE and scaled_down and pod_uid is not None
    pod_name_ = pod["metadata"].get("name") if pod is not None else None
    out: list[Obj] = []
    for ref in claim["metadata"].get("ownerReferences") or ():
        uid = ref.get("uid")
        if uid == set_uid and not want_set:
            continue
        if ref.get("kind") == "Pod" and pod_name_ is not None and ref.get("name") == pod_name_:
            # This ordinal's pod, or an earlier incarnation of it scaled away before.
            if not (want_pod and uid == pod_uid):
                continue
        out.append(dict(ref))
    uids = {r.get("uid") for r in out}
    if want_set and set_uid not in uids:
        out.append(
            {
                "apiVersion": SET_API_VERSION,
                "kind": SET_KIND,
                "name": sts["metadata"]["name"],
                "uid": set_uid,
            }
        )
    if want_pod and pod is not None and pod_uid not in uids:
        out.append(
            {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"], "uid": pod_uid}
        )
    return out
