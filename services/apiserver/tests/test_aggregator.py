"""The aggregation layer on the in-memory store: APIServices validated in kube-aggregator's
words, local ones created available, the built-in group versions registered; a remote
APIService's availability found step by step (Service, port, endpoints, discovery) against
a real HTTPS aggregated server, requests proxied to it with the front-proxy certificate
and the requester's identity, discovery listing it; front-proxy authentication."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from aggregatedserver import BASE, CONSOLE_PROTOCOL, GROUP, VERSION, AggregatedServer
from memstore import MemoryStore, running
from starlette.datastructures import Headers

from skiff.api.errors import ApiError
from skiff.api.resources import REGISTRY
from skiff.apiserver.aggregator import Aggregator
from skiff.apiserver.aggregator.apiservices import AUTOMANAGED, INFO, remote_of
from skiff.apiserver.aggregator.autoregister import desired
from skiff.apiserver.aggregator.proxy import identity_headers
from skiff.apiserver.authentication import requestheader, trust
from skiff.apiserver.authentication.requestheader import RequestHeaderConfig, RequestHeaderError
from skiff.apiserver.authentication.user import UserInfo
from skiff.apiserver.authorization.attributes import path_attributes
from skiff.apiserver.printers import table_for
from skiff.apiserver.rest import RestApi
from skiff.apiserver.store import DeleteOptions
from skiff.apiserver.store import WriteOptions as Opts
from skiff.pki import CertificateAuthority

SERVICES = REGISTRY.core("services")
ENDPOINTS = REGISTRY.core("endpoints")
NAME = f"{VERSION}.{GROUP}"


class Env(MemoryStore):
    aggregator: Aggregator
    server: AggregatedServer

    async def apiservice(self, name: str = NAME, **spec: Any) -> dict[str, Any]:
        obj = {"metadata": {"name": name}, "spec": spec}
        got = await self.store.create(INFO, None, obj, Opts())
        await self.settle()
        return got

    async def remote_apiservice(self) -> dict[str, Any]:
        return await self.apiservice(
            group=GROUP,
            version=VERSION,
            groupPriorityMinimum=2000,
            versionPriority=10,
            service={"namespace": "wardle", "name": "api"},
            caBundle=self.server.ca_bundle,
        )

    async def backing_service(self, port_name: str = "https") -> None:
        svc = {"metadata": {"name": "api"},
               "spec": {"ports": [{"name": "https", "port": 443, "targetPort": 443}]}}  # fmt: skip
        await self.store.create(SERVICES, "wardle", svc, Opts())
        eps = {"metadata": {"name": "api"}, "subsets": [{
            "addresses": [{"ip": "127.0.0.1"}],
            "ports": [{"name": port_name, "port": self.server.port}]}]}  # fmt: skip
        await self.store.create(ENDPOINTS, "wardle", eps, Opts())
        await self.settle()

    async def sync(self) -> dict[str, Any]:
        """One availability sync of the remote APIService; its condition."""
        obj = self.cache.get(INFO, None, NAME)
        assert obj is not None
        await self.aggregator.available._sync(obj)
        await self.settle()
        got = self.cache.get(INFO, None, NAME)
        assert got is not None
        return next(c for c in got["status"]["conditions"] if c["type"] == "Available")


@pytest.fixture
def front_proxy(tmp_path: Path) -> tuple[Path, tuple[str, str]]:
    ca = CertificateAuthority.create("front-proxy-ca")
    ca_file = tmp_path / "front-proxy-ca.crt"
    ca_file.write_bytes(ca.pair.cert_pem)
    crt, key = ca.issue("front-proxy-client", usages=("client",)).save(tmp_path, "fp-client")
    return ca_file, (str(crt), str(key))


@pytest.fixture
async def env(front_proxy: tuple[Path, tuple[str, str]]) -> AsyncIterator[Env]:
    ca_file, cert = front_proxy
    async with running(Env, {"wardle": {}}) as e:
        e.aggregator = Aggregator(e.store, e.cache, cert)
        async with AggregatedServer(str(ca_file)) as server:
            e.server = server
            yield e
        await e.aggregator.aclose()


async def _refused(env: Env, **spec: Any) -> list[tuple[str, str]]:
    name = spec.pop("name", None) or f"{spec.get('version', '')}.{spec.get('group', '')}"
    with pytest.raises(ApiError) as e:
        await env.apiservice(name, **spec)
    assert e.value.code == 422
    return [(c.field, c.message) for c in e.value.causes]


GOOD = {"group": "a.example.com", "version": "v1", "groupPriorityMinimum": 100,
        "versionPriority": 10}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": "v1.b.example.com"}, "metadata.name",
         'Invalid value: "v1.b.example.com": must be `spec.version+"."+spec.group`: '
         '"v1.a.example.com"'),
        ({"group": "", "version": "v2", "name": "v2."}, "spec.group",
         "Required value: only v1 may have an empty group and it better be legacy kube"),
        ({"group": "A_b", "name": "v1.A_b"}, "spec.group",
         'Invalid value: "A_b": a lowercase RFC 1123 subdomain must consist of lower case '
         "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
         "character (e.g. 'example.com', regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
        ({"version": "1v", "name": "1v.a.example.com"}, "spec.version",
         'Invalid value: "1v": a DNS-1035 label must consist of lower case alphanumeric '
         "characters or '-', start with an alphabetic character, and end with an "
         "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
         "is '[a-z]([-a-z0-9]*[a-z0-9])?')"),
        ({"groupPriorityMinimum": 0}, "spec.groupPriorityMinimum",
         "Invalid value: 0: must be positive and less than 20000"),
        ({"groupPriorityMinimum": 20001}, "spec.groupPriorityMinimum",
         "Invalid value: 20001: must be positive and less than 20000"),
        ({"versionPriority": 1001}, "spec.versionPriority",
         "Invalid value: 1001: must be positive and less than 1000"),
        ({"caBundle": "AAEC"}, "spec.caBundle",
         'Invalid value: "3 bytes": local APIServices may not have a caBundle'),
        ({"insecureSkipTLSVerify": True}, "spec.insecureSkipTLSVerify",
         "Invalid value: true: local APIServices may not have insecureSkipTLSVerify"),
        ({"service": {"name": "api"}}, "spec.service.namespace", "Required value"),
        ({"service": {"namespace": "x", "name": "api", "port": 70000}}, "spec.service.port",
         "Invalid value: 70000: port is not valid: must be between 1 and 65535, inclusive"),
        ({"service": {"namespace": "x", "name": "api"}, "caBundle": "AAEC",
          "insecureSkipTLSVerify": True}, "spec.insecureSkipTLSVerify",
         "Invalid value: true: may not be true if caBundle is present"),
    ],
)  # fmt: skip
async def test_validation(env: Env, change: dict[str, Any], field: str, message: str) -> None:
    assert (field, message) in await _refused(env, **{**GOOD, **change})


async def test_local_apiservice_is_available_and_a_remote_one_starts_empty(env: Env) -> None:
    local = await env.apiservice("v1.a.example.com", **GOOD)
    [cond] = local["status"]["conditions"]
    assert (cond["type"], cond["status"], cond["reason"], cond["message"]) == (
        "Available", "True", "Local", "Local APIServices are always available")  # fmt: skip
    remote = await env.remote_apiservice()
    assert remote["status"] == {}
    assert remote["spec"]["service"]["port"] == 443  # defaulted
    table = table_for(INFO, [local, remote])
    rows = [r["cells"][:3] for r in table["rows"]]
    assert rows == [["v1.a.example.com", "Local", "True"], [NAME, "wardle/api", "Unknown"]]


async def test_autoregister_writes_the_built_in_group_versions(env: Env) -> None:
    want = desired()
    core = {"group": "", "version": "v1", "groupPriorityMinimum": 18000, "versionPriority": 1}
    assert want["v1."] == ("onstart", core)
    assert want["v1.apps"][1]["groupPriorityMinimum"] == 17800
    assert not any(n.endswith("apiregistration.k8s.io") for n in want)
    await env.aggregator.autoregister.sync(first=True)
    await env.settle()
    have = {o["metadata"]["name"]: o for o in env.cache.list(INFO)}
    assert set(want) <= set(have)
    assert have["v1.apps"]["metadata"]["labels"] == {AUTOMANAGED: "onstart"}
    assert have["v1.apps"]["status"]["conditions"][0]["reason"] == "Local"
    # A user's change to an onstart one stays after start; a true one nothing serves goes.
    cur = dict(have["v1.apps"], spec={**have["v1.apps"]["spec"], "versionPriority": 3})
    await env.store.update(INFO, None, "v1.apps", cur, Opts())
    stale = {"metadata": {"name": "v1.gone.example.com", "labels": {AUTOMANAGED: "true"}},
             "spec": {**GOOD, "group": "gone.example.com"}}  # fmt: skip
    await env.store.create(INFO, None, stale, Opts())
    await env.settle()
    await env.aggregator.autoregister.sync(first=False)
    await env.settle()
    assert env.cache.get(INFO, None, "v1.apps")["spec"]["versionPriority"] == 3  # type: ignore[index]
    assert env.cache.get(INFO, None, "v1.gone.example.com") is None


async def test_availability_is_found_step_by_step(env: Env) -> None:
    await env.remote_apiservice()
    cond = await env.sync()
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "False", "ServiceNotFound", 'service/api in "wardle" is not present')  # fmt: skip
    await env.backing_service(port_name="other")
    cond = await env.sync()
    assert (cond["reason"], cond["message"]) == (
        "MissingEndpoints",
        'endpoints for service/api in "wardle" have no addresses with port name "https"',
    )
    await env.store.delete(ENDPOINTS, "wardle", "api", DeleteOptions())
    await env.settle()
    assert (await env.sync())["reason"] == "EndpointsNotFound"
    eps = {"metadata": {"name": "api"}, "subsets": [{"addresses": [{"ip": "127.0.0.1"}],
           "ports": [{"name": "https", "port": env.server.port}]}]}  # fmt: skip
    await env.store.create(ENDPOINTS, "wardle", eps, Opts())
    await env.settle()
    env.server.fail_discovery = True
    cond = await env.sync()
    url = f"https://127.0.0.1:{env.server.port}{BASE}"
    assert (cond["reason"], cond["message"]) == (
        "FailedDiscoveryCheck",
        f"failing or missing response from {url}: bad status from {url}: 503",
    )
    env.server.fail_discovery = False
    cond = await env.sync()
    assert (cond["status"], cond["reason"], cond["message"]) == (
        "True", "Passed", "all checks passed")  # fmt: skip
    assert env.aggregator.apiservices.documents[NAME]["groupVersion"] == f"{GROUP}/{VERSION}"
    # The check asked as the aggregator, with the front-proxy certificate (the server
    # requires one).
    assert (env.server.seen[-1].user, env.server.seen[-1].groups) == (
        "system:kube-aggregator", ["system:masters"])  # fmt: skip


async def _api(env: Env) -> httpx.AsyncClient:
    app = RestApi(env.store, is_ready=lambda: True, aggregator=env.aggregator)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api")


async def test_requests_are_proxied_with_the_requesters_identity(env: Env) -> None:
    await env.remote_apiservice()
    await env.backing_service()
    async with await _api(env) as api:
        r = await api.get(f"{BASE}/namespaces/ns/flunders")
        assert (r.status_code, r.text, r.headers["content-type"]) == (
            503, "service unavailable\n", "text/plain; charset=utf-8")  # fmt: skip
        assert (await env.sync())["reason"] == "Passed"
        flunder = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
                   "metadata": {"name": "f1"}}  # fmt: skip
        r = await api.post(f"{BASE}/namespaces/ns/flunders", json=flunder,
                           headers={"Authorization": "Bearer secret"})  # fmt: skip
        assert r.status_code == 201, r.text
        seen = env.server.seen[-1]
        assert (seen.method, seen.path, seen.user) == (
            "POST", f"{BASE}/namespaces/ns/flunders", "system:unsecured")  # fmt: skip
        assert "system:masters" in seen.groups
        assert "authorization" not in seen.headers  # credentials stay here
        r = await api.get(f"{BASE}/namespaces/ns/flunders/f1")
        assert (r.status_code, r.json()["metadata"]["name"]) == (200, "f1")
        r = await api.get(f"{BASE}/namespaces/ns/flunders/nope")
        assert (r.status_code, r.json()["reason"]) == (404, "NotFound")
        # Discovery lists the group by its priority, and its resources once it answered.
        groups = (await api.get("/apis")).json()["groups"]
        names = [g["name"] for g in groups]
        assert names[0] == "apiregistration.k8s.io"
        assert names.index(GROUP) == len(names) - 1  # 2000 is below every built-in group
        r = await api.get(f"/apis/{GROUP}")
        assert r.json()["preferredVersion"] == {"groupVersion": f"{GROUP}/{VERSION}",
                                                "version": VERSION}  # fmt: skip
        accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        doc = (await api.get("/apis", headers={"Accept": accept})).json()
        [item] = [i for i in doc["items"] if i["metadata"]["name"] == GROUP]
        [version] = item["versions"]
        assert version["freshness"] == "Current"
        [flunders] = version["resources"]
        assert (flunders["resource"], flunders["scope"], flunders["shortNames"]) == (
            "flunders", "Namespaced", ["fl"])  # fmt: skip
        assert flunders["subresources"][0]["subresource"] == "status"


@contextlib.asynccontextmanager
async def _serving(env: Env) -> AsyncIterator[int]:
    """The RestApi on uvicorn on a loopback port (WebSockets need a real server)."""
    app = RestApi(env.store, is_ready=lambda: True, aggregator=env.aggregator)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, lifespan="off", loop="none"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await task


async def test_upgrade_requests_are_relayed(env: Env) -> None:
    await env.remote_apiservice()
    await env.backing_service()
    await env.sync()
    async with await _api(env) as api:
        flunder = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Flunder",
                   "metadata": {"name": "f1"}}  # fmt: skip
        assert (await api.post(f"{BASE}/namespaces/ns/flunders", json=flunder)).status_code == 201
    async with _serving(env) as port:
        url = f"ws://127.0.0.1:{port}{BASE}/namespaces/ns/flunders/f1/console?tty=1"
        async with websockets.connect(url, subprotocols=[CONSOLE_PROTOCOL, "other"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == CONSOLE_PROTOCOL
            assert await ws.recv() == "console of f1 for system:unsecured"
            await ws.send(b"ls -l")
            assert await ws.recv() == b"LS -L"
        seen = env.server.seen[-1]
        console = f"{BASE}/namespaces/ns/flunders/f1/console"
        assert (seen.path, seen.user, seen.headers["upgrade"]) == (
            console, "system:unsecured", "websocket")  # fmt: skip
        assert "system:masters" in seen.groups
        # The server's refusal comes back as it was answered.
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url.replace("/f1/", "/nope/"))
        assert refused.value.response.status_code == 404
        assert b"no console at" in refused.value.response.body
        # An APIService that is not available refuses with kube's 503.
        env.server.fail_discovery = True
        assert (await env.sync())["status"] == "False"
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url)
        response = refused.value.response
        assert (response.status_code, response.body) == (503, b"service unavailable\n")


def test_identity_headers() -> None:
    user = UserInfo("jane", groups=("dev", "system:authenticated"),
                    extra={"example.org/team": ("a", "b"), "scopes": ("x y",)})  # fmt: skip
    assert identity_headers(user) == [
        ("X-Remote-User", "jane"),
        ("X-Remote-Group", "dev"),
        ("X-Remote-Group", "system:authenticated"),
        ("X-Remote-Extra-example.org%2Fteam", "a"),
        ("X-Remote-Extra-example.org%2Fteam", "b"),
        ("X-Remote-Extra-scopes", "x y"),
    ]


def test_request_header_authentication(front_proxy: tuple[Path, tuple[str, str]]) -> None:
    ca_file, (crt, _key) = front_proxy
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    der = x509.load_pem_x509_certificate(Path(crt).read_bytes()).public_bytes(Encoding.DER)
    config = RequestHeaderConfig(str(ca_file), ("front-proxy-client",)).loaded()
    headers = Headers(raw=[(b"x-remote-user", b"jane"), (b"x-remote-group", b"a"),
                           (b"x-remote-group", b"b"),
                           (b"x-remote-extra-example.org%2fteam", b"t")])  # fmt: skip
    user = requestheader.authenticate(config, der, headers)
    assert user == UserInfo("jane", groups=("a", "b"), extra={"example.org/team": ("t",)})
    assert requestheader.authenticate(config, der, Headers()) is None  # no user named
    strict = RequestHeaderConfig(str(ca_file), ("someone-else",)).loaded()
    with pytest.raises(RequestHeaderError, match="x509: subject with cn=front-proxy-client"):
        requestheader.authenticate(strict, der, headers)
    other = CertificateAuthority.create("other").issue("front-proxy-client", usages=("client",))
    assert (
        requestheader.authenticate(config, other.cert.public_bytes(Encoding.DER), headers) is None
    )


@pytest.mark.parametrize(
    ("method", "path", "watch", "expected"),
    [
        ("GET", f"{BASE}", False, (False, "get", "", "", "", "")),
        ("GET", f"{BASE}/namespaces/ns/flunders", False, (True, "list", "flunders", "ns", "", "")),
        ("GET", f"{BASE}/namespaces/ns/flunders", True, (True, "watch", "flunders", "ns", "", "")),
        ("GET", f"{BASE}/flunders", False, (True, "list", "flunders", "", "", "")),
        ("DELETE", f"{BASE}/namespaces/ns/flunders", False,
         (True, "deletecollection", "flunders", "ns", "", "")),
        ("PUT", f"{BASE}/namespaces/ns/flunders/f/status", False,
         (True, "update", "flunders", "ns", "f", "status")),
        ("GET", f"{BASE}/namespaces/ns", False, (True, "get", "namespaces", "ns", "ns", "")),
    ],
)  # fmt: skip
def test_path_attributes(method: str, path: str, watch: bool, expected: tuple[Any, ...]) -> None:
    a = path_attributes(UserInfo("u"), method, path, watch)
    got = (a.resource_request, a.verb, a.resource, a.namespace, a.name, a.subresource)
    assert got == expected


def test_trust_configmap_merges() -> None:
    current = {"requestheader-allowed-names": '["a"]', "client-ca-file": ""}
    mine = {"requestheader-allowed-names": '["b","a"]'}
    assert trust.merged(current, mine)["requestheader-allowed-names"] == '["a","b"]'


def test_remote_of_a_local_apiservice_is_none() -> None:
    assert remote_of({"metadata": {"name": "v1."}, "spec": {"version": "v1"}}) is None
    assert json.dumps(desired()["v1.apps"][1])  # plain data
