"""REST semantics and bad input, straight over HTTP against real etcd and NATS.

Every bad request must get the right Kubernetes Status and leave etcd unchanged.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from cluster import Cluster
from skiff.apiserver.storage.etcd import EtcdBackend

NS = "rest"
CM = f"/api/v1/namespaces/{NS}/configmaps"


@pytest.fixture(scope="module")
def http(cluster: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.url, timeout=20) as c:
        r = c.post("/api/v1/namespaces", json={"metadata": {"name": NS}})
        assert r.status_code in (201, 409)
        yield c


def etcd_revision(cluster: Cluster) -> tuple[int, int]:
    """What a write of an object changes: the number of keys under ``/registry/`` and the
    newest of their revisions (etcd's own revision also moves when an apiserver's master
    lease key expires, which is no write of the API)."""

    async def rev() -> tuple[int, int]:
        async with EtcdBackend(cluster.etcd_endpoint) as etcd:
            kvs, _ = await etcd.range_all("/registry/")
            return len(kvs), max((kv.mod_revision for kv in kvs), default=0)

    return asyncio.run(rev())


def status_of(r: httpx.Response) -> dict:
    body = r.json()
    assert body["kind"] == "Status" and body["status"] == "Failure", body
    assert body["code"] == r.status_code
    return body


DEPLOY = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "d"},
    "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {
            "metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    },
}


@pytest.mark.parametrize(
    ("desc", "path", "body", "ctype", "code", "needle"),
    [
        ("malformed json", CM, b'{"metadata": {', "application/json", 400, "not valid JSON"),
        ("malformed yaml", CM, b"metadata: [name: x", "application/yaml", 400, "not valid YAML"),
        ("not an object", CM, b"[1, 2]", "application/json", 400, "must be an object"),
        (
            "wrong type",
            f"/apis/apps/v1/namespaces/{NS}/deployments",
            orjson.dumps({**DEPLOY, "spec": {**DEPLOY["spec"], "replicas": "two"}}),
            "application/json",
            400,
            "spec.replicas",
        ),
        (
            "invalid name",
            CM,
            orjson.dumps({"metadata": {"name": "Bad_Name"}}),
            "application/json",
            422,
            "RFC 1123",
        ),
        (
            "missing name",
            CM,
            orjson.dumps({"metadata": {}}),
            "application/json",
            422,
            "name or generateName is required",
        ),
        (
            "kind mismatch",
            CM,
            orjson.dumps({"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"}}),
            "application/json",
            400,
            "does not match the expected kind",
        ),
        (
            "version mismatch",
            CM,
            orjson.dumps({"kind": "ConfigMap", "apiVersion": "v2", "metadata": {"name": "x"}}),
            "application/json",
            400,
            "does not match the expected API version",
        ),
        (
            "unknown field",
            CM,
            orjson.dumps({"metadata": {"name": "x"}, "bogus": 1}),
            "application/json",
            400,
            'unknown field "bogus"',
        ),
        (
            "unknown resource",
            f"/api/v1/namespaces/{NS}/widgets",
            b"{}",
            "application/json",
            404,
            "could not find the requested resource",
        ),
        (
            "unknown version",
            f"/apis/apps/v9/namespaces/{NS}/deployments",
            b"{}",
            "application/json",
            404,
            "could not find",
        ),
        ("unsupported media", CM, b"<x/>", "application/xml", 415, "unknown format"),
        (
            "over a ConfigMap's 1 MiB",
            CM,
            orjson.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (1600 * 1024)}}),
            "application/json",
            422,
            "Too long: may not be more than 1048576 bytes",
        ),
        (
            "oversized",
            CM,
            orjson.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (3200 * 1024)}}),
            "application/json",
            413,
            "Request entity too large: limit is 3145728",
        ),
        (
            "pod without containers",
            f"/api/v1/namespaces/{NS}/pods",
            orjson.dumps({"metadata": {"name": "p"}, "spec": {"containers": []}}),
            "application/json",
            422,
            "spec.containers",
        ),
        (
            "no such namespace",
            "/api/v1/namespaces/nope/configmaps",
            orjson.dumps({"metadata": {"name": "x"}}),
            "application/json",
            404,
            "nope",
        ),
    ],
)
def test_bad_create(
    http: httpx.Client,
    cluster: Cluster,
    desc: str,
    path: str,
    body: bytes,
    ctype: str,
    code: int,
    needle: str,
) -> None:
    before = etcd_revision(cluster)
    r = http.post(path, content=body, headers={"Content-Type": ctype})
    assert r.status_code == code, (desc, r.text)
    assert needle in status_of(r)["message"], (desc, r.text)
    assert etcd_revision(cluster) == before, f"{desc}: etcd changed"


def test_invalid_has_causes(http: httpx.Client) -> None:
    r = http.post(CM, json={"metadata": {"name": "Bad_Name", "labels": {"-x": "y"}}})
    body = status_of(r)
    fields = {c["field"] for c in body["details"]["causes"]}
    assert "metadata.name" in fields and "metadata.labels" in fields


def test_field_validation_modes(http: httpx.Client) -> None:
    obj = {"metadata": {"name": "fv-warn"}, "data": {"a": "1"}, "extra": True}
    r = http.post(CM, params={"fieldValidation": "Warn"}, json=obj)
    assert r.status_code == 201
    assert 'unknown field \\"extra\\"' in r.headers["warning"]
    assert "extra" not in r.json()
    obj["metadata"]["name"] = "fv-ignore"
    r = http.post(CM, params={"fieldValidation": "Ignore"}, json=obj)
    assert r.status_code == 201 and "warning" not in r.headers and "extra" not in r.json()


def test_stale_update_conflicts_and_changes_nothing(http: httpx.Client, cluster: Cluster) -> None:
    cm = http.post(CM, json={"metadata": {"name": "stale"}, "data": {"v": "1"}}).json()
    fresh = http.put(f"{CM}/stale", json={**cm, "data": {"v": "2"}}).json()
    before = etcd_revision(cluster)
    r = http.put(f"{CM}/stale", json={**cm, "data": {"v": "3"}})
    assert r.status_code == 409
    assert "the object has been modified" in status_of(r)["message"]
    assert etcd_revision(cluster) == before
    assert http.get(f"{CM}/stale").json()["data"] == fresh["data"] == {"v": "2"}


def test_create_duplicate_is_already_exists(http: httpx.Client) -> None:
    http.post(CM, json={"metadata": {"name": "dup"}})
    r = http.post(CM, json={"metadata": {"name": "dup"}})
    assert r.status_code == 409 and status_of(r)["reason"] == "AlreadyExists"


def test_generate_name(http: httpx.Client) -> None:
    r = http.post(CM, json={"metadata": {"generateName": "gen-"}})
    assert r.status_code == 201
    name = r.json()["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == 9


def test_generation_and_status_subresource(http: httpx.Client) -> None:
    base = f"/apis/apps/v1/namespaces/{NS}/deployments"
    d = http.post(base, json={**DEPLOY, "status": {"replicas": 9}}).json()
    assert d["metadata"]["generation"] == 1 and "replicas" not in d.get("status", {})
    d2 = http.patch(
        f"{base}/d",
        json={"metadata": {"labels": {"x": "y"}}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert d2["metadata"]["generation"] == 1  # metadata only
    d3 = http.patch(
        f"{base}/d",
        json={"spec": {"replicas": 4}, "status": {"replicas": 7}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert d3["metadata"]["generation"] == 2 and d3.get("status") == d2.get("status")
    d4 = http.patch(
        f"{base}/d/status",
        json={"status": {"replicas": 3}, "spec": {"replicas": 99}},
        headers={"Content-Type": "application/merge-patch+json"},
    ).json()
    assert d4["status"]["replicas"] == 3 and d4["spec"]["replicas"] == 4
    assert d4["metadata"]["generation"] == 2


def test_json_and_strategic_patch(http: httpx.Client) -> None:
    base = f"/api/v1/namespaces/{NS}/pods"
    pod = {
        "metadata": {"name": "pp"},
        "spec": {
            "containers": [
                {"name": "a", "image": "busybox", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "busybox"},
            ]
        },
    }
    assert http.post(base, json=pod).status_code == 201
    r = http.patch(
        f"{base}/pp",
        json={"spec": {"containers": [{"name": "b", "image": "busybox:2"}]}},
        headers={"Content-Type": "application/strategic-merge-patch+json"},
    )
    cs = r.json()["spec"]["containers"]
    assert [c["name"] for c in cs] == ["a", "b"] and cs[1]["image"] == "busybox:2"
    assert cs[0]["env"] == [{"name": "X", "value": "1"}]
    r = http.patch(
        f"{base}/pp",
        json=[{"op": "add", "path": "/metadata/labels", "value": {"k": "v"}}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.json()["metadata"]["labels"] == {"k": "v"}
    r = http.patch(
        f"{base}/pp",
        json=[{"op": "remove", "path": "/nope"}],
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 422


def test_pagination_and_selectors(http: httpx.Client) -> None:
    base = f"/api/v1/namespaces/{NS}/secrets"
    for i in range(25):
        http.post(
            base, json={"metadata": {"name": f"s{i:02d}", "labels": {"n": str(i % 3), "all": "1"}}}
        )
    seen, token, pages = [], "", 0
    while True:
        params = {"limit": "10", "labelSelector": "all=1"}
        if token:
            params["continue"] = token
        body = http.get(base, params=params).json()
        seen += [o["metadata"]["name"] for o in body["items"]]
        pages += 1
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert seen == [f"s{i:02d}" for i in range(25)] and pages == 3

    def names(sel: str) -> list[str]:
        r = http.get(base, params={"labelSelector": sel})
        assert r.status_code == 200, r.text
        return [o["metadata"]["name"] for o in r.json()["items"]]

    assert len(names("n in (0,1)")) == 17
    assert len(names("n notin (0,1),all")) == 8
    assert names("!all") == []
    assert names("n=1,n!=1") == []
    r = http.get(base, params={"fieldSelector": "metadata.name=s03"})
    assert [o["metadata"]["name"] for o in r.json()["items"]] == ["s03"]
    r = http.get(base, params={"fieldSelector": "spec.bogus=1"})
    assert r.status_code == 400 and "field label not supported" in r.text
    r = http.get(base, params={"labelSelector": "n in (0"})
    assert r.status_code == 400
    r = http.delete(base, params={"labelSelector": "n=0"})
    assert r.status_code == 200 and len(r.json()["items"]) == 9
    assert len(names("all=1")) == 16


def test_finalizers_and_graceful_pod_deletion(http: httpx.Client) -> None:
    r = http.post(CM, json={"metadata": {"name": "fin", "finalizers": ["example.com/x"]}})
    assert r.status_code == 201
    r = http.delete(f"{CM}/fin")
    assert r.status_code == 202 and r.json()["metadata"]["deletionTimestamp"]
    assert http.get(f"{CM}/fin").status_code == 200
    http.patch(
        f"{CM}/fin",
        json={"metadata": {"finalizers": None}},
        headers={"Content-Type": "application/merge-patch+json"},
    )
    assert http.get(f"{CM}/fin").status_code == 404
    pods = f"/api/v1/namespaces/{NS}/pods"
    http.post(
        pods,
        json={
            "metadata": {"name": "bound"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    r = http.delete(f"{pods}/bound")
    assert r.status_code == 202
    assert r.json()["metadata"]["deletionGracePeriodSeconds"] == 30
    # The kubelet confirms with a zero grace period; then it is gone.
    assert http.delete(f"{pods}/bound", params={"gracePeriodSeconds": "0"}).status_code == 200
    assert http.get(f"{pods}/bound").status_code == 404


def test_delete_preconditions(http: httpx.Client) -> None:
    cm = http.post(CM, json={"metadata": {"name": "pre"}}).json()
    r = http.request("DELETE", f"{CM}/pre", json={"preconditions": {"uid": "wrong"}})
    assert r.status_code == 409 and "Precondition failed" in r.text
    r = http.request(
        "DELETE",
        f"{CM}/pre",
        json={
            "preconditions": {
                "uid": cm["metadata"]["uid"],
                "resourceVersion": cm["metadata"]["resourceVersion"],
            }
        },
    )
    assert r.status_code == 200


def test_binding(http: httpx.Client) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    http.post(
        pods,
        json={
            "metadata": {"name": "tobind"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    r = http.post(
        f"{pods}/tobind/binding",
        json={
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "tobind"},
            "target": {"kind": "Node", "name": "n1"},
        },
    )
    assert r.status_code == 201, r.text
    bound = http.get(f"{pods}/tobind").json()
    assert bound["spec"]["nodeName"] == "n1"
    cond = {c["type"]: c["status"] for c in bound["status"]["conditions"]}
    assert cond["PodScheduled"] == "True"
    r = http.post(f"{pods}/tobind/binding", json={"target": {"name": "n2"}})
    assert r.status_code == 409


def test_watch_too_old_is_410(cluster: Cluster, http: httpx.Client) -> None:
    # A fresh apiserver's cache starts at the current revision: revision 1 is too old.
    http.post(CM, json={"metadata": {"name": "old"}})
    index = len(cluster.apiservers)
    cluster.start_apiserver(pump=False)
    url = f"http://127.0.0.1:{cluster.api_ports[index]}"
    try:
        r = httpx.get(f"{url}{CM}", params={"watch": "1", "resourceVersion": "1"}, timeout=10)
        assert r.status_code == 200
        event = orjson.loads(r.text.splitlines()[0])
        assert event["type"] == "ERROR" and event["object"]["code"] == 410
    finally:
        cluster.apiservers[index].stop()


def test_table_for_list_and_watch(http: httpx.Client, cluster: Cluster) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    r = http.get(CM, headers={"Accept": accept})
    table = r.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    rv = table["metadata"]["resourceVersion"]
    events: list[dict] = []  # type: ignore[type-arg]
    for attempt in range(10):
        with http.stream(
            "GET",
            CM,
            params={"watch": "1", "resourceVersion": rv, "timeoutSeconds": "3"},
            headers={"Accept": accept},
        ) as s:
            if s.status_code == 504:
                # The list was read from etcd while this apiserver's watch cache lagged more
                # than 3 s behind (a loaded machine): kube's "Too large resource version",
                # which client-go's reflector retries.
                s.read()
                assert "Too large resource version" in s.text
                time.sleep(1)
                continue
            name = f"tw{attempt}"
            created = http.post(CM, json={"metadata": {"name": name}, "data": {"a": "b"}})
            assert created.status_code == 201, created.text
            events = [orjson.loads(line) for line in s.iter_lines() if line]
            if events:
                break
            # The stream ends at timeoutSeconds; on a loaded machine the event can miss
            # that window: watch again from the list's version.
    if not events:  # say why: the apiserver's own account of its watch cache
        logs = (cluster.dir / "apiserver-0.log").read_text(errors="replace").splitlines()
        notes = [line for line in logs if "warn" in line.lower() or "error" in line.lower()]
        raise AssertionError("no watch event arrived; apiserver:\n" + "\n".join(notes[-40:]))
    ev = events[0]
    assert ev["type"] == "ADDED" and ev["object"]["kind"] == "Table"
    assert ev["object"]["rows"][0]["cells"][0] == "tw0"


def test_discovery_and_openapi(http: httpx.Client) -> None:
    r = http.get(
        "/apis",
        headers={"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"},
    )
    assert r.json()["kind"] == "APIGroupDiscoveryList"
    assert "apidiscovery.k8s.io;v=v2" in r.headers["content-type"]
    assert http.get("/api/v1").json()["kind"] == "APIResourceList"
    idx = http.get("/openapi/v3").json()
    url = idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
    doc = http.get(url).json()
    assert "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]
    for p in ("/healthz", "/livez", "/readyz", "/version", "/metrics"):
        assert http.get(p).status_code == 200


def test_health_and_version_paths_as_kube_apiserver(http: httpx.Client) -> None:
    """With a trailing slash (kr8s asks ``/version/``), one check, ``?verbose``,
    ``?exclude``."""
    assert http.get("/version/").json() == http.get("/version").json()
    for p in ("/healthz/", "/livez/", "/readyz/", "/healthz/ping", "/readyz/watch-cache"):
        r = http.get(p)
        assert (r.status_code, r.text) == (200, "ok"), p
    assert http.get("/healthz/nonesuch").status_code == 404
    r = http.get("/readyz", params={"verbose": "1"})
    assert r.text == "[+]ping ok\n[+]log ok\n[+]watch-cache ok\nreadyz check passed\n"
    r = http.get("/livez", params=[("verbose", ""), ("exclude", "log")])
    assert r.text == "[+]ping ok\n[+]log excluded: ok\nlivez check passed\n"


@pytest.mark.parametrize(
    "method,path,kwargs,message",
    [
        ("GET", CM, {"params": {"limit": "99999999999999999999999"}}, "value out of range"),
        ("GET", CM, {"params": {"limit": "ten"}}, 'parsing "ten": invalid syntax'),
        ("DELETE", f"{CM}/nonesuch", {"json": {"gracePeriodSeconds": "abc"}},
         "cannot unmarshal string into Go struct field DeleteOptions.gracePeriodSeconds"),
        ("DELETE", f"{CM}/nonesuch", {"json": {"gracePeriodSeconds": 2**64}},
         "cannot unmarshal number"),
    ],
)  # fmt: skip
def test_bad_parameters_are_400_never_500(
    http: httpx.Client,
    method: str,
    path: str,
    kwargs: dict,
    message: str,  # type: ignore[type-arg]
) -> None:
    r = http.request(method, path, **kwargs)
    assert r.status_code == 400, r.text
    assert message in status_of(r)["message"]


def test_terminating_namespace_refuses_new_content(http: httpx.Client) -> None:
    assert http.post("/api/v1/namespaces", json={"metadata": {"name": "term"}}).status_code == 201
    r = http.delete("/api/v1/namespaces/term")
    assert r.status_code == 202 and r.json()["status"]["phase"] == "Terminating"
    # Admission reads namespaces from the watch cache (as kube-apiserver's informer does);
    # a consistent list returns once the cache has caught up with etcd.
    http.get("/api/v1/namespaces")
    r = http.post("/api/v1/namespaces/term/configmaps", json={"metadata": {"name": "late"}})
    assert r.status_code == 403
    assert status_of(r)["message"] == (
        'configmaps "late" is forbidden: unable to create new content in namespace term '
        "because it is being terminated"
    )
    assert status_of(r)["details"]["causes"][0]["reason"] == "NamespaceTerminating"
    # The namespace controller's last step: clear spec.finalizers through /finalize.
    ns = http.get("/api/v1/namespaces/term").json()
    ns["spec"]["finalizers"] = []
    assert http.put("/api/v1/namespaces/term/finalize", json=ns).status_code == 200
    assert http.get("/api/v1/namespaces/term").status_code == 404


def test_priority_classes_and_admission(http: httpx.Client) -> None:
    pcs = "/apis/scheduling.k8s.io/v1/priorityclasses"
    names = {o["metadata"]["name"]: o["value"] for o in http.get(pcs).json()["items"]}
    assert names["system-node-critical"] == 2000001000
    assert names["system-cluster-critical"] == 2000000000
    assert http.post(pcs, json={"metadata": {"name": "high"}, "value": 1000}).status_code == 201
    r = http.post(pcs, json={"metadata": {"name": "too-high"}, "value": 2_000_000_000})
    assert r.status_code == 422 and "maximum allowed value" in r.text
    r = http.post(pcs, json={"metadata": {"name": "system-mine"}, "value": 1})
    assert r.status_code == 422 and "reserved for system use" in r.text
    pods = f"/api/v1/namespaces/{NS}/pods"
    c = [{"name": "c", "image": "busybox"}]
    p = http.post(
        pods,
        json={"metadata": {"name": "prio"}, "spec": {"priorityClassName": "high", "containers": c}},
    ).json()
    assert p["spec"]["priority"] == 1000 and p["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    r = http.post(
        pods,
        json={
            "metadata": {"name": "prio-x"},
            "spec": {"priorityClassName": "nope", "containers": c},
        },
    )
    assert r.status_code == 403 and "no PriorityClass with name nope was found" in r.text
    assert (
        http.post(
            pcs, json={"metadata": {"name": "dflt"}, "value": 7, "globalDefault": True}
        ).status_code
        == 201
    )
    http.get(pcs)  # a consistent list: the cache (which admission reads) has caught up
    p = http.post(pods, json={"metadata": {"name": "prio-d"}, "spec": {"containers": c}}).json()
    assert p["spec"]["priority"] == 7 and p["spec"]["priorityClassName"] == "dflt"
    http.delete(f"{pcs}/dflt")
    http.get(pcs)


def test_error_status_bytes_as_kube_apiserver_writes_them(http: httpx.Client) -> None:
    """metav1.Status's field order (kind, apiVersion, metadata, status, message, reason,
    details, code) and the encoder's trailing newline: clients comparing bytes see kube's."""
    r = http.get(f"{CM}/nonesuch")
    assert r.status_code == 404
    assert r.content == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"configmaps \\"nonesuch\\" not found","reason":"NotFound",'
        b'"details":{"name":"nonesuch","kind":"configmaps"},"code":404}\n'
    )
    assert http.get(CM).content.endswith(b"}\n")


def test_a_new_service_carries_its_empty_status(http: httpx.Client) -> None:
    """kube-apiserver returns a created Service with ``status: {loadBalancer: {}}`` (its
    strategy's empty ServiceStatus); clients index it."""
    body = {"metadata": {"name": "with-status"}, "spec": {"ports": [{"port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}  # fmt: skip
    r = http.post(f"/api/v1/namespaces/{NS}/services", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == {"loadBalancer": {}}  # what a client sends is not kept
    got = http.get(f"/api/v1/namespaces/{NS}/services/with-status").json()
    assert got["status"] == {"loadBalancer": {}}


def test_idle_connections_stay_open_past_five_seconds(cluster: Cluster) -> None:
    """A kept-alive connection still answers after 6 idle seconds (kube-apiserver keeps
    idle connections 90 s; clients such as kubectl drain reuse them for POSTs)."""
    url = urlsplit(cluster.url)
    request = f"GET /version HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode()
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        for pause in (6, 0):
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:  # the head may come in several pieces
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(
                line.split(b":", 1)[1] for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ))  # fmt: skip
            while len(body) < length:  # and the body after it: read it all
                body += s.recv(65536)
            time.sleep(pause)
