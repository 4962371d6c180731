"""The aggregation layer with the real kubectl (1.32) and the official Python client,
against a secured apiserver (kubeadm's PKI and front-proxy flags) on etcd and NATS and a
small aggregated API server (``wardle.example.com``) on loopback behind a Service whose
Endpoints name it: the APIService, created with the client's own ``create_from_yaml``,
becomes Available; kubectl discovers, creates, lists and watches its resources through
the proxy; RBAC is decided before anything is proxied and the server learns who asked
from the front-proxy headers, over a connection authenticated by the front-proxy
certificate; a server gone makes the APIService unavailable and requests 503."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from clusterenv import started_cluster
from kubernetes import client, config, utils, watch
from kubernetes.client.rest import ApiException
from test_kubectl import kubectl

from cluster import Cluster, wait_until

sys.path.insert(0, str(Path(__file__).parents[2] / "services" / "apiserver" / "tests"))
from aggregatedserver import BASE, GROUP, VERSION, AggregatedServer
from threaded import serve_in_thread

NAME = f"{VERSION}.{GROUP}"
NS = "wardle"


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "aggregation", secure=True)


@pytest.fixture(scope="module")
def admin(secure: Cluster) -> Path:
    return secure.kubeconfig(0)


@pytest.fixture(scope="module")
def server(secure: Cluster) -> Iterator[AggregatedServer]:
    assert secure.pki is not None
    yield from serve_in_thread(AggregatedServer(str(secure.pki / "front-proxy-ca.crt")))


def _available(admin: Path) -> tuple[str, str]:
    obj = json.loads(kubectl(admin, "get", "apiservice", NAME, "-o", "json").stdout)
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c["type"] == "Available":
            return c["status"], c["reason"]
    return "", ""


@pytest.fixture(scope="module")
def registered(
    admin: Path, server: AggregatedServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    kubectl(admin, "create", "namespace", NS)
    backing = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": NS},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 443}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "api", "namespace": NS},
         "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
                      "ports": [{"name": "https", "port": server.port}]}]},
    ]  # fmt: skip
    kubectl(admin, "apply", "-f", "-", input=yaml.safe_dump_all(backing))
    apiservice = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": NAME},
        "spec": {"group": GROUP, "version": VERSION, "groupPriorityMinimum": 1000,
                 "versionPriority": 15, "service": {"namespace": NS, "name": "api"},
                 "caBundle": server.ca_bundle},
    }  # fmt: skip
    path = tmp_path_factory.mktemp("apiservice") / "apiservice.yaml"
    path.write_text(yaml.safe_dump(apiservice))
    # The first finding: the official client's own utility answered 404.
    utils.create_from_yaml(config.new_client_from_config(str(admin)), str(path))
    wait_until(lambda: _available(admin) == ("True", "Passed"), what="APIService available")


def test_kubectl_lists_local_and_remote_apiservices(admin: Path, registered: None) -> None:
    rows = [line.split() for line in kubectl(admin, "get", "apiservices").stdout.splitlines()]
    assert rows[0] == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    by_name = {r[0]: r[1:3] for r in rows[1:]}
    assert by_name["v1."] == ["Local", "True"]
    assert by_name["v1.apps"] == ["Local", "True"]
    assert by_name[NAME] == [f"{NS}/api", "True"]
    assert "v1.apiregistration.k8s.io" not in by_name  # as in kube
    versions = kubectl(admin, "api-versions").stdout.split()
    assert versions[0] == "admissionregistration.k8s.io/v1" or f"{GROUP}/{VERSION}" in versions


def test_kubectl_uses_the_aggregated_api(
    admin: Path, registered: None, server: AggregatedServer
) -> None:
    resources = kubectl(admin, "api-resources", "--api-group", GROUP).stdout
    assert "flunders" in resources and "fl" in resources
    flunder = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
               "metadata": {"name": "first", "namespace": NS}}  # fmt: skip
    kubectl(admin, "create", "-f", "-", input=json.dumps(flunder))
    listed = kubectl(admin, "get", "flunders", "-n", NS, "-o", "name").stdout.split()
    assert listed == [f"flunder.{GROUP}/first"]
    raw = json.loads(kubectl(admin, "get", "--raw", BASE).stdout)
    assert raw["groupVersion"] == f"{GROUP}/{VERSION}"
    # The server saw the admin, not the apiserver, through the front proxy's headers.
    post = next(s for s in reversed(server.seen) if s.method == "POST")
    assert post.user == "kubernetes-super-admin"
    assert "system:masters" in post.groups and "authorization" not in post.headers


def test_rbac_is_decided_before_proxying(secure: Cluster, admin: Path, registered: None,
                                         server: AggregatedServer) -> None:  # fmt: skip
    jane = secure.user_kubeconfig("jane")
    denied = kubectl(jane, "get", "flunders", "-n", NS, check=False)
    assert denied.returncode != 0
    assert (
        f'User "jane" cannot list resource "flunders" in API group "{GROUP}" in the '
        f'namespace "{NS}"' in denied.stderr
    )
    assert all(s.user != "jane" for s in server.seen)
    kubectl(admin, "create", "clusterrole", "flunder-reader", "--verb=get,list,watch",
            f"--resource=flunders.{GROUP}")  # fmt: skip
    kubectl(admin, "create", "rolebinding", "jane-flunders", "-n", NS,
            "--clusterrole=flunder-reader", "--user=jane")  # fmt: skip
    wait_until(lambda: kubectl(jane, "get", "flunders", "-n", NS, check=False).returncode == 0,
               what="jane may list flunders")  # fmt: skip
    seen = next(s for s in reversed(server.seen) if s.user == "jane")
    assert seen.groups == ["system:authenticated"]


def test_official_client_watches_through_the_proxy(admin: Path, registered: None) -> None:
    api = client.CustomObjectsApi(config.new_client_from_config(str(admin)))
    w = watch.Watch()
    got: list[tuple[str, str]] = []

    def follow() -> None:
        for event in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, NS, "flunders",
                              _request_timeout=30):  # fmt: skip
            got.append((event["type"], event["object"]["metadata"]["name"]))
            if event["object"]["metadata"]["name"] == "watched":
                w.stop()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    time.sleep(1)
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder", "metadata": {"name": "watched"}}
    api.create_namespaced_custom_object(GROUP, VERSION, NS, "flunders", body)
    thread.join(20)
    assert ("ADDED", "watched") in got


def test_extension_apiserver_authentication(admin: Path, secure: Cluster) -> None:
    cm = json.loads(kubectl(admin, "get", "cm", "-n", "kube-system",
                            "extension-apiserver-authentication", "-o", "json").stdout)  # fmt: skip
    data: dict[str, Any] = cm["data"]
    assert secure.pki is not None
    front_proxy_ca = (secure.pki / "front-proxy-ca.crt").read_text().strip()
    assert data["requestheader-client-ca-file"].strip() == front_proxy_ca
    assert data["requestheader-allowed-names"] == '["front-proxy-client"]'
    assert data["requestheader-username-headers"] == '["X-Remote-User"]'
    assert data["requestheader-extra-headers-prefix"] == '["X-Remote-Extra-"]'
    assert data["client-ca-file"].strip() == (secure.pki / "ca.crt").read_text().strip()


def test_a_server_without_endpoints_is_unavailable(admin: Path, registered: None,
                                                   server: AggregatedServer) -> None:  # fmt: skip
    saved = kubectl(admin, "get", "endpoints", "api", "-n", NS, "-o", "json").stdout
    kubectl(admin, "delete", "endpoints", "api", "-n", NS)
    try:
        wait_until(lambda: _available(admin) == ("False", "EndpointsNotFound"),
                   what="APIService unavailable")  # fmt: skip
        rows = kubectl(admin, "get", "apiservice", NAME).stdout.splitlines()
        assert rows[1].split()[2:4] == ["False", "(EndpointsNotFound)"]
        failed = kubectl(admin, "get", "--raw", f"{BASE}/namespaces/{NS}/flunders", check=False)
        assert failed.returncode != 0 and "ServiceUnavailable" in failed.stderr, failed.stderr
        api = client.CustomObjectsApi(config.new_client_from_config(str(admin)))
        with pytest.raises(ApiException) as e:
            api.list_namespaced_custom_object(GROUP, VERSION, NS, "flunders")
        assert (e.value.status, e.value.body) == (503, "service unavailable\n")
    finally:
        restored = json.loads(saved)
        restored["metadata"] = {"name": "api", "namespace": NS}
        kubectl(admin, "apply", "-f", "-", input=json.dumps(restored))
        wait_until(lambda: _available(admin) == ("True", "Passed"), what="available again")
