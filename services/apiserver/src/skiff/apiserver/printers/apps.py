"""Printers of the ``apps`` group: Deployments, ReplicaSets, StatefulSets, DaemonSets,
ControllerRevisions."""

from __future__ import annotations

from skiff.apiserver.printers.common import (
    AGE_COL,
    CONTAINERS_COL,
    CORE,
    IMAGES_COL,
    NAME_COL,
    NONE,
    READY_PODS_COL,
    Cells,
    Col,
    TablePrinter,
    age,
    containers_cells,
    format_label_selector,
    format_labels,
    name_of,
    replicas_row,
    selector_string,
    template_spec,
    to_int,
)

_APPS = "io.k8s.api.apps.v1."


def _print_deployment(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = containers_cells(template_spec(spec))
    selector = selector_string(spec.get("selector"))
    return [
        name_of(obj),
        f"{to_int(status.get('readyReplicas'))}/{to_int(spec.get('replicas', 1))}",
        to_int(status.get("updatedReplicas")),
        to_int(status.get("availableReplicas")),
        age(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


def _print_replica_set(obj: dict, now: float) -> Cells:
    return replicas_row(obj, now, format_label_selector((obj.get("spec") or {}).get("selector")))


def _print_stateful_set(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    names, images = containers_cells(template_spec(spec))
    return [
        name_of(obj),
        f"{to_int(status.get('readyReplicas'))}/{to_int(spec.get('replicas', 1))}",
        age(obj, now),
        names,
        images,
    ]


def _print_daemon_set(obj: dict, now: float) -> Cells:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    pod_spec = template_spec(spec)
    names, images = containers_cells(pod_spec)
    return [
        name_of(obj),
        to_int(status.get("desiredNumberScheduled")),
        to_int(status.get("currentNumberScheduled")),
        to_int(status.get("numberReady")),
        to_int(status.get("updatedNumberScheduled")),
        to_int(status.get("numberAvailable")),
        format_labels(pod_spec.get("nodeSelector")),
        age(obj, now),
        names,
        images,
        format_label_selector(spec.get("selector")),
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
    return [name_of(obj), controller, to_int(obj.get("revision")), age(obj, now)]


PRINTERS: dict[tuple[str, str], TablePrinter] = {
    ("apps", "ReplicaSet"): TablePrinter(
        (
            NAME_COL,
            Col("Desired", "integer", (_APPS + "ReplicaSetSpec", "replicas")),
            Col("Current", "integer", (_APPS + "ReplicaSetStatus", "replicas")),
            Col("Ready", "integer", (_APPS + "ReplicaSetStatus", "readyReplicas")),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (_APPS + "ReplicaSetSpec", "selector"), 1),
        ),
        _print_replica_set,
    ),
    ("apps", "DaemonSet"): TablePrinter(
        (
            NAME_COL,
            Col("Desired", "integer", (_APPS + "DaemonSetStatus", "desiredNumberScheduled")),
            Col("Current", "integer", (_APPS + "DaemonSetStatus", "currentNumberScheduled")),
            Col("Ready", "integer", (_APPS + "DaemonSetStatus", "numberReady")),
            Col("Up-to-date", "integer", (_APPS + "DaemonSetStatus", "updatedNumberScheduled")),
            Col("Available", "integer", (_APPS + "DaemonSetStatus", "numberAvailable")),
            Col("Node Selector", "string", (CORE + "PodSpec", "nodeSelector")),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (_APPS + "DaemonSetSpec", "selector"), 1),
        ),
        _print_daemon_set,
    ),
    ("apps", "StatefulSet"): TablePrinter(
        (NAME_COL, READY_PODS_COL, AGE_COL, CONTAINERS_COL, IMAGES_COL),
        _print_stateful_set,
    ),
    ("apps", "Deployment"): TablePrinter(
        (
            NAME_COL,
            READY_PODS_COL,
            Col("Up-to-date", "string", (_APPS + "DeploymentStatus", "updatedReplicas")),
            Col("Available", "string", (_APPS + "DeploymentStatus", "availableReplicas")),
            AGE_COL,
            CONTAINERS_COL,
            IMAGES_COL,
            Col("Selector", "string", (_APPS + "DeploymentSpec", "selector"), 1),
        ),
        _print_deployment,
    ),
    ("apps", "ControllerRevision"): TablePrinter(
        (
            NAME_COL,
            Col("Controller", "string", "Controller of the object"),
            Col("Revision", "string", (_APPS + "ControllerRevision", "revision")),
            AGE_COL,
        ),
        _print_controller_revision,
    ),
}
