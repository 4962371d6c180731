"""Defaulting of built-in objects, as kube-apiserver's SetDefaults_* functions."""

from __future__ import annotations

import copy

import pytest

from skiff.api.defaults import apply_defaults, pod_qos_class
from skiff.api.quantity import parse_quantity
from skiff.api.resources import REGISTRY, RESOURCES, ResourceInfo


def info(group: str, kind: str) -> ResourceInfo:
    found = REGISTRY.by_gvk(group, "v1", kind)
    assert found is not None
    return found


def defaulted(group: str, kind: str, obj: dict, **kw) -> dict:
    apply_defaults(info(group, kind), obj, **kw)
    return obj


def container(**kw) -> dict:
    return {"name": "app", "image": "nginx"} | kw


# ---------------------------------------------------------------------------
# pods


def test_pod_spec_defaults() -> None:
    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": {"containers": [container()]}})
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert "priority" not in spec
    assert spec["tolerations"] == [
        {
            "key": "node.kubernetes.io/not-ready",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 300,
        },
    ]
    c = spec["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["imagePullPolicy"] == "Always"
    assert c["resources"] == {}
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_pod_keeps_explicit_values() -> None:
    spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "enableServiceLinks": False,
        "serviceAccountName": "builder",
        "tolerations": [{"operator": "Exists"}],
        "containers": [container(imagePullPolicy="Never")],
    }
    pod = defaulted("", "Pod", {"metadata": {"name": "p"}, "spec": spec})
    assert spec["restartPolicy"] == "Never"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["enableServiceLinks"] is False
    assert spec["serviceAccount"] == "builder"
    assert spec["tolerations"] == [{"operator": "Exists"}]  # already tolerates everything
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def test_pod_partial_toleration_adds_the_other() -> None:
    tol = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    pod = defaulted("", "Pod", {"spec": {"containers": [container()], "tolerations": [tol]}})
    keys = [t["key"] for t in pod["spec"]["tolerations"]]
    assert keys == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]


def test_deprecated_service_account_is_mirrored() -> None:
    pod = defaulted("", "Pod", {"spec": {"serviceAccount": "old", "containers": [container()]}})
    assert pod["spec"]["serviceAccountName"] == "old"


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.27", "IfNotPresent"),
        ("registry:5000/team/app", "Always"),
        ("registry:5000/team/app:v2", "IfNotPresent"),
        ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
        ("nginx:latest@sha256:" + "a" * 64, "Always"),
        ("", "IfNotPresent"),
    ],
)
def test_image_pull_policy(image: str, policy: str) -> None:
    pod = defaulted("", "Pod", {"spec": {"containers": [container(image=image)]}})
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_container_parts() -> None:
    c = container(
        ports=[{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
        livenessProbe={"httpGet": {"port": 80}},
        readinessProbe={"tcpSocket": {"port": 80}, "periodSeconds": 5},
        startupProbe={"grpc": {"port": 9000}},
        lifecycle={"preStop": {"httpGet": {"port": 80, "path": "/stop"}}},
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
    )
    init = container(name="init", image="busybox:1.36")
    defaulted("", "Pod", {"spec": {"containers": [c], "initContainers": [init]}})
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]
    assert c["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["startupProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert c["lifecycle"]["preStop"]["httpGet"] == {"port": 80, "path": "/stop", "scheme": "HTTP"}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert init["imagePullPolicy"] == "IfNotPresent"
    assert init["terminationMessagePolicy"] == "File"


def test_volumes() -> None:
    volumes = [
        {"name": "scratch"},
        {"name": "s", "secret": {"secretName": "x"}},
        {"name": "c", "configMap": {"name": "x", "defaultMode": 256}},
        {"name": "h", "hostPath": {"path": "/var"}},
        {"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "x"}}]}},
    ]
    defaulted("", "Pod", {"spec": {"containers": [container()], "volumes": volumes}})
    assert volumes[0] == {"name": "scratch", "emptyDir": {}}
    assert volumes[1]["secret"]["defaultMode"] == 420
    assert volumes[2]["configMap"]["defaultMode"] == 256
    assert volumes[3]["hostPath"] == {"path": "/var", "type": ""}
    assert volumes[4]["projected"]["defaultMode"] == 420
    token = volumes[4]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["expirationSeconds"] == 3600
    assert volumes[5]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"] == "v1"


def test_pod_requests_default_to_limits_and_host_ports() -> None:
    c = container(
        resources={"limits": {"cpu": "500m", "memory": "128Mi"}},
        ports=[{"containerPort": 8080}],
    )
    pod = defaulted("", "Pod", {"spec": {"hostNetwork": True, "containers": [c]}})
    assert c["resources"]["requests"] == {"cpu": "500m", "memory": "128Mi"}
    assert c["ports"][0]["hostPort"] == 8080
    assert pod["status"]["qosClass"] == "Guaranteed"


def test_pod_status_only_filled() -> None:
    pod = {
        "metadata": {"name": "p", "resourceVersion": "5"},
        "spec": {"containers": [container()]},
        "status": {"phase": "Running", "qosClass": "Burstable"},
    }
    defaulted("", "Pod", pod)
    assert pod["status"] == {"phase": "Running", "qosClass": "Burstable"}


def test_pod_scheduling_gates_condition_on_create() -> None:
    pod = defaulted(
        "", "Pod", {"spec": {"containers": [container()], "schedulingGates": [{"name": "g"}]}}
    )
    assert pod["status"]["conditions"][0]["reason"] == "SchedulingGated"


def test_defaulting_is_idempotent() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [container()]}}
    apply_defaults(info("", "Pod"), pod)
    again = copy.deepcopy(pod)
    apply_defaults(info("", "Pod"), again)
    assert again == pod


# ---------------------------------------------------------------------------
# QoS


def _qos(*containers: dict, init: tuple[dict, ...] = ()) -> str:
    spec = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)]}
    spec["initContainers"] = [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]
    return pod_qos_class({"spec": spec})


def test_qos_classes() -> None:
    full = {"cpu": "1", "memory": "1Gi"}
    assert _qos({}) == "BestEffort"
    assert _qos({"requests": {"ephemeral-storage": "1Gi"}}) == "BestEffort"
    assert _qos({"requests": {"cpu": "0"}}) == "BestEffort"
    assert _qos({"requests": {"cpu": "100m"}}) == "Burstable"
    assert _qos({"limits": full, "requests": full}) == "Guaranteed"
    assert _qos({"limits": full, "requests": {"cpu": "1000m", "memory": "1024Mi"}}) == "Guaranteed"
    assert _qos({"limits": full, "requests": {"cpu": "500m", "memory": "1Gi"}}) == "Burstable"
    assert _qos({"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}) == "Burstable"
    assert _qos({"limits": full, "requests": full}, {}) == "Burstable"
    assert _qos({"limits": full, "requests": full}, init=({},)) == "Burstable"


def test_parse_quantity() -> None:
    assert parse_quantity("100m") == parse_quantity("0.1")
    assert parse_quantity("1Gi") == 2**30
    assert parse_quantity("1e3") == parse_quantity("1k") == 1000
    assert parse_quantity(2) == 2
    assert parse_quantity("abc") is None


# ---------------------------------------------------------------------------
# workloads


def test_deployment_defaults() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container()]}}
    dep = defaulted("apps", "Deployment", {"spec": {"template": template}})
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["containers"][0]["imagePullPolicy"] == "Always"
    # Pod-only defaults (admission, SetDefaults_Pod) stay off templates.
    for key in ("tolerations", "serviceAccountName", "enableServiceLinks"):
        assert key not in pod_spec


def test_deployment_recreate_and_explicit() -> None:
    dep = defaulted(
        "apps", "Deployment", {"spec": {"replicas": 0, "strategy": {"type": "Recreate"}}}
    )
    assert dep["spec"]["replicas"] == 0
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_replication_controller_selector_from_template() -> None:
    rc = {"spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}}}
    defaulted("", "ReplicationController", rc)
    assert rc["spec"]["selector"] == {"app": "x"}
    assert rc["metadata"]["labels"] == {"app": "x"}
    assert rc["spec"]["replicas"] == 1


def test_stateful_set_defaults() -> None:
    sts = {"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}}
    spec = defaulted("apps", "StatefulSet", sts)["spec"]
    assert spec["replicas"] == 1
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    claim = spec["volumeClaimTemplates"][0]
    assert claim["spec"]["volumeMode"] == "Filesystem"
    assert claim["status"] == {"phase": "Pending"}


def test_daemon_set_defaults() -> None:
    spec = defaulted("apps", "DaemonSet", {"spec": {}})["spec"]
    assert spec["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert spec["revisionHistoryLimit"] == 10


def test_job_defaults_and_selector() -> None:
    job = {
        "metadata": {"name": "pi", "uid": "u-1"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [container()]}},
        },
    }
    spec = defaulted("batch", "Job", job)["spec"]
    assert (spec["completions"], spec["parallelism"]) == (1, 1)
    assert spec["backoffLimit"] == 6
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    labels = {
        "batch.kubernetes.io/controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u-1",
        "job-name": "pi",
    }
    assert spec["template"]["metadata"]["labels"] == labels
    assert job["metadata"]["labels"] == labels
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


def test_job_keeps_parallel_settings_and_missing_restart_policy() -> None:
    job = {
        "metadata": {"name": "w", "uid": "u"},
        "spec": {"parallelism": 3, "manualSelector": True, "template": {"spec": {}}},
    }
    spec = defaulted("batch", "Job", job)["spec"]
    assert spec["parallelism"] == 3
    assert "completions" not in spec
    assert "selector" not in spec
    assert "restartPolicy" not in spec["template"]["spec"]


def test_cron_job_defaults() -> None:
    cj = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {}}}}}}
    spec = defaulted("batch", "CronJob", cj)["spec"]
    assert spec["concurrencyPolicy"] == "Allow"
    assert spec["suspend"] is False
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]


# ---------------------------------------------------------------------------
# services, namespaces and the rest


def test_service_defaults() -> None:
    svc = {
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"port": 80}, {"port": 53, "targetPort": "dns"}],
        }
    }
    spec = defaulted("", "Service", svc)["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [
        {"port": 80, "protocol": "TCP", "targetPort": 80},
        {"port": 53, "targetPort": "dns", "protocol": "TCP"},
    ]
    assert spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["ipFamilies"] == ["IPv4"]
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert "clusterIP" not in spec


def test_service_types() -> None:
    lb = defaulted("", "Service", {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster"
    assert lb["spec"]["allocateLoadBalancerNodePorts"] is True
    ext = defaulted("", "Service", {"spec": {"type": "ExternalName", "externalName": "x.com"}})
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]
    sticky = defaulted("", "Service", {"spec": {"sessionAffinity": "ClientIP"}})
    assert sticky["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    v6 = defaulted("", "Service", {"spec": {"clusterIP": "fd00::10"}})
    assert v6["spec"]["ipFamilies"] == ["IPv6"]


def test_namespace_defaults() -> None:
    ns = defaulted("", "Namespace", {"metadata": {"name": "team-a"}})
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team-a"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}


def test_namespace_finalizer_not_readded_on_update() -> None:
    ns = {
        "metadata": {"name": "team-a", "resourceVersion": "9"},
        "spec": {"finalizers": []},
        "status": {"phase": "Terminating"},
    }
    defaulted("", "Namespace", ns)
    assert ns["spec"]["finalizers"] == []
    assert ns["status"]["phase"] == "Terminating"
    defaulted("", "Namespace", ns, create=True)
    assert ns["spec"]["finalizers"] == ["kubernetes"]


def test_other_kinds() -> None:
    assert defaulted("", "Secret", {"data": {}})["type"] == "Opaque"
    assert defaulted("", "Secret", {"type": "kubernetes.io/tls"})["type"] == "kubernetes.io/tls"
    pvc = defaulted("", "PersistentVolumeClaim", {"spec": {}})
    assert (pvc["spec"]["volumeMode"], pvc["status"]["phase"]) == ("Filesystem", "Pending")
    pv = defaulted("", "PersistentVolume", {"spec": {"hostPath": {"path": "/d"}}})
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["spec"]["hostPath"]["type"] == ""
    assert pv["status"]["phase"] == "Pending"
    ep = defaulted("", "Endpoints", {"subsets": [{"ports": [{"port": 80}]}]})
    assert ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    eps = defaulted("discovery.k8s.io", "EndpointSlice", {"ports": [{"port": 80}]})
    assert eps["ports"] == [{"port": 80, "name": "", "protocol": "TCP"}]
    rb = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        {"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "a"}]},
    )
    assert rb["roleRef"]["apiGroup"] == rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io"
    event = {"metadata": {"name": "e"}, "reason": "x"}
    assert defaulted("", "Event", copy.deepcopy(event)) == event


def test_every_resource_accepts_sparse_objects() -> None:
    for resource in RESOURCES:
        obj: dict = {"metadata": {"name": "x", "uid": "u"}}
        apply_defaults(resource, obj)
        again = copy.deepcopy(obj)
        apply_defaults(resource, again)
        assert again == obj, resource.kind


def test_secret_string_data_is_merged_into_data() -> None:
    """stringData is write-only: merged into data (base64), overwriting, then dropped."""
    info = REGISTRY.by_path("", "v1", "secrets")
    assert info is not None
    secret = {
        "metadata": {"name": "s"},
        "data": {"a": "b2xk", "keep": "eA=="},
        "stringData": {"a": "new", "token-id": "abcdef"},
    }
    apply_defaults(info, secret, create=True)
    assert secret == {
        "metadata": {"name": "s"},
        "type": "Opaque",
        "data": {"a": "bmV3", "keep": "eA==", "token-id": "YWJjZGVm"},
    }
    odd = {"metadata": {"name": "s"}, "stringData": {"n": 1}}
    apply_defaults(info, odd, create=True)
    assert odd["stringData"] == {"n": 1}  # not a string: left for validation to refuse
