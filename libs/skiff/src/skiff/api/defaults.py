"""Defaulting of built-in objects on create and update.

Mirrors kube-apiserver's ``SetDefaults_*`` functions (``pkg/apis/*/v1/defaults.go``)
for the types in :data:`skiff.api.resources.RESOURCES`, plus the few fields that real
clusters fill in on create outside defaulting: the Pod's service account and default
not-ready/unreachable tolerations (admission plugins), its initial status and QoS
class, the Job's generated selector and the Namespace's ``kubernetes`` finalizer.
Objects are plain JSON dicts and are changed in place.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from skiff.api.quantity import parse_quantity
from skiff.api.resources import ResourceInfo

# ---------------------------------------------------------------------------
# small helpers


def _obj(parent: dict, key: str) -> dict:
    """``parent[key]`` as a dict, created when missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = parent[key] = {}
    return value


def _items(parent: dict | None, key: str) -> list[dict]:
    if not parent:
        return []
    value = parent.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _fill(target: dict, defaults: dict[str, Any]) -> None:
    """Set each default whose field is unset (missing, null, or "" for string fields)."""
    for key, value in defaults.items():
        current = target.get(key)
        if current is None or (current == "" and isinstance(value, str) and value):
            target[key] = value


# ---------------------------------------------------------------------------
# pod specs

_PROBE_DEFAULTS = {
    "timeoutSeconds": 1,
    "periodSeconds": 10,
    "successThreshold": 1,
    "failureThreshold": 3,
}
_HTTP_GET_DEFAULTS = {"path": "/", "scheme": "HTTP"}

# Defaults of volume sources, shared by Pod volumes and PersistentVolume specs.
_VOLUME_SOURCE_DEFAULTS: dict[str, dict[str, Any]] = {
    "secret": {"defaultMode": 420},
    "configMap": {"defaultMode": 420},
    "downwardAPI": {"defaultMode": 420},
    "projected": {"defaultMode": 420},
    "hostPath": {"type": ""},
    "iscsi": {"iscsiInterface": "default"},
    "rbd": {"pool": "rbd", "user": "admin", "keyring": "/etc/ceph/keyring"},
    "azureDisk": {
        "cachingMode": "ReadWrite",
        "kind": "Shared",
        "fsType": "ext4",
        "readOnly": False,
    },
    "scaleIO": {"storageMode": "ThinProvisioned", "fsType": "xfs"},
}


def _image_pull_policy(image: str | None) -> str:
    """``Always`` for ``:latest`` or untagged images, else ``IfNotPresent``."""
    if not image:
        return "IfNotPresent"  # unparsable reference: Kubernetes ignores the error
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _field_ref(holder: dict | None) -> None:
    if holder:
        ref = holder.get("fieldRef")
        if isinstance(ref, dict):
            _fill(ref, {"apiVersion": "v1"})
        res = holder.get("resourceFieldRef")
        if isinstance(res, dict):
            _fill(res, {"divisor": "0"})


def _handler(handler: dict | None) -> None:
    """Defaults of a probe or lifecycle handler's actions."""
    if not isinstance(handler, dict):
        return
    http_get = handler.get("httpGet")
    if isinstance(http_get, dict):
        _fill(http_get, _HTTP_GET_DEFAULTS)
    grpc = handler.get("grpc")
    if isinstance(grpc, dict):
        _fill(grpc, {"service": ""})


def _container(c: dict) -> None:
    if not c.get("imagePullPolicy"):
        c["imagePullPolicy"] = _image_pull_policy(c.get("image"))
    _fill(c, {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}
    for port in _items(c, "ports"):
        _fill(port, {"protocol": "TCP"})
    for env in _items(c, "env"):
        _field_ref(env.get("valueFrom"))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = c.get(key)
        if isinstance(probe, dict):
            for field, value in _PROBE_DEFAULTS.items():
                if not probe.get(field):  # int32 fields: 0 means unset
                    probe[field] = value
            _handler(probe)
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        _handler(lifecycle.get("postStart"))
        _handler(lifecycle.get("preStop"))


def _volume_sources(source: dict) -> None:
    for key, defaults in _VOLUME_SOURCE_DEFAULTS.items():
        value = source.get(key)
        if isinstance(value, dict):
            _fill(value, defaults)
    for item in _items(source.get("downwardAPI"), "items"):
        _field_ref(item)
    for projection in _items(source.get("projected"), "sources"):
        for item in _items(projection.get("downwardAPI"), "items"):
            _field_ref(item)
        token = projection.get("serviceAccountToken")
        if isinstance(token, dict):
            _fill(token, {"expirationSeconds": 3600})


def _volume(v: dict) -> None:
    if all(value is None for key, value in v.items() if key != "name"):
        v["emptyDir"] = {}
    _volume_sources(v)
    template = (v.get("ephemeral") or {}).get("volumeClaimTemplate")
    if isinstance(template, dict):
        _pvc_spec(_obj(template, "spec"))


def _pod_spec(spec: dict, *, job: bool = False) -> None:
    """``SetDefaults_PodSpec`` and the defaults of everything a PodSpec holds."""
    defaults: dict[str, Any] = {
        "dnsPolicy": "ClusterFirst",
        "securityContext": {},
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
    }
    if not job:  # Jobs must choose OnFailure or Never; validation reports a missing one
        defaults["restartPolicy"] = "Always"
    _fill(spec, defaults)
    # v1's deprecated serviceAccount mirrors serviceAccountName (conversion in Kubernetes).
    if not spec.get("serviceAccountName") and spec.get("serviceAccount"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    if spec.get("serviceAccountName"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _items(spec, key):
            _container(c)
    for v in _items(spec, "volumes"):
        _volume(v)


def _pod_template(obj: dict, create: bool) -> None:
    # A core/v1 PodTemplate holds its template at the top level.
    template = obj.get("template")
    if isinstance(template, dict):
        _pod_spec(_obj(template, "spec"))


def _template(spec: dict, *, job: bool = False) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        _pod_spec(_obj(template, "spec"), job=job)


# ---------------------------------------------------------------------------
# QoS


def pod_qos_class(pod: dict) -> str:
    """The Pod's QoS class, as ``ComputePodQOS``: BestEffort, Burstable or Guaranteed."""
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for c in _items(spec, "containers") + _items(spec, "initContainers"):
        resources = c.get("resources") or {}
        for name, raw in (resources.get("requests") or {}).items():
            q = parse_quantity(raw)
            if name in ("cpu", "memory") and q is not None and q > 0:
                requests[name] = requests.get(name, Decimal(0)) + q
        found = set()
        for name, raw in (resources.get("limits") or {}).items():
            q = parse_quantity(raw)
            if name in ("cpu", "memory") and q is not None and q > 0:
                found.add(name)
                limits[name] = limits.get(name, Decimal(0)) + q
        if found != {"cpu", "memory"}:
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and all(limits.get(n) == q for n, q in requests.items()):
        if len(requests) == len(limits):
            return "Guaranteed"
    return "Burstable"


# ---------------------------------------------------------------------------
# per-kind defaulters; ``create`` is True when the object is being created

_NOT_READY = "node.kubernetes.io/not-ready"
_UNREACHABLE = "node.kubernetes.io/unreachable"


def _default_tolerations(spec: dict) -> None:
    """The DefaultTolerationSeconds admission plugin: tolerate NoExecute taints for 300s."""
    tolerations = spec.get("tolerations")
    if not isinstance(tolerations, list):
        tolerations = []
    tolerates = {_NOT_READY: False, _UNREACHABLE: False}
    for t in tolerations:
        if not isinstance(t, dict) or t.get("effect") not in (None, "", "NoExecute"):
            continue
        for key in tolerates:
            if t.get("key") in (None, "", key):
                tolerates[key] = True
    for key, ok in tolerates.items():
        if not ok:
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    spec["tolerations"] = tolerations


def _pod(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    # SetDefaults_Pod: requests default to limits (only for Pods, not templates).
    for c in _items(spec, "containers") + _items(spec, "initContainers"):
        resources = c.get("resources")
        if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
            requests = _obj(resources, "requests")
            for name, value in resources["limits"].items():
                requests.setdefault(name, value)
    _pod_spec(spec)
    _fill(spec, {"enableServiceLinks": True})
    if spec.get("hostNetwork"):
        for c in _items(spec, "containers") + _items(spec, "initContainers"):
            for port in _items(c, "ports"):
                if not port.get("hostPort"):
                    port["hostPort"] = port.get("containerPort")
    # ServiceAccount admission.
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"] = "default"
    _default_tolerations(spec)

    status = _obj(obj, "status")
    _fill(status, {"phase": "Pending"})
    if create or not status.get("qosClass"):
        status["qosClass"] = pod_qos_class(obj)
    if create and spec.get("schedulingGates"):
        conditions = status.get("conditions")
        if not isinstance(conditions, list):
            conditions = status["conditions"] = []
        if not any(c.get("type") == "PodScheduled" for c in conditions):
            conditions.append(
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "SchedulingGated",
                    "message": "Scheduling is blocked due to non-empty scheduling gates",
                }
            )


def _deployment(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(spec, {"replicas": 1, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600})
    strategy = _obj(spec, "strategy")
    _fill(strategy, {"type": "RollingUpdate"})
    if strategy["type"] == "RollingUpdate":
        _fill(_obj(strategy, "rollingUpdate"), {"maxUnavailable": "25%", "maxSurge": "25%"})
    _template(spec)


def _replica_set(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(spec, {"replicas": 1})
    _template(spec)


def _replication_controller(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    template = spec.get("template")
    labels = (template.get("metadata") or {}).get("labels") if isinstance(template, dict) else None
    if labels is not None:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _obj(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    _fill(spec, {"replicas": 1})
    _template(spec)


def _stateful_set(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(spec, {"podManagementPolicy": "OrderedReady", "replicas": 1, "revisionHistoryLimit": 10})
    strategy = _obj(spec, "updateStrategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
        _obj(strategy, "rollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
        _fill(rolling, {"partition": 0})
    _fill(
        _obj(spec, "persistentVolumeClaimRetentionPolicy"),
        {"whenDeleted": "Retain", "whenScaled": "Retain"},
    )
    for claim in _items(spec, "volumeClaimTemplates"):
        _pvc(claim, create)
    _template(spec)


def _daemon_set(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    strategy = _obj(spec, "updateStrategy")
    _fill(strategy, {"type": "RollingUpdate"})
    if strategy["type"] == "RollingUpdate":
        _fill(_obj(strategy, "rollingUpdate"), {"maxUnavailable": 1, "maxSurge": 0})
    _fill(spec, {"revisionHistoryLimit": 10})
    _template(spec)


def _job_selector(obj: dict, spec: dict) -> None:
    """The Job strategy's generated selector: match the pods by the Job's uid."""
    meta = obj.get("metadata") or {}
    uid = meta.get("uid")
    if spec.get("manualSelector") or not uid:
        return
    template = _obj(spec, "template")
    labels = _obj(_obj(template, "metadata"), "labels")
    for key in ("job-name", "batch.kubernetes.io/job-name"):
        labels.setdefault(key, meta.get("name", ""))
    for key in ("controller-uid", "batch.kubernetes.io/controller-uid"):
        labels.setdefault(key, uid)
    match = _obj(_obj(spec, "selector"), "matchLabels")
    match.setdefault("batch.kubernetes.io/controller-uid", uid)


def _job(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    backoff = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    failure_policy = spec.get("podFailurePolicy")
    replacement = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    _fill(
        spec,
        {
            "parallelism": 1,
            "backoffLimit": backoff,
            "completionMode": "NonIndexed",
            "suspend": False,
            "podReplacementPolicy": replacement,
        },
    )
    for rule in _items(failure_policy, "rules"):
        for pattern in _items(rule, "onPodConditions"):
            _fill(pattern, {"status": "True"})
    _job_selector(obj, spec)
    # Kubernetes copies the template labels when it decodes a Job, so clients see them.
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
    meta = _obj(obj, "metadata")
    if labels is not None and not meta.get("labels"):
        meta["labels"] = dict(labels)
    _template(spec, job=True)


def _cron_job(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(
        spec,
        {
            "concurrencyPolicy": "Allow",
            "suspend": False,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
        },
    )
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict):
        _template(_obj(job_template, "spec"), job=True)


def _ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def _service(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(spec, {"sessionAffinity": "None", "type": "ClusterIP"})
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
        if client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 10800}}
    for port in _items(spec, "ports"):
        _fill(port, {"protocol": "TCP"})
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    svc_type = spec["type"]
    if svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and spec.get("externalIPs")
    ):
        _fill(spec, {"externalTrafficPolicy": "Cluster"})
    if svc_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        _fill(spec, {"internalTrafficPolicy": "Cluster"})
    if svc_type == "LoadBalancer":
        _fill(spec, {"allocateLoadBalancerNodePorts": True})
    if svc_type != "ExternalName":
        # Done by the service IP allocator in Kubernetes; Skiff's clusters are single-stack.
        headless = spec.get("clusterIP") == "None"
        selectorless_headless = headless and not spec.get("selector")
        _fill(
            spec, {"ipFamilyPolicy": "RequireDualStack" if selectorless_headless else "SingleStack"}
        )
        if not spec.get("ipFamilies"):
            ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
            families = [_ip_family(ip) for ip in ips if ip != "None"]
            spec["ipFamilies"] = families or ["IPv4"]


def _namespace(obj: dict, create: bool) -> None:
    meta = _obj(obj, "metadata")
    if meta.get("name"):
        _obj(meta, "labels")["kubernetes.io/metadata.name"] = meta["name"]
    _fill(_obj(obj, "status"), {"phase": "Active"})
    if create:
        # Only on create: the namespace controller removes it while the namespace is deleted.
        spec = _obj(obj, "spec")
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = spec["finalizers"] = []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")


def _secret(obj: dict, create: bool) -> None:
    _fill(obj, {"type": "Opaque"})
    # stringData is write-only: merged into data (base64), overwriting it, as Kubernetes
    # does when it converts the object (a non-string value is left for validation).
    string_data = obj.get("stringData")
    if isinstance(string_data, dict) and all(isinstance(v, str) for v in string_data.values()):
        del obj["stringData"]
        data = _obj(obj, "data")
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()


def _pvc_spec(spec: dict) -> None:
    _fill(spec, {"volumeMode": "Filesystem"})


def _pvc(obj: dict, create: bool) -> None:
    _pvc_spec(_obj(obj, "spec"))
    _fill(_obj(obj, "status"), {"phase": "Pending"})


def _pv(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    _fill(spec, {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"})
    _volume_sources(spec)
    _fill(_obj(obj, "status"), {"phase": "Pending"})


def _node(obj: dict, create: bool) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None:
        capacity = status.get("capacity")
        if isinstance(capacity, dict):
            status["allocatable"] = dict(capacity)


def _endpoints(obj: dict, create: bool) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            _fill(port, {"protocol": "TCP"})


def _endpoint_slice(obj: dict, create: bool) -> None:
    for port in _items(obj, "ports"):
        _fill(port, {"name": "", "protocol": "TCP"})


_RBAC = "rbac.authorization.k8s.io"
_SUBJECT_GROUPS = {"ServiceAccount": "", "User": _RBAC, "Group": _RBAC}


def _binding(obj: dict, create: bool) -> None:
    _fill(_obj(obj, "roleRef"), {"apiGroup": _RBAC})
    for subject in _items(obj, "subjects"):
        if not subject.get("apiGroup") and subject.get("kind") in _SUBJECT_GROUPS:
            subject["apiGroup"] = _SUBJECT_GROUPS[subject["kind"]]


def _storage_class(obj: dict, create: bool) -> None:
    _fill(obj, {"reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"})


def _network_policy(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    for key in ("ingress", "egress"):
        for rule in _items(spec, key):
            for port in _items(rule, "ports"):
                port.setdefault("protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


DEFAULT_CPU_UTILIZATION = 80
"""The CPU target of a HorizontalPodAutoscaler that names no metric."""


def hpa_scale_up_rules() -> dict:
    """kube's ``GenerateHPAScaleUpRules(nil)``: 4 pods or 100% per 15 s, the larger."""
    return {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}  # fmt: skip


def hpa_scale_down_rules() -> dict:
    """kube's ``GenerateHPAScaleDownRules(nil)``: 100% per 15 s, the window left to the
    controller's flag."""
    return {"selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15},
    ]}  # fmt: skip


def _hpa(obj: dict, create: bool) -> None:
    # autoscaling/v2's SetDefaults_HorizontalPodAutoscaler (v1 defaults only minReplicas;
    # its CPU target comes from conversion).
    spec = _obj(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if obj.get("apiVersion") != "autoscaling/v2":
        return
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]  # fmt: skip
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        # Each rule set's unset fields (None: not given) take the defaults'.
        for key, make in (("scaleUp", hpa_scale_up_rules), ("scaleDown", hpa_scale_down_rules)):
            rules = behavior.get(key) if isinstance(behavior.get(key), dict) else {}
            behavior[key] = {**make(), **{k: v for k, v in rules.items() if v is not None}}


def _flow_schema(obj: dict, create: bool) -> None:
    spec = _obj(obj, "spec")
    if not spec.get("matchingPrecedence"):
        spec["matchingPrecedence"] = 1000


def _priority_level(obj: dict, create: bool) -> None:
    # Only what is present is defaulted: an omitted queuing or exempt section stays so.
    spec = _obj(obj, "spec")
    limited, exempt = spec.get("limited"), spec.get("exempt")
    if isinstance(limited, dict):
        if limited.get("nominalConcurrencyShares") is None:
            limited["nominalConcurrencyShares"] = 30
        if limited.get("lendablePercent") is None:
            limited["lendablePercent"] = 0
        queuing = (limited.get("limitResponse") or {}).get("queuing")
        if isinstance(queuing, dict):
            for key, value in (("handSize", 8), ("queues", 64), ("queueLengthLimit", 50)):
                if not queuing.get(key):
                    queuing[key] = value
    if isinstance(exempt, dict):
        for key in ("nominalConcurrencyShares", "lendablePercent"):
            if exempt.get(key) is None:
                exempt[key] = 0


def _limit_range(obj: dict, create: bool) -> None:
    # SetDefaults_LimitRangeItem: a Container item's default limit is its max, its default
    # request the default limit, else the min.
    for item in _items(_obj(obj, "spec"), "limits"):
        if item.get("type") != "Container":
            continue
        default, request = _obj(item, "default"), _obj(item, "defaultRequest")
        for name, value in (item.get("max") or {}).items():
            default.setdefault(name, value)
        for source in (default, item.get("min") or {}):
            for name, value in source.items():
                request.setdefault(name, value)
        for key in ("default", "defaultRequest"):
            if not item[key]:
                del item[key]


_DEFAULTERS: dict[tuple[str, str], Callable[[dict, bool], None]] = {
    ("", "Pod"): _pod,
    ("", "PodTemplate"): _pod_template,
    ("", "LimitRange"): _limit_range,
    ("", "Namespace"): _namespace,
    ("", "Node"): _node,
    ("", "Service"): _service,
    ("", "Endpoints"): _endpoints,
    ("", "Secret"): _secret,
    ("", "PersistentVolume"): _pv,
    ("", "PersistentVolumeClaim"): _pvc,
    ("", "ReplicationController"): _replication_controller,
    ("apps", "Deployment"): _deployment,
    ("apps", "ReplicaSet"): _replica_set,
    ("apps", "StatefulSet"): _stateful_set,
    ("apps", "DaemonSet"): _daemon_set,
    ("batch", "Job"): _job,
    ("batch", "CronJob"): _cron_job,
    ("autoscaling", "HorizontalPodAutoscaler"): _hpa,
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): _flow_schema,
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): _priority_level,
    ("discovery.k8s.io", "EndpointSlice"): _endpoint_slice,
    (_RBAC, "RoleBinding"): _binding,
    (_RBAC, "ClusterRoleBinding"): _binding,
    ("networking.k8s.io", "NetworkPolicy"): _network_policy,
    ("storage.k8s.io", "StorageClass"): _storage_class,
}


def apply_defaults(info: ResourceInfo, obj: dict, *, create: bool | None = None) -> None:
    """Fill in ``obj``'s defaulted fields in place, as kube-apiserver does.

    ``create`` selects the create-only defaults (Pod status and scheduling-gate
    condition, the Namespace finalizer). When not given it is inferred: an object
    without ``metadata.resourceVersion`` is being created. Job selector generation
    needs ``metadata.uid`` to be set first.
    """
    defaulter = _DEFAULTERS.get((info.group, info.kind))
    if defaulter is None:
        return
    if create is None:
        create = not (obj.get("metadata") or {}).get("resourceVersion")
    defaulter(obj, create)
