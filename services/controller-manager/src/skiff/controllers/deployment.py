"""The Deployment controller (``pkg/controller/deployment``).

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
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from skiff.api.errors import ApiError, Reason, namespace_terminating
from skiff.api.selectors import LabelSelector
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.informer import key_of
from skiff.client.rest import ApiClient, Obj
from skiff.controller.controller import Controller, ControllerContext, TerminalError, writable
from skiff.controller.owners import (
    CONTROLLER_INDEX,
    NAMESPACE_INDEX,
    ControllerRefManager,
    SelectorCache,
    controller_index,
    controller_ref,
    namespace_index,
    new_controller_ref,
    owned_and_orphans,
    owners_selecting,
    resolve_controller_ref,
)

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


def _status_int(obj: Obj | None, field: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(field) or 0)


def _annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def _created(obj: Obj) -> tuple[float, str]:
    meta = obj.get("metadata") or {}
    t = parse_time(meta.get("creationTimestamp"))
    return (t if t is not None else math.inf, meta.get("name", ""))


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first, names breaking ties (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(rss, key=_created)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """The ReplicaSets that want pods (``FilterActiveReplicaSets``)."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


# -- maxSurge and maxUnavailable -----------------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An int-or-percent resolved against ``total`` (``GetScaledValueFromIntOrPercent``).

    Percentages round up or down as asked; a string that is not a percentage is an
    error, as in Kubernetes.
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = int(value[:-1])
        except ValueError:
            raise ValueError(f"invalid value for IntOrString: invalid value {value!r}") from None
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    raise ValueError(
        f"invalid value for IntOrString: invalid type: string is not a percentage: {value!r}"
    )


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
    raw = _annotations(obj).get(REVISION)
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


def _revision_or_zero(rs: Obj) -> int:
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
    ann = _annotations(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def _copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in _annotations(d).items():
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
    return max(replicas(rs), _status_int(rs, "replicas"))


def available_count(rs: Obj) -> int:
    """Available pods ``rs`` will keep: at most its spec, once a scale-down is carried out."""
    return min(replicas(rs), _status_int(rs, "availableReplicas"))


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


def old_scale_down_room(d: Obj, all_rss: Sequence[Obj], new_rs: Obj) -> int:
    """How many old replicas may go (``maxScaledDown`` of ``reconcileOldReplicaSets``)."""
    all_pods = sum(replicas(rs) for rs in all_rss)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - available_count(new_rs)
    return all_pods - min_available - new_unavailable


def unhealthy_cleanup_plan(old_rss: Sequence[Obj], max_cleanup: int) -> list[tuple[Obj, int]]:
    """Old ReplicaSets to shrink by their unavailable replicas, oldest first.

    At most ``max_cleanup`` replicas in all (``cleanupUnhealthyReplicas``). Returns
    (ReplicaSet, new size) pairs.
    """
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= max_cleanup:
            break
        size = replicas(rs)
        avail = _status_int(rs, "availableReplicas")
        if size == 0 or size <= avail:
            continue
        count = min(max_cleanup - total, size - avail)
        plan.append((rs, size - count))
        total += count
    return plan


def rolling_scale_down_plan(
    d: Obj, all_rss: Sequence[Obj], old_rss: Sequence[Obj]
) -> list[tuple[Obj, int]]:
    """Old ReplicaSets to shrink so availability stays at least ``replicas - maxUnavailable``.

    Oldest first (``scaleDownOldReplicaSetsForRollingUpdate``). Returns (ReplicaSet,
    new size) pairs.
    """
    min_available = replicas(d) - max_unavailable(d)
    available = sum(available_count(rs) for rs in all_rss)
    if available <= min_available:
        return []
    room = available - min_available
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= room:
            break
        size = replicas(rs)
        if size == 0:
            continue
        count = min(size, room - total)
        plan.append((rs, size - count))
        total += count
    return plan


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
        desired = int(_annotations(rs).get(DESIRED_REPLICAS, ""))
    except ValueError:
        return False
    want = replicas(d)
    return replicas(rs) == want and desired == want and _status_int(rs, "availableReplicas") == want


def _round(x: float) -> int:
    """Round half away from zero (Go's ``math.Round``)."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _fraction(rs: Obj, d: Obj) -> int:
    """The replicas ``rs`` gains (or loses) in proportion (``getReplicaSetFraction``)."""
    want = replicas(d)
    if want == 0:
        return -replicas(rs)
    deployment_max = want + max_surge(d)
    try:
        annotated = int(_annotations(rs).get(MAX_REPLICAS, ""))
    except ValueError:
        annotated = 0
    if annotated == 0:
        annotated = _status_int(d, "replicas")
    if annotated == 0:
        return 0
    return _round(replicas(rs) * deployment_max / annotated) - replicas(rs)


def _proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Obj, rss: Sequence[Obj | None]) -> tuple[list[tuple[Obj, int]], str]:
    """New sizes spreading a change of ``spec.replicas`` over the active ReplicaSets.

    Each gets its share of the replicas to add (or remove) in proportion to its size
    against the max-replicas it was sized for; the leftover goes to the largest one.
    Scaling up favours newer ReplicaSets among equals, scaling down older ones (the
    ``scale`` step of ``sync.go``). Returns the (ReplicaSet, size) pairs in the order
    to apply them, and "up" or "down".
    """
    live = active(rss)
    want = replicas(d)
    allowed = want + max_surge(d) if want > 0 else 0
    to_add = allowed - sum(replicas(rs) for rs in live)
    operation = ""
    ordered = by_creation(live)
    if to_add > 0:
        ordered.reverse()  # newer first among equals
        operation = "up"
    elif to_add < 0:
        operation = "down"
    ordered.sort(key=lambda rs: -replicas(rs))  # stable: larger first
    added = 0
    sizes: list[int] = []
    for rs in ordered:
        if to_add:
            p = _proportion(rs, d, to_add, added)
            sizes.append(replicas(rs) + p)
            added += p
        else:
            sizes.append(replicas(rs))
    if ordered and to_add:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(ordered, sizes, strict=True)), operation


def cleanup_candidates(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond ``revisionHistoryLimit`` to delete, lowest revision first.

    Only empty ones whose status has caught up, as ``cleanupDeployment`` does.
    """
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - int(limit)
    if diff <= 0:
        return []
    alive.sort(key=lambda rs: (_revision_or_zero(rs), *_created(rs)))
    out = []
    for rs in alive[:diff]:
        meta = rs["metadata"]
        if (
            _status_int(rs, "replicas") != 0
            or replicas(rs) != 0
            or int(meta.get("generation") or 0) > _status_int(rs, "observedGeneration")
        ):
            continue
        out.append(rs)
    return out


# -- conditions and status -----------------------------------------------------------------


def get_condition(status: Obj, type_: str) -> Obj | None:
    for c in status.get("conditions") or ():
        if c.get("type") == type_:
            return c
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    t = rfc3339(now)
    return {
        "type": type_,
        "status": status,
        "lastUpdateTime": t,
        "lastTransitionTime": t,
        "reason": reason,
        "message": message,
    }


def set_condition(status: Obj, cond: Obj) -> None:
    """Add or replace a condition (``SetDeploymentCondition``).

    Nothing changes when one of the same status and reason is there; a change of
    reason alone keeps lastTransitionTime.
    """
    current = get_condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"]:
        if current.get("reason") == cond["reason"]:
            return
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    remove_condition(status, cond["type"])
    status.setdefault("conditions", []).append(cond)


def remove_condition(status: Obj, type_: str) -> None:
    conditions = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def progress_deadline(d: Obj) -> int | None:
    """``progressDeadlineSeconds``, None when there is no deadline."""
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    if value is None or int(value) == NO_PROGRESS_DEADLINE:
        return None
    return int(value)


def deployment_complete(d: Obj, status: Obj) -> bool:
    """Every replica updated and available, the latest generation observed."""
    want = replicas(d)
    return (
        int(status.get("updatedReplicas") or 0) == want
        and int(status.get("replicas") or 0) == want
        and int(status.get("availableReplicas") or 0) == want
        and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0)
    )


def deployment_progressing(d: Obj, status: Obj) -> bool:
    """Whether ``status`` shows progress over the Deployment's current status."""
    old = d.get("status") or {}

    def get(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(status, "replicas") - get(status, "updatedReplicas")
    return (
        get(status, "updatedReplicas") > get(old, "updatedReplicas")
        or new_old < old_old
        or get(status, "readyReplicas") > get(old, "readyReplicas")
        or get(status, "availableReplicas") > get(old, "availableReplicas")
    )


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    """No progress reported for ``progressDeadlineSeconds`` (``DeploymentTimedOut``)."""
    deadline = progress_deadline(d)
    if deadline is None:
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + deadline < now


def calculate_status(all_rss: Sequence[Obj], new_rs: Obj | None, d: Obj, now: float) -> Obj:
    """The status the ReplicaSets give the Deployment, with its Available condition.

    Zero counts are left out, as Go's ``omitempty`` leaves them out.
    """
    available = sum(_status_int(rs, "availableReplicas") for rs in all_rss)
    total = sum(replicas(rs) for rs in all_rss)
    old = d.get("status") or {}
    counts = {
        "observedGeneration": int(d["metadata"].get("generation") or 0),
        "replicas": sum(_status_int(rs, "replicas") for rs in all_rss),
        "updatedReplicas": _status_int(new_rs, "replicas"),
        "readyReplicas": sum(_status_int(rs, "readyReplicas") for rs in all_rss),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
    }
    status: Obj = {k: v for k, v in counts.items() if v}
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition(
            AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.",
            now,
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
            now,
        )
    set_condition(status, cond)
    return status


def _replica_failure(rss: Iterable[Obj | None]) -> Obj | None:
    for rs in rss:
        if rs is None:
            continue
        for c in (rs.get("status") or {}).get("conditions") or ():
            if c.get("type") == REPLICA_FAILURE:
                return {
                    "type": REPLICA_FAILURE,
                    "status": c.get("status"),
                    "lastUpdateTime": c.get("lastTransitionTime"),
                    "lastTransitionTime": c.get("lastTransitionTime"),
                    "reason": c.get("reason"),
                    "message": c.get("message"),
                }
    return None


# -- one sync ------------------------------------------------------------------------------


class DeploymentSync:
    """One ``syncDeployment`` of one Deployment over its claimed ReplicaSets.

    Works on copies: ``d`` and the ReplicaSets are updated in place with what the API
    answers, so later steps of the same sync see the writes of earlier ones.
    """

    def __init__(
        self,
        controller: DeploymentController,
        d: Obj,
        rss: list[Obj],
        pods: dict[str, list[Obj]],
        now: float,
    ) -> None:
        self.c = controller
        self.client: ApiClient = controller.client
        self.d = d
        self.rss = rss
        self.pods = pods
        """Pods by the uid of their ReplicaSet (for Recreate)."""
        self.now = now
        self.name = d["metadata"]["name"]
        self.namespace = d["metadata"]["namespace"]

    # -- writes ------------------------------------------------------------------------

    def event(self, type_: str, reason: str, message: str) -> None:
        about = {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": self.d["metadata"]}
        self.c.events.emit(about, type_, reason, message)

    async def write_status(self) -> None:
        """PUT ``d.status`` through ``/status``.

        The cache often lags our own previous status write: on a conflict the
        Deployment is read again and, when its spec and revision are the ones this sync
        worked from, the write is retried once (keeping the higher collisionCount).
        Otherwise the conflict is raised and the sync retried.
        """
        d = self.d
        meta = d["metadata"]
        for attempt in range(2):
            try:
                updated = await self.client.update("deployments", d, subresource="status")
            except ApiError as e:
                if e.code == 404:
                    return
                if e.code != 409 or attempt:
                    raise
                fresh = await self.client.get("deployments", self.name, self.namespace)
                fmeta = fresh["metadata"]
                if (
                    fmeta.get("uid") != meta.get("uid")
                    or fmeta.get("generation") != meta.get("generation")
                    or _annotations(fresh).get(REVISION) != _annotations(d).get(REVISION)
                ):
                    raise
                theirs = (fresh.get("status") or {}).get("collisionCount")
                if theirs is not None and theirs > int(d["status"].get("collisionCount") or 0):
                    d["status"]["collisionCount"] = theirs
                meta["resourceVersion"] = fmeta["resourceVersion"]
                continue
            meta["resourceVersion"] = updated["metadata"]["resourceVersion"]
            return

    async def set_revision(self, value: str) -> None:
        """Record the Deployment's revision (``SetDeploymentRevision``) when it differs.

        Kubernetes sends it along with a status update; this API keeps metadata out of
        ``/status``, so it is a merge patch of the annotation.
        """
        meta = self.d["metadata"]
        if (meta.get("annotations") or {}).get(REVISION) == value:
            return
        patch = {"metadata": {"annotations": {REVISION: value}}}
        updated = await self.client.patch("deployments", self.name, patch, self.namespace)
        meta.setdefault("annotations", {})[REVISION] = value
        if updated["metadata"].get("generation") == meta.get("generation"):
            meta["resourceVersion"] = updated["metadata"]["resourceVersion"]

    async def update_rs(self, rs: Obj, changed: Obj) -> Obj:
        """PUT ``changed`` (a changed copy of ``rs``); ``rs`` becomes the answer."""
        updated = await self.client.update("replicasets", changed)
        rs.clear()
        rs.update(updated)
        return rs

    async def scale_rs(self, rs: Obj, size: int, operation: str = "") -> bool:
        """Resize ``rs`` and set its replica annotations (``scaleReplicaSet``); whether resized.

        Records "Scaled up replica set x from 2 to 5" (or down).
        """
        want = replicas(self.d)
        most = want + max_surge(self.d)
        old = replicas(rs)
        resize = old != size
        if not resize and not replicas_annotations_need_update(rs, want, most):
            return False
        if not operation:
            operation = "up" if old < size else "down"
        changed = writable(rs)
        changed["spec"]["replicas"] = size
        set_replicas_annotations(changed, want, most)
        await self.update_rs(rs, changed)
        if resize:
            self.event(
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {operation} replica set {rs['metadata']['name']} from {old} to {size}",
            )
            self.c.log.info(
                "scaled replica set",
                deployment=key_of(self.d),
                replicaset=rs["metadata"]["name"],
                old=old,
                new=size,
            )
        return resize

    # -- the new and the old ReplicaSets -------------------------------------------------

    async def get_all_and_sync_revision(self, create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, every old one), creating the new one if asked."""
        old_rss = find_old_replica_sets(self.d, self.rss)
        new_rs = await self.get_new_replica_set(old_rss, create)
        return new_rs, old_rss

    async def get_new_replica_set(self, old_rss: list[Obj], create: bool) -> Obj | None:
        """The new ReplicaSet with its annotations synced, created when ``create``."""
        d = self.d
        existing = find_new_replica_set(d, self.rss)
        new_revision = max_revision(old_rss) + 1
        status = d.setdefault("status", {})
        if existing is not None:
            changed = writable(existing)
            annotated = set_new_replica_set_annotations(d, changed, new_revision, exists=True)
            min_ready = int(d["spec"].get("minReadySeconds") or 0)
            if annotated or int(changed["spec"].get("minReadySeconds") or 0) != min_ready:
                changed["spec"]["minReadySeconds"] = min_ready
                return await self.update_rs(existing, changed)
            await self.set_revision(_annotations(existing).get(REVISION, ""))
            if progress_deadline(d) is not None and get_condition(status, PROGRESSING) is None:
                msg = f'Found new replica set "{existing["metadata"]["name"]}"'
                set_condition(
                    status, new_condition(PROGRESSING, "True", FOUND_NEW_RS, msg, self.now)
                )
                await self.write_status()
            return existing
        if not create:
            return None
        return await self.create_new_replica_set(old_rss, new_revision)

    async def create_new_replica_set(self, old_rss: list[Obj], new_revision: int) -> Obj:
        d = self.d
        status = d.setdefault("status", {})
        spec = d["spec"]
        template = writable(spec.get("template") or {})
        h = compute_hash(spec.get("template") or {}, status.get("collisionCount"))
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), POD_TEMPLATE_HASH: h}
        selector = writable(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: h}
        name = f"{self.name}-{h}"
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": dict(tmeta["labels"]),
                "ownerReferences": [new_controller_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                "selector": selector,
                "template": template,
            },
        }
        size = new_rs_new_replicas(d, [*old_rss, rs], rs)
        rs["spec"]["replicas"] = size
        set_new_replica_set_annotations(d, rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create("replicasets", rs, self.namespace)
        except ApiError as e:
            if e.code == 409 and e.reason == Reason.ALREADY_EXISTS:
                created = await self._existing_namesake(name)
                already_exists = True
            elif namespace_terminating(e):
                raise
            else:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                if progress_deadline(d) is not None:
                    set_condition(
                        status, new_condition(PROGRESSING, "False", FAILED_RS_CREATE, msg, self.now)
                    )
                    try:
                        await self.write_status()
                    except ApiError:
                        pass  # the failure to create is the news
                self.event("Warning", FAILED_RS_CREATE, msg)
                raise
        created = writable(created)
        self.rss.append(created)
        if not already_exists and size > 0:
            self.event(
                "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {size}"
            )
        await self.set_revision(str(new_revision))
        if not already_exists and progress_deadline(d) is not None:
            msg = f'Created new replica set "{name}"'
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_CREATED, msg, self.now))
            await self.write_status()
        return created

    async def _existing_namesake(self, name: str) -> Obj:
        """The ReplicaSet that took the new one's name: ours, or a hash collision."""
        d = self.d
        cached = self.c.rss.get(f"{self.namespace}/{name}")
        if cached is None:
            raise ApiError(
                409, Reason.CONFLICT, f'replica set "{name}" exists but is not cached yet'
            )
        ref = controller_ref(cached)
        if (
            ref is not None
            and ref.get("uid") == d["metadata"]["uid"]
            and equal_ignore_hash(
                d["spec"].get("template"), (cached.get("spec") or {}).get("template")
            )
        ):
            return cached
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self.write_status()
        self.c.log.info(
            "hash collision; bumped collisionCount",
            deployment=key_of(d),
            collision_count=status["collisionCount"],
        )
        raise ApiError(409, Reason.ALREADY_EXISTS, f'replica set "{name}" already exists')

    # -- scaling ---------------------------------------------------------------------------

    async def is_scaling_event(self) -> bool:
        """An active ReplicaSet was sized for another ``spec.replicas``."""
        new_rs, old_rss = await self.get_all_and_sync_revision(False)
        for rs in active([*old_rss, new_rs]):
            try:
                desired = int(_annotations(rs).get(DESIRED_REPLICAS, ""))
            except ValueError:
                continue
            if desired != replicas(self.d):
                return True
        return False

    async def scale(self, new_rs: Obj | None, old_rss: list[Obj]) -> None:
        """Bring the ReplicaSets to ``spec.replicas`` without rolling out (``scale``)."""
        d = self.d
        only = find_active_or_latest(new_rs, old_rss)
        if only is not None:
            if replicas(only) != replicas(d):
                await self.scale_rs(only, replicas(d))
            return
        if is_saturated(d, new_rs):
            for rs in active(old_rss):
                await self.scale_rs(rs, 0)
            return
        if is_rolling_update(d):
            plan, operation = proportional_sizes(d, [*old_rss, new_rs])
            for rs, size in plan:
                await self.scale_rs(
                    rs, size, operation or ("up" if size > replicas(rs) else "down")
                )

    async def sync(self) -> None:
        """Scale without a rollout (paused, or ``spec.replicas`` changed)."""
        new_rs, old_rss = await self.get_all_and_sync_revision(False)
        await self.scale(new_rs, old_rss)
        if self.d["spec"].get("paused"):
            await self.cleanup(old_rss)
        await self.sync_status([*old_rss, new_rs], new_rs)

    async def cleanup(self, old_rss: list[Obj]) -> None:
        """Delete the oldest empty ReplicaSets beyond ``revisionHistoryLimit``."""
        for rs in cleanup_candidates(self.d, old_rss):
            meta = rs["metadata"]
            self.c.log.info(
                "deleting old replica set", deployment=key_of(self.d), replicaset=meta["name"]
            )
            try:
                await self.client.delete(
                    "replicasets", meta["name"], self.namespace, preconditions={"uid": meta["uid"]}
                )
            except ApiError as e:
                if e.code not in (404, 409):
                    raise

    # -- rolling update --------------------------------------------------------------------

    async def rollout_rolling(self) -> float | None:
        new_rs, old_rss = await self.get_all_and_sync_revision(True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        if await self.reconcile_new_replica_set(all_rss, new_rs):
            return await self.sync_rollout_status(all_rss, new_rs)
        if await self.reconcile_old_replica_sets(all_rss, active(old_rss), new_rs):
            return await self.sync_rollout_status(all_rss, new_rs)
        if deployment_complete(self.d, self.d.get("status") or {}):
            await self.cleanup(old_rss)
        return await self.sync_rollout_status(all_rss, new_rs)

    async def reconcile_new_replica_set(self, all_rss: list[Obj], new_rs: Obj) -> bool:
        """Scale the new ReplicaSet up as far as maxSurge allows (down if above replicas)."""
        want = replicas(self.d)
        size = replicas(new_rs)
        if size == want:
            return False
        if size > want:
            return await self.scale_rs(new_rs, want)
        return await self.scale_rs(new_rs, new_rs_new_replicas(self.d, all_rss, new_rs))

    async def reconcile_old_replica_sets(
        self, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj
    ) -> bool:
        """Scale old ReplicaSets down as far as maxUnavailable allows, unhealthy ones first."""
        if sum(replicas(rs) for rs in old_rss) == 0:
            return False
        room = old_scale_down_room(self.d, all_rss, new_rs)
        if room <= 0:
            return False
        scaled = 0
        for rs, size in unhealthy_cleanup_plan(old_rss, room):
            before = replicas(rs)
            await self.scale_rs(rs, size)
            scaled += before - size
        for rs, size in rolling_scale_down_plan(self.d, [*old_rss, new_rs], old_rss):
            before = replicas(rs)
            await self.scale_rs(rs, size)
            scaled += before - size
        return scaled > 0

    # -- recreate --------------------------------------------------------------------------

    async def rollout_recreate(self) -> float | None:
        new_rs, old_rss = await self.get_all_and_sync_revision(False)
        all_rss = [*old_rss, new_rs]
        scaled = False
        for rs in active(old_rss):
            scaled = await self.scale_rs(rs, 0) or scaled
        if scaled:
            return await self.sync_rollout_status(all_rss, new_rs)
        if self.old_pods_running(new_rs, old_rss):
            return await self.sync_rollout_status(all_rss, new_rs)
        if new_rs is None:
            new_rs, old_rss = await self.get_all_and_sync_revision(True)
            all_rss = [*old_rss, new_rs]
        assert new_rs is not None
        await self.scale_rs(new_rs, replicas(self.d))
        if deployment_complete(self.d, self.d.get("status") or {}):
            await self.cleanup(old_rss)
        return await self.sync_rollout_status(all_rss, new_rs)

    def old_pods_running(self, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        """Any pod of an old ReplicaSet not Succeeded or Failed, terminating ones included."""
        if sum(_status_int(rs, "replicas") for rs in old_rss) > 0:
            return True
        new_uid = new_rs["metadata"]["uid"] if new_rs is not None else None
        for uid, pods in self.pods.items():
            if uid == new_uid:
                continue
            for pod in pods:
                if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
        return False

    # -- status ----------------------------------------------------------------------------

    async def check_paused_conditions(self) -> None:
        """Record pausing and resuming in the Progressing condition."""
        d = self.d
        if progress_deadline(d) is None:
            return
        status = d.setdefault("status", {})
        cond = get_condition(status, PROGRESSING)
        if cond is not None and cond.get("reason") == TIMED_OUT:
            return  # a reported lack of progress is not overwritten
        paused_recorded = cond is not None and cond.get("reason") == PAUSED
        paused = bool(d["spec"].get("paused"))
        if paused and not paused_recorded:
            set_condition(
                status,
                new_condition(PROGRESSING, "Unknown", PAUSED, "Deployment is paused", self.now),
            )
        elif not paused and paused_recorded:
            set_condition(
                status,
                new_condition(PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", self.now),
            )
        else:
            return
        await self.write_status()

    async def sync_status(self, rss: Sequence[Obj | None], new_rs: Obj | None) -> None:
        """Write the status the ReplicaSets give (``syncDeploymentStatus``)."""
        all_rss = [rs for rs in rss if rs is not None]
        status = calculate_status(all_rss, new_rs, self.d, self.now)
        if status == (self.d.get("status") or {}):
            return
        self.d["status"] = status
        await self.write_status()

    async def sync_rollout_status(
        self, rss: Sequence[Obj | None], new_rs: Obj | None
    ) -> float | None:
        """Write status with the progress estimate (``syncRolloutStatus``).

        Returns when to look again for a progress deadline, if one may pass.
        """
        d = self.d
        all_rss = [rs for rs in rss if rs is not None]
        status = calculate_status(all_rss, new_rs, d, self.now)
        deadline = progress_deadline(d)
        if deadline is None:
            remove_condition(status, PROGRESSING)
        current = get_condition(d.get("status") or {}, PROGRESSING)
        complete_before = (
            int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if deadline is not None and not complete_before:
            rs_name = new_rs["metadata"]["name"] if new_rs is not None else None
            if deployment_complete(d, status):
                msg = (
                    f'ReplicaSet "{rs_name}" has successfully progressed.'
                    if rs_name
                    else f'Deployment "{self.name}" has successfully progressed.'
                )
                set_condition(
                    status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, self.now)
                )
            elif deployment_progressing(d, status):
                msg = (
                    f'ReplicaSet "{rs_name}" is progressing.'
                    if rs_name
                    else f'Deployment "{self.name}" is progressing.'
                )
                cond = new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, msg, self.now)
                if current is not None:
                    if current.get("status") == "True":
                        cond["lastTransitionTime"] = current.get("lastTransitionTime")
                    remove_condition(status, PROGRESSING)
                set_condition(status, cond)
            elif deployment_timed_out(d, status, self.now):
                msg = (
                    f'ReplicaSet "{rs_name}" has timed out progressing.'
                    if rs_name
                    else f'Deployment "{self.name}" has timed out progressing.'
                )
                set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT, msg, self.now))
        failure = _replica_failure([new_rs]) or _replica_failure(all_rss)
        if failure is not None:
            set_condition(status, failure)
        else:
            remove_condition(status, REPLICA_FAILURE)
        if status == (d.get("status") or {}):
            return self.progress_check_after(status)
        d["status"] = status
        await self.write_status()
        return None

    def progress_check_after(self, status: Obj) -> float | None:
        """Seconds until the progress deadline may pass (``requeueStuckDeployment``)."""
        d = self.d
        deadline = progress_deadline(d)
        cond = get_condition(d.get("status") or {}, PROGRESSING)
        if deadline is None or cond is None:
            return None
        if deployment_complete(d, status) or cond.get("reason") == TIMED_OUT:
            return None
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return None
        after = since + deadline - self.now
        return after + 1.0 if after >= 1.0 else 1.0


# -- the controller ------------------------------------------------------------------------


class DeploymentController(Controller):
    """Rolls Deployments out through their ReplicaSets (see the module docstring)."""

    name: ClassVar[str] = "deployment-controller"

    def __init__(self, ctx: ControllerContext, *, workers: int = 5) -> None:
        super().__init__(ctx, workers=workers)
        ctx.informers.index("deployments", NAMESPACE_INDEX, namespace_index)
        ctx.informers.index("replicasets", CONTROLLER_INDEX, controller_index)
        ctx.informers.index("pods", CONTROLLER_INDEX, controller_index)
        self.deployments = self.watch("deployments")
        self.rss = self.watch("replicasets")
        self.pods = self.watch("pods")
        self._selectors = SelectorCache()
        self.deployments.add_handler(
            self.enqueue, self._deployment_updated, self._deployment_deleted
        )
        self.rss.add_handler(self._rs_added, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(on_delete=self._pod_deleted)

    # -- selectors -------------------------------------------------------------------------

    def selector(self, d: Obj) -> LabelSelector:
        """The Deployment's parsed selector (cached per uid); TerminalError when invalid."""
        return self._selectors.get(d)

    def _deployments_matching(self, rs: Obj) -> list[Obj]:
        matching = owners_selecting(self.deployments, rs, self.selector)
        return [d for d, sel in matching if not sel.empty]

    def _owner_of(self, rs: Obj, ref: Obj | None) -> Obj | None:
        if ref is None:
            return None
        return resolve_controller_ref(
            self.deployments, rs["metadata"].get("namespace"), ref, "Deployment", "apps"
        )

    # -- event handlers --------------------------------------------------------------------

    def _deployment_updated(self, old: Obj, new: Obj) -> None:
        if old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._deployment_deleted(old)
        self.enqueue(new)

    def _deployment_deleted(self, d: Obj) -> None:
        self._selectors.pop(d["metadata"].get("uid", ""), None)
        self.enqueue(d)

    def _rs_added(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._rs_deleted(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            if (d := self._owner_of(rs, ref)) is not None:
                self.enqueue(d)
            return
        for d in self._deployments_matching(rs):
            self.enqueue(d)

    def _rs_updated(self, old: Obj, new: Obj) -> None:
        om, nm = old["metadata"], new["metadata"]
        if om.get("resourceVersion") == nm.get("resourceVersion"):
            return
        cur_ref, old_ref = controller_ref(new), controller_ref(old)
        ref_changed = (cur_ref or {}).get("uid") != (old_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            if (d := self._owner_of(old, old_ref)) is not None:
                self.enqueue(d)
        if cur_ref is not None:
            if (d := self._owner_of(new, cur_ref)) is not None:
                self.enqueue(d)
            return
        if ref_changed or om.get("labels") != nm.get("labels"):
            for d in self._deployments_matching(new):
                self.enqueue(d)

    def _rs_deleted(self, rs: Obj) -> None:
        if (d := self._owner_of(rs, controller_ref(rs))) is not None:
            self.enqueue(d)

    def _pod_deleted(self, pod: Obj) -> None:
        """A Recreate rollout waits for the old pods to be gone: look again."""
        ref = controller_ref(pod)
        if ref is None:
            return
        rs = resolve_controller_ref(
            self.rss, pod["metadata"].get("namespace"), ref, "ReplicaSet", "apps"
        )
        if rs is None:
            return
        d = self._owner_of(rs, controller_ref(rs))
        if d is not None and not is_rolling_update(d):
            self.enqueue(d)

    # -- reconcile -------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        cached = self.deployments.get(key)
        if cached is None:
            return None
        d = writable(cached)
        d.setdefault("status", {})
        now = self.ctx.clock()
        raw_selector = (d.get("spec") or {}).get("selector")
        selector = self.selector(d)
        if raw_selector is not None and selector.empty:
            sync = DeploymentSync(self, d, [], {}, now)
            sync.event(
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            status = d["status"]
            if int(status.get("observedGeneration") or 0) < int(
                d["metadata"].get("generation") or 0
            ):
                status["observedGeneration"] = int(d["metadata"].get("generation") or 0)
                await sync.write_status()
            return None
        template_labels = ((d["spec"].get("template") or {}).get("metadata") or {}).get("labels")
        if not selector.matches(template_labels):
            raise TerminalError("spec.selector does not match the template labels")

        claimed = await self._claim(d, selector)
        if any(controller_ref(rs) is None for rs in claimed):
            return None  # adopted just now: the adoptions' events bring the fresh objects
        rss = [writable(rs) for rs in claimed]
        # Only Recreate looks at pods (whether the old ones are gone).
        pods = self._pods_by_rs(rss) if not is_rolling_update(d) else {}
        sync = DeploymentSync(self, d, rss, pods, now)
        if d["metadata"].get("deletionTimestamp"):
            new_rs, old_rss = await sync.get_all_and_sync_revision(False)
            await sync.sync_status([*old_rss, new_rs], new_rs)
            return None
        await sync.check_paused_conditions()
        if d["spec"].get("paused"):
            await sync.sync()
            return None
        if await sync.is_scaling_event():
            await sync.sync()
            return None
        strategy = (d["spec"].get("strategy") or {}).get("type", ROLLING_UPDATE)
        if strategy == RECREATE:
            return await sync.rollout_recreate()
        if strategy == ROLLING_UPDATE:
            return await sync.rollout_rolling()
        raise TerminalError(f"unexpected deployment strategy type: {strategy}")

    async def _claim(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """The ReplicaSets this Deployment controls, after adoption and release."""
        refs = ControllerRefManager(
            self.client,
            d,
            selector,
            owner_resource="deployments",
            owner_api_version="apps/v1",
            owner_kind="Deployment",
            resource="replicasets",
        )
        return await refs.claim(owned_and_orphans(self.rss, d))

    def _pods_by_rs(self, rss: list[Obj]) -> dict[str, list[Obj]]:
        """The cached pods of each ReplicaSet, terminating ones included."""
        out: dict[str, list[Obj]] = {}
        for rs in rss:
            uid = rs["metadata"]["uid"]
            out[uid] = self.pods.store.by_index(CONTROLLER_INDEX, f"uid:{uid}")
        return out
