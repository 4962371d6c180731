"""Decoding Kubernetes protobuf request bodies into JSON dicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message

from skiff.api.errors import ApiError
from skiff.apiserver import protobuf, schema
from skiff.k8spb import options_pb2
from skiff.k8spb.api.apps.v1 import types_pb2 as apps
from skiff.k8spb.api.core.v1 import types_pb2 as core
from skiff.k8spb.api.events.v1 import types_pb2 as events
from skiff.k8spb.apimachinery.pkg.apis.meta.v1 import types_pb2 as meta
from skiff.k8spb.apimachinery.pkg.runtime import types_pb2 as runtime

JAN_1_2026 = 1767225600


def body(api_version: str, kind: str, obj: Message) -> bytes:
    """Wrap ``obj`` the way client-go does: magic, then ``runtime.Unknown``."""
    unknown = runtime.Unknown(raw=obj.SerializeToString())
    unknown.typeMeta.apiVersion = api_version
    unknown.typeMeta.kind = kind
    return protobuf.MAGIC + unknown.SerializeToString()


def test_namespace() -> None:
    ns = core.Namespace()
    ns.metadata.name = "x"
    ns.metadata.generateName = ""  # Go always writes plain strings; "" means unset
    ns.metadata.generation = 0
    ns.metadata.creationTimestamp.SetInParent()  # zero time: JSON null
    ns.spec.SetInParent()
    ns.status.SetInParent()
    assert protobuf.decode(body("v1", "Namespace", ns)) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x"},
        "spec": {},
        "status": {},
    }


def test_configmap_binary_data() -> None:
    cm = core.ConfigMap()
    cm.metadata.name = "c"
    cm.metadata.namespace = "default"
    cm.metadata.labels["app"] = "web"
    cm.data["a"] = "b"
    cm.binaryData["bin"] = b"\x00\x01\xff"
    assert protobuf.decode(body("v1", "ConfigMap", cm)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default", "labels": {"app": "web"}},
        "data": {"a": "b"},
        "binaryData": {"bin": "AAH/"},
    }


def test_secret_data_and_pointer_false() -> None:
    secret = core.Secret(type="Opaque", immutable=False)
    secret.metadata.name = "s"
    secret.data["password"] = b"hunter2"
    secret.data["empty"] = b""
    assert protobuf.decode(body("v1", "Secret", secret)) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "immutable": False,  # *bool: a set false is kept
        "data": {"password": "aHVudGVyMg==", "empty": ""},
        "type": "Opaque",
    }


def test_deployment() -> None:
    d = apps.Deployment()
    d.metadata.name = "web"
    spec = d.spec
    spec.replicas = 0  # *int32: zero is meaningful
    spec.minReadySeconds = 0  # int32: zero means unset
    spec.selector.matchLabels["app"] = "web"
    spec.strategy.type = "RollingUpdate"
    spec.strategy.rollingUpdate.maxUnavailable.intVal = 0  # *IntOrString: kept
    spec.strategy.rollingUpdate.maxSurge.type = 1
    spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    tmpl = spec.template
    tmpl.metadata.labels["app"] = "web"
    c = tmpl.spec.containers.add(name="nginx", image="nginx:1.27", imagePullPolicy="")
    c.ports.add(containerPort=80, protocol="TCP", hostPort=0)
    c.resources.limits["cpu"].string = "500m"
    c.resources.requests["memory"].string = "64Mi"
    c.env.add(name="A", value="B")
    ref = c.env.add(name="FROM_CM").valueFrom.configMapKeyRef
    ref.localObjectReference.name = "settings"  # inline in JSON
    ref.key = "level"
    c.livenessProbe.handler.httpGet.path = "/healthz"  # handler is inline
    c.livenessProbe.handler.httpGet.port.intVal = 8080
    c.livenessProbe.timeoutSeconds = 0
    c.livenessProbe.periodSeconds = 5
    c.readinessProbe.handler.tcpSocket.port.type = 1
    c.readinessProbe.handler.tcpSocket.port.strVal = "http"
    assert protobuf.decode(body("apps/v1", "Deployment", d)) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "nginx",
                            "image": "nginx:1.27",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "A", "value": "B"},
                                {
                                    "name": "FROM_CM",
                                    "valueFrom": {
                                        "configMapKeyRef": {"name": "settings", "key": "level"}
                                    },
                                },
                            ],
                            "resources": {
                                "limits": {"cpu": "500m"},
                                "requests": {"memory": "64Mi"},
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 5,
                            },
                            "readinessProbe": {"tcpSocket": {"port": "http"}},
                        }
                    ]
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
            },
        },
    }


def test_pod_times_volumes_and_managed_fields() -> None:
    pod = core.Pod()
    pod.metadata.name = "p"
    pod.metadata.creationTimestamp.seconds = JAN_1_2026
    pod.metadata.creationTimestamp.nanos = 500_000_000  # metav1.Time keeps whole seconds
    pod.metadata.deletionGracePeriodSeconds = 0
    mf = pod.metadata.managedFields.add(
        manager="kubectl", operation="Update", fieldsType="FieldsV1"
    )
    mf.time.seconds = JAN_1_2026 + 61
    mf.fieldsV1.Raw = b'{"f:metadata":{"f:labels":{}}}'
    vol = pod.spec.volumes.add(name="scratch")
    vol.volumeSource.emptyDir.sizeLimit.string = "1Gi"  # volumeSource is inline
    pod.spec.containers.add(name="c", image="busybox")
    pod.status.startTime.seconds = 0  # the epoch, not the zero time
    assert protobuf.decode(body("v1", "Pod", pod)) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "deletionGracePeriodSeconds": 0,
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "time": "2026-01-01T00:01:01Z",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {}}},
                }
            ],
        },
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{"name": "c", "image": "busybox"}],
        },
        "status": {"startTime": "1970-01-01T00:00:00Z"},
    }


def test_micro_time() -> None:
    ev = events.Event(reason="Started", note="hi", type="Normal")
    ev.metadata.name = "e"
    ev.eventTime.seconds = JAN_1_2026
    ev.eventTime.nanos = 123_456_789
    ev.regarding.kind = "Pod"
    ev.regarding.name = "p"
    out = protobuf.decode(body("events.k8s.io/v1", "Event", ev))
    assert out["eventTime"] == "2026-01-01T00:00:00.123456Z"
    assert out["regarding"] == {"kind": "Pod", "name": "p"}
    assert out["apiVersion"] == "events.k8s.io/v1"


def test_controller_revision_raw_extension() -> None:
    rev = apps.ControllerRevision(revision=2)
    rev.metadata.name = "web-1"
    rev.data.raw = b'{"spec":{"template":{"$patch":"replace"}}}'
    out = protobuf.decode(body("apps/v1", "ControllerRevision", rev))
    assert out["data"] == {"spec": {"template": {"$patch": "replace"}}}
    assert out["revision"] == 2


@pytest.mark.parametrize("api_version", ["v1", "meta.k8s.io/v1", "apps/v1"])
def test_delete_options(api_version: str) -> None:
    opts = meta.DeleteOptions(gracePeriodSeconds=0, propagationPolicy="Foreground")
    opts.preconditions.uid = "1234"
    opts.dryRun.append("All")
    assert protobuf.decode(body(api_version, "DeleteOptions", opts)) == {
        "apiVersion": api_version,
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "1234"},
        "propagationPolicy": "Foreground",
        "dryRun": ["All"],
    }


def test_eviction_nests_delete_options() -> None:
    from skiff.k8spb.api.policy.v1 import types_pb2 as policy

    ev = policy.Eviction()
    ev.metadata.name = "p"
    ev.deleteOptions.gracePeriodSeconds = 30
    out = protobuf.decode(body("policy/v1", "Eviction", ev))
    assert out == {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "p"},
        "deleteOptions": {"gracePeriodSeconds": 30},
    }


def test_pod_disruption_budget_as_kubectl_create_pdb_sends_it() -> None:
    from skiff.k8spb.api.policy.v1 import types_pb2 as policy

    pdb = policy.PodDisruptionBudget()
    pdb.metadata.name = "web"
    pdb.spec.minAvailable.type = 1
    pdb.spec.minAvailable.strVal = "50%"
    pdb.spec.selector.matchLabels["app"] = "web"
    out = protobuf.decode(body("policy/v1", "PodDisruptionBudget", pdb))
    assert out["spec"] == {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}
    for msg in (policy.PodDisruptionBudgetSpec, policy.PodDisruptionBudgetStatus):
        for f in msg.DESCRIPTOR.fields:
            owner = f.containing_type.name
            props = schema.definitions()[f"io.k8s.api.policy.v1.{owner}"]["properties"]
            assert f.json_name in props, f"{owner}.{f.json_name}"


def test_kubectl_create_ingress_protobuf_body() -> None:
    from skiff.k8spb.api.networking.v1 import types_pb2 as networking

    ing = networking.Ingress()
    ing.metadata.name = "simple"
    r = ing.spec.rules.add()
    r.host = "foo.com"
    p = r.ingressRuleValue.http.paths.add()
    p.path = "/bar"
    p.pathType = "Exact"
    p.backend.service.name = "svc1"
    p.backend.service.port.number = 8080
    tls = ing.spec.tls.add()
    tls.hosts.append("foo.com")
    tls.secretName = "my-cert"
    out = protobuf.decode(body("networking.k8s.io/v1", "Ingress", ing))
    assert out["spec"] == {
        "rules": [{"host": "foo.com", "http": {"paths": [{"path": "/bar", "pathType": "Exact",
                   "backend": {"service": {"name": "svc1", "port": {"number": 8080}}}}]}}],
        "tls": [{"hosts": ["foo.com"], "secretName": "my-cert"}],
    }  # fmt: skip


def test_errors() -> None:
    with pytest.raises(ApiError) as err:
        protobuf.decode(b'{"kind":"Namespace"}')
    assert err.value.code == 400
    assert "k8s" in err.value.message

    ns = core.Namespace()
    ns.metadata.name = "x"
    for api_version, kind in [
        ("storage.k8s.io/v1", "StorageClass"),
        ("v1", "Foo"),
        ("v1", "PodSpec"),
    ]:
        with pytest.raises(ApiError) as err:
            protobuf.decode(body(api_version, kind, ns))
        assert err.value.code == 415
        assert kind in err.value.message and "application/json" in err.value.message

    with pytest.raises(ApiError) as err:
        protobuf.decode(protobuf.MAGIC + b"\x0a\xff\xff")
    assert err.value.code == 400

    with pytest.raises(ApiError) as err:
        protobuf.decode(protobuf.MAGIC + runtime.Unknown(raw=b"x").SerializeToString())
    assert err.value.code == 400


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (999, "999ns"),
        (1_500, "1.5µs"),
        (150_000_000, "150ms"),
        (1_500_000_000, "1.5s"),
        (60_000_000_000, "1m0s"),
        (3_723_500_000_000, "1h2m3.5s"),
        (-3_600_000_000_000, "-1h0m0s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert protobuf.go_duration(ns) == text


def test_field_names_match_schemas() -> None:
    """Every proto field is a JSON property of its definition (or inlines one)."""
    newer_than_schema = {  # fields the 1.33 wire format has and the 1.32 schemas lack
        "io.k8s.api.apps.v1.DeploymentStatus.terminatingReplicas",
        "io.k8s.api.apps.v1.ReplicaSetStatus.terminatingReplicas",
        "io.k8s.api.core.v1.ContainerStatus.stopSignal",
        "io.k8s.api.core.v1.Lifecycle.stopSignal",
        "io.k8s.api.core.v1.NodeSystemInfo.swap",
        "io.k8s.api.core.v1.PodCondition.observedGeneration",
        "io.k8s.api.core.v1.PodStatus.observedGeneration",
        "io.k8s.api.discovery.v1.EndpointHints.forNodes",
    }
    defs = schema.definitions()
    seen: set[str] = set()

    def walk(desc: Any, props: dict[str, Any]) -> None:
        for f in desc.fields:
            if f.GetOptions().Extensions[options_pb2.inline]:
                walk(f.message_type, props)
            else:
                name = f"{'io.k8s.' + desc.full_name[len('k8s.io.') :]}.{f.json_name}"
                assert f.json_name in props or name in newer_than_schema, name

    def visit(desc: Any) -> None:
        if desc.full_name in seen:
            return
        seen.add(desc.full_name)
        definition = defs.get("io.k8s." + desc.full_name[len("k8s.io.") :], {})
        if "properties" in definition:
            walk(desc, definition["properties"])
        for f in desc.fields:
            if f.message_type is not None:
                visit(f.message_type)

    for cls in (core.Pod, core.Service, core.PersistentVolume, apps.StatefulSet, events.Event):
        visit(cls.DESCRIPTOR)
    assert len(seen) > 150


# --- a real kubectl talking to a throwaway loopback server ---------------------------

_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "v1",
    "resources": [
        {
            "name": plural,
            "singularName": plural[:-1],
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
        }
        for plural, kind, namespaced in [
            ("namespaces", "Namespace", False),
            ("configmaps", "ConfigMap", True),
        ]
    ],
}
_DOCS: dict[str, Any] = {
    "/version": {"major": "1", "minor": "32", "gitVersion": "v1.32.0"},
    "/api": {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    },
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": _RESOURCES,
}


class _Handler(BaseHTTPRequestHandler):
    posts: list[tuple[str, str, bytes]]

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        doc = _DOCS.get(self.path.split("?", 1)[0])
        if doc is None:
            self._send(
                404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            )
        else:
            self._send(200, doc)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.posts.append((self.path, self.headers.get("Content-Type", ""), data))
        obj = protobuf.decode(data) if data.startswith(protobuf.MAGIC) else json.loads(data)
        self._send(201, obj)


@pytest.fixture
def kubectl_server(tmp_path: Path) -> Iterator[tuple[Path, list[tuple[str, str, bytes]]]]:
    if shutil.which("kubectl") is None:
        # make test (SKIFF_REQUIRE_REAL_PARTS=1) has kubectl: there its absence fails.
        if os.environ.get("SKIFF_REQUIRE_REAL_PARTS") == "1":
            pytest.fail("kubectl is not installed")
        pytest.skip("kubectl is not installed")
    posts: list[tuple[str, str, bytes]] = []
    handler = type("Handler", (_Handler,), {"posts": posts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {}}],
                "current-context": "c",
            }
        )
    )
    try:
        yield kubeconfig, posts
    finally:
        server.shutdown()
        server.server_close()


def _kubectl(kubeconfig: Path, *args: str) -> None:
    home = kubeconfig.parent
    subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "--cache-dir", str(home / "cache"), *args],
        check=True,
        capture_output=True,
        timeout=20,
        env={**os.environ, "HOME": str(home), "KUBECONFIG": str(kubeconfig)},
    )


def test_real_kubectl_bodies(kubectl_server: tuple[Path, list[tuple[str, str, bytes]]]) -> None:
    kubeconfig, posts = kubectl_server
    _kubectl(kubeconfig, "create", "namespace", "x")
    _kubectl(kubeconfig, "create", "configmap", "c", "--from-literal=a=b", "-n", "default")
    assert [(p.split("?")[0], ct) for p, ct, _ in posts] == [
        ("/api/v1/namespaces", protobuf.CONTENT_TYPE),
        ("/api/v1/namespaces/default/configmaps", protobuf.CONTENT_TYPE),
    ]
    ns = protobuf.decode(posts[0][2])
    assert ns == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "x"},
        "spec": {},
        "status": {},
    }
    cm = protobuf.decode(posts[1][2])
    assert cm == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "default"},
        "data": {"a": "b"},
    }


def test_horizontal_pod_autoscalers_as_kubectl_autoscale_sends_them() -> None:
    from skiff.k8spb.api.autoscaling.v1 import types_pb2 as v1
    from skiff.k8spb.api.autoscaling.v2 import types_pb2 as v2

    hpa = v1.HorizontalPodAutoscaler()
    hpa.metadata.name = "web"
    hpa.spec.scaleTargetRef.apiVersion = "apps/v1"
    hpa.spec.scaleTargetRef.kind = "Deployment"
    hpa.spec.scaleTargetRef.name = "web"
    hpa.spec.maxReplicas = 5
    hpa.spec.targetCPUUtilizationPercentage = 0  # a pointer: --cpu-percent=0 is kept
    out = protobuf.decode(body("autoscaling/v1", "HorizontalPodAutoscaler", hpa))
    assert out["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "maxReplicas": 5,
        "targetCPUUtilizationPercentage": 0,
    }
    hpa2 = v2.HorizontalPodAutoscaler()
    hpa2.metadata.name = "web"
    m = hpa2.spec.metrics.add()
    m.type = "Resource"
    m.resource.name = "memory"
    m.resource.target.type = "AverageValue"
    m.resource.target.averageValue.string = "64Mi"
    hpa2.spec.behavior.scaleDown.stabilizationWindowSeconds = 0
    out = protobuf.decode(body("autoscaling/v2", "HorizontalPodAutoscaler", hpa2))
    assert out["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "memory",
                "target": {"type": "AverageValue", "averageValue": "64Mi"},
            },
        }
    ]
    assert out["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 0}}
    for mod, version in ((v1, "v1"), (v2, "v2")):
        for msg in mod.DESCRIPTOR.message_types_by_name.values():
            if msg.name in ("Scale", "ScaleSpec", "ScaleStatus"):
                continue
            props = schema.definitions().get(f"io.k8s.api.autoscaling.{version}.{msg.name}")
            if props is None and version == "v1":
                continue  # v1's metric types exist only in its conversion annotations
            for f in msg.fields:
                assert f.json_name in props["properties"], f"{version}.{msg.name}.{f.json_name}"
