"""What kube 1.32's ``pkg/apis/apps/validation`` and ``pkg/apis/batch/validation`` check
in workload specs beyond the pod template: counts that may not be negative, rolling
update budgets (counts or percentages, not both zero, at most 100%), update strategies,
a template that always restarts and has no deadline (controllers' pods), a Job's restart
policy and completion mode, a CronJob's concurrency policy and history limits — in kube's
words, values printed as kube prints them."""

from __future__ import annotations

import copy
import json
from typing import Any

from skiff.api.errors import Cause
from skiff.api.intstr import is_percent

from ...validation import (
    forbidden,
    immutable,
    int_or_percent,
    invalid,
    not_supported,
    required,
    semantic,
)

Obj = dict[str, Any]

_NONNEGATIVE = "must be greater than or equal to 0"


def _dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def nonnegative(spec: Obj, key: str, path: str) -> list[Cause]:
    value = spec.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(f"{path}.{key}", value, _NONNEGATIVE)]
    return []


def go_int_or_string(value: Any) -> str:
    """An ``intstr.IntOrString`` as Go's ``%#v`` prints it."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{json.dumps(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{int(value or 0)}, StrVal:""}}'


def _amount(value: Any) -> int:
    """kube's ``getIntOrPercentValue``: the count, or the percentage's number; an invalid
    string counts as 0."""
    if isinstance(value, str):
        return int(value[:-1]) if is_percent(value) else 0
    return int(value) if isinstance(value, int) else 0


def _over_100(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str) and is_percent(value) and int(value[:-1]) > 100:
        return [
            Cause(path, f"Invalid value: {go_int_or_string(value)}: must not be greater than 100%")
        ]
    return []


def _budget(value: Any, path: str) -> list[Cause]:
    """``ValidatePositiveIntOrPercent`` of an optional budget."""
    return [] if value is None else int_or_percent(value, path, at_most_100=False)


def controller_template(template: Obj, path: str, kind: str) -> list[Cause]:
    """What a controller's pods must be: always restarted, without a deadline."""
    spec = _dict(template.get("spec"))
    causes: list[Cause] = []
    policy = spec.get("restartPolicy") or ""
    if policy != "Always":
        causes.append(not_supported(f"{path}.spec.restartPolicy", policy, ["Always"]))
    if spec.get("activeDeadlineSeconds") is not None:
        causes.append(
            forbidden(
                f"{path}.spec.activeDeadlineSeconds",
                f"activeDeadlineSeconds in {kind} is not Supported",
            )
        )
    return causes


def deployment(spec: Obj) -> list[Cause]:
    """``ValidateDeploymentSpec`` past the selector and template."""
    causes: list[Cause] = []
    strategy, at = _dict(spec.get("strategy")), "spec.strategy"
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            causes.append(
                forbidden(
                    f"{at}.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
                )
            )
    elif kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            causes.append(
                required(f"{at}.rollingUpdate", "this should be defaulted and never be nil")
            )
        else:
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            causes += _budget(unavailable, f"{at}.rollingUpdate.maxUnavailable")
            causes += _budget(surge, f"{at}.rollingUpdate.maxSurge")
            if _amount(unavailable) == 0 and _amount(surge) == 0:
                causes.append(
                    Cause(
                        f"{at}.rollingUpdate.maxUnavailable",
                        f"Invalid value: {go_int_or_string(unavailable)}: may not be 0 "
                        "when `maxSurge` is 0",
                        "FieldValueInvalid",
                    )
                )
            causes += _over_100(unavailable, f"{at}.rollingUpdate.maxUnavailable")
    else:
        value = (
            f"apps.DeploymentStrategy{{Type:{json.dumps(kind or '')}, "
            "RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}"
        )
        causes.append(
            Cause(
                at,
                f'Unsupported value: {value}: supported values: "Recreate", "RollingUpdate"',
                "FieldValueNotSupported",
            )
        )
    causes += nonnegative(spec, "minReadySeconds", "spec")
    causes += nonnegative(spec, "revisionHistoryLimit", "spec")
    deadline = spec.get("progressDeadlineSeconds")
    if isinstance(deadline, int):
        causes += nonnegative(spec, "progressDeadlineSeconds", "spec")
        if deadline <= (spec.get("minReadySeconds") or 0):
            causes.append(
                invalid(
                    "spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"
                )
            )
    return causes


def daemon_set(spec: Obj) -> list[Cause]:
    """``ValidateDaemonSetSpec`` past the selector and template."""
    causes = nonnegative(spec, "minReadySeconds", "spec")
    strategy, at = _dict(spec.get("updateStrategy")), "spec.updateStrategy"
    kind, rolling = strategy.get("type"), strategy.get("rollingUpdate")
    if kind == "RollingUpdate":
        if not isinstance(rolling, dict):
            causes.append(required(f"{at}.rollingUpdate"))
        else:
            unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
            causes += _budget(unavailable, f"{at}.rollingUpdate.maxUnavailable")
            causes += _budget(surge, f"{at}.rollingUpdate.maxSurge")
            causes += _over_100(unavailable, f"{at}.rollingUpdate.maxUnavailable")
            causes += _over_100(surge, f"{at}.rollingUpdate.maxSurge")
            has_unavailable, has_surge = _amount(unavailable) != 0, _amount(surge) != 0
            if has_unavailable and has_surge:
                causes.append(
                    Cause(
                        f"{at}.rollingUpdate.maxSurge",
                        f"Invalid value: {go_int_or_string(surge)}: may not be set when "
                        "maxUnavailable is non-zero",
                        "FieldValueInvalid",
                    )
                )
            elif not has_unavailable and not has_surge:
                causes.append(
                    required(f"{at}.rollingUpdate.maxUnavailable", "cannot be 0 when maxSurge is 0")
                )
    elif kind != "OnDelete":
        value = (
            f"apps.DaemonSetUpdateStrategy{{Type:{json.dumps(kind or '')}, "
            "RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}"
        )
        causes.append(
            Cause(
                at,
                f'Unsupported value: {value}: supported values: "RollingUpdate", "OnDelete"',
                "FieldValueNotSupported",
            )
        )
    return causes + nonnegative(spec, "revisionHistoryLimit", "spec")


def stateful_set(spec: Obj) -> list[Cause]:
    """``ValidateStatefulSetSpec`` past the selector and template."""
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy") or ""
    if not policy:
        causes.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(
            invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'")
        )
    strategy = _dict(spec.get("updateStrategy"))
    kind, rolling = strategy.get("type") or "", strategy.get("rollingUpdate")
    if not kind:
        causes.append(required("spec.updateStrategy"))
    elif kind == "OnDelete":
        if rolling is not None:
            causes.append(
                invalid(
                    "spec.updateStrategy.rollingUpdate",
                    rolling,
                    "only allowed for updateStrategy 'RollingUpdate'",
                )
            )
    elif kind == "RollingUpdate":
        if isinstance(rolling, dict):
            causes += nonnegative(rolling, "partition", "spec.updateStrategy.rollingUpdate")
    else:
        value = (
            f"apps.StatefulSetUpdateStrategy{{Type:{json.dumps(kind)}, "
            "RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}"
        )
        causes.append(
            Cause(
                "spec.updateStrategy",
                f"Invalid value: {value}: must be 'RollingUpdate' or 'OnDelete'",
                "FieldValueInvalid",
            )
        )
    retention = spec.get("persistentVolumeClaimRetentionPolicy")
    if isinstance(retention, dict):
        for key in ("whenDeleted", "whenScaled"):
            value = retention.get(key) or ""
            if value not in ("Retain", "Delete"):
                causes.append(
                    not_supported(
                        f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                        value,
                        ["Retain", "Delete"],
                    )
                )
    causes += nonnegative(spec, "replicas", "spec")
    causes += nonnegative(spec, "minReadySeconds", "spec")
    causes += nonnegative(_dict(spec.get("ordinals")), "start", "spec.ordinals")
    return causes


def job(spec: Obj, path: str) -> list[Cause]:
    """``validateJobSpec``'s counts, completion mode and template restart policy."""
    causes: list[Cause] = []
    for key in (
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ):
        causes += nonnegative(spec, key, path)
    if spec.get("maxFailedIndexes") is not None and spec.get("backoffLimitPerIndex") is None:
        causes.append(
            required(f"{path}.backoffLimitPerIndex", "when maxFailedIndexes is specified")
        )
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(not_supported(f"{path}.completionMode", mode, ["NonIndexed", "Indexed"]))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
    if mode != "Indexed":
        for key in ("backoffLimitPerIndex", "maxFailedIndexes"):
            if spec.get(key) is not None:
                causes.append(
                    invalid(f"{path}.{key}", spec[key], "requires indexed completion mode")
                )
    policy = _dict(_dict(spec.get("template")).get("spec")).get("restartPolicy") or ""
    at = f"{path}.template.spec.restartPolicy"
    if policy in ("", "Always"):
        causes.append(required(at, 'valid values: "OnFailure", "Never"'))
    elif policy not in ("OnFailure", "Never"):
        causes.append(not_supported(at, policy, ["OnFailure", "Never"]))
    elif spec.get("podFailurePolicy") is not None and policy != "Never":
        causes.append(
            invalid(at, policy, 'only "Never" is supported when podFailurePolicy is specified')
        )
    return causes


def cron_job(spec: Obj) -> list[Cause]:
    """``validateCronJobSpec`` besides the schedule, time zone and job template."""
    causes = nonnegative(spec, "startingDeadlineSeconds", "spec")
    policy = spec.get("concurrencyPolicy") or ""
    if not policy:
        causes.append(required("spec.concurrencyPolicy"))
    elif policy not in ("Allow", "Forbid", "Replace"):
        causes.append(
            not_supported("spec.concurrencyPolicy", policy, ["Allow", "Forbid", "Replace"])
        )
    causes += nonnegative(spec, "successfulJobsHistoryLimit", "spec")
    causes += nonnegative(spec, "failedJobsHistoryLimit", "spec")
    return causes


# -- updates and statuses -------------------------------------------------------------

_STATEFULSET_MUTABLE = (
    "replicas", "template", "updateStrategy", "minReadySeconds", "ordinals",
    "persistentVolumeClaimRetentionPolicy",
)  # fmt: skip
_STATEFULSET_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
    "forbidden"
)


def stateful_set_update(spec: Obj, old: Obj) -> list[Cause]:
    """``ValidateStatefulSetUpdate``: only the mutable fields change."""
    new_rest = {k: v for k, v in spec.items() if k not in _STATEFULSET_MUTABLE}
    old_rest = {k: v for k, v in old.items() if k not in _STATEFULSET_MUTABLE}
    if semantic(new_rest) != semantic(old_rest):
        return [forbidden("spec", _STATEFULSET_FORBIDDEN)]
    return []


_JOB_IMMUTABLE = (
    "selector", "completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy",
    "successPolicy",
)  # fmt: skip


def job_update(spec: Obj, old: Obj, old_status: Obj) -> list[Cause]:
    """``ValidateJobSpecUpdate``: completions (Indexed Jobs: only with parallelism), the
    selector, the template (a suspended Job that never started may change its scheduling
    directives, labels and annotations) and the policies never change."""
    causes: list[Cause] = []
    indexed = spec.get("completionMode") == "Indexed"
    if spec.get("completions") != old.get("completions"):
        if not indexed:
            causes += immutable("spec.completions", spec.get("completions"), old.get("completions"))
        elif spec.get("completions") is not None and spec["completions"] != spec.get("parallelism"):
            detail = "can only be modified in tandem with spec.parallelism"
            causes.append(invalid("spec.completions", spec["completions"], detail))
    causes += immutable(
        "spec.selector", semantic(spec.get("selector")), semantic(old.get("selector"))
    )
    template, old_template = _dict(spec.get("template")), copy.deepcopy(_dict(old.get("template")))
    if old.get("suspend") and not old_status.get("startTime"):
        old_spec = old_template.setdefault("spec", {})
        new_spec = _dict(template.get("spec"))
        for key in ("nodeSelector", "tolerations", "schedulingGates", "affinity"):
            old_spec[key] = new_spec.get(key)
        meta = old_template.setdefault("metadata", {})
        for key in ("labels", "annotations"):
            meta[key] = _dict(template.get("metadata")).get(key)
    if semantic(template) != semantic(old_template):
        causes.append(invalid("spec.template", template, "field is immutable"))
    for key in _JOB_IMMUTABLE[1:]:
        causes += immutable(f"spec.{key}", semantic(spec.get(key)), semantic(old.get(key)))
    return causes


_OVER_REPLICAS = "cannot be greater than status.replicas"


def _counts(status: Obj, keys: tuple[str, ...]) -> list[Cause]:
    return [c for key in keys for c in nonnegative(status, key, "status")]


def workload_status(kind: str, status: Obj, old_status: Obj) -> list[Cause]:
    """The status rules of kube's ``Validate<Kind>Status``: counts not negative, none
    above ``replicas``, available within ready, a collision count that never drops."""
    causes: list[Cause] = []
    replicas = status.get("replicas") or 0
    if kind == "DaemonSet":
        keys = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled",
                "numberReady", "observedGeneration", "updatedNumberScheduled",
                "numberAvailable", "numberUnavailable", "collisionCount")  # fmt: skip
        return _counts(status, keys)
    if kind == "Deployment":
        causes += _counts(status, ("observedGeneration", "replicas", "updatedReplicas",
                                   "readyReplicas", "availableReplicas", "unavailableReplicas",
                                   "collisionCount"))  # fmt: skip
        above, ready_word = (
            ("updatedReplicas", "readyReplicas", "availableReplicas"),
            "readyReplicas",
        )
    elif kind == "StatefulSet":
        causes += _counts(status, ("observedGeneration", "replicas", "readyReplicas",
                                   "currentReplicas", "updatedReplicas", "availableReplicas",
                                   "collisionCount"))  # fmt: skip
        above = ("readyReplicas", "currentReplicas", "updatedReplicas", "availableReplicas")
        ready_word = "status.readyReplicas"
    else:  # ReplicaSet, ReplicationController
        causes += _counts(status, ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                   "availableReplicas", "observedGeneration"))  # fmt: skip
        above, ready_word = (
            ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"),
            "readyReplicas",
        )
    for key in above:
        value = status.get(key) or 0
        if isinstance(value, int) and isinstance(replicas, int) and value > replicas:
            causes.append(invalid(f"status.{key}", value, _OVER_REPLICAS))
    available, ready = status.get("availableReplicas") or 0, status.get("readyReplicas") or 0
    if isinstance(available, int) and isinstance(ready, int) and available > ready:
        causes.append(
            invalid("status.availableReplicas", available, f"cannot be greater than {ready_word}")
        )
    if kind in ("Deployment", "StatefulSet"):
        count, before = status.get("collisionCount"), old_status.get("collisionCount")
        if isinstance(count, int) and isinstance(before, int) and count < before:
            causes.append(invalid("status.collisionCount", count, "cannot be decremented"))
    return causes
