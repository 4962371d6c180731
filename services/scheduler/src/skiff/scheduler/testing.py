"""Test helpers: Node and Pod builders (like kube-scheduler's ``st.MakePod()``), listers."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

_uids = itertools.count(1)


def make_node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: int = 110,
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str | None = "True",
    unschedulable: bool = False,
    allocatable: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Node with ``status.allocatable`` and a Ready condition (``ready=None``: none)."""
    alloc: dict[str, Any] = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    alloc.update(allocatable or {})
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"node-{name}",
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
        },
        "spec": {},
        "status": {"allocatable": alloc, "capacity": dict(alloc), "conditions": []},
    }
    if taints:
        node["spec"]["taints"] = taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    if ready is not None:
        node["status"]["conditions"].append({"type": "Ready", "status": ready})
    return node


def make_pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str | None = None,
    memory: str | None = None,
    requests: dict[str, Any] | None = None,
    node: str | None = None,
    labels: dict[str, str] | None = None,
    owner_uid: str | None = None,
    priority: int | None = None,
    host_ports: list[int | tuple[str, str, int]] | None = None,
    spec: dict[str, Any] | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """A Pod with one container requesting ``cpu``/``memory``/``requests``."""
    reqs: dict[str, Any] = dict(requests or {})
    if cpu is not None:
        reqs["cpu"] = cpu
    if memory is not None:
        reqs["memory"] = memory
    container: dict[str, Any] = {"name": "c", "image": "busybox", "resources": {}}
    if reqs:
        container["resources"]["requests"] = reqs
    if host_ports:
        ports = []
        for p in host_ports:
            ip, proto, port = p if isinstance(p, tuple) else ("", "TCP", p)
            entry: dict[str, Any] = {"containerPort": port, "hostPort": port, "protocol": proto}
            if ip:
                entry["hostIP"] = ip
            ports.append(entry)
        container["ports"] = ports
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": uid or f"pod-{next(_uids)}",
        "labels": dict(labels or {}),
    }
    if owner_uid is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "rs",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    pod_spec: dict[str, Any] = {"containers": [container], "schedulerName": "default-scheduler"}
    if node is not None:
        pod_spec["nodeName"] = node
    if priority is not None:
        pod_spec["priority"] = priority
    pod_spec.update(spec or {})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": pod_spec,
        "status": {"phase": "Running" if node else "Pending"},
    }


class DictLister:
    """A :class:`~skiff.scheduler.framework.interface.Lister` over fixed objects by key."""

    def __init__(self, objects: Mapping[str, dict[str, Any]]) -> None:
        self._objects = dict(objects)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._objects.get(key)

    def list(self) -> list[dict[str, Any]]:
        return list(self._objects.values())
