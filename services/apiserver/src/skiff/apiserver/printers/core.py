"""Printers of the core (``v1``) group, pods and events aside.

ReplicationControllers, Services, Endpoints, Nodes, Namespaces, ConfigMaps, Secrets,
ServiceAccounts, PersistentVolumes and PersistentVolumeClaims. Pods have
:mod:`.pods`, Events :mod:`.events`.
"""

from __future__ import annotations

from typing import Any

from skiff.api.quantity import canonical
from skiff.apiserver.printers.common import (
    AGE_COL,
    CONTAINERS_COL,
    CORE,
    IMAGES_COL,
    NAME_COL,
    NONE,
    UNKNOWN,
    UNSET,
    Cells,
    Col,
    TablePrinter,
    age,
    containers_cells,
    format_labels,
    load_balancer_addresses,
    name_of,
    replicas_row,
    translate_timestamp_since,
)

# ---------------------------------------------------------------------------
# replication controllers


def _print_replication_controller(obj: dict, now: float) -> Cells:
    return replicas_row(obj, now, format_labels((obj.get("spec") or {}).get("selector")))


# ---------------------------------------------------------------------------
# services and endpoints


def _service_external_ip(spec: dict, status: dict) -> str:
    svc_type = spec.get("type")
    external = spec.get("externalIPs") or []
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if svc_type == "LoadBalancer":
        lb = load_balancer_addresses(status.get("loadBalancer"))
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
        name_of(obj),
        spec.get("type", ""),
        cluster_ip,
        _service_external_ip(spec, obj.get("status") or {}),
        _service_ports(spec.get("ports") or []),
        age(obj, now),
        format_labels(spec.get("selector")),
    ]


def _join_host_port(host: str, port: Any) -> str:
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


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
    return [name_of(obj), _format_endpoints(obj.get("subsets") or []), age(obj, now)]


# ---------------------------------------------------------------------------
# nodes, namespaces and config objects


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
    return [name_of(obj), (obj.get("status") or {}).get("phase", ""), age(obj, now)]


def _print_component_status(obj: dict, now: float) -> Cells:
    status, message, error = "Unknown", "", ""
    for c in obj.get("conditions") or ():
        if c.get("type") == "Healthy":
            status = "Healthy" if c.get("status") == "True" else "Unhealthy"
            message, error = c.get("message", ""), c.get("error", "")
            break
    return [name_of(obj), status, message, error]


def _print_pod_template(obj: dict, now: float) -> Cells:
    template = obj.get("template") or {}
    names, images = containers_cells(template.get("spec"))
    return [
        name_of(obj),
        names,
        images,
        format_labels((template.get("metadata") or {}).get("labels")),
    ]


def _print_config_map(obj: dict, now: float) -> Cells:
    size = len(obj.get("data") or ()) + len(obj.get("binaryData") or ())
    return [name_of(obj), size, age(obj, now)]


def _print_secret(obj: dict, now: float) -> Cells:
    return [name_of(obj), obj.get("type", ""), len(obj.get("data") or ()), age(obj, now)]


def _print_service_account(obj: dict, now: float) -> Cells:
    return [name_of(obj), len(obj.get("secrets") or ()), age(obj, now)]


def _print_resource_quota(obj: dict, now: float) -> Cells:
    # kube's printResourceQuota: "<name>: <used>/<hard>" per hard resource, limits.* apart.
    status = obj.get("status") or {}
    used, hard = status.get("used") or {}, status.get("hard") or {}
    request: list[str] = []
    limit: list[str] = []
    for name in sorted((obj.get("spec") or {}).get("hard") or {}):
        column = limit if name.split(".")[0] == "limits" and "." in name else request
        column.append(f"{name}: {canonical(used.get(name, '0'))}/{canonical(hard.get(name, '0'))}")
    return [name_of(obj), age(obj, now), ", ".join(request), ", ".join(limit)]


# ---------------------------------------------------------------------------
# persistent volumes and claims

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


# ---------------------------------------------------------------------------
# column definitions

PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("", "ReplicationController"): TablePrinter(
        (
            NAME_COL,
            Col("Desired", "integer", (CORE + "ReplicationControllerSpec", "replicas")),
            Col("Current", "integer", (CORE + "ReplicationControllerStatus", "replicas")),
            Col("Ready", "integer", (CORE + "ReplicationControllerStatus", "readyReplicas")),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (CORE + "ReplicationControllerSpec", "selector"), 1),
        ),
        _print_replication_controller,
    ),
    ("", "Service"): TablePrinter(
        (
            NAME_COL,
            Col("Type", "string", (CORE + "ServiceSpec", "type")),
            Col("Cluster-IP", "string", (CORE + "ServiceSpec", "clusterIP")),
            Col("External-IP", "string", (CORE + "ServiceSpec", "externalIPs")),
            Col("Port(s)", "string", (CORE + "ServiceSpec", "ports")),
            AGE_COL,
            Col("Selector", "string", (CORE + "ServiceSpec", "selector"), 1),
        ),
        _print_service,
    ),
    ("", "Endpoints"): TablePrinter(
        (NAME_COL, Col("Endpoints", "string", (CORE + "Endpoints", "subsets")), AGE_COL),
        _print_endpoints,
    ),
    ("", "Node"): TablePrinter(
        (
            NAME_COL,
            Col("Status", "string", "The status of the node"),
            Col("Roles", "string", "The roles of the node"),
            AGE_COL,
            Col("Version", "string", (CORE + "NodeSystemInfo", "kubeletVersion")),
            Col("Internal-IP", "string", (CORE + "NodeStatus", "addresses"), 1),
            Col("External-IP", "string", (CORE + "NodeStatus", "addresses"), 1),
            Col("OS-Image", "string", (CORE + "NodeSystemInfo", "osImage"), 1),
            Col("Kernel-Version", "string", (CORE + "NodeSystemInfo", "kernelVersion"), 1),
            Col(
                "Container-Runtime",
                "string",
                (CORE + "NodeSystemInfo", "containerRuntimeVersion"),
                1,
            ),
        ),
        _print_node,
    ),
    ("", "Namespace"): TablePrinter(
        (NAME_COL, Col("Status", "string", "The status of the namespace"), AGE_COL),
        _print_namespace,
    ),
    ("", "Secret"): TablePrinter(
        (
            NAME_COL,
            Col("Type", "string", (CORE + "Secret", "type")),
            Col("Data", "string", (CORE + "Secret", "data")),
            AGE_COL,
        ),
        _print_secret,
    ),
    ("", "ResourceQuota"): TablePrinter(
        (
            NAME_COL,
            AGE_COL,
            Col(
                "Request",
                "string",
                "Request represents a minimum amount of cpu/memory that a container may consume.",
            ),
            Col(
                "Limit",
                "string",
                "Limits control the maximum amount of cpu/memory that a "
                "container may use independent of contention on the node.",
            ),
        ),
        _print_resource_quota,
    ),
    ("", "ServiceAccount"): TablePrinter(
        (NAME_COL, Col("Secrets", "string", (CORE + "ServiceAccount", "secrets")), AGE_COL),
        _print_service_account,
    ),
    ("", "PersistentVolume"): TablePrinter(
        (
            NAME_COL,
            Col("Capacity", "string", (CORE + "PersistentVolumeSpec", "capacity")),
            Col("Access Modes", "string", (CORE + "PersistentVolumeSpec", "accessModes")),
            Col(
                "Reclaim Policy",
                "string",
                (CORE + "PersistentVolumeSpec", "persistentVolumeReclaimPolicy"),
            ),
            Col("Status", "string", (CORE + "PersistentVolumeStatus", "phase")),
            Col("Claim", "string", (CORE + "PersistentVolumeSpec", "claimRef")),
            Col("StorageClass", "string", "StorageClass of the pv"),
            Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
            Col("Reason", "string", (CORE + "PersistentVolumeStatus", "reason")),
            AGE_COL,
            Col("VolumeMode", "string", (CORE + "PersistentVolumeSpec", "volumeMode"), 1),
        ),
        _print_persistent_volume,
    ),
    ("", "PersistentVolumeClaim"): TablePrinter(
        (
            NAME_COL,
            Col("Status", "string", (CORE + "PersistentVolumeClaimStatus", "phase")),
            Col("Volume", "string", (CORE + "PersistentVolumeClaimSpec", "volumeName")),
            Col("Capacity", "string", (CORE + "PersistentVolumeClaimStatus", "capacity")),
            Col("Access Modes", "string", (CORE + "PersistentVolumeClaimStatus", "accessModes")),
            Col("StorageClass", "string", "StorageClass of the pvc"),
            Col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
            AGE_COL,
            Col("VolumeMode", "string", (CORE + "PersistentVolumeClaimSpec", "volumeMode"), 1),
        ),
        _print_persistent_volume_claim,
    ),
    ("", "ComponentStatus"): TablePrinter(
        (
            NAME_COL,
            Col("Status", "string", "Status of the component conditions"),
            Col("Message", "string", "Message of the component conditions"),
            Col("Error", "string", "Error of the component conditions"),
        ),
        _print_component_status,
    ),
    ("", "PodTemplate"): TablePrinter(
        (
            NAME_COL,
            Col("Containers", "string", "Names of each container in the template."),
            Col("Images", "string", "Images referenced by each container in the template."),
            Col("Pod Labels", "string", "The labels for the pod template."),
        ),
        _print_pod_template,
    ),
    ("", "ConfigMap"): TablePrinter(
        (NAME_COL, Col("Data", "string", (CORE + "ConfigMap", "data")), AGE_COL),
        _print_config_map,
    ),
}
