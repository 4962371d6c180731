"""The official ``kubernetes`` Python client against a real apiserver."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException

from cluster import Cluster


@pytest.fixture(scope="module")
def api(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(str(kubeconfig))


@pytest.fixture(scope="module")
def ns(api: client.ApiClient) -> str:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "pyclient"}})
    return "pyclient"


def test_configmap_crud(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map(ns, {"metadata": {"name": "c1"}, "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("c1", ns)
    assert got.data == {"k": "v"}
    got.data["k"] = "w"
    updated = core.replace_namespaced_config_map("c1", ns, got)
    assert int(updated.metadata.resource_version) > int(cm.metadata.resource_version)
    # A stale resourceVersion is a 409 Conflict.
    got.data["k"] = "x"
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c1", ns, got)
    assert e.value.status == 409
    patched = core.patch_namespaced_config_map("c1", ns, {"data": {"extra": "1"}})
    assert patched.data == {"k": "w", "extra": "1"}
    names = [c.metadata.name for c in core.list_namespaced_config_map(ns).items]
    assert "c1" in names
    core.delete_namespaced_config_map("c1", ns)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("c1", ns)
    assert e.value.status == 404


def test_resources_round_trip(api: client.ApiClient, ns: str) -> None:
    apps = client.AppsV1Api(api)
    batch = client.BatchV1Api(api)
    coord = client.CoordinationV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    core = client.CoreV1Api(api)
    pod_template = {
        "metadata": {"labels": {"app": "x"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }
    apps.create_namespaced_stateful_set(
        ns,
        {
            "metadata": {"name": "s"},
            "spec": {
                "serviceName": "s",
                "selector": {"matchLabels": {"app": "x"}},
                "template": pod_template,
            },
        },
    )
    apps.create_namespaced_daemon_set(
        ns,
        {
            "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "x"}}, "template": pod_template},
        },
    )
    job_tmpl = {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    }
    batch.create_namespaced_job(ns, {"metadata": {"name": "j"}, "spec": {"template": job_tmpl}})
    batch.create_namespaced_cron_job(
        ns,
        {
            "metadata": {"name": "cj"},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": job_tmpl}}},
        },
    )
    coord.create_namespaced_lease(ns, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "me"}})
    rbac.create_cluster_role(
        {
            "metadata": {"name": "pyclient-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        }
    )
    core.create_namespaced_service(
        ns,
        {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "x"}, "ports": [{"port": 80}]}},
    )
    core.create_namespaced_secret(ns, {"metadata": {"name": "sec"}, "stringData": {"a": "b"}})
    assert apps.read_namespaced_stateful_set("s", ns).spec.replicas == 1
    assert batch.read_namespaced_job("j", ns).spec.backoff_limit == 6
    assert coord.read_namespaced_lease("l", ns).spec.holder_identity == "me"
    assert rbac.read_cluster_role("pyclient-reader").rules[0].verbs == ["get"]
    assert core.read_namespaced_service("svc", ns).spec.ports[0].target_port == 80
    scale = apps.patch_namespaced_stateful_set_scale("s", ns, {"spec": {"replicas": 3}})
    assert scale.spec.replicas == 3
    status = apps.read_namespaced_daemon_set_status("d", ns)
    assert status.metadata.name == "d"


def test_create_from_multi_document_yaml(api: client.ApiClient, ns: str, tmp_path: Path) -> None:
    path = tmp_path / "multi.yaml"
    path.write_text(f"""\
apiVersion: v1
kind: ConfigMap
metadata:
  name: multi-a
  namespace: {ns}
data: {{a: "1"}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: multi-b
  namespace: {ns}
spec:
  selector:
    matchLabels: {{app: b}}
  template:
    metadata:
      labels: {{app: b}}
    spec:
      containers:
      - name: c
        image: busybox
""")
    utils.create_from_yaml(api, str(path))
    assert client.CoreV1Api(api).read_namespaced_config_map("multi-a", ns).data == {"a": "1"}
    dep = client.AppsV1Api(api).read_namespaced_deployment("multi-b", ns)
    assert dep.spec.strategy.type == "RollingUpdate"


def test_watch_across_apiserver_restart(api: client.ApiClient, ns: str, cluster: Cluster) -> None:
    core = client.CoreV1Api(api)
    start_rv = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []

    def watch_loop() -> None:
        rv = start_rv
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 6:
            w = watch.Watch()
            try:
                for ev in w.stream(
                    core.list_namespaced_config_map,
                    ns,
                    resource_version=rv,
                    timeout_seconds=5,
                    label_selector="w=1",
                ):
                    rv = ev["object"].metadata.resource_version
                    seen.append((ev["type"], ev["object"].metadata.name))
                    if len(seen) >= 6:
                        w.stop()
            except Exception as e:  # the server going away mid-stream; retry from rv
                errors.append(e)
                time.sleep(0.5)

    t = threading.Thread(target=watch_loop)
    t.start()
    for i in range(3):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"w{i}", "labels": {"w": "1"}}})
    time.sleep(1)
    proc = cluster.apiservers[0]
    proc.kill()
    cluster.start_apiserver(0)
    for i in range(3, 6):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"w{i}", "labels": {"w": "1"}}})
    t.join(70)
    assert [n for _, n in seen] == [f"w{i}" for i in range(6)], (seen, errors)
    assert all(t == "ADDED" for t, _ in seen)


def test_bad_input_statuses(api: client.ApiClient, ns: str) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map(ns, {"metadata": {"name": "Bad_Name"}})
    assert e.value.status == 422
    assert "RFC 1123" in e.value.body
    with pytest.raises(ApiException) as e:
        core.create_namespaced_config_map("no-such-ns", {"metadata": {"name": "x"}})
    assert e.value.status == 404
    with pytest.raises(ApiException) as e:  # kube's 1 MiB ConfigMap limit
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": "big"}, "data": {"a": "x" * (1600 * 1024)}}
        )
    assert e.value.status == 422
    assert "Too long: may not be more than 1048576 bytes" in e.value.body
    with pytest.raises(ApiException) as e:  # the 3 MiB request limit
        core.create_namespaced_config_map(
            ns, {"metadata": {"name": "big"}, "data": {"a": "x" * (3200 * 1024)}}
        )
    assert e.value.status == 413
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("big", ns)
    assert e.value.status == 404
