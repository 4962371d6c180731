"""What the parts of the DaemonSet controller share (kube's ``pkg/controller/daemon/util``).

Where a daemon pod may run: the tolerations every daemon pod gets
(``AddOrUpdateDaemonPodTolerations``), a pod spec's nodeSelector and required node
affinity matched against a node, and ``NodeShouldRunDaemonPod`` (whether a node should
get a daemon pod, and whether it may keep one); pinning a pod to its node with a
``metadata.name`` affinity and reading that node back; ``maxSurge`` / ``maxUnavailable``
values (``GetScaledValueFromIntOrPercent``); a daemon pod's revision hash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from skiff.api import intstr
from skiff.api.taints import (
    TAINT_DISK_PRESSURE,
    TAINT_MEMORY_PRESSURE,
    TAINT_NETWORK_UNAVAILABLE,
    TAINT_NOT_READY,
    TAINT_PID_PRESSURE,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    tolerates,
)
from skiff.client.informer import copy_object
from skiff.client.rest import Obj
from skiff.controller.controller import TerminalError

from ..history import CONTROLLER_REVISION_HASH_LABEL

NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"


# -- node eligibility ----------------------------------------------------------------------


def daemon_tolerations(spec: Obj) -> list[Obj]:
    """The tolerations every daemon pod gets (``AddOrUpdateDaemonPodTolerations``)."""
    wanted = [
        (TAINT_NOT_READY, NO_EXECUTE),
        (TAINT_UNREACHABLE, NO_EXECUTE),
        (TAINT_DISK_PRESSURE, NO_SCHEDULE),
        (TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
        (TAINT_PID_PRESSURE, NO_SCHEDULE),
        (TAINT_UNSCHEDULABLE, NO_SCHEDULE),
    ]
    if spec.get("hostNetwork"):
        wanted.append((TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE))
    return [{"key": k, "operator": "Exists", "effect": e} for k, e in wanted]


def add_daemon_tolerations(spec: Obj) -> None:
    """Add the daemon tolerations to a pod spec, replacing same key/effect Exists ones."""
    tolerations = list(spec.get("tolerations") or ())
    for t in daemon_tolerations(spec):
        same = [
            i
            for i, have in enumerate(tolerations)
            if have.get("key") == t["key"]
            and have.get("effect") == t["effect"]
            and have.get("operator", "Equal") == "Exists"
        ]
        if same:
            tolerations[same[0]] = t
        else:
            tolerations.append(t)
    spec["tolerations"] = tolerations


def _int(text: Any) -> int | None:
    if isinstance(text, str) and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    return None


def _expression_matches(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op = expr.get("key") or "", expr.get("operator")
    values = list(expr.get("values") or ())
    value = labels.get(key)
    if op == "In":
        return value is not None and value in values
    if op == "NotIn":
        return value is None or value not in values
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and len(values) == 1:
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    exprs = term.get("matchExpressions") or ()
    fields = term.get("matchFields") or ()
    if not exprs and not fields:
        return False  # an empty term matches no node
    if not all(_expression_matches(e, labels) for e in exprs):
        return False
    for f in fields:
        values = list(f.get("values") or ())
        got = name if f.get("key") == "metadata.name" else None
        if f.get("operator") == "In":
            ok = got is not None and got in values
        elif f.get("operator") == "NotIn":
            ok = got is None or got not in values
        else:
            ok = False
        if not ok:
            return False
    return True


def node_affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    """The nodeSelector and the required node affinity of ``pod_spec`` accept ``node``."""
    meta = node["metadata"]
    labels = meta.get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    terms = required.get("nodeSelectorTerms") or ()
    return any(_term_matches(t, labels, meta["name"]) for t in terms)


def should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run a daemon pod, should keep running one): ``NodeShouldRunDaemonPod``.

    A node that only has an untolerated NoSchedule taint keeps its pod but gets no new
    one; an untolerated NoExecute taint, a nodeName or affinity mismatch removes it.
    """
    spec = copy_object(((ds.get("spec") or {}).get("template") or {}).get("spec") or {})
    add_daemon_tolerations(spec)
    if spec.get("nodeName") and spec["nodeName"] != node["metadata"]["name"]:
        return False, False
    if not node_affinity_matches(spec, node):
        return False, False
    tolerations = spec.get("tolerations") or ()
    untolerated = [
        t
        for t in (node.get("spec") or {}).get("taints") or ()
        if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE)
        and not any(tolerates(tol, t) for tol in tolerations)
    ]
    if untolerated:
        return False, not any(t.get("effect") == NO_EXECUTE for t in untolerated)
    return True, True


def pin_to_node(spec: Obj, node_name: str) -> None:
    """``ReplaceDaemonSetPodNodeNameNodeAffinity``: require ``metadata.name`` = the node."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}
    affinity = spec.setdefault("affinity", {}) or {}
    spec["affinity"] = affinity
    node_affinity = affinity.setdefault("nodeAffinity", {}) or {}
    affinity["nodeAffinity"] = node_affinity
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [term]}


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName, or its ``metadata.name`` affinity."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            values = f.get("values") or ()
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(values) == 1:
                return values[0]
    return None


def scaled_value(value: Any, total: int, *, round_up: bool) -> int:
    """``GetScaledValueFromIntOrPercent`` (:func:`skiff.api.intstr.scaled_value`); a bad
    value is terminal for the DaemonSet."""
    try:
        return intstr.scaled_value(value, total, round_up)
    except ValueError as e:
        raise TerminalError(str(e)) from e


def pod_hash(pod: Obj) -> str:
    return (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
