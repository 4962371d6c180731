"""Pod validation as kube-apiserver 1.32 does it: each invalid pod refused with a 422
naming the field and saying what kube says; valid pods (after defaulting) accepted; pod
updates change only what kube lets them."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from memstore import MemoryStore, running

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.store import WriteOptions as Opts

PODS = REGISTRY.core("pods")
DEPLOYMENTS = REGISTRY.by_path("apps", "v1", "deployments")


def pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {"name": "app", "image": "busybox", **(container or {})}
    return {"metadata": {"name": "p"}, "spec": {"containers": [c], **spec}}


@pytest.fixture
async def env() -> AsyncIterator[MemoryStore]:
    async with running(MemoryStore, {"default": {}}) as e:
        yield e


async def causes_of(env: MemoryStore, body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ApiError) as e:
        await env.store.create(PODS, "default", body, Opts())
    assert e.value.code == 422, e.value.message
    return [(c.field, c.message) for c in e.value.causes]


CASES: list[tuple[dict[str, Any], tuple[str, str]]] = [
    (pod(restartPolicy="Sometimes"),
     ("spec.restartPolicy",
      'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')),
    (pod({"imagePullPolicy": "Maybe"}),
     ("spec.containers[0].imagePullPolicy",
      'Unsupported value: "Maybe": supported values: "Always", "IfNotPresent", "Never"')),
    (pod({"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}),
     ("spec.containers[0].resources.requests",
      'Invalid value: "2": must be less than or equal to cpu limit of 1')),
    (pod({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
     ("spec.containers[0].volumeMounts[0].name", 'Not found: "data"')),
    (pod({"env": [{"name": "1BAD=", "value": "x"}]}),
     ("spec.containers[0].env[0].name",
      'Invalid value: "1BAD=": a valid environment variable name must consist only of '
      "printable ASCII characters other than '='")),
    (pod({"image": "   "}),
     ("spec.containers[0].image",
      'Invalid value: "   ": must not have leading or trailing whitespace')),
    (pod({"livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": -5}}),
     ("spec.containers[0].livenessProbe.periodSeconds",
      "Invalid value: -5: must be greater than or equal to 0")),
    (pod({"ports": [{"containerPort": 99999999}]}),
     ("spec.containers[0].ports[0].containerPort",
      "Invalid value: 99999999: must be between 1 and 65535, inclusive")),
    (pod({"livenessProbe": {"exec": {"command": ["true"]}, "tcpSocket": {"port": 80}}}),
     ("spec.containers[0].livenessProbe.tcpSocket",
      "Forbidden: may not specify more than 1 handler type")),
    (pod({"readinessProbe": {"periodSeconds": 5}}),
     ("spec.containers[0].readinessProbe", "Required value: must specify a handler type")),
    (pod({"livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}}),
     ("spec.containers[0].livenessProbe.successThreshold", "Invalid value: 2: must be 1")),
    (pod({"resources": {"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}}),
     ("spec.containers[0].resources.requests",
      'Invalid value: "1": must be equal to example.com/gpu limit of 2')),
    (pod({"resources": {"limits": {"gpu": "1"}}}),
     ("spec.containers[0].resources.limits[gpu]",
      'Invalid value: "gpu": must be a standard resource type or fully qualified')),
    (pod({"resources": {"limits": {"memory": "-1Gi"}}}),
     ("spec.containers[0].resources.limits[memory]",
      'Invalid value: "-1Gi": must be greater than or equal to 0')),
    (pod({"env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.name"}}}]}),
     ("spec.containers[0].env[0].valueFrom",
      'Invalid value: "": may not be specified when `value` is not empty')),
    (pod({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.foo"}}}]}),
     ("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath",
      'Invalid value: "spec.foo": error converting fieldPath: field label not supported: '
      "spec.foo")),
    (pod({"ports": [{"containerPort": 80, "protocol": "ICMP"}]}),
     ("spec.containers[0].ports[0].protocol",
      'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')),
    (pod({"volumeMounts": [{"name": "v", "mountPath": "/a", "subPath": "/abs"}]},
         volumes=[{"name": "v", "emptyDir": {}}]),
     ("spec.containers[0].volumeMounts.subPath", 'Invalid value: "/abs": must be a relative path')),
    (pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     ("spec.volumes[1].name", 'Duplicate value: "v"')),
    (pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
     ("spec.volumes[0].hostPath", "Forbidden: may not specify more than 1 volume type")),
    (pod(volumes=[{"name": "v", "secret": {"secretName": "s", "defaultMode": 4096}}]),
     ("spec.volumes[0].secret.defaultMode",
      "Invalid value: 4096: must be a number between 0 and 0777 (octal), both inclusive")),
    (pod(volumes=[{"name": "v", "hostPath": {"path": "/x", "type": "Dir"}}]),
     ("spec.volumes[0].hostPath.type",
      'Unsupported value: "Dir": supported values: "", "BlockDevice", "CharDevice", "Directory",'
      ' "DirectoryOrCreate", "File", "FileOrCreate", "Socket"')),
    (pod(dnsPolicy="Sometimes"),
     ("spec.dnsPolicy", 'Unsupported value: "Sometimes": supported values: '
                        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"')),
    (pod(dnsPolicy="None"),
     ("spec.dnsConfig", "Required value: must provide `dnsConfig` when `dnsPolicy` is None")),
    (pod(activeDeadlineSeconds=0),
     ("spec.activeDeadlineSeconds", "Invalid value: 0: must be between 1 and 2147483647, "
                                    "inclusive")),
    (pod(hostAliases=[{"ip": "nope", "hostnames": ["a"]}]),
     ("spec.hostAliases[0].ip",
      'Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')),
    (pod(securityContext={"runAsUser": -1}),
     ("spec.securityContext.runAsUser", "Invalid value: -1: must be between 0 and 2147483647, "
                                        "inclusive")),
    (pod(initContainers=[{"name": "init", "image": "busybox",
                          "readinessProbe": {"exec": {"command": ["true"]}}}]),
     ("spec.initContainers[0].readinessProbe",
      "Forbidden: may not be set for init containers without restartPolicy=Always")),
    (pod(initContainers=[{"name": "app", "image": "busybox"}]),
     ("spec.initContainers[0].name", 'Duplicate value: "app"')),
    (pod(nodeName="n1", schedulingGates=[{"name": "wait"}]),
     ("spec.nodeName", "Forbidden: cannot be set until all schedulingGates have been cleared")),
    (pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}),
     ("spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
      "nodeSelectorTerms[0].matchExpressions[0].values",
      "Required value: must be specified when `operator` is 'In' or 'NotIn'")),
    (pod(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 0, "preference": {}}]}}),
     ("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight",
      "Invalid value: 0: must be in the range 1-100")),
    (pod(affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}}]}}),
     ("spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
      ".topologyKey", "Required value: can not be empty")),
    (pod(affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"topologyKey": "zone", "matchLabelKeys": ["app"]}]}}),
     ("spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"
      ".matchLabelKeys", "Forbidden: must not be specified when labelSelector is not set")),
    (pod(topologySpreadConstraints=[{"maxSkew": 0, "topologyKey": "zone",
                                     "whenUnsatisfiable": "DoNotSchedule"}]),
     ("spec.topologySpreadConstraints[0].maxSkew", "Invalid value: 0: must be greater than zero")),
    (pod(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                     "whenUnsatisfiable": "Sometimes"}]),
     ("spec.topologySpreadConstraints[0].whenUnsatisfiable",
      'Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"')),
    (pod(topologySpreadConstraints=[{"maxSkew": 1, "topologyKey": "zone",
                                     "whenUnsatisfiable": "ScheduleAnyway", "minDomains": 2}]),
     ("spec.topologySpreadConstraints[0].minDomains",
      "Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not "
      "ScheduleAnyway")),
    (pod(topologySpreadConstraints=[
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"},
        {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]),
     ("spec.topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}",
      'Duplicate value: "{zone, DoNotSchedule}"')),
]  # fmt: skip


@pytest.mark.parametrize(("body", "want"), CASES)
async def test_invalid_pods_get_kubes_words(
    env: MemoryStore, body: dict[str, Any], want: tuple[str, str]
) -> None:
    assert want in await causes_of(env, body)


async def test_a_full_valid_pod_is_accepted(env: MemoryStore) -> None:
    body = pod(
        {
            "ports": [{"name": "http", "containerPort": 80}],
            "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}],
            "envFrom": [{"prefix": "P_", "secretRef": {"name": "s"}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data", "subPath": "x"},
                             {"name": "info", "mountPath": "/info", "readOnly": True}],
            "resources": {"requests": {"cpu": "100m", "example.com/gpu": "1"},
                          "limits": {"cpu": "1", "memory": "1Gi", "example.com/gpu": "1"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
            "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
            "securityContext": {"allowPrivilegeEscalation": False, "runAsUser": 1000},
        },
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "c"}},
                 {"name": "info", "downwardAPI": {"items": [
                     {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}],
        initContainers=[{"name": "sidecar", "image": "busybox", "restartPolicy": "Always",
                         "readinessProbe": {"exec": {"command": ["true"]}}}],
        tolerations=[{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        dnsConfig={"options": [{"name": "ndots", "value": "2"}]},
    )  # fmt: skip
    created = await env.store.create(PODS, "default", body, Opts())
    assert created["spec"]["containers"][0]["terminationMessagePolicy"] == "File"


async def test_templates_are_validated_too(env: MemoryStore) -> None:
    body = {"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": "d"}},
        "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [
            {"name": "app", "image": "busybox", "ports": [{"containerPort": 0}]}]}}}}  # fmt: skip
    with pytest.raises(ApiError) as e:
        await env.store.create(DEPLOYMENTS, "default", body, Opts())
    assert ("spec.template.spec.containers[0].ports[0].containerPort", "Required value") in [
        (c.field, c.message) for c in e.value.causes
    ]


async def test_pod_updates_change_only_what_kube_allows(env: MemoryStore) -> None:
    created = await env.store.create(PODS, "default", pod(activeDeadlineSeconds=100), Opts())
    changed = copy.deepcopy(created)
    changed["spec"]["containers"][0]["image"] = "busybox:1.36"
    changed["spec"]["activeDeadlineSeconds"] = 50
    updated = await env.store.update(PODS, "default", "p", changed, Opts())
    assert updated["spec"]["containers"][0]["image"] == "busybox:1.36"
    bad = copy.deepcopy(updated)
    bad["spec"]["restartPolicy"] = "Never"
    with pytest.raises(ApiError) as e:
        await env.store.update(PODS, "default", "p", bad, Opts())
    [cause] = e.value.causes
    assert cause.field == "spec"
    assert cause.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only "
        "additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be "
        "set to 1 if it was previously negative)\n"
    )
    assert '+   restartPolicy: "Never",' in cause.message
    longer = copy.deepcopy(updated)
    longer["spec"]["activeDeadlineSeconds"] = 60
    with pytest.raises(ApiError) as e:
        await env.store.update(PODS, "default", "p", longer, Opts())
    assert e.value.causes[0].message == (
        "Invalid value: 60: must be less than or equal to previous value"
    )
    more = copy.deepcopy(updated)
    more["spec"]["containers"].append({"name": "two", "image": "busybox"})
    with pytest.raises(ApiError) as e:
        await env.store.update(PODS, "default", "p", more, Opts())
    assert ("spec.containers", "Forbidden: pod updates may not add or remove containers") in [
        (c.field, c.message) for c in e.value.causes
    ]


# -- workloads ---------------------------------------------------------------------------

WORKLOAD_CASES: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = [
    ("apps", "deployments", {"strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}}},
     ("spec.strategy.rollingUpdate.maxUnavailable",
      'Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when '
      "`maxSurge` is 0")),
    ("apps", "deployments", {"strategy": {"type": "Recreate", "rollingUpdate": {}}},
     ("spec.strategy.rollingUpdate",
      "Forbidden: may not be specified when strategy `type` is 'Recreate'")),
    ("apps", "deployments", {"minReadySeconds": 10, "progressDeadlineSeconds": 10},
     ("spec.progressDeadlineSeconds", "Invalid value: 10: must be greater than minReadySeconds")),
    ("apps", "deployments", {"strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": "150%"}}},
     ("spec.strategy.rollingUpdate.maxUnavailable",
      'Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"150%"}: must not be greater '
      "than 100%")),
    ("apps", "deployments", {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {
        "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}},
     ("spec.template.spec.restartPolicy",
      'Unsupported value: "OnFailure": supported values: "Always"')),
    ("apps", "daemonsets", {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 0}}},
     ("spec.updateStrategy.rollingUpdate.maxUnavailable",
      "Required value: cannot be 0 when maxSurge is 0")),
    ("apps", "statefulsets", {"podManagementPolicy": "Sometimes"},
     ("spec.podManagementPolicy",
      "Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'")),
    ("batch", "jobs", {"parallelism": -1, "selector": None},
     ("spec.parallelism", "Invalid value: -1: must be greater than or equal to 0")),
    ("batch", "jobs", {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {
        "restartPolicy": "Always", "containers": [{"name": "c", "image": "busybox"}]}}},
     ("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"')),
]  # fmt: skip


@pytest.mark.parametrize(("group", "plural", "spec", "want"), WORKLOAD_CASES)
async def test_invalid_workloads_get_kubes_words(
    env: MemoryStore, group: str, plural: str, spec: dict[str, Any], want: tuple[str, str]
) -> None:
    base: dict[str, Any] = {"selector": {"matchLabels": {"a": "b"}}, "template": {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}  # fmt: skip
    if plural == "jobs":
        pod_spec = {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
        base = {"template": {"metadata": {"labels": {"a": "b"}}, "spec": pod_spec}}
    body = {"metadata": {"name": "w"}, "spec": {**base, **spec}}
    if body["spec"].get("selector", 1) is None:
        del body["spec"]["selector"]
    info = REGISTRY.by_path(group, "v1", plural)
    with pytest.raises(ApiError) as e:
        await env.store.create(info, "default", body, Opts())
    assert want in [(c.field, c.message) for c in e.value.causes]


async def test_pod_status_updates_follow_kubes_rules(env: MemoryStore) -> None:
    created = await env.store.create(PODS, "default", pod(restartPolicy="Never"), Opts())
    done = copy.deepcopy(created)
    done["status"] = {**created["status"], "containerStatuses": [
        {"name": "app", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
         "state": {"terminated": {"exitCode": 0}}}],
        "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
        "hostIP": "10.1.0.1", "hostIPs": [{"ip": "10.1.0.1"}]}  # fmt: skip
    done = await env.store.update(PODS, "default", "p", done, Opts(), subresource="status")
    back = copy.deepcopy(done)
    back["status"]["containerStatuses"][0]["state"] = {"running": {}}
    back["status"]["podIPs"] = [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]
    back["status"]["hostIPs"] = [{"ip": "10.1.0.2"}]
    back["status"]["conditions"] = [{"type": "bad type", "status": "True"}]
    with pytest.raises(ApiError) as e:
        await env.store.update(PODS, "default", "p", back, Opts(), subresource="status")
    causes = [(c.field, c.message) for c in e.value.causes]
    assert ("status.containerStatuses[0].state",
            "Forbidden: may not be transitioned to non-terminated state") in causes  # fmt: skip
    assert ("status.podIPs", 'Invalid value: [{"ip": "10.0.0.5"}, {"ip": "10.0.0.6"}]: may '
            "specify no more than one IP for each IP family") in causes  # fmt: skip
    assert ("status.hostIPs[0].ip", 'Invalid value: "10.1.0.2": must be equal to `hostIP`') in (
        causes
    )
    assert causes[0][0] == "metadata.conditions[0].Type"


async def test_replication_controllers_follow_kubes_rules(env: MemoryStore) -> None:
    template = {"metadata": {"labels": {"a": "b"}},
                "spec": {"restartPolicy": "OnFailure", "activeDeadlineSeconds": 5,
                         "containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    body = {"metadata": {"name": "rc"}, "spec": {"minReadySeconds": -1, "template": template}}
    with pytest.raises(ApiError) as e:
        await env.store.create(REGISTRY.core("replicationcontrollers"), "default", body, Opts())
    causes = [(c.field, c.message) for c in e.value.causes]
    assert ("spec.minReadySeconds", "Invalid value: -1: must be greater than or equal to 0") in (
        causes
    )
    assert "spec.selector" not in dict(causes)  # defaulted from the template's labels
    assert ("spec.template.spec.restartPolicy",
            'Unsupported value: "OnFailure": supported values: "Always"') in causes  # fmt: skip
    assert ("spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in ReplicationController is not Supported") in (
        causes
    )  # fmt: skip


async def test_workload_updates_and_statuses_follow_kubes_rules(env: MemoryStore) -> None:
    template = {"metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}  # fmt: skip
    sets = REGISTRY.by_path("apps", "v1", "statefulsets")
    body = {"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "serviceName": "db", "template": template}}  # fmt: skip
    created = await env.store.create(sets, "default", body, Opts())
    renamed = copy.deepcopy(created)
    renamed["spec"]["serviceName"] = "other"
    renamed["spec"]["replicas"] = 3  # replicas may change; serviceName may not
    with pytest.raises(ApiError) as e:
        await env.store.update(sets, "default", "db", renamed, Opts())
    assert [(c.field, c.message) for c in e.value.causes] == [(
        "spec", "Forbidden: updates to statefulset spec for fields other than 'replicas', "
        "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and "
        "'minReadySeconds' are forbidden")]  # fmt: skip
    scaled = copy.deepcopy(created)
    scaled["spec"]["replicas"] = 3
    scaled = await env.store.update(sets, "default", "db", scaled, Opts())
    bad = copy.deepcopy(scaled)
    bad["status"] = {"replicas": 1, "readyReplicas": 2, "availableReplicas": 2}
    with pytest.raises(ApiError) as e:
        await env.store.update(sets, "default", "db", bad, Opts(), subresource="status")
    assert ("status.readyReplicas", "Invalid value: 2: cannot be greater than status.replicas") in [
        (c.field, c.message) for c in e.value.causes
    ]

    jobs = REGISTRY.by_path("batch", "v1", "jobs")
    job_template = {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "c", "image": "busybox"}]}}  # fmt: skip
    job = await env.store.create(
        jobs, "default", {"metadata": {"name": "j"}, "spec": {"template": job_template}}, Opts()
    )
    changed = copy.deepcopy(job)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "alpine"
    changed["spec"]["completions"] = 4
    with pytest.raises(ApiError) as e:
        await env.store.update(jobs, "default", "j", changed, Opts())
    fields = [(c.field, c.message.split(":")[-1].strip()) for c in e.value.causes]
    assert ("spec.completions", "field is immutable") in fields
    assert ("spec.template", "field is immutable") in fields
    parallel = copy.deepcopy(job)
    parallel["spec"]["parallelism"] = 5  # parallelism may change
    await env.store.update(jobs, "default", "j", parallel, Opts())
