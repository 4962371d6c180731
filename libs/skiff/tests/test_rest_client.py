"""The REST client and informer without a network: ``httpx.MockTransport`` plays the server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider

from skiff.api.errors import ApiError, Cause, Reason, already_exists, gone, invalid
from skiff.api.resources import REGISTRY
from skiff.client.informer import Informer, Store, copy_object, key_of, split_key, wait_synced
from skiff.client.rest import ApiClient, resource, resource_path, status_error

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **kw: Any) -> ApiClient:
    return ApiClient("http://k8s.test", transport=httpx.MockTransport(handler), **kw)


def status(e: ApiError) -> httpx.Response:
    return httpx.Response(e.code, content=orjson.dumps(e.status()))


# -- resources ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "plural", "group"),
    [
        ("pods", "pods", ""),
        ("po", "pods", ""),
        ("Pod", "pods", ""),
        ("pod", "pods", ""),
        ("deployments.apps", "deployments", "apps"),
        ("deploy", "deployments", "apps"),
        ("deployment.apps", "deployments", "apps"),
        ("leases.coordination.k8s.io", "leases", "coordination.k8s.io"),
        ("Lease", "leases", "coordination.k8s.io"),
        ("events", "events", ""),
        ("events.events.k8s.io", "events", "events.k8s.io"),
        ("ns", "namespaces", ""),
    ],
)
def test_resource_lookup(name: str, plural: str, group: str) -> None:
    info = resource(name)
    assert (info.plural, info.group) == (plural, group)


def test_resource_lookup_unknown() -> None:
    with pytest.raises(ValueError, match="unknown resource"):
        resource("widgets")


def test_resource_path() -> None:
    pods = resource("pods")
    assert resource_path(pods) == "/api/v1/pods"
    assert resource_path(pods, "ns") == "/api/v1/namespaces/ns/pods"
    assert resource_path(pods, "ns", "p", "binding") == "/api/v1/namespaces/ns/pods/p/binding"
    nodes = resource("nodes")
    assert resource_path(nodes, "ignored", "n1") == "/api/v1/nodes/n1"
    deploy = REGISTRY.by_path("apps", "v1", "deployments")
    assert deploy is not None
    assert (
        resource_path(deploy, "a", "d", "scale") == "/apis/apps/v1/namespaces/a/deployments/d/scale"
    )


# -- errors ---------------------------------------------------------------------------


async def test_status_errors_are_rebuilt() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        name = req.url.path.rsplit("/", 1)[-1]
        if name == "exists":
            return status(already_exists("configmaps", "exists"))
        if name == "bad":
            return status(invalid("ConfigMap", "bad", "", [Cause("metadata.name", "nope")]))
        if name == "busy":
            return httpx.Response(
                503,
                headers={"Retry-After": "7"},
                content=orjson.dumps({"kind": "Status", "code": 503, "reason": "Weird"}),
            )
        return httpx.Response(502, text="bad gateway")

    async with client(handler) as api:
        with pytest.raises(ApiError) as e:
            await api.get("configmaps", "exists", "ns")
        assert (e.value.code, e.value.reason, e.value.name) == (
            409,
            Reason.ALREADY_EXISTS,
            "exists",
        )
        with pytest.raises(ApiError) as e:
            await api.get("cm", "bad", "ns")
        assert e.value.code == 422 and e.value.reason == Reason.INVALID
        assert e.value.causes[0].field == "metadata.name"
        with pytest.raises(ApiError) as e:
            await api.get("cm", "busy", "ns")
        assert e.value.code == 503 and e.value.reason == Reason.SERVICE_UNAVAILABLE
        assert e.value.retry_after == 7
        with pytest.raises(ApiError) as e:
            await api.get("cm", "proxy", "ns")
        assert e.value.code == 502 and "bad gateway" in e.value.message


async def test_unreachable_is_503() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=req)

    async with client(handler) as api:
        with pytest.raises(ApiError) as e:
            await api.list("pods")
        assert e.value.code == 503 and "connection refused" in e.value.message


async def test_real_refused_connection_is_503() -> None:
    async with ApiClient("http://127.0.0.1:1", timeout=2) as api:
        with pytest.raises(ApiError) as e:
            await api.get("nodes", "n1")
        assert e.value.code == 503


def test_status_error_defaults() -> None:
    e = status_error({"kind": "Status", "message": "m"}, 404)
    assert (e.code, e.reason, e.message) == (404, Reason.NOT_FOUND, "m")


# -- requests -------------------------------------------------------------------------


async def test_requests_on_the_wire() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        body = orjson.loads(req.content) if req.content else {}
        return httpx.Response(201 if req.method == "POST" else 200, content=orjson.dumps(body))

    async with client(handler, user_agent="skiff-test/1") as api:
        obj = {"metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "b"}}
        assert await api.create("configmaps", obj, field_manager="m", dry_run=True) == obj
        await api.update("configmaps", obj)
        await api.patch("deployments.apps", "d", {"spec": {}}, "ns", type="strategic")
        await api.patch("cm", "c", [{"op": "remove", "path": "/data"}], "ns", type="json")
        await api.patch("cm", "c", obj, "ns", type="apply", field_manager="me", force=True)
        await api.delete("pods", "p", "ns", grace_period_seconds=0, preconditions={"uid": "u"})
        await api.delete("nodes", "n1")
        await api.create_subresource("pods", "p", "binding", {"target": {"name": "n"}}, "ns")
        await api.get("deployments.apps", "d", "ns", subresource="scale")

    create, update, strategic, jsonp, apply, delete, delete_node, binding, scale = seen
    assert create.method == "POST" and create.url.path == "/api/v1/namespaces/ns/configmaps"
    assert create.url.params == httpx.QueryParams({"fieldManager": "m", "dryRun": "All"})
    assert create.headers["content-type"] == "application/json"
    assert create.headers["user-agent"] == "skiff-test/1"
    assert update.method == "PUT" and update.url.path.endswith("/configmaps/c")
    assert strategic.url.path == "/apis/apps/v1/namespaces/ns/deployments/d"
    assert strategic.headers["content-type"] == "application/strategic-merge-patch+json"
    assert jsonp.headers["content-type"] == "application/json-patch+json"
    assert apply.headers["content-type"] == "application/apply-patch+yaml"
    assert apply.url.params == httpx.QueryParams({"fieldManager": "me", "force": "true"})
    assert orjson.loads(apply.content) == obj
    assert delete.method == "DELETE"
    assert orjson.loads(delete.content) == {
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u"},
    }
    assert delete_node.url.path == "/api/v1/nodes/n1" and not delete_node.content
    assert binding.method == "POST" and binding.url.path.endswith("/pods/p/binding")
    assert scale.url.path == "/apis/apps/v1/namespaces/ns/deployments/d/scale"


async def test_client_side_argument_errors() -> None:
    async with client(lambda r: httpx.Response(200, json={})) as api:
        with pytest.raises(ValueError, match="field_manager"):
            await api.patch("cm", "c", {}, "ns", type="apply")
        with pytest.raises(ValueError, match="patch type"):
            await api.patch("cm", "c", {}, "ns", type="yaml")
        with pytest.raises(ValueError, match="namespace"):
            await api.get("pods", "p")
        with pytest.raises(ValueError, match=r"metadata\.name"):
            await api.update("cm", {"metadata": {"namespace": "ns"}})


async def test_trace_context_is_injected() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    tracer = TracerProvider().get_tracer("test")
    async with client(handler) as api:
        await api.get("nodes", "a")
        with tracer.start_as_current_span("reconcile") as span:
            await api.get("nodes", "b")
            trace_id = format(span.get_span_context().trace_id, "032x")
    assert "traceparent" not in seen[0].headers
    assert trace_id in seen[1].headers["traceparent"]


async def test_list_all_follows_continue() -> None:
    calls: list[dict[str, str]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        q = dict(req.url.params)
        calls.append(q)
        token = q.get("continue", "")
        if token == "expired":
            return status(gone("continue too old"))
        if "limit" not in q:  # the unpaginated fallback
            items, meta = [{"n": i} for i in range(5)], {"resourceVersion": "99"}
        else:
            page = int(token or 0)
            items = [{"n": page * 2}, {"n": page * 2 + 1}]
            nxt = {"0": "1", "1": "2"}.get(token or "0", "")
            meta = {"resourceVersion": "42", "continue": nxt}
            if fail_expired and page == 1:
                meta["continue"] = "expired"
        return httpx.Response(200, json={"kind": "PodList", "metadata": meta, "items": items})

    fail_expired = False
    async with client(handler) as api:
        items, rv = await api.list_all("pods", "ns", label_selector="a=b", limit=2)
        assert [i["n"] for i in items] == list(range(6)) and rv == "42"
        assert [c.get("continue") for c in calls] == [None, "1", "2"]
        assert all(c["labelSelector"] == "a=b" and c["limit"] == "2" for c in calls)
        fail_expired = True
        calls.clear()
        items, rv = await api.list_all("pods", "ns", limit=2)
        assert [i["n"] for i in items] == list(range(5)) and rv == "99"


# -- watch ----------------------------------------------------------------------------


def stream_of(*chunks: bytes, error: bool = False) -> Callable[[httpx.Request], httpx.Response]:
    async def body() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c
            await asyncio.sleep(0)
        if error:
            raise httpx.RemoteProtocolError("peer closed connection")

    def handler(req: httpx.Request) -> httpx.Response:
        handler.request = req  # type: ignore[attr-defined]
        return httpx.Response(200, content=body())

    return handler


def line(etype: str, obj: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": etype, "object": obj}) + b"\n"


async def test_watch_parses_lines_across_chunks() -> None:
    a = line("ADDED", {"metadata": {"name": "a", "resourceVersion": "5"}})
    m = line("MODIFIED", {"metadata": {"name": "a", "resourceVersion": "6"}, "x": "é" * 50})
    b = line("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    d = line("DELETED", {"metadata": {"name": "a", "resourceVersion": "10"}}).rstrip(b"\n")
    raw = a + m + b"\n" + b + d  # an empty line, and no newline after the last event
    chunks = [raw[:3], raw[3 : len(a) + 7], raw[len(a) + 7 : len(a) + 9], raw[len(a) + 9 :]]
    handler = stream_of(*chunks)
    async with client(handler) as api:
        events = [
            (t, o["metadata"]["resourceVersion"])
            async for t, o in api.watch(
                "configmaps", "ns", resource_version="4", label_selector="x", timeout_seconds=60
            )
        ]
    assert events == [("ADDED", "5"), ("MODIFIED", "6"), ("BOOKMARK", "9"), ("DELETED", "10")]
    q = handler.request.url.params  # type: ignore[attr-defined]
    assert q["watch"] == "1" and q["resourceVersion"] == "4" and q["labelSelector"] == "x"
    assert q["allowWatchBookmarks"] == "true" and q["timeoutSeconds"] == "60"


async def test_watch_error_event_raises_410() -> None:
    handler = stream_of(line("ERROR", gone("too old resource version: 1 (5)").status()))
    async with client(handler) as api:
        with pytest.raises(ApiError) as e:
            async for _ in api.watch("configmaps", resource_version="1"):
                pass
    assert e.value.code == 410 and e.value.reason == Reason.EXPIRED


async def test_watch_broken_stream_is_503() -> None:
    handler = stream_of(line("ADDED", {"metadata": {"name": "a"}}), error=True)
    got = []
    async with client(handler) as api:
        with pytest.raises(ApiError) as e:
            async for t, _ in api.watch("configmaps"):
                got.append(t)
    assert got == ["ADDED"] and e.value.code == 503


async def test_watch_non_200_raises() -> None:
    async with client(lambda r: status(gone("x"))) as api:
        with pytest.raises(ApiError) as e:
            async for _ in api.watch("pods"):
                pass
    assert e.value.code == 410


# -- kubeconfig -----------------------------------------------------------------------


async def test_from_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("s3cret\n")
    cfg = tmp_path / "config"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: a\n"
        "clusters:\n"
        "- {name: ca, cluster: {server: 'http://a.test:1'}}\n"
        "- {name: cb, cluster: {server: 'http://b.test:2/'}}\n"
        "contexts:\n- {name: a, context: {cluster: ca, user: ua}}\n"
        "- {name: b, context: {cluster: cb, user: ub}}\n"
        "users:\n- {name: ua, user: {token: abc}}\n- {name: ub, user: {tokenFile: token}}\n"
    )
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{cfg}")
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={})

    transport = httpx.MockTransport(handler)
    async with ApiClient.from_kubeconfig(transport=transport) as api:
        assert api.server == "http://a.test:1"
        await api.get("nodes", "x")
    async with ApiClient.from_kubeconfig(str(cfg), context="b", transport=transport) as api:
        assert api.server == "http://b.test:2"
        await api.get("nodes", "x")
    assert seen[0].headers["authorization"] == "Bearer abc"
    assert seen[1].headers["authorization"] == "Bearer s3cret"
    assert str(seen[1].url) == "http://b.test:2/api/v1/nodes/x"
    with pytest.raises(ValueError, match="no context"):
        ApiClient.from_kubeconfig(str(cfg), context="zzz")


# -- store and informer ----------------------------------------------------------------


def cm(name: str, rv: int, ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels}
    }


def test_keys_and_copy() -> None:
    assert key_of(cm("a", 1)) == "ns/a" and key_of({"metadata": {"name": "n"}}) == "n"
    assert split_key("ns/a") == ("ns", "a") and split_key("n") == (None, "n")
    obj = cm("a", 1, app="x")
    dup = copy_object(obj)
    dup["metadata"]["labels"]["app"] = "y"
    assert obj["metadata"]["labels"]["app"] == "x"


def test_store_indexes() -> None:
    s = Store()
    s._put("ns/a", cm("a", 1, app="x"))
    s.add_index("app", lambda o: [o["metadata"]["labels"].get("app", "")])
    s._put("ns/b", cm("b", 2, app="x"))
    s._put("ns/c", cm("c", 3, app="y"))
    assert [o["metadata"]["name"] for o in s.by_index("app", "x")] == ["a", "b"]
    s._put("ns/a", cm("a", 4, app="y"))
    assert [o["metadata"]["name"] for o in s.by_index("app", "y")] == ["a", "c"]
    s._delete("ns/c")
    assert s.index_keys("app", "y") == ["ns/a"] and s.by_index("app", "z") == []
    s._replace({"ns/d": cm("d", 5, app="x")})
    assert s.index_keys("app", "x") == ["ns/d"] and s.index_keys("app", "y") == []
    with pytest.raises(KeyError):
        s.by_index("nope", "x")


class FakeClient:
    """Plays list/watch for an informer: scripted lists and watch outcomes."""

    def __init__(self, lists: list[tuple[list[dict[str, Any]], str]], watches: list[Any]):
        self.lists = lists
        self.watches = watches
        self.watch_rvs: list[str] = []

    async def list_all(self, *a: Any, **kw: Any) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0)

    async def watch(self, *a: Any, resource_version: str, **kw: Any) -> AsyncIterator[Any]:
        self.watch_rvs.append(resource_version)
        script = self.watches.pop(0) if self.watches else "hang"
        if script == "hang":
            await asyncio.Event().wait()
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item


async def test_informer_relist_after_410_emits_deletes() -> None:
    fake = FakeClient(
        lists=[([cm("a", 1), cm("b", 2)], "2"), ([cm("a", 1), cm("c", 7)], "7")],
        watches=[
            [("MODIFIED", cm("b", 3)), ("BOOKMARK", {"metadata": {"resourceVersion": "4"}})],
            [gone("too old")],
        ],
    )
    inf = Informer(fake, "configmaps", "ns")  # type: ignore[arg-type]
    events: list[tuple[str, str, str]] = []

    def boom(obj: dict[str, Any]) -> None:
        raise RuntimeError("handler bug")

    inf.add_handler(on_add=boom)
    inf.add_handler(
        on_add=lambda o: events.append(("add", o["metadata"]["name"], _rv(o))),
        on_update=lambda old, new: events.append(("update", new["metadata"]["name"], _rv(new))),
        on_delete=lambda o: events.append(("delete", o["metadata"]["name"], _rv(o))),
    )
    task = asyncio.create_task(inf.run())
    try:
        await inf.wait_synced(timeout=2)
        for _ in range(100):
            if inf.resource_version == "7":
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert events == [
        ("add", "a", "1"),
        ("add", "b", "2"),
        ("update", "b", "3"),
        ("add", "c", "7"),
        ("delete", "b", "3"),
    ]
    assert fake.watch_rvs == ["2", "4", "7"]
    assert sorted(inf.store.keys()) == ["ns/a", "ns/c"]
    late: list[str] = []
    inf.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
    assert sorted(late) == ["a", "c"]
    with pytest.raises(TypeError):
        inf.add_handler(on_add=_async_handler)


async def _async_handler(obj: dict[str, Any]) -> None:
    pass


def _rv(obj: dict[str, Any]) -> str:
    return obj["metadata"]["resourceVersion"]


async def test_informer_resync_and_wait_synced_timeout() -> None:
    fake = FakeClient(lists=[([cm("a", 1)], "1")], watches=[])
    inf = Informer(fake, "configmaps", "ns", resync_period=0.02)  # type: ignore[arg-type]
    resyncs: list[bool] = []
    inf.add_handler(on_update=lambda old, new: resyncs.append(old is new))
    with pytest.raises(TimeoutError):
        await wait_synced(inf, timeout=0.05)
    task = asyncio.create_task(inf.run())
    try:
        await wait_synced(inf, timeout=2)
        async with asyncio.timeout(2):
            while len(resyncs) < 3:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(resyncs)


async def test_an_answer_that_is_not_the_apiservers_drops_kept_connections() -> None:
    """A Service address dialled before kube-proxy's rules exist reaches whatever listens
    behind the default route; its connection must not be reused for the retries."""
    answers = [httpx.Response(404, text="Not Found"), httpx.Response(200, json={"items": []})]
    c = client(lambda _r: answers.pop(0))
    first = c._http
    with pytest.raises(ApiError) as e:
        await c.list("pods", "default")
    assert e.value.code == 404 and c._http is not first  # a fresh pool
    assert (await c.list("pods", "default"))["items"] == []
    status = {"kind": "Status", "code": 404, "reason": "NotFound", "message": "nope"}
    answers[:] = [httpx.Response(404, json=status)]
    second = c._http
    with pytest.raises(ApiError):
        await c.get("pods", "x", "default")
    assert c._http is second  # the apiserver's own 404: connections kept
    await c.aclose()


async def test_a_token_file_is_read_again_and_tokens_change(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json={"kind": "Namespace", "metadata": {"name": "x"}})

    token = tmp_path / "token"
    token.write_text("first\n")
    c = ApiClient(
        "http://k8s.test",
        transport=httpx.MockTransport(handler),
        token="first",
        token_file=str(token),
    )
    await c.get("namespaces", "x")
    token.write_text("second\n")
    await c.get("namespaces", "x")  # within the minute: the token in hand
    clock = time.monotonic() + 61
    monkeypatch.setattr(time, "monotonic", lambda: clock)
    await c.get("namespaces", "x")
    other = c.with_token("robot")
    await other.get("namespaces", "x")
    other.set_token("robot-2")
    await other.get("namespaces", "x")
    assert seen == [
        "Bearer first",
        "Bearer first",
        "Bearer second",
        "Bearer robot",
        "Bearer robot-2",
    ]
    await c.aclose()
    await other.aclose()


def test_in_cluster_config(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from skiff.client.kubeconfig import in_cluster_config
    from skiff.pki import CertificateAuthority

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(ValueError, match="unable to load in-cluster configuration"):
        in_cluster_config(tmp_path)
    (tmp_path / "token").write_text("tok\n")
    (tmp_path / "ca.crt").write_bytes(CertificateAuthority.create("kubernetes").pair.cert_pem)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    cfg = in_cluster_config(tmp_path)
    assert cfg.server == "https://10.96.0.1:443"
    assert cfg.token == "tok" and cfg.token_file == str(tmp_path / "token")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert in_cluster_config(tmp_path).server == "https://[fd00::1]:443"
