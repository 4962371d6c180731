"""Scheduler data model: per-pod precomputed data, per-node aggregates and the snapshot.

Mirrors kube-scheduler's ``pkg/scheduler/framework/types.go`` (``PodInfo``, ``NodeInfo``,
``Resource``) and the cache snapshot. Everything is derived from plain Kubernetes dicts once:
quantities are parsed when a pod or node enters the snapshot, so the per-node work of a
scheduling cycle is integer arithmetic and dict lookups.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_CEILING
from functools import lru_cache
from typing import Any

from skiff.api.errors import ApiError
from skiff.api.quantity import parse_quantity
from skiff.api.selectors import DOUBLE_EQUALS, EQUALS, IN, LabelSelector, selector_from_dict
from skiff.api.taints import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    Taint,
    Toleration,
    parse_tolerations,
)

LABEL_HOSTNAME = "kubernetes.io/hostname"

# schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container without a
# request counts as when scoring, so that many zero-request pods do not pile on one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

_HARD_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


# ---------------------------------------------------------------------------
# quantities


@lru_cache(maxsize=8192)
def milli_value(raw: Any) -> int:
    """A quantity in thousandths, rounded up (``Quantity.MilliValue``); 0 if malformed."""
    q = parse_quantity(raw)
    if q is None:
        return 0
    return int((q * 1000).to_integral_value(rounding=ROUND_CEILING))


@lru_cache(maxsize=8192)
def int_value(raw: Any) -> int:
    """A quantity as an integer, rounded up (``Quantity.Value``); 0 if malformed."""
    q = parse_quantity(raw)
    if q is None:
        return 0
    return int(q.to_integral_value(rounding=ROUND_CEILING))


def is_scalar_resource(name: str) -> bool:
    """Whether ``name`` is tracked as a scalar resource (extended, hugepages, prefixed native)."""
    if name.startswith("hugepages-"):
        return True
    return "/" in name and not name.startswith("requests.")


def _quantity(name: str, raw: Any) -> int:
    if not isinstance(raw, str | int | float):
        return 0
    return milli_value(raw) if name == "cpu" else int_value(raw)


@dataclass(slots=True)
class Resource:
    """Compute resources in canonical integer units: millicores, bytes, counts."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    pods: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, resources: Mapping[str, Any] | None) -> Resource:
        """Convert a ``ResourceList`` (``{"cpu": "2", "memory": "4Gi", ...}``)."""
        r = cls()
        for name, raw in (resources or {}).items():
            r.add(name, _quantity(name, raw))
        return r

    def add(self, name: str, value: int) -> None:
        """Add ``value`` (canonical units) of resource ``name``."""
        if name == "cpu":
            self.milli_cpu += value
        elif name == "memory":
            self.memory += value
        elif name == "ephemeral-storage":
            self.ephemeral_storage += value
        elif name == "pods":
            self.pods += value
        elif is_scalar_resource(name):
            self.scalar[name] = self.scalar.get(name, 0) + value

    def get(self, name: str) -> int:
        """The amount of ``name`` in canonical units."""
        if name == "cpu":
            return self.milli_cpu
        if name == "memory":
            return self.memory
        if name == "ephemeral-storage":
            return self.ephemeral_storage
        if name == "pods":
            return self.pods
        return self.scalar.get(name, 0)

    def add_resource(self, other: Resource, sign: int = 1) -> None:
        """Add (or with ``sign=-1`` subtract) another Resource."""
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        self.pods += sign * other.pods
        if other.scalar:
            scalar = self.scalar
            for name, value in other.scalar.items():
                scalar[name] = scalar.get(name, 0) + sign * value

    def clone(self) -> Resource:
        return Resource(
            self.milli_cpu, self.memory, self.ephemeral_storage, self.pods, dict(self.scalar)
        )


def _add_into(acc: dict[str, int], reqs: Mapping[str, int]) -> None:
    for name, value in reqs.items():
        acc[name] = acc.get(name, 0) + value


def _max_into(acc: dict[str, int], reqs: Mapping[str, int]) -> None:
    for name, value in reqs.items():
        if value > acc.get(name, 0):
            acc[name] = value


def _container_requests(container: Mapping[str, Any], non_missing: bool) -> dict[str, int]:
    resources = container.get("resources") or {}
    out = {name: _quantity(name, raw) for name, raw in (resources.get("requests") or {}).items()}
    if non_missing:
        out.setdefault("cpu", DEFAULT_MILLI_CPU_REQUEST)
        out.setdefault("memory", DEFAULT_MEMORY_REQUEST)
    return out


def pod_requests(spec: Mapping[str, Any], *, non_missing: bool = False) -> dict[str, int]:
    """The pod's effective requests, as ``resourcehelper.PodRequests``.

    The sum of the app containers and restartable (sidecar) init containers, or the largest
    init container plus the sidecars started before it if that is more, plus
    ``spec.overhead``. With ``non_missing`` a container without a cpu or memory request
    counts as 100m / 200Mi (the scheduler's scoring defaults).
    """
    reqs: dict[str, int] = {}
    for c in spec.get("containers") or ():
        _add_into(reqs, _container_requests(c, non_missing))
    restartable: dict[str, int] = {}
    init_max: dict[str, int] = {}
    for c in spec.get("initContainers") or ():
        creqs = _container_requests(c, non_missing)
        if c.get("restartPolicy") == "Always":
            _add_into(reqs, creqs)
            _add_into(restartable, creqs)
            creqs = dict(restartable)
        else:
            _add_into(creqs, restartable)
        _max_into(init_max, creqs)
    _max_into(reqs, init_max)
    for name, raw in (spec.get("overhead") or {}).items():
        reqs[name] = reqs.get(name, 0) + _quantity(name, raw)
    return reqs


# ---------------------------------------------------------------------------
# affinity terms (taints and tolerations are skiff.api.taints)


def exact_label(selector: LabelSelector) -> tuple[str, str] | None:
    """A ``(key, value)`` every object the selector matches must carry, if there is one."""
    for r in selector.requirements:
        if r.operator in (EQUALS, DOUBLE_EQUALS) or (r.operator == IN and len(r.values) == 1):
            return (r.key, r.values[0])
    return None


@dataclass(slots=True, frozen=True)
class AffinityTerm:
    """A parsed ``PodAffinityTerm``: which pods it selects and over which topology."""

    selector: LabelSelector
    namespaces: frozenset[str]
    namespace_selector: LabelSelector
    topology_key: str
    exact: tuple[str, str] | None = None
    """A label every selected pod has; lets :meth:`may_match_on` use the node's label index."""

    @classmethod
    def parse(cls, term: Mapping[str, Any], pod_namespace: str) -> AffinityTerm:
        """Parse a term of a pod in ``pod_namespace``; raises ``ApiError`` on a bad selector."""
        namespaces = term.get("namespaces") or []
        ns_selector = term.get("namespaceSelector")
        if not namespaces and ns_selector is None:
            namespaces = [pod_namespace]
        selector = selector_from_dict(term.get("labelSelector"))
        return cls(
            selector=selector,
            namespaces=frozenset(namespaces),
            namespace_selector=selector_from_dict(ns_selector),
            topology_key=term.get("topologyKey") or "",
            exact=exact_label(selector),
        )

    def may_match_on(self, node: NodeInfo) -> bool:
        """False when no pod on ``node`` can match (cheap, from the node's label index)."""
        if self.selector.matches_nothing:
            return False
        if self.exact is None or not self.namespace_selector.matches_nothing:
            return True
        return node.has_label(self.namespaces, self.exact)

    def matches(self, pod: PodInfo, namespace_labels: Mapping[str, str] | None) -> bool:
        """Whether ``pod`` (whose namespace has ``namespace_labels``) is selected by the term."""
        if pod.namespace in self.namespaces or self.namespace_selector.matches(
            namespace_labels or {}
        ):
            return self.selector.matches(pod.labels)
        return False


def _required_terms(affinity: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    section = affinity.get(kind) or {}
    return [
        t
        for t in section.get("requiredDuringSchedulingIgnoredDuringExecution") or ()
        if isinstance(t, Mapping)
    ]


# ---------------------------------------------------------------------------
# pods


def pod_key(pod: Mapping[str, Any]) -> str:
    """The cache key of a pod: its uid, or ``namespace/name`` when it has none."""
    meta = pod.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


@dataclass(slots=True, eq=False)
class PodInfo:
    """A pod with everything the plugins need computed once (``framework.PodInfo``)."""

    pod: dict[str, Any]
    key: str
    namespace: str
    name: str
    labels: dict[str, str]
    node_name: str
    priority: int
    requests: Resource
    non_zero_cpu: int
    non_zero_memory: int
    host_ports: tuple[tuple[str, str, int], ...]
    tolerations: tuple[Toleration, ...]
    controller_uid: str | None
    terminating: bool
    start_time: str
    required_affinity: tuple[AffinityTerm, ...] = ()
    required_anti_affinity: tuple[AffinityTerm, ...] = ()
    parse_error: str | None = None

    @classmethod
    def of(cls, pod: dict[str, Any]) -> PodInfo:
        """Precompute a pod's scheduling data."""
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        namespace = meta.get("namespace") or "default"
        reqs = pod_requests(spec)
        requests = Resource()
        for name, value in reqs.items():
            requests.add(name, value)
        non_zero = pod_requests(spec, non_missing=True)
        ports: list[tuple[str, str, int]] = []
        containers = list(spec.get("containers") or ())
        containers += [
            c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"
        ]
        for c in containers:
            for p in c.get("ports") or ():
                host_port = p.get("hostPort") or 0
                if isinstance(host_port, int) and host_port > 0:
                    ports.append(
                        (p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", host_port)
                    )
        controller_uid = None
        for ref in meta.get("ownerReferences") or ():
            if ref.get("controller"):
                controller_uid = ref.get("uid")
                break
        info = cls(
            pod=pod,
            key=pod_key(pod),
            namespace=namespace,
            name=meta.get("name") or "",
            labels=meta.get("labels") or {},
            node_name=spec.get("nodeName") or "",
            priority=spec.get("priority") or 0,
            requests=requests,
            non_zero_cpu=non_zero.get("cpu", 0),
            non_zero_memory=non_zero.get("memory", 0),
            host_ports=tuple(ports),
            tolerations=parse_tolerations(spec.get("tolerations")),
            controller_uid=controller_uid,
            terminating=meta.get("deletionTimestamp") is not None,
            start_time=(pod.get("status") or {}).get("startTime") or "",
        )
        affinity = spec.get("affinity") or {}
        if affinity:
            try:
                info.required_affinity = tuple(
                    AffinityTerm.parse(t, namespace)
                    for t in _required_terms(affinity, "podAffinity")
                )
                info.required_anti_affinity = tuple(
                    AffinityTerm.parse(t, namespace)
                    for t in _required_terms(affinity, "podAntiAffinity")
                )
            except ApiError as exc:
                info.parse_error = str(exc)
        return info

    def with_node(self, node_name: str) -> PodInfo:
        """A copy bound to ``node_name`` (``spec.nodeName`` set), sharing the computed data."""
        pod = dict(self.pod)
        pod["spec"] = {**(self.pod.get("spec") or {}), "nodeName": node_name}
        clone = copy.copy(self)
        clone.pod = pod
        clone.node_name = node_name
        return clone


# ---------------------------------------------------------------------------
# nodes


def _ready_taint(node: Mapping[str, Any]) -> Taint | None:
    """The taint the node lifecycle controller would put on a node that is not Ready."""
    for cond in (node.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            status = cond.get("status")
            if status == "True":
                return None
            if status == "Unknown":
                return Taint(TAINT_UNREACHABLE, "", "NoSchedule")
            return Taint(TAINT_NOT_READY, "", "NoSchedule")
    return Taint(TAINT_NOT_READY, "", "NoSchedule")


@dataclass(slots=True, eq=False)
class NodeInfo:
    """A node and the aggregates of the pods on it (bound and assumed), kept incrementally."""

    name: str = ""
    node: dict[str, Any] | None = None
    labels: dict[str, str] = field(default_factory=dict)
    unschedulable: bool = False
    taints: tuple[Taint, ...] = ()
    """Effective taints: the node's, plus not-ready/unreachable when its Ready is not True."""
    hard_taints: tuple[Taint, ...] = ()
    """The NoSchedule and NoExecute subset of ``taints``."""
    soft_taints: tuple[Taint, ...] = ()
    """The PreferNoSchedule subset of ``taints``."""
    allocatable: Resource = field(default_factory=Resource)
    requested: Resource = field(default_factory=Resource)
    non_zero_requested: Resource = field(default_factory=Resource)
    pod_infos: dict[str, PodInfo] = field(default_factory=dict)
    pods_with_required_anti_affinity: dict[str, PodInfo] = field(default_factory=dict)
    used_ports: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    """``(protocol, port) -> {host ip: number of pods}``."""
    owner_counts: dict[str, int] = field(default_factory=dict)
    """Non-terminating pods per controller ownerReference uid."""
    label_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    """Pods per ``(namespace, label key, label value)``."""
    generation: int = 0

    @classmethod
    def of(cls, node: dict[str, Any] | None, pods: Iterable[PodInfo | dict] = ()) -> NodeInfo:
        """A NodeInfo for ``node`` holding ``pods`` (dicts or PodInfos)."""
        info = cls()
        if node is not None:
            info.set_node(node)
        for p in pods:
            info.add_pod(p if isinstance(p, PodInfo) else PodInfo.of(p))
        return info

    def set_node(self, node: dict[str, Any]) -> None:
        """Set or replace the node object, keeping the pods."""
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.node = node
        self.name = meta.get("name") or ""
        self.labels = meta.get("labels") or {}
        self.unschedulable = bool(spec.get("unschedulable"))
        taints = [Taint.of(t) for t in spec.get("taints") or () if isinstance(t, Mapping)]
        synthetic = _ready_taint(node)
        if synthetic is not None and not any(t.key == synthetic.key for t in taints):
            taints.append(synthetic)
        self.taints = tuple(taints)
        self.hard_taints = tuple(t for t in taints if t.effect in _HARD_EFFECTS)
        self.soft_taints = tuple(t for t in taints if t.effect == "PreferNoSchedule")
        allocatable = status.get("allocatable")
        if allocatable is None:
            allocatable = status.get("capacity")
        self.allocatable = Resource.from_list(allocatable)
        self.generation += 1

    @property
    def pods(self) -> list[dict[str, Any]]:
        """The pod dicts on the node."""
        return [p.pod for p in self.pod_infos.values()]

    def add_pod(self, pod: PodInfo) -> None:
        """Account for a pod on this node (replacing one with the same key)."""
        if pod.key in self.pod_infos:
            self.remove_pod(pod.key)
        self.pod_infos[pod.key] = pod
        self._update(pod, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        """Stop accounting for the pod with ``key``; returns it, or None if absent."""
        pod = self.pod_infos.pop(key, None)
        if pod is not None:
            self._update(pod, -1)
        return pod

    def _update(self, pod: PodInfo, sign: int) -> None:
        self.requested.add_resource(pod.requests, sign)
        nz = self.non_zero_requested
        nz.milli_cpu += sign * pod.non_zero_cpu
        nz.memory += sign * pod.non_zero_memory
        if pod.required_anti_affinity:
            if sign > 0:
                self.pods_with_required_anti_affinity[pod.key] = pod
            else:
                self.pods_with_required_anti_affinity.pop(pod.key, None)
        for ip, protocol, port in pod.host_ports:
            ips = self.used_ports.setdefault((protocol, port), {})
            count = ips.get(ip, 0) + sign
            if count > 0:
                ips[ip] = count
            else:
                ips.pop(ip, None)
                if not ips:
                    del self.used_ports[(protocol, port)]
        uid = pod.controller_uid
        if uid is not None and not pod.terminating:
            count = self.owner_counts.get(uid, 0) + sign
            if count > 0:
                self.owner_counts[uid] = count
            else:
                self.owner_counts.pop(uid, None)
        label_counts = self.label_counts
        ns = pod.namespace
        for k, v in pod.labels.items():
            key = (ns, k, v)
            count = label_counts.get(key, 0) + sign
            if count > 0:
                label_counts[key] = count
            else:
                label_counts.pop(key, None)
        self.generation += 1

    def has_label(self, namespaces: Iterable[str], label: tuple[str, str]) -> bool:
        """Whether a pod in one of ``namespaces`` carries ``label`` on this node."""
        counts = self.label_counts
        k, v = label
        return any((ns, k, v) in counts for ns in namespaces)

    def port_conflict(self, ip: str, protocol: str, port: int) -> bool:
        """``HostPortInfo.CheckConflict``: 0.0.0.0 conflicts with every IP on the same port."""
        ips = self.used_ports.get((protocol, port))
        if not ips:
            return False
        if ip == "0.0.0.0":
            return True
        return "0.0.0.0" in ips or ip in ips

    def clone(self) -> NodeInfo:
        """A copy whose pod set and aggregates can change independently (for dry runs)."""
        return NodeInfo(
            name=self.name,
            node=self.node,
            labels=self.labels,
            unschedulable=self.unschedulable,
            taints=self.taints,
            hard_taints=self.hard_taints,
            soft_taints=self.soft_taints,
            allocatable=self.allocatable,
            requested=self.requested.clone(),
            non_zero_requested=self.non_zero_requested.clone(),
            pod_infos=dict(self.pod_infos),
            pods_with_required_anti_affinity=dict(self.pods_with_required_anti_affinity),
            used_ports={k: dict(v) for k, v in self.used_ports.items()},
            owner_counts=dict(self.owner_counts),
            label_counts=dict(self.label_counts),
            generation=self.generation,
        )
