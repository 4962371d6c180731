"""Deployment helpers (``pkg/controller/deployment/util``): the annotation and label names,
the fields read off Deployments and ReplicaSets, maxSurge and maxUnavailable, pod
template hashes, revisions and the annotations that carry them, finding the new and the
old ReplicaSets, how many replicas each may have, and the Deployment flavour of a
status condition (with ``lastUpdateTime``; :mod:`skiff.api.conditions` sets them). None of
it talks to the API.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from skiff.api import conditions
from skiff.api.intstr import scaled_value
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.rest import Obj
from skiff.controller.controller import TerminalError

# -- names Kubernetes uses ---------------------------------------------------------------

POD_TEMPLATE_HASH = "pod-template-hash"
"""``apps.DefaultDeploymentUniqueLabelKey``."""
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
ANNOTATIONS_NOT_COPIED = frozenset(
    {
        LAST_APPLIED,
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        DEPRECATED_ROLLBACK_TO,
    }
)
"""Deployment annotations that are not copied to its ReplicaSets (``annotationsToSkip``)."""
MAX_REVISION_HISTORY_CHARS = 2000

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"
NO_PROGRESS_DEADLINE = 2**31 - 1
"""``progressDeadlineSeconds`` of ``math.MaxInt32`` means no deadline."""

AVAILABLE = "Available"
PROGRESSING = "Progressing"
REPLICA_FAILURE = "ReplicaFailure"

# Progressing reasons.
REPLICA_SET_UPDATED = "ReplicaSetUpdated"
FAILED_RS_CREATE = "ReplicaSetCreateError"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
# Available reasons.
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"

_SAFE_ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"
"""``rand.SafeEncodeString``'s alphabet: no vowels, no look-alikes."""


# -- fields ------------------------------------------------------------------------------


def replicas(obj: Obj | None) -> int:
    """``spec.replicas`` (the API defaults it to 1); 0 for None."""
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas", 1)
    return int(value) if value is not None else 1


def status_int(obj: Obj | None, field: str) -> int:
    """An integer ``status`` field (0 when absent, or for None)."""
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def annotations_of(obj: Obj) -> dict[str, str]:
    """The object's annotations (not a copy; empty when it has none)."""
    return (obj.get("metadata") or {}).get("annotations") or {}


def creation_order(obj: Obj) -> tuple[float, str]:
    """Sort key: creation time (unknown last), then name."""
    meta = obj.get("metadata") or {}
    t = parse_time(meta.get("creationTimestamp"))
    return (t if t is not None else math.inf, meta.get("name", ""))


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first, names breaking ties (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(rss, key=creation_order)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """The ReplicaSets that want pods (``FilterActiveReplicaSets``)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# -- maxSurge and maxUnavailable -----------------------------------------------------------


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """(surge, unavailable) for ``desired`` replicas: surge rounds up, unavailable down.

    When both come to 0, unavailable is 1 (surging may be impossible, e.g. for quota).
    """
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling_update(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get(
        "type", ROLLING_UPDATE
    ) == ROLLING_UPDATE


def _fenceposts(d: Obj) -> tuple[int, int]:
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    try:
        return resolve_fenceposts(
            rolling.get("maxSurge", "25%"), rolling.get("maxUnavailable", "25%"), replicas(d)
        )
    except ValueError as e:
        raise TerminalError(f"spec.strategy.rollingUpdate: {e}") from e


def max_surge(d: Obj) -> int:
    """How many pods above ``spec.replicas`` a rolling update may run (0 for Recreate)."""
    if not is_rolling_update(d):
        return 0
    return _fenceposts(d)[0]


def max_unavailable(d: Obj) -> int:
    """How many of ``spec.replicas`` may be unavailable (0 for Recreate or 0 replicas)."""
    want = replicas(d)
    if not is_rolling_update(d) or want == 0:
        return 0
    return min(_fenceposts(d)[1], want)


# -- templates, hashes and revisions -----------------------------------------------------


def _semantic(value: Any) -> Any:
    """``value`` without nulls, empty maps and empty lists (nil and empty are equal in Go)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _semantic(v)
            if v is None or v == {} or v == []:
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def _without_hash(template: Obj | None) -> Any:
    t = _semantic(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels and POD_TEMPLATE_HASH in labels:
        labels.pop(POD_TEMPLATE_HASH)
        if not labels:
            t["metadata"].pop("labels")
            if not t["metadata"]:
                t.pop("metadata")
    return t


def equal_ignore_hash(a: Obj | None, b: Obj | None) -> bool:
    """Whether two pod templates are equal but for the ``pod-template-hash`` label."""
    return _without_hash(a) == _without_hash(b)


def _fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def compute_hash(template: Obj, collision_count: int | None = None) -> str:
    """The ``pod-template-hash`` of a pod template (``controller.ComputeHash``).

    FNV-1a over the template's canonical JSON (nulls and empties dropped, keys
    sorted), then over ``collision_count`` when set, written as Kubernetes writes its
    hash: the decimal digits mapped into a vowel-free alphabet. Stable across
    processes, not bit-for-bit Kubernetes' (which hashes Go structs).
    """
    canonical = json.dumps(_semantic(template), sort_keys=True, separators=(",", ":"))
    data = canonical.encode()
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    digits = str(_fnv32a(data))
    return "".join(_SAFE_ALPHANUMS[ord(c) % len(_SAFE_ALPHANUMS)] for c in digits)


def revision(obj: Obj) -> int:
    """The revision annotation of an object: 0 when absent, ValueError when not a number."""
    raw = annotations_of(obj).get(REVISION)
    if raw is None:
        return 0
    return int(raw)


def max_revision(rss: Iterable[Obj]) -> int:
    """The highest revision among ``rss`` (unparseable ones are skipped)."""
    best = 0
    for rs in rss:
        try:
            best = max(best, revision(rs))
        except ValueError:
            continue
    return best


def revision_or_zero(rs: Obj) -> int:
    """:func:`revision`, 0 when it is not a number."""
    try:
        return revision(rs)
    except ValueError:
        return 0


def find_new_replica_set(d: Obj, rss: Iterable[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template is the Deployment's (``FindNewReplicaSet``)."""
    template = (d.get("spec") or {}).get("template")
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def find_old_replica_sets(d: Obj, rss: Iterable[Obj]) -> list[Obj]:
    """Every ReplicaSet but the new one (``FindOldReplicaSets``' ``allOldRSs``)."""
    rss = list(rss)
    new = find_new_replica_set(d, rss)
    return [rs for rs in rss if new is None or rs is not new]


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    """Set desired-replicas and max-replicas; whether anything changed."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = annotations_of(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def _copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in annotations_of(d).items():
        if k in ANNOTATIONS_NOT_COPIED or ann.get(k) == v:
            continue
        ann[k] = v
        changed = True
    return changed


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Annotate the new ReplicaSet (``SetNewReplicaSetAnnotations``); whether it changed.

    Copies the Deployment's annotations (not the revision ones), raises the revision
    to ``new_revision`` when it is lower (keeping the former one in the
    revision-history annotation, for a rollback), and for a ReplicaSet still to be
    created sets desired-replicas and max-replicas.
    """
    changed = _copy_deployment_annotations(d, rs)
    ann = rs["metadata"].setdefault("annotations", {})
    old_raw = ann.get(REVISION)
    try:
        old = int(old_raw) if old_raw is not None else 0
    except ValueError:
        return False
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_raw is not None:
            history = ann.get(REVISION_HISTORY, "")
            previous = history.split(",") if history else []
            total = len(history) + len(old_raw) + 1
            start = 0
            while total > MAX_REVISION_HISTORY_CHARS and start < len(previous):
                total -= len(previous[start]) + 1
                start += 1
            if total <= MAX_REVISION_HISTORY_CHARS:
                ann[REVISION_HISTORY] = ",".join([*previous[start:], old_raw])
    if not exists:
        want = replicas(d)
        if set_replicas_annotations(rs, want, want + max_surge(d)):
            changed = True
    return changed


# -- how many replicas -------------------------------------------------------------------


def surge_count(rs: Obj) -> int:
    """Pods ``rs`` may have running: its spec, or more while a scale-down is carried out."""
    return max(replicas(rs), status_int(rs, "replicas"))


def available_count(rs: Obj) -> int:
    """Available pods ``rs`` will keep: at most its spec, once a scale-down is carried out."""
    return min(replicas(rs), status_int(rs, "availableReplicas"))


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj], new_rs: Obj) -> int:
    """The size the new ReplicaSet may have now (``NewRSNewReplicas``)."""
    want = replicas(d)
    if not is_rolling_update(d):
        return want
    max_total = want + max_surge(d)
    current = sum(surge_count(rs) for rs in all_rss)
    if current >= max_total:
        return replicas(new_rs)
    scale_up = min(max_total - current, want - replicas(new_rs))
    return replicas(new_rs) + max(scale_up, 0)


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active ReplicaSet, or the newest when none is active; None when several are."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    live = active([*newest_first, new_rs])
    if len(live) == 1:
        return live[0]
    if not live:
        return new_rs if new_rs is not None else newest_first[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    """The new ReplicaSet has every replica, all available (``IsSaturated``)."""
    if rs is None:
        return False
    try:
        desired = int(annotations_of(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    want = replicas(d)
    return replicas(rs) == want and desired == want and status_int(rs, "availableReplicas") == want


def progress_deadline(d: Obj) -> int | None:
    """``progressDeadlineSeconds``, None when there is no deadline (``HasProgressDeadline``)."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    if value is None or int(value) == NO_PROGRESS_DEADLINE:
        return None
    return int(value)


# -- conditions ----------------------------------------------------------------------------


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    """A Deployment condition (``NewDeploymentCondition``): updated and transitioned now."""
    return conditions.new_condition(
        type_, status, reason, message, rfc3339(now), stamped="lastUpdateTime"
    )
