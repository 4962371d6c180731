"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints
whatever columns the server sends. The columns and cell formatting here follow
kube-apiserver 1.32 (``pkg/printers/internalversion/printers.go``): like the real
server, every row carries the ``-o wide`` (priority 1) cells too and kubectl drops
them unless asked.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from skiff.api import errors
from skiff.api.resources import ResourceInfo, is_default_storage_class
from skiff.api.timestamps import parse_time, rfc3339
from skiff.apiserver import schema

INCLUDE_NONE = "None"
INCLUDE_METADATA = "Metadata"
INCLUDE_OBJECT = "Object"

NONE = "<none>"
UNKNOWN = "<unknown>"
UNSET = "<unset>"

Cells = list[Any]
Printer = Callable[[dict, float], Cells]

# ---------------------------------------------------------------------------
# durations and timestamps


def human_duration(seconds: float) -> str:
    """Go's ``duration.HumanDuration``: "5s", "2m10s", "3h", "4d", "2y45d"..."""
    secs = int(seconds)  # truncates toward zero, as Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


_parse_ts = functools.lru_cache(maxsize=8192)(parse_time)


def _ts(value: Any) -> float | None:
    if not value or not isinstance(value, str):
        return None
    return _parse_ts(value)


def translate_timestamp_since(value: str | None, now: float) -> str:
    """Age of an RFC 3339 timestamp relative to ``now`` (epoch seconds), ``<unknown>`` if unset."""
    ts = _ts(value)
    if ts is None:
        return UNKNOWN
    return human_duration(now - ts)


def _age(obj: dict, now: float) -> str:
    return translate_timestamp_since((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _name(obj: dict) -> str:
    return (obj.get("metadata") or {}).get("name", "")


# ---------------------------------------------------------------------------
# formatting helpers shared by several printers


def format_labels(labels: dict[str, str] | None) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs, ``<none>`` when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _selector_string(selector: dict | None) -> str | None:
    """``LabelSelectorAsSelector(...).String()``; ``None`` when the selector is invalid."""
    if not selector:
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in (selector.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for expr in selector.get("matchExpressions") or []:
        key = expr.get("key", "")
        op = expr.get("operator")
        values = sorted(expr.get("values") or [])
        if op == "In":
            reqs.append((key, f"{key} in ({','.join(values)})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return None
    reqs.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in reqs)


def format_label_selector(selector: dict | None) -> str:
    """``metav1.FormatLabelSelector``: ``<none>`` when empty, ``<error>`` when invalid."""
    s = _selector_string(selector)
    if s is None:
        return "<error>"
    return s or NONE


def _containers_cells(pod_spec: dict | None) -> tuple[str, str]:
    containers = (pod_spec or {}).get("containers") or []
    return (
        ",".join(c.get("name", "") for c in containers),
        ",".join(c.get("image", "") for c in containers),
    )


def _template_spec(spec: dict) -> dict:
    return (spec.get("template") or {}).get("spec") or {}


def _list_with_more(items: list[str], count: int, limit: int = 3) -> str:
    ret = ",".join(items[:limit])
    if count > limit:
        return f"{ret} + {count - limit} more..."
    return ret or UNSET


def _join_host_port(host: str, port: Any) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[str] | None) -> str:
    if not modes:
        return ""
    return ",".join(short for mode, short in _ACCESS_MODES if mode in modes)


def _bool_ptr(value: Any) -> str:
    if value is None:
        return UNSET
    return "True" if value else "False"


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------------------
# pods


def _restartable(container: dict | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _has_condition(conditions: list[dict], ctype: str) -> bool:
    for c in conditions:
        if c.get("type") == ctype:
            return c.get("status") == "True"
    return False


def _print_pod(pod: dict, now: float) -> Cells:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    init_specs = spec.get("initContainers") or []

    restarts = 0
    ric_restarts = 0  # restarts of restartable (sidecar) init containers
    total = len(spec.get("containers") or ())
    ready = 0
    last_restart = 0.0
    last_ric_restart = 0.0

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_by_name: dict[str, dict] = {}
    for c in init_specs:
        init_by_name[c.get("name", "")] = c
        if c.get("restartPolicy") == "Always":
            total += 1

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or ()):
        count = cs.get("restartCount") or 0
        restarts += count
        last_term = (cs.get("lastState") or {}).get("terminated")
        finished = _ts(last_term.get("finishedAt")) if last_term else None
        if finished is not None and finished > last_restart:
            last_restart = finished
        sidecar = _restartable(init_by_name.get(cs.get("name", "")))
        if sidecar:
            ric_restarts += count
            if finished is not None and finished > last_ric_restart:
                last_ric_restart = finished
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and (terminated.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
            else:
                reason = "Init:" + terminated["reason"]
        elif (
            waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing"
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        restarts = ric_restarts
        last_restart = last_ric_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or ()):
            restarts += cs.get("restartCount") or 0
            last_term = (cs.get("lastState") or {}).get("terminated")
            if last_term:
                finished = _ts(last_term.get("finishedAt"))
                if finished is not None and finished > last_restart:
                    last_restart = finished
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_str = str(restarts)
    if restarts and last_restart:
        restarts_str = f"{restarts} ({human_duration(now - last_restart)} ago)"

    pod_ips = status.get("podIPs")
    pod_ip = (pod_ips[0].get("ip") if pod_ips else status.get("podIP")) or NONE
    gates = spec.get("readinessGates")
    readiness = NONE
    if gates:
        by_type: dict[str, str] = {}
        for c in conditions:
            by_type.setdefault(c.get("type", ""), c.get("status", ""))
        true_count = sum(1 for g in gates if by_type.get(g.get("conditionType", "")) == "True")
        readiness = f"{true_count}/{len(gates)}"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_str,
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or NONE,
        status.get("nominatedNodeName") or NONE,
        readiness,
    ]


_POD_SUCCEEDED = [
    {
        "type": "Completed",
        "status": "True",
        "reason": "Succeeded",
        "message": "The pod has completed successfully.",
    }
]
_POD_FAILED = [
    {"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}
]


def _pod_conditions(pod: dict) -> list[dict] | None:
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Succeeded":
        return _POD_SUCCEEDED
    if phase == "Failed":
        return _POD_FAILED
    return None


# ---------------------------------------------------------------------------
# workloads


def _print_deployment(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers_cells(_template_spec(spec))
    selector = _selector_string(spec.get("selector"))
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}",
        _int(status.get("updatedReplicas")),
        _int(status.get("availableReplicas")),
        _age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _replicas_row(obj: dict, now: float, selector: str) -> Cells:
    """ReplicaSet and ReplicationController rows, which differ only in the selector's form."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers_cells(_template_spec(spec))
    return [
        _name(obj),
        _int(spec.get("replicas", 1)),
        _int(status.get("replicas")),
        _int(status.get("readyReplicas")),
        _age(obj, now),
        names,
        images,
        selector,
    ]


def _print_replica_set(obj: dict, now: float) -> Cells:
    return _replicas_row(obj, now, format_label_selector((obj.get("spec") or {}).get("selector")))


def _print_replication_controller(obj: dict, now: float) -> Cells:
    return _replicas_row(obj, now, format_labels((obj.get("spec") or {}).get("selector")))


def _print_stateful_set(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = _containers_cells(_template_spec(spec))
    return [
        _name(obj),
        f"{_int(status.get('readyReplicas'))}/{_int(spec.get('replicas', 1))}",
        _age(obj, now),
        names,
        images,
    ]


def _print_daemon_set(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    pod_spec = _template_spec(spec)
    names, images = _containers_cells(pod_spec)
    return [
        _name(obj),
        _int(status.get("desiredNumberScheduled")),
        _int(status.get("currentNumberScheduled")),
        _int(status.get("numberReady")),
        _int(status.get("updatedNumberScheduled")),
        _int(status.get("numberAvailable")),
        format_labels(pod_spec.get("nodeSelector")),
        _age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _print_job(obj: dict, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    succeeded = _int(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif _int(spec.get("parallelism")) > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"

    start = _ts(status.get("startTime"))
    end = _ts(status.get("completionTime"))
    if start is None:
        job_duration = ""
    elif end is None:
        job_duration = human_duration(now - start)
    else:
        job_duration = human_duration(end - start)

    conditions = status.get("conditions") or []
    if _has_condition(conditions, "Complete"):
        state = "Complete"
    elif _has_condition(conditions, "Failed"):
        state = "Failed"
    elif meta.get("deletionTimestamp"):
        state = "Terminating"
    elif _has_condition(conditions, "Suspended"):
        state = "Suspended"
    elif _has_condition(conditions, "FailureTarget"):
        state = "FailureTarget"
    else:
        state = "Running"

    names, images = _containers_cells(_template_spec(spec))
    return [
        meta.get("name", ""),
        state,
        completions,
        job_duration,
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        names,
        images,
        format_label_selector(spec.get("selector")),
    ]


def _print_cron_job(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    last = status.get("lastScheduleTime")
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _containers_cells(_template_spec(job_spec))
    return [
        _name(obj),
        spec.get("schedule", ""),
        spec.get("timeZone") or NONE,
        _bool_ptr(spec.get("suspend")),
        len(status.get("active") or ()),
        translate_timestamp_since(last, now) if last else NONE,
        _age(obj, now),
        names,
        images,
        format_label_selector(job_spec.get("selector")),
    ]


def _print_controller_revision(obj: dict, now: float) -> Cells:
    controller = NONE
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            group = ref.get("apiVersion", "").rpartition("/")[0]
            kind = ref.get("kind", "")
            group_kind = f"{kind}.{group}" if group else kind
            name = ref.get("name", "")
            controller = f"{group_kind.lower()}/{name}" if group_kind else name
            break
    return [_name(obj), controller, _int(obj.get("revision")), _age(obj, now)]


# ---------------------------------------------------------------------------
# services and networking


def _service_external_ip(spec: dict, status: dict) -> str:
    svc_type = spec.get("type")
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if svc_type == "LoadBalancer":
        found = set()
        for ing in (status.get("loadBalancer") or {}).get("ingress") or ():
            if ing.get("ip"):
                found.add(ing["ip"])
            elif ing.get("hostname"):
                found.add(ing["hostname"])
        lb = sorted(found)
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if svc_type == "ExternalName":
        return spec.get("externalName", "")
    return UNKNOWN


def _service_ports(ports: list[dict]) -> str:
    pieces = []
    for p in ports:
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort")
        if node_port:
            pieces.append(f"{p.get('port')}:{node_port}/{proto}")
        else:
            pieces.append(f"{p.get('port')}/{proto}")
    return ",".join(pieces) or NONE


def _print_service(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    ips = spec.get("clusterIPs")
    cluster_ip = (ips[0] if ips else spec.get("clusterIP")) or NONE
    return [
        _name(obj),
        spec.get("type", ""),
        cluster_ip,
        _service_external_ip(spec, obj.get("status") or {}),
        _service_ports(spec.get("ports") or []),
        _age(obj, now),
        format_labels(spec.get("selector")),
    ]


def _format_endpoints(subsets: list[dict]) -> str:
    if not subsets:
        return NONE
    items: list[str] = []
    count = 0
    for ss in subsets:
        addresses = ss.get("addresses") or []
        ports = ss.get("ports") or []
        if not ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == 3:
                    break
                items.append(a.get("ip", ""))
            continue
        for port in ports:
            count += len(addresses)
            for a in addresses:
                if len(items) == 3:
                    break
                items.append(_join_host_port(a.get("ip", ""), port.get("port", 0)))
    ret = ",".join(items)
    if count > 3:
        return f"{ret} + {count - 3} more..."
    return ret


def _print_endpoints(obj: dict, now: float) -> Cells:
    return [_name(obj), _format_endpoints(obj.get("subsets") or []), _age(obj, now)]


def _print_endpoint_slice(obj: dict, now: float) -> Cells:
    ports = []
    port_list = obj.get("ports") or []
    for p in port_list[:3]:
        if p.get("port") is not None:
            ports.append(str(p["port"]))
        elif p.get("name") is not None:
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [a for ep in obj.get("endpoints") or () for a in ep.get("addresses") or ()]
    return [
        _name(obj),
        obj.get("addressType", ""),
        _list_with_more(ports, len(port_list)),
        _list_with_more(addresses, len(addresses)),
        _age(obj, now),
    ]


# ---------------------------------------------------------------------------
# cluster and config objects


def _print_node(obj: dict, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    states = []
    for c in status.get("conditions") or ():
        if c.get("type") == "Ready":
            states = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")

    roles = set()
    for k, v in (meta.get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/") :]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(v)

    internal_ip = external_ip = NONE
    for a in status.get("addresses") or ():
        if a.get("type") == "InternalIP" and internal_ip == NONE:
            internal_ip = a.get("address", "")
        elif a.get("type") == "ExternalIP" and external_ip == NONE:
            external_ip = a.get("address", "")
    info = status.get("nodeInfo") or {}
    return [
        meta.get("name", ""),
        ",".join(states),
        ",".join(sorted(roles)) or NONE,
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        internal_ip,
        external_ip,
        info.get("osImage") or UNKNOWN,
        info.get("kernelVersion") or UNKNOWN,
        info.get("containerRuntimeVersion") or UNKNOWN,
    ]


def _print_namespace(obj: dict, now: float) -> Cells:
    return [_name(obj), (obj.get("status") or {}).get("phase", ""), _age(obj, now)]


def _print_config_map(obj: dict, now: float) -> Cells:
    size = len(obj.get("data") or ()) + len(obj.get("binaryData") or ())
    return [_name(obj), size, _age(obj, now)]


def _print_secret(obj: dict, now: float) -> Cells:
    return [_name(obj), obj.get("type", ""), len(obj.get("data") or ()), _age(obj, now)]


def _print_service_account(obj: dict, now: float) -> Cells:
    return [_name(obj), len(obj.get("secrets") or ()), _age(obj, now)]


def _print_priority_class(obj: dict, now: float) -> Cells:
    return [
        _name(obj),
        _int(obj.get("value")),
        bool(obj.get("globalDefault")),
        _age(obj, now),
        obj.get("preemptionPolicy") or "",
    ]


def _print_storage_class(obj: dict, now: float) -> Cells:
    name = _name(obj)
    if is_default_storage_class(obj):
        name += " (default)"
    return [
        name,
        obj.get("provisioner") or "",
        obj.get("reclaimPolicy") or "",
        obj.get("volumeBindingMode") or "",
        bool(obj.get("allowVolumeExpansion")),
        _age(obj, now),
    ]


def _print_lease(obj: dict, now: float) -> Cells:
    holder = (obj.get("spec") or {}).get("holderIdentity") or ""
    return [_name(obj), holder, _age(obj, now)]


def _storage_class(obj: dict) -> str:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    beta = annotations.get("volume.beta.kubernetes.io/storage-class")
    if beta is not None:
        return beta
    return (obj.get("spec") or {}).get("storageClassName") or ""


def _print_persistent_volume(obj: dict, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    claim = spec.get("claimRef")
    claim_str = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    return [
        meta.get("name", ""),
        str((spec.get("capacity") or {}).get("storage", "0")),
        _access_modes(spec.get("accessModes")),
        spec.get("persistentVolumeReclaimPolicy", ""),
        phase,
        claim_str,
        _storage_class(obj),
        spec.get("volumeAttributesClassName") or UNSET,
        status.get("reason", ""),
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        spec.get("volumeMode") or UNSET,
    ]


def _print_persistent_volume_claim(obj: dict, now: float) -> Cells:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    capacity = access = ""
    if spec.get("volumeName"):
        access = _access_modes(status.get("accessModes"))
        capacity = str((status.get("capacity") or {}).get("storage", "0"))
    return [
        meta.get("name", ""),
        phase,
        spec.get("volumeName", ""),
        capacity,
        access,
        _storage_class(obj),
        spec.get("volumeAttributesClassName") or UNSET,
        translate_timestamp_since(meta.get("creationTimestamp"), now),
        spec.get("volumeMode") or UNSET,
    ]


def _event_cells(
    name: str,
    involved: dict,
    etype: str,
    reason: str,
    message: str,
    source: dict,
    controller: str,
    instance: str,
    first_ts: str | None,
    last_ts: str | None,
    event_time: str | None,
    count: int,
    series: dict | None,
    now: float,
) -> Cells:
    first = (
        translate_timestamp_since(first_ts, now)
        if _ts(first_ts) is not None
        else translate_timestamp_since(event_time, now)
    )
    last = translate_timestamp_since(last_ts, now) if _ts(last_ts) is not None else first
    if series:
        last = translate_timestamp_since(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
    elif not count:
        count = 1  # singleton events have no count in the events.k8s.io API
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    component = source.get("component") or controller or ""
    host = source.get("host") or instance or ""
    return [
        last,
        etype,
        reason,
        target,
        involved.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        (message or "").strip(),
        first,
        count,
        name,
    ]


def _print_event(obj: dict, now: float) -> Cells:
    return _event_cells(
        _name(obj),
        obj.get("involvedObject") or {},
        obj.get("type", ""),
        obj.get("reason", ""),
        obj.get("message", ""),
        obj.get("source") or {},
        obj.get("reportingComponent", ""),
        obj.get("reportingInstance", ""),
        obj.get("firstTimestamp"),
        obj.get("lastTimestamp"),
        obj.get("eventTime"),
        _int(obj.get("count")),
        obj.get("series"),
        now,
    )


def _print_events_v1_event(obj: dict, now: float) -> Cells:
    # kube-apiserver converts events.k8s.io Events to the core type before printing.
    return _event_cells(
        _name(obj),
        obj.get("regarding") or {},
        obj.get("type", ""),
        obj.get("reason", ""),
        obj.get("note", ""),
        obj.get("deprecatedSource") or {},
        obj.get("reportingController", ""),
        obj.get("reportingInstance", ""),
        obj.get("deprecatedFirstTimestamp"),
        obj.get("deprecatedLastTimestamp"),
        obj.get("eventTime"),
        _int(obj.get("deprecatedCount")),
        obj.get("series"),
        now,
    )


def _subjects(subjects: list[dict]) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for s in subjects:
        kind = s.get("kind")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
        elif kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _print_role_binding(obj: dict, now: float) -> Cells:
    ref = obj.get("roleRef") or {}
    users, groups, sas = _subjects(obj.get("subjects") or [])
    role = f"{ref.get('kind', '')}/{ref.get('name', '')}"
    return [_name(obj), role, _age(obj, now), users, groups, sas]


def _created_at(obj: dict) -> str:
    ts = _ts((obj.get("metadata") or {}).get("creationTimestamp"))
    if ts is None:
        return "0001-01-01T00:00:00Z"
    return rfc3339(int(ts))


def _print_default(obj: dict, now: float) -> Cells:
    return [_name(obj), _created_at(obj)]


def _print_name_age(obj: dict, now: float) -> Cells:
    return [_name(obj), _age(obj, now)]


# ---------------------------------------------------------------------------
# column definitions

_OM = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_CORE = "io.k8s.api.core.v1."
_APPS = "io.k8s.api.apps.v1."
_BATCH = "io.k8s.api.batch.v1."

Doc = str | tuple[str, str]
"""A literal description, or ``(definition, field)`` whose schema description is used."""


@dataclass(frozen=True, slots=True)
class _Col:
    name: str
    type: str
    doc: Doc
    priority: int = 0
    format: str = ""


def _describe(doc: Doc) -> str:
    if isinstance(doc, str):
        return doc
    definition, prop = doc
    try:
        props = schema.definitions().get(definition, {}).get("properties") or {}
    except (OSError, ValueError):
        return ""
    return (props.get(prop) or {}).get("description", "")


_NAME = _Col("Name", "string", (_OM, "name"), format="name")
_AGE = _Col("Age", "string", (_OM, "creationTimestamp"))
_CONTAINERS = _Col("Containers", "string", "Names of each container in the template.", 1)
_IMAGES = _Col("Images", "string", "Images referenced by each container in the template.", 1)
_READY_PODS = _Col("Ready", "string", "Number of the pod with ready state")


@dataclass(frozen=True, slots=True)
class _Printer:
    columns: tuple[_Col, ...]
    cells: Printer
    conditions: Callable[[dict], list[dict] | None] | None = None


_PRINTERS: dict[tuple[str, str], _Printer] = {
    ("", "Pod"): _Printer(
        (
            _NAME,
            _Col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            _Col("Status", "string", "The aggregate status of the containers in this pod."),
            _Col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted and when "
                "the last container in this pod has restarted.",
            ),
            _AGE,
            _Col("IP", "string", (_CORE + "PodStatus", "podIP"), 1),
            _Col("Node", "string", (_CORE + "PodSpec", "nodeName"), 1),
            _Col("Nominated Node", "string", (_CORE + "PodStatus", "nominatedNodeName"), 1),
            _Col("Readiness Gates", "string", (_CORE + "PodSpec", "readinessGates"), 1),
        ),
        _print_pod,
        _pod_conditions,
    ),
    ("", "ReplicationController"): _Printer(
        (
            _NAME,
            _Col("Desired", "integer", (_CORE + "ReplicationControllerSpec", "replicas")),
            _Col("Current", "integer", (_CORE + "ReplicationControllerStatus", "replicas")),
            _Col("Ready", "integer", (_CORE + "ReplicationControllerStatus", "readyReplicas")),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_CORE + "ReplicationControllerSpec", "selector"), 1),
        ),
        _print_replication_controller,
    ),
    ("apps", "ReplicaSet"): _Printer(
        (
            _NAME,
            _Col("Desired", "integer", (_APPS + "ReplicaSetSpec", "replicas")),
            _Col("Current", "integer", (_APPS + "ReplicaSetStatus", "replicas")),
            _Col("Ready", "integer", (_APPS + "ReplicaSetStatus", "readyReplicas")),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_APPS + "ReplicaSetSpec", "selector"), 1),
        ),
        _print_replica_set,
    ),
    ("apps", "DaemonSet"): _Printer(
        (
            _NAME,
            _Col("Desired", "integer", (_APPS + "DaemonSetStatus", "desiredNumberScheduled")),
            _Col("Current", "integer", (_APPS + "DaemonSetStatus", "currentNumberScheduled")),
            _Col("Ready", "integer", (_APPS + "DaemonSetStatus", "numberReady")),
            _Col("Up-to-date", "integer", (_APPS + "DaemonSetStatus", "updatedNumberScheduled")),
            _Col("Available", "integer", (_APPS + "DaemonSetStatus", "numberAvailable")),
            _Col("Node Selector", "string", (_CORE + "PodSpec", "nodeSelector")),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_APPS + "DaemonSetSpec", "selector"), 1),
        ),
        _print_daemon_set,
    ),
    ("batch", "Job"): _Printer(
        (
            _NAME,
            _Col("Status", "string", "Status of the job."),
            _Col("Completions", "string", (_BATCH + "JobStatus", "succeeded")),
            _Col("Duration", "string", "Time required to complete the job."),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_BATCH + "JobSpec", "selector"), 1),
        ),
        _print_job,
    ),
    ("batch", "CronJob"): _Printer(
        (
            _NAME,
            _Col("Schedule", "string", (_BATCH + "CronJobSpec", "schedule")),
            _Col("Timezone", "string", (_BATCH + "CronJobSpec", "timeZone")),
            _Col("Suspend", "boolean", (_BATCH + "CronJobSpec", "suspend")),
            _Col("Active", "integer", (_BATCH + "CronJobStatus", "active")),
            _Col("Last Schedule", "string", (_BATCH + "CronJobStatus", "lastScheduleTime")),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_BATCH + "JobSpec", "selector"), 1),
        ),
        _print_cron_job,
    ),
    ("", "Service"): _Printer(
        (
            _NAME,
            _Col("Type", "string", (_CORE + "ServiceSpec", "type")),
            _Col("Cluster-IP", "string", (_CORE + "ServiceSpec", "clusterIP")),
            _Col("External-IP", "string", (_CORE + "ServiceSpec", "externalIPs")),
            _Col("Port(s)", "string", (_CORE + "ServiceSpec", "ports")),
            _AGE,
            _Col("Selector", "string", (_CORE + "ServiceSpec", "selector"), 1),
        ),
        _print_service,
    ),
    ("apps", "StatefulSet"): _Printer(
        (_NAME, _READY_PODS, _AGE, _CONTAINERS, _IMAGES),
        _print_stateful_set,
    ),
    ("", "Endpoints"): _Printer(
        (_NAME, _Col("Endpoints", "string", (_CORE + "Endpoints", "subsets")), _AGE),
        _print_endpoints,
    ),
    ("", "Node"): _Printer(
        (
            _NAME,
            _Col("Status", "string", "The status of the node"),
            _Col("Roles", "string", "The roles of the node"),
            _AGE,
            _Col("Version", "string", (_CORE + "NodeSystemInfo", "kubeletVersion")),
            _Col("Internal-IP", "string", (_CORE + "NodeStatus", "addresses"), 1),
            _Col("External-IP", "string", (_CORE + "NodeStatus", "addresses"), 1),
            _Col("OS-Image", "string", (_CORE + "NodeSystemInfo", "osImage"), 1),
            _Col("Kernel-Version", "string", (_CORE + "NodeSystemInfo", "kernelVersion"), 1),
            _Col(
                "Container-Runtime",
                "string",
                (_CORE + "NodeSystemInfo", "containerRuntimeVersion"),
                1,
            ),
        ),
        _print_node,
    ),
    ("", "Event"): _Printer(
        (
            _Col("Last Seen", "string", (_CORE + "Event", "lastTimestamp")),
            _Col("Type", "string", (_CORE + "Event", "type")),
            _Col("Reason", "string", (_CORE + "Event", "reason")),
            _Col("Object", "string", (_CORE + "Event", "involvedObject")),
            _Col("Subobject", "string", (_CORE + "ObjectReference", "fieldPath"), 1),
            _Col("Source", "string", (_CORE + "Event", "source"), 1),
            _Col("Message", "string", (_CORE + "Event", "message")),
            _Col("First Seen", "string", (_CORE + "Event", "firstTimestamp"), 1),
            _Col("Count", "string", (_CORE + "Event", "count"), 1),
            _Col("Name", "string", (_OM, "name"), 1, "name"),
        ),
        _print_event,
    ),
    ("", "Namespace"): _Printer(
        (_NAME, _Col("Status", "string", "The status of the namespace"), _AGE),
        _print_namespace,
    ),
    ("", "Secret"): _Printer(
        (
            _NAME,
            _Col("Type", "string", (_CORE + "Secret", "type")),
            _Col("Data", "string", (_CORE + "Secret", "data")),
            _AGE,
        ),
        _print_secret,
    ),
    ("", "ServiceAccount"): _Printer(
        (_NAME, _Col("Secrets", "string", (_CORE + "ServiceAccount", "secrets")), _AGE),
        _print_service_account,
    ),
    ("", "PersistentVolume"): _Printer(
        (
            _NAME,
            _Col("Capacity", "string", (_CORE + "PersistentVolumeSpec", "capacity")),
            _Col("Access Modes", "string", (_CORE + "PersistentVolumeSpec", "accessModes")),
            _Col(
                "Reclaim Policy",
                "string",
                (_CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
            ),
            _Col("Status", "string", (_CORE + "PersistentVolumeStatus", "phase")),
            _Col("Claim", "string", (_CORE + "PersistentVolumeSpec", "claimRef")),
            _Col("StorageClass", "string", "StorageClass of the pv"),
            _Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            _Col("Reason", "string", (_CORE + "PersistentVolumeStatus", "reason")),
            _AGE,
            _Col("VolumeMode", "string", (_CORE + "PersistentVolumeSpec", "volumeMode"), 1),
        ),
        _print_persistent_volume,
    ),
    ("", "PersistentVolumeClaim"): _Printer(
        (
            _NAME,
            _Col("Status", "string", (_CORE + "PersistentVolumeClaimStatus", "phase")),
            _Col("Volume", "string", (_CORE + "PersistentVolumeClaimSpec", "volumeName")),
            _Col("Capacity", "string", (_CORE + "PersistentVolumeClaimStatus", "capacity")),
            _Col("Access Modes", "string", (_CORE + "PersistentVolumeClaimStatus", "accessModes")),
            _Col("StorageClass", "string", "StorageClass of the pvc"),
            _Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            _AGE,
            _Col("VolumeMode", "string", (_CORE + "PersistentVolumeClaimSpec", "volumeMode"), 1),
        ),
        _print_persistent_volume_claim,
    ),
    ("apps", "Deployment"): _Printer(
        (
            _NAME,
            _READY_PODS,
            _Col("Up-to-date", "string", (_APPS + "DeploymentStatus", "updatedReplicas")),
            _Col("Available", "string", (_APPS + "DeploymentStatus", "availableReplicas")),
            _AGE,
            _CONTAINERS,
            _IMAGES,
            _Col("Selector", "string", (_APPS + "DeploymentSpec", "selector"), 1),
        ),
        _print_deployment,
    ),
    ("", "ConfigMap"): _Printer(
        (_NAME, _Col("Data", "string", (_CORE + "ConfigMap", "data")), _AGE),
        _print_config_map,
    ),
    ("scheduling.k8s.io", "PriorityClass"): _Printer(
        (
            _NAME,
            _Col("Value", "integer", ("io.k8s.api.scheduling.v1.PriorityClass", "value")),
            _Col(
                "Global-Default",
                "boolean",
                ("io.k8s.api.scheduling.v1.PriorityClass", "globalDefault"),
            ),
            _AGE,
            _Col(
                "PreemptionPolicy",
                "string",
                ("io.k8s.api.scheduling.v1.PriorityClass", "preemptionPolicy"),
            ),
        ),
        _print_priority_class,
    ),
    ("storage.k8s.io", "StorageClass"): _Printer(
        (
            _NAME,
            _Col("Provisioner", "string", ("io.k8s.api.storage.v1.StorageClass", "provisioner")),
            _Col(
                "ReclaimPolicy", "string", ("io.k8s.api.storage.v1.StorageClass", "reclaimPolicy")
            ),
            _Col(
                "VolumeBindingMode",
                "string",
                ("io.k8s.api.storage.v1.StorageClass", "volumeBindingMode"),
            ),
            _Col(
                "AllowVolumeExpansion",
                "string",
                ("io.k8s.api.storage.v1.StorageClass", "allowVolumeExpansion"),
            ),
            _AGE,
        ),
        _print_storage_class,
    ),
    ("coordination.k8s.io", "Lease"): _Printer(
        (
            _NAME,
            _Col("Holder", "string", ("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity")),
            _AGE,
        ),
        _print_lease,
    ),
    ("apps", "ControllerRevision"): _Printer(
        (
            _NAME,
            _Col("Controller", "string", "Controller of the object"),
            _Col("Revision", "string", (_APPS + "ControllerRevision", "revision")),
            _AGE,
        ),
        _print_controller_revision,
    ),
    ("discovery.k8s.io", "EndpointSlice"): _Printer(
        (
            _NAME,
            _Col("AddressType", "string", ("io.k8s.api.discovery.v1.EndpointSlice", "addressType")),
            _Col("Ports", "string", ("io.k8s.api.discovery.v1.EndpointSlice", "ports")),
            _Col("Endpoints", "string", ("io.k8s.api.discovery.v1.EndpointSlice", "endpoints")),
            _AGE,
        ),
        _print_endpoint_slice,
    ),
}

for _kind in ("RoleBinding", "ClusterRoleBinding"):
    _label = "roleBinding" if _kind == "RoleBinding" else "clusterRoleBinding"
    _PRINTERS[("rbac.authorization.k8s.io", _kind)] = _Printer(
        (
            _NAME,
            _Col("Role", "string", (f"io.k8s.api.rbac.v1.{_kind}", "roleRef")),
            _AGE,
            _Col("Users", "string", f"Users in the {_label}", 1),
            _Col("Groups", "string", f"Groups in the {_label}", 1),
            _Col("ServiceAccounts", "string", f"ServiceAccounts in the {_label}", 1),
        ),
        _print_role_binding,
    )

# Types without a printer in kube-apiserver get rest.DefaultTableConvertor's columns.
_DEFAULT_PRINTER = _Printer(
    (_NAME, _Col("Created At", "date", (_OM, "creationTimestamp"))), _print_default
)
for _kind in ("Role", "ClusterRole"):
    _PRINTERS[("rbac.authorization.k8s.io", _kind)] = _DEFAULT_PRINTER
_PRINTERS[("events.k8s.io", "Event")] = _Printer(
    _PRINTERS[("", "Event")].columns, _print_events_v1_event
)

# Anything else (custom resources) prints like a CRD without additionalPrinterColumns.
_FALLBACK_PRINTER = _Printer(
    (_NAME, _Col("Age", "date", (_OM, "creationTimestamp"))), _print_name_age
)


def _printer(info: ResourceInfo) -> _Printer:
    return _PRINTERS.get((info.group, info.kind), _FALLBACK_PRINTER)


@functools.cache
def _column_definitions(columns: tuple[_Col, ...]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": _describe(c.doc),
            "priority": c.priority,
        }
        for c in columns
    )


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    """The ``columnDefinitions`` of ``info``'s tables (shared dicts: do not mutate)."""
    return list(_column_definitions(_printer(info).columns))


def table_for(
    info: ResourceInfo,
    objects: list[dict],
    *,
    include_object: str = INCLUDE_METADATA,
    list_meta: dict | None = None,
    now: datetime | None = None,
    no_headers: bool = False,
) -> dict:
    """Render ``objects`` of type ``info`` as a ``meta.k8s.io/v1`` Table.

    ``include_object`` is the ``includeObject`` query parameter: ``None``, ``Metadata``
    (a PartialObjectMetadata per row, kubectl's default) or ``Object``. ``list_meta``
    supplies ``resourceVersion``/``continue``/``remainingItemCount``. Embedded objects
    and metadata are shared with ``objects``, not copied.
    """
    include_object = include_object or INCLUDE_METADATA
    if include_object not in (INCLUDE_NONE, INCLUDE_METADATA, INCLUDE_OBJECT):
        raise errors.bad_request(f'unrecognized includeObject value: "{include_object}"')
    printer = _printer(info)
    print_cells = printer.cells
    print_conditions = printer.conditions
    now_ts = (now or datetime.now(UTC)).timestamp()
    kind, api_version = info.kind, info.api_version

    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": print_cells(obj, now_ts)}
        if print_conditions is not None:
            conditions = print_conditions(obj)
            if conditions:
                row["conditions"] = conditions
        if include_object == INCLUDE_METADATA:
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        elif include_object == INCLUDE_OBJECT:
            if "kind" not in obj or "apiVersion" not in obj:
                obj = {"kind": kind, "apiVersion": api_version, **obj}
            row["object"] = obj
        rows.append(row)

    metadata: dict[str, Any] = {}
    if list_meta:
        for key in ("resourceVersion", "continue"):
            if list_meta.get(key):
                metadata[key] = list_meta[key]
        if list_meta.get("remainingItemCount") is not None:
            metadata["remainingItemCount"] = list_meta["remainingItemCount"]

    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": None if no_headers else column_definitions(info),
        "rows": rows,
    }
