"""The kubelet's HTTPS API without containerd: a real server on loopback over TLS, in front
of a stand-in kubelet (its pod cache and a CRI that answers from a list). Covers the
certificate, health and pod list, every refusal of ``/containerLogs`` with Kubernetes'
wording, log options, and the refusals of exec/attach/port-forward before any runtime
call."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
import websockets
from cryptography import x509

from skiff.cri.client import pb
from skiff.kubelet.auth import AuthSettings
from skiff.kubelet.server import ServingOptions, start_server

POD = {
    "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
    "spec": {"containers": [{"name": "app"}], "initContainers": [{"name": "init"}]},
}


class StubCri:
    """The few CRI calls the server makes, answered from ``containers`` and ``logs``."""

    def __init__(self, containers: list[pb.Container], logs: dict[str, Path]) -> None:
        self.containers = containers
        self.logs = logs
        self.exec_calls: list[Any] = []

    async def list_containers(self, label_selector: dict[str, str]) -> list[pb.Container]:
        uid = label_selector["io.kubernetes.pod.uid"]
        return [c for c in self.containers if c.labels["io.kubernetes.pod.uid"] == uid]

    async def container_status(self, cid: str) -> Any:
        c = next(c for c in self.containers if c.id == cid)
        return SimpleNamespace(status=SimpleNamespace(log_path=str(self.logs[cid]), state=c.state))

    async def exec(self, *args: Any, **kw: Any) -> str:
        self.exec_calls.append((args, kw))
        raise AssertionError("exec must not reach the runtime")

    async def list_pod_sandbox(self, label_selector: dict[str, str]) -> list[Any]:
        return []


def container(cid: str, name: str, attempt: int, state: int) -> pb.Container:
    return pb.Container(
        id=cid,
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        labels={"io.kubernetes.pod.uid": "u1", "io.kubernetes.container.name": name},
        state=state,
        created_at=attempt,
    )


@contextlib.asynccontextmanager
async def kubelet_api(
    tmp_path: Path,
    containers: list[pb.Container] = (),
    logs: dict[str, Path] | None = None,
    options: ServingOptions | None = None,
    client: Any = None,
) -> AsyncIterator[tuple[str, ssl.SSLContext, StubCri]]:
    cri = StubCri(list(containers), logs or {})
    pods = {"default/web": POD}
    kubelet = SimpleNamespace(
        node_name="node-a",
        cri=cri,
        client=client,
        pods=SimpleNamespace(get=pods.get, list=lambda: list(pods.values())),
    )
    options = options or ServingOptions(tmp_path / "pki")
    server, task, port = await start_server(kubelet, "127.0.0.1", 0, options)  # type: ignore[arg-type]
    ctx = ssl.create_default_context(cafile=str(tmp_path / "pki" / "kubelet.crt"))
    try:
        yield f"127.0.0.1:{port}", ctx, cri
    finally:
        server.should_exit = True
        await task


async def test_serves_tls_with_the_node_s_names_health_and_pods(tmp_path: Path) -> None:
    async with kubelet_api(tmp_path) as (addr, ctx, _):
        async with httpx.AsyncClient(verify=ctx) as http:
            r = await http.get(f"https://{addr}/healthz")
            assert (r.status_code, r.text) == (200, "ok")
            pods = (await http.get(f"https://{addr}/pods")).json()
        assert pods["kind"] == "PodList" and pods["items"] == [POD]
    cert = x509.load_pem_x509_certificate((tmp_path / "pki" / "kubelet.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"node-a", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    # Restarting keeps the certificate (clients that pinned it keep working).
    before = (tmp_path / "pki" / "kubelet.crt").read_bytes()
    async with kubelet_api(tmp_path):
        assert (tmp_path / "pki" / "kubelet.crt").read_bytes() == before


async def _get(addr: str, ctx: ssl.SSLContext, path: str) -> httpx.Response:
    async with httpx.AsyncClient(verify=ctx) as http:
        return await http.get(f"https://{addr}{path}")


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("/containerLogs/default/nope/app", 404, 'pods "nope" not found'),
        ("/containerLogs/default/web/other", 400, "container other is not valid for pod web"),
        (
            "/containerLogs/default/web/app",
            400,
            'container "app" in pod "web" is waiting to start: ContainerCreating',
        ),
        (
            "/containerLogs/default/web/app?previous=true",
            400,
            'previous terminated container "app" in pod "web" not found',
        ),
    ],
)
async def test_log_refusals_are_statuses(
    tmp_path: Path, path: str, code: int, message: str
) -> None:
    async with kubelet_api(tmp_path) as (addr, ctx, _):
        r = await _get(addr, ctx, path)
    status = r.json()
    assert r.status_code == code
    assert (status["kind"], status["code"], status["message"]) == ("Status", code, message)


async def test_logs_current_previous_and_options(tmp_path: Path) -> None:
    old, new = tmp_path / "0.log", tmp_path / "1.log"
    old.write_bytes(b"2026-01-02T03:04:05Z stdout F crashed\n")
    new.write_bytes(
        b"2026-01-02T03:04:06Z stdout F one\n"
        b"2026-01-02T03:04:07Z stderr F two\n"
        b"2026-01-02T03:04:08Z stdout F three\n"
    )
    containers = [
        container("c0", "app", 0, pb.CONTAINER_EXITED),
        container("c1", "app", 1, pb.CONTAINER_EXITED),
    ]
    async with kubelet_api(tmp_path, containers, {"c0": old, "c1": new}) as (addr, ctx, _):
        assert (await _get(addr, ctx, "/containerLogs/default/web/app")).text == "one\ntwo\nthree\n"
        r = await _get(addr, ctx, "/containerLogs/default/web/app?previous=true")
        assert r.text == "crashed\n"
        r = await _get(addr, ctx, "/containerLogs/default/web/app?tailLines=1&timestamps=true")
        assert r.text == "2026-01-02T03:04:08.000000000Z three\n"  # RFC3339NanoFixed
        r = await _get(addr, ctx, "/containerLogs/default/web/app?limitBytes=6")
        assert r.text == "one\ntw"
        r = await _get(addr, ctx, "/containerLogs/default/web/app?tailLines=x")
        assert r.status_code == 400 and r.json()["message"].startswith("invalid log options")


async def _channel_session(addr: str, ctx: ssl.SSLContext, path: str, **kw: Any) -> Any:
    messages: list[Any] = []
    async with websockets.connect(f"wss://{addr}{path}", ssl=ctx, **kw) as ws:
        with contextlib.suppress(websockets.ConnectionClosedError):
            async for m in ws:
                messages.append(m)
        return ws.subprotocol, messages, ws.close_code


async def test_exec_refusals_on_the_error_channel(tmp_path: Path) -> None:
    running = [container("c1", "app", 0, pb.CONTAINER_RUNNING)]
    async with kubelet_api(tmp_path, running, {}) as (addr, ctx, cri):
        v5 = {"subprotocols": ["v5.channel.k8s.io"]}
        cases = {
            "/exec/default/nope/app?command=ls&stdout=1": 'pod "nope" not found',
            "/exec/default/web/other?command=ls&stdout=1": (
                "container other is not valid for pod web"
            ),
            "/exec/default/web/init?command=ls&stdout=1": (
                "container init in pod web is not running"
            ),
            "/exec/default/web/app?stdout=1": (
                "you must specify at least one command for the container"
            ),
        }
        for path, message in cases.items():
            proto, messages, code = await _channel_session(addr, ctx, path, **v5)
            assert proto == "v5.channel.k8s.io" and code == 1000
            assert messages[0][:1] == b"\x03"
            status = orjson.loads(messages[0][1:])
            assert (status["status"], status["message"]) == ("Failure", message), path
        # A client that offers no channel protocol is told so and closed (1002).
        _, messages, code = await _channel_session(
            addr, ctx, "/exec/default/web/app?command=ls", subprotocols=["nonsense"]
        )
        assert code == 1002
    assert cri.exec_calls == []


async def test_port_forward_refusals(tmp_path: Path) -> None:
    async with kubelet_api(tmp_path) as (addr, ctx, _):
        for path, message in (
            ("/portForward/default/web", "a port number is required"),
            ("/portForward/default/nope?port=80", 'pod "nope" not found'),
            ("/portForward/default/web?port=80", "pod web has no running sandbox"),
        ):
            _, messages, _ = await _channel_session(addr, ctx, path)
            assert messages == [message]


class FakeApi:
    """What the kubelet asks the apiserver: TokenReviews and SubjectAccessReviews."""

    def __init__(self) -> None:
        self.reviews: list[dict[str, Any]] = []

    async def create(self, res: str, body: dict[str, Any], namespace: str | None = None) -> Any:
        self.reviews.append(body)
        if res.startswith("tokenreviews"):
            ok = body["spec"]["token"] == "good"
            user = {"username": "system:serviceaccount:monitoring:scraper", "groups": ["g"]}
            return {"status": {"authenticated": ok, "user": user if ok else {}}}
        attrs = body["spec"]["resourceAttributes"]
        allowed = body["spec"]["user"] == "apiserver-client" or attrs["subresource"] == "stats"
        return {"status": {"allowed": allowed}}


async def test_the_api_authenticates_and_authorizes(tmp_path: Path) -> None:
    from skiff.pki import CertificateAuthority

    ca = CertificateAuthority.create("kubernetes")
    ca.pair.save(tmp_path, "ca")
    client_cert = ca.issue("apiserver-client", usages=("client",)).save(tmp_path, "client")
    other_cert = ca.issue("someone", usages=("client",)).save(tmp_path, "other")
    options = ServingOptions(
        tmp_path / "pki",
        client_ca_file=str(tmp_path / "ca.crt"),
        auth=AuthSettings(anonymous=False, token_webhook=True, authorization="Webhook"),
    )
    api = FakeApi()
    async with kubelet_api(tmp_path, options=options, client=api) as (addr, ctx, _):
        async with httpx.AsyncClient(verify=ctx) as anonymous:
            r = await anonymous.get(f"https://{addr}/pods")
            assert (r.status_code, r.text) == (401, "Unauthorized")
            r = await anonymous.get(f"https://{addr}/pods", headers={"Authorization": "Bearer x"})
            assert r.status_code == 401
            token = {"Authorization": "Bearer good"}
            r = await anonymous.get(f"https://{addr}/pods", headers=token)
            assert (r.status_code, r.text) == (
                403,
                "Forbidden (user=system:serviceaccount:monitoring:scraper, verb=get, "
                "resource=nodes, subresource=proxy)",
            )
        # The exec endpoint answers no one without credentials, WebSocket or not.
        with pytest.raises(websockets.InvalidStatus) as e:
            async with websockets.connect(f"wss://{addr}/exec/default/web/c?command=id", ssl=ctx):
                pass
        assert e.value.response.status_code == 401
        ctx.load_cert_chain(*client_cert)
        async with httpx.AsyncClient(verify=ctx) as apiserver:
            r = await apiserver.get(f"https://{addr}/pods")
            assert r.status_code == 200 and r.json()["kind"] == "PodList"
        other = ssl.create_default_context(cafile=str(tmp_path / "pki" / "kubelet.crt"))
        other.load_cert_chain(*other_cert)
        async with httpx.AsyncClient(verify=other) as someone:
            assert (await someone.get(f"https://{addr}/pods")).status_code == 403
    sars = [r for r in api.reviews if r["kind"] == "SubjectAccessReview"]
    assert sars[0]["spec"]["resourceAttributes"] == {
        "verb": "get",
        "resource": "nodes",
        "subresource": "proxy",
        "name": "node-a",
        "version": "v1",
    }


def test_paths_map_to_node_subresources() -> None:
    from skiff.kubelet.auth import subresource_for

    assert subresource_for("/stats/summary") == "stats"
    assert subresource_for("/metrics/cadvisor") == "metrics"
    assert subresource_for("/logs/syslog") == "log"
    assert subresource_for("/spec/") == "spec"
    assert subresource_for("/exec/ns/p/c") == "proxy"
    assert subresource_for("/statsx") == "proxy"
