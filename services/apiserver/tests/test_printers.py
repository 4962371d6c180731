"""Server-side printing (``as=Table``) of built-in resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY, RESOURCES, ResourceInfo
from skiff.apiserver import printers
from skiff.apiserver.printers import human_duration, table_for

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=UTC)


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def info(group: str, kind: str) -> ResourceInfo:
    found = REGISTRY.by_gvk(group, "v1", kind)
    assert found is not None
    return found


POD = info("", "Pod")


def row(resource: ResourceInfo, obj: dict, **kw) -> dict:
    table = table_for(resource, [obj], now=NOW, **kw)
    names = [c["name"] for c in table["columnDefinitions"]]
    return dict(zip(names, table["rows"][0]["cells"], strict=True))


def pod(status: dict | None = None, spec: dict | None = None, **meta) -> dict:
    return {
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": ago(minutes=5)}
        | meta,
        "spec": spec or {"containers": [{"name": "app", "image": "nginx"}]},
        "status": status or {},
    }


def running(name: str = "app", ready: bool = True, restarts: int = 0, **extra) -> dict:
    return {
        "name": name,
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ago(minutes=4)}},
    } | extra


# ---------------------------------------------------------------------------
# durations


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (130, "2m10s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60 + 30, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 5 * 60, "3h5m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400 + 4 * 3600, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400 + 45 * 86400, "2y45d"),
        (3 * 365 * 86400, "3y"),
        (10 * 365 * 86400 + 100 * 86400, "10y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


def test_age_unknown_without_timestamp() -> None:
    r = row(POD, {"metadata": {"name": "x"}, "spec": {"containers": []}})
    assert r["Age"] == "<unknown>"


# ---------------------------------------------------------------------------
# pods


def test_pod_columns() -> None:
    cols = table_for(POD, [], now=NOW)["columnDefinitions"]
    assert [(c["name"], c["priority"]) for c in cols] == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ]
    assert cols[0]["format"] == "name"
    assert cols[0]["description"].startswith("Name must be unique")
    assert cols[4]["description"].startswith("CreationTimestamp")
    assert all(set(c) == {"name", "type", "format", "description", "priority"} for c in cols)


def test_pod_running() -> None:
    p = pod(
        {
            "phase": "Running",
            "podIP": "10.0.0.5",
            "podIPs": [{"ip": "10.0.0.5"}],
            "containerStatuses": [running()],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
        spec={"nodeName": "node-1", "containers": [{"name": "app", "image": "nginx"}]},
    )
    assert list(row(POD, p).values()) == [
        "p",
        "1/1",
        "Running",
        "0",
        "5m",
        "10.0.0.5",
        "node-1",
        "<none>",
        "<none>",
    ]


def test_pod_pending_without_statuses() -> None:
    r = row(POD, pod({"phase": "Pending"}))
    assert (r["Ready"], r["Status"], r["IP"], r["Node"]) == ("0/1", "Pending", "<none>", "<none>")


def test_pod_container_creating() -> None:
    status = {
        "phase": "Pending",
        "containerStatuses": [
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}},
            }
        ],
    }
    assert row(POD, pod(status))["Status"] == "ContainerCreating"


def test_pod_crash_loop_with_restarts_ago() -> None:
    status = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "app",
                "ready": False,
                "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}},
            }
        ],
    }
    r = row(POD, pod(status))
    assert r["Status"] == "CrashLoopBackOff"
    assert r["Restarts"] == "3 (2m ago)"
    assert r["Ready"] == "0/1"


def test_pod_restarts_without_last_state_is_plain_number() -> None:
    status = {"phase": "Running", "containerStatuses": [running(restarts=2)]}
    assert row(POD, pod(status))["Restarts"] == "2"


def test_pod_completed() -> None:
    status = {
        "phase": "Succeeded",
        "containerStatuses": [
            {
                "name": "app",
                "ready": False,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
            }
        ],
    }
    table = table_for(POD, [pod(status)], now=NOW)
    assert table["rows"][0]["cells"][2] == "Completed"
    assert table["rows"][0]["conditions"][0]["reason"] == "Succeeded"


def test_pod_terminated_without_reason_shows_exit_code() -> None:
    status = {
        "phase": "Failed",
        "containerStatuses": [
            {"name": "app", "restartCount": 0, "state": {"terminated": {"exitCode": 137}}}
        ],
    }
    assert row(POD, pod(status))["Status"] == "ExitCode:137"


def test_pod_init_progress() -> None:
    spec = {
        "initContainers": [{"name": "init", "image": "busybox"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }
    status = {
        "phase": "Pending",
        "initContainerStatuses": [
            {"name": "init", "restartCount": 0, "state": {"running": {}}, "ready": False}
        ],
        "containerStatuses": [
            {"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
        ],
    }
    assert row(POD, pod(status, spec))["Status"] == "Init:0/1"


def test_pod_init_crash_and_error() -> None:
    spec = {
        "initContainers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }
    done = {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}}
    crash = {"name": "b", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    r = row(POD, pod({"phase": "Pending", "initContainerStatuses": [done, crash]}, spec))
    assert r["Status"] == "Init:CrashLoopBackOff"
    assert r["Restarts"] == "4"
    failed = {"name": "b", "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}
    r = row(POD, pod({"phase": "Pending", "initContainerStatuses": [done, failed]}, spec))
    assert r["Status"] == "Init:ExitCode:2"


def test_pod_sidecar_counts_as_container() -> None:
    spec = {
        "initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}],
        "containers": [{"name": "app", "image": "nginx"}],
    }
    status = {
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [running("proxy", started=True)],
        "containerStatuses": [running("app")],
    }
    r = row(POD, pod(status, spec))
    assert (r["Ready"], r["Status"]) == ("2/2", "Running")


def test_pod_terminating() -> None:
    status = {"phase": "Running", "containerStatuses": [running()]}
    p = pod(status, deletionTimestamp=ago(seconds=10))
    assert row(POD, p)["Status"] == "Terminating"
    done = pod({"phase": "Succeeded"}, deletionTimestamp=ago(seconds=10))
    assert row(POD, done)["Status"] == "Succeeded"
    lost = pod({"phase": "Running", "reason": "NodeLost"}, deletionTimestamp=ago(seconds=1))
    assert row(POD, lost)["Status"] == "Unknown"


def test_pod_status_reason_and_scheduling_gated() -> None:
    assert row(POD, pod({"phase": "Failed", "reason": "Evicted"}))["Status"] == "Evicted"
    gated = {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
    }
    assert row(POD, pod(gated))["Status"] == "SchedulingGated"


def test_pod_readiness_gates_and_nominated_node() -> None:
    spec = {
        "containers": [{"name": "app", "image": "nginx"}],
        "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}],
    }
    status = {
        "phase": "Pending",
        "nominatedNodeName": "n2",
        "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}],
    }
    r = row(POD, pod(status, spec))
    assert (r["Readiness Gates"], r["Nominated Node"]) == ("1/2", "n2")


# ---------------------------------------------------------------------------
# includeObject and table metadata


def test_include_object_metadata_is_default() -> None:
    p = pod({"phase": "Running"})
    table = table_for(POD, [p], list_meta={"resourceVersion": "42", "continue": "abc"}, now=NOW)
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "abc"}
    assert table["rows"][0]["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": p["metadata"],
    }


def test_include_object_none_and_object() -> None:
    p = pod({"phase": "Running"})
    assert "object" not in table_for(POD, [p], include_object="None")["rows"][0]
    full = table_for(POD, [p], include_object="Object")["rows"][0]["object"]
    assert full["kind"] == "Pod" and full["apiVersion"] == "v1"
    assert full["spec"] == p["spec"]


def test_include_object_invalid() -> None:
    with pytest.raises(ApiError) as exc:
        table_for(POD, [], include_object="Everything")
    assert exc.value.code == 400


def test_no_headers() -> None:
    assert table_for(POD, [], no_headers=True)["columnDefinitions"] is None


def test_every_resource_renders_json_cells() -> None:
    for resource in RESOURCES:
        obj = {"metadata": {"name": "x", "creationTimestamp": ago(hours=3)}}
        table = table_for(resource, [obj, {}], now=NOW)
        json.dumps(table)
        width = len(table["columnDefinitions"])
        for r in table["rows"]:
            assert len(r["cells"]) == width, resource.kind
            assert all(isinstance(c, str | int) for c in r["cells"]), resource.kind


# ---------------------------------------------------------------------------
# other kinds


def test_deployment() -> None:
    deploy = {
        "metadata": {"name": "web", "creationTimestamp": ago(days=4)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web", "tier": "fe"}},
            "template": {
                "spec": {
                    "containers": [
                        {"name": "nginx", "image": "nginx:1.27"},
                        {"name": "sidecar", "image": "busybox"},
                    ]
                }
            },
        },
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    }
    assert row(info("apps", "Deployment"), deploy) == {
        "Name": "web",
        "Ready": "2/3",
        "Up-to-date": 3,
        "Available": 2,
        "Age": "4d",
        "Containers": "nginx,sidecar",
        "Images": "nginx:1.27,busybox",
        "Selector": "app=web,tier=fe",
    }


def test_replica_set_selector_expressions() -> None:
    rs = {
        "metadata": {"name": "web-abc"},
        "spec": {
            "replicas": 1,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            },
        },
    }
    r = row(info("apps", "ReplicaSet"), rs)
    assert (r["Desired"], r["Current"], r["Ready"]) == (1, 0, 0)
    assert r["Selector"] == "app=web,!canary,env in (dev,prod)"


def test_service() -> None:
    svc = {
        "metadata": {"name": "web", "creationTimestamp": ago(hours=3)},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "ports": [
                {"port": 80, "protocol": "TCP", "nodePort": 30080},
                {"port": 53, "protocol": "UDP"},
            ],
            "selector": {"app": "web"},
        },
    }
    assert list(row(info("", "Service"), svc).values()) == [
        "web",
        "NodePort",
        "10.96.0.10",
        "<none>",
        "80:30080/TCP,53/UDP",
        "3h",
        "app=web",
    ]


def test_service_load_balancer_and_headless() -> None:
    svc = info("", "Service")
    lb = {"spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": []}}
    r = row(svc, lb)
    assert (r["External-IP"], r["Port(s)"], r["Selector"]) == ("<pending>", "<none>", "<none>")
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}
    assert row(svc, lb)["External-IP"] == "1.2.3.4"
    headless = {"spec": {"type": "ClusterIP", "clusterIP": "None", "ports": [{"port": 80}]}}
    assert row(svc, headless)["Cluster-IP"] == "None"
    ext = {"spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert row(svc, ext)["External-IP"] == "example.com"


def test_node() -> None:
    node = {
        "metadata": {
            "name": "node-1",
            "creationTimestamp": ago(days=20),
            "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "x"},
        },
        "spec": {"unschedulable": True},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.10"}],
            "nodeInfo": {
                "kubeletVersion": "v1.32.0",
                "osImage": "Debian",
                "kernelVersion": "6.1",
                "containerRuntimeVersion": "containerd://1.7",
            },
        },
    }
    assert list(row(info("", "Node"), node).values()) == [
        "node-1",
        "Ready,SchedulingDisabled",
        "control-plane,x",
        "20d",
        "v1.32.0",
        "192.168.1.10",
        "<none>",
        "Debian",
        "6.1",
        "containerd://1.7",
    ]
    node["status"]["conditions"][1]["status"] = "Unknown"
    node["spec"] = {}
    assert row(info("", "Node"), node)["Status"] == "NotReady"
    assert row(info("", "Node"), {"metadata": {"name": "n"}})["Status"] == "Unknown"


def test_job_status_and_completions() -> None:
    job = info("batch", "Job")
    obj = {
        "metadata": {"name": "pi"},
        "spec": {"completions": 3, "parallelism": 2},
        "status": {"succeeded": 1, "startTime": ago(seconds=30)},
    }
    r = row(job, obj)
    assert (r["Status"], r["Completions"], r["Duration"]) == ("Running", "1/3", "30s")
    obj["status"] = {
        "succeeded": 3,
        "startTime": ago(minutes=10),
        "completionTime": ago(minutes=7),
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    r = row(job, obj)
    assert (r["Status"], r["Completions"], r["Duration"]) == ("Complete", "3/3", "3m")
    obj["spec"] = {"parallelism": 4, "suspend": True}
    obj["status"] = {"conditions": [{"type": "Suspended", "status": "True"}]}
    r = row(job, obj)
    assert (r["Status"], r["Completions"], r["Duration"]) == ("Suspended", "0/1 of 4", "")


def test_cron_job() -> None:
    cj = {
        "metadata": {"name": "tick", "creationTimestamp": ago(hours=1)},
        "spec": {"schedule": "*/5 * * * *", "suspend": False},
        "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(seconds=40)},
    }
    r = row(info("batch", "CronJob"), cj)
    assert list(r.values())[:7] == ["tick", "*/5 * * * *", "<none>", "False", 1, "40s", "60m"]


def test_simple_kinds() -> None:
    cm = {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}
    assert row(info("", "ConfigMap"), cm)["Data"] == 3
    secret = {"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}}
    assert list(row(info("", "Secret"), secret).values())[:3] == ["s", "Opaque", 1]
    ns = {"metadata": {"name": "default", "creationTimestamp": ago(days=1)}}
    ns["status"] = {"phase": "Active"}
    assert list(row(info("", "Namespace"), ns).values()) == ["default", "Active", "24h"]
    sa = {"metadata": {"name": "default"}}
    assert [
        c["name"] for c in table_for(info("", "ServiceAccount"), [sa])["columnDefinitions"]
    ] == [
        "Name",
        "Secrets",
        "Age",
    ]
    lease = {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}}
    assert row(info("coordination.k8s.io", "Lease"), lease)["Holder"] == "me"


def test_events() -> None:
    event = {
        "metadata": {"name": "p.123"},
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled",
        "message": "Image pulled\n",
        "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": ago(minutes=3),
        "lastTimestamp": ago(seconds=20),
        "count": 2,
    }
    assert list(row(info("", "Event"), event).values()) == [
        "20s",
        "Normal",
        "Pulled",
        "pod/p",
        "spec.containers{app}",
        "kubelet, node-1",
        "Image pulled",
        "3m",
        2,
        "p.123",
    ]
    new_style = {
        "metadata": {"name": "e"},
        "regarding": {"kind": "Deployment", "name": "web"},
        "reason": "ScalingReplicaSet",
        "note": "Scaled up",
        "type": "Normal",
        "reportingController": "deployment-controller",
        "eventTime": ago(seconds=5),
    }
    r = row(info("events.k8s.io", "Event"), new_style)
    assert (r["Last Seen"], r["Object"], r["Message"], r["Count"], r["Source"]) == (
        "5s",
        "deployment/web",
        "Scaled up",
        1,
        "deployment-controller",
    )


def test_endpoints_and_slices() -> None:
    ep = {
        "metadata": {"name": "web"},
        "subsets": [
            {
                "addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)],
                "ports": [{"port": 8080}],
            }
        ],
    }
    r = row(info("", "Endpoints"), ep)
    assert r["Endpoints"] == "10.0.0.1:8080,10.0.0.2:8080,10.0.0.3:8080 + 2 more..."
    assert row(info("", "Endpoints"), {"metadata": {"name": "x"}})["Endpoints"] == "<none>"
    eps = {
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}],
    }
    r = row(info("discovery.k8s.io", "EndpointSlice"), eps)
    assert (r["AddressType"], r["Ports"], r["Endpoints"]) == ("IPv4", "8080", "10.0.0.1,10.0.0.2")
    r = row(info("discovery.k8s.io", "EndpointSlice"), {"addressType": "IPv4"})
    assert (r["Ports"], r["Endpoints"]) == ("<unset>", "<unset>")


def test_storage() -> None:
    pv = {
        "metadata": {"name": "pv1"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "claimRef": {"namespace": "default", "name": "data"},
            "storageClassName": "standard",
            "volumeMode": "Filesystem",
        },
        "status": {"phase": "Bound"},
    }
    r = row(info("", "PersistentVolume"), pv)
    assert list(r.values())[:8] == [
        "pv1",
        "10Gi",
        "RWO,RWX",
        "Retain",
        "Bound",
        "default/data",
        "standard",
        "<unset>",
    ]
    pvc = {
        "metadata": {"name": "data"},
        "spec": {"volumeName": "pv1", "storageClassName": "standard"},
        "status": {
            "phase": "Bound",
            "capacity": {"storage": "10Gi"},
            "accessModes": ["ReadWriteOnce"],
        },
    }
    r = row(info("", "PersistentVolumeClaim"), pvc)
    assert list(r.values())[:6] == ["data", "Bound", "pv1", "10Gi", "RWO", "standard"]


def test_workload_kinds() -> None:
    sts = {"metadata": {"name": "db"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 1}}
    assert row(info("apps", "StatefulSet"), sts)["Ready"] == "1/3"
    ds = {
        "metadata": {"name": "agent"},
        "spec": {"template": {"spec": {"nodeSelector": {"os": "linux"}, "containers": []}}},
        "status": {"desiredNumberScheduled": 2, "numberReady": 1},
    }
    r = row(info("apps", "DaemonSet"), ds)
    assert (r["Desired"], r["Ready"], r["Node Selector"]) == (2, 1, "os=linux")
    rc = {"metadata": {"name": "rc"}, "spec": {"replicas": 2, "selector": {"app": "x"}}}
    assert row(info("", "ReplicationController"), rc)["Selector"] == "app=x"
    cr = {
        "metadata": {
            "name": "web-6d4b",
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}
            ],
        },
        "revision": 2,
    }
    r = row(info("apps", "ControllerRevision"), cr)
    assert (r["Controller"], r["Revision"]) == ("statefulset.apps/web", 2)


def test_rbac() -> None:
    role = {"metadata": {"name": "admin", "creationTimestamp": "2024-03-05T12:00:00Z"}}
    assert row(info("rbac.authorization.k8s.io", "ClusterRole"), role) == {
        "Name": "admin",
        "Created At": "2024-03-05T12:00:00Z",
    }
    binding = {
        "metadata": {"name": "b"},
        "roleRef": {"kind": "ClusterRole", "name": "view"},
        "subjects": [
            {"kind": "User", "name": "alice"},
            {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"},
        ],
    }
    r = row(info("rbac.authorization.k8s.io", "RoleBinding"), binding)
    assert (r["Role"], r["Users"], r["ServiceAccounts"]) == ("ClusterRole/view", "alice", "ns/sa")


def test_unknown_resource_falls_back_to_name_and_age() -> None:
    crd = ResourceInfo("example.com", "v1", "Widget", "widgets", True, "")
    r = row(crd, {"metadata": {"name": "w", "creationTimestamp": ago(seconds=7)}})
    assert r == {"Name": "w", "Age": "7s"}


def test_many_pods() -> None:
    """Their speed is measured in bench/run.py (the 5,000-pod list), not asserted here."""
    status = {"phase": "Running", "containerStatuses": [running(restarts=1)]}
    pods = [pod(status, name=f"p{i}") for i in range(5000)]
    table = table_for(POD, pods, now=NOW)
    assert len(table["rows"]) == 5000
    assert {r["cells"][3] for r in table["rows"]} == {"1"}  # RESTARTS


def test_default_now_is_current_time() -> None:
    fresh = {"metadata": {"name": "x", "creationTimestamp": datetime.now(UTC).isoformat()}}
    assert printers.table_for(POD, [fresh])["rows"][0]["cells"][4] in ("0s", "1s")


def test_storage_class_marks_the_default() -> None:
    sc = {
        "metadata": {
            "name": "standard",
            "creationTimestamp": ago(minutes=5),
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": "skiff.io/hostpath",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }
    assert row(info("storage.k8s.io", "StorageClass"), sc) == {
        "Name": "standard (default)",
        "Provisioner": "skiff.io/hostpath",
        "ReclaimPolicy": "Delete",
        "VolumeBindingMode": "WaitForFirstConsumer",
        "AllowVolumeExpansion": False,
        "Age": "5m",
    }


def test_claims_and_volumes_being_deleted_are_terminating() -> None:
    meta = {"name": "data", "namespace": "default", "creationTimestamp": ago(minutes=5)}
    pvc = {
        "metadata": meta | {"finalizers": ["kubernetes.io/pvc-protection"]},
        "spec": {"volumeName": "pv-1", "storageClassName": "standard"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}},
    }
    claims = info("", "PersistentVolumeClaim")
    assert row(claims, pvc)["Status"] == "Bound"
    pvc["metadata"]["deletionTimestamp"] = ago(seconds=3)
    assert row(claims, pvc)["Status"] == "Terminating"
    pv = {
        "metadata": {"name": "pv-1", "creationTimestamp": ago(minutes=5)},
        "spec": {"capacity": {"storage": "1Gi"}, "claimRef": {"namespace": "default"}},
        "status": {"phase": "Bound"},
    }
    volumes = info("", "PersistentVolume")
    assert row(volumes, pv)["Status"] == "Bound"
    pv["metadata"]["deletionTimestamp"] = ago(seconds=3)
    assert row(volumes, pv)["Status"] == "Terminating"


def test_pod_template_columns() -> None:
    tmpl = {
        "metadata": {"name": "t", "creationTimestamp": ago(minutes=1)},
        "template": {
            "metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
        },
    }
    table = table_for(info("", "PodTemplate"), [tmpl])
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Containers", "Images", "Pod Labels"]  # fmt: skip
    assert table["rows"][0]["cells"] == ["t", "a,b", "x,y", "app=web,tier=fe"]


def test_pod_template_validation() -> None:
    from skiff.apiserver.registry import strategy_for

    bad = {"metadata": {"name": "t"}, "template": {"spec": {"containers": [{"name": "a"}]}}}
    causes = strategy_for(info("", "PodTemplate")).validate(bad)
    assert ("template.spec.containers[0].image", "Required value") in [
        (c.field, c.message) for c in causes
    ]
