"""Pod helpers every component reads pods with (``k8s.io/kubernetes/pkg/api/v1/pod``)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def ready_condition(pod: Obj) -> Obj | None:
    for c in (pod.get("status") or {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: Obj) -> bool:
    """The pod's ``Ready`` condition is ``True`` (``IsPodReady``)."""
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def is_terminal(pod: Obj) -> bool:
    """The pod has finished: phase ``Succeeded`` or ``Failed``."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


DEFAULT_GRACE_PERIOD = 30
"""Seconds a pod gets between SIGTERM and SIGKILL when its spec names none."""


def grace_period(pod: Obj) -> int:
    """The pod's ``terminationGracePeriodSeconds``: 0 is none (not unset), 30 when absent."""
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_PERIOD if value is None else int(value)


CONTAINER_GROUPS = ("containers", "initContainers", "ephemeralContainers")


def container_names(pod: Obj) -> list[str]:
    """Every container a pod has: app, init and ephemeral (``kubectl debug``) ones."""
    spec = pod.get("spec") or {}
    return [c["name"] for group in CONTAINER_GROUPS for c in spec.get(group) or []]
