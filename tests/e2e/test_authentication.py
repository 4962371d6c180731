"""Authentication against a real apiserver serving HTTPS with kubeadm's PKI, driven by the
real kubectl and the official Python client: client certificates, service-account tokens
from TokenRequest (audiences, expiry, binding to a pod), bootstrap tokens, anonymous
requests, and the 401s for everything else; TokenReview and ``kubectl auth whoami``."""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
import yaml
from clusterenv import started_cluster

from cluster import Cluster, wait_until
from skiff.bootstrap import token_secret
from skiff.jose import load_signing_key, sign
from skiff.pki import CertificateAuthority

ISSUER = "https://kubernetes.default.svc.cluster.local"
UNAUTHORIZED = "You must be logged in to the server"
"""What kubectl says on a 401."""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started_cluster(tmp_path_factory, "authn", secure=True)


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> Path:
    return cluster.kubeconfig()


def kubectl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", *args], capture_output=True, text=True, check=check)


def as_token(cluster: Cluster, token: str, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    """kubectl with a bearer token and nothing else, the CA verified."""
    assert cluster.pki is not None
    return kubectl(
        "--kubeconfig=/dev/null",
        f"--server={cluster.url}",
        f"--certificate-authority={cluster.pki / 'ca.crt'}",
        f"--token={token}",
        *args,
        check=check,
    )


def whoami(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["status"]["userInfo"]


def api(  # type: ignore[type-arg]
    cluster: Cluster, path: str, body: dict | None = None, token: str = "", anonymous: bool = False
) -> tuple[int, dict]:
    """A raw HTTPS request verified against the cluster CA: (status, JSON body). As the
    bearer of ``token``, else anonymous, else with a ``system:masters`` certificate."""
    assert cluster.pki is not None
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    if not token and not anonymous:
        context.load_cert_chain(*cluster.user_certificate("test-admin", ("system:masters",)))
    req = urllib.request.Request(
        cluster.url + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(req, context=context, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def official_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def test_client_certificates_name_the_user(cluster: Cluster, admin: Path) -> None:
    got = whoami(kubectl("--kubeconfig", str(admin), "auth", "whoami", "-o", "json"))
    assert got["username"] == "kubernetes-super-admin"
    assert got["groups"] == ["system:masters", "system:authenticated"]
    assert got["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("X509SHA256=")
    dev = cluster.user_kubeconfig("jane", ("dev", "qa"))
    table = kubectl("--kubeconfig", str(dev), "auth", "whoami").stdout
    assert "jane" in table and "[dev qa system:authenticated]" in table
    with official_client(dev) as c:
        review = kubernetes.client.AuthenticationV1Api(c).create_self_subject_review(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        assert review.status.user_info.username == "jane"
        # Who she is does not say what she may do: RBAC grants her nothing yet.
        with pytest.raises(kubernetes.client.ApiException) as e:
            kubernetes.client.CoreV1Api(c).list_namespace()
        assert e.value.status == 403


def test_no_credentials_is_anonymous(cluster: Cluster) -> None:
    # (kubectl without credentials asks for a user name, so plain HTTPS requests here.)
    code, version = api(cluster, "/version", anonymous=True)
    assert code == 200 and version["major"] == "1"
    code, status = api(
        cluster, "/apis/authentication.k8s.io/v1/selfsubjectreviews", {}, anonymous=True
    )
    assert code == 403
    assert status["message"] == (
        'selfsubjectreviews.authentication.k8s.io is forbidden: User "system:anonymous" cannot '
        'create resource "selfsubjectreviews" in API group "authentication.k8s.io" at the '
        "cluster scope"
    )


def test_a_certificate_from_another_ca_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    other = CertificateAuthority.create("someone-else")
    pair = other.issue("kubernetes-admin", organizations=("system:masters",), usages=("client",))
    cert, key = pair.save(tmp_path, "intruder")
    assert cluster.pki is not None
    context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    context.load_cert_chain(cert, key)
    # The handshake fails: the server takes only certificates its client CA signed.
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(f"{cluster.url}/api/v1/namespaces", context=context, timeout=10)


def test_an_unknown_bearer_token_is_401_even_with_anonymous_on(cluster: Cluster) -> None:
    code, body = api(cluster, "/version", token="not-a-token")
    assert code == 401
    assert body["reason"] == "Unauthorized" and body["message"] == "Unauthorized"
    result = as_token(cluster, "abcdef.0000000000000000", "get", "ns", check=False)
    assert result.returncode != 0 and UNAUTHORIZED in result.stderr


def test_service_account_tokens(cluster: Cluster, admin: Path) -> None:
    k = ("--kubeconfig", str(admin))
    kubectl(*k, "create", "serviceaccount", "robot")
    token = kubectl(*k, "create", "token", "robot").stdout.strip()
    got = whoami(as_token(cluster, token, "auth", "whoami", "-o", "json"))
    assert got["username"] == "system:serviceaccount:default:robot"
    assert got["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:default",
        "system:authenticated",
    ]
    sa = yaml.safe_load(kubectl(*k, "get", "sa", "robot", "-o", "yaml").stdout)
    assert got["uid"] == sa["metadata"]["uid"]
    # A token review says the same, through the official client.
    with official_client(admin) as c:
        review = kubernetes.client.AuthenticationV1Api(c).create_token_review(
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "spec": {"token": token},
            }
        )
        assert review.status.authenticated is True
        assert review.status.user.username == "system:serviceaccount:default:robot"
        assert review.status.audiences == [ISSUER]
        # The official client authenticates with it too.
        conf = kubernetes.client.Configuration()
        conf.host = cluster.url
        conf.ssl_ca_cert = str(cluster.pki / "ca.crt")  # type: ignore[operator]
        conf.api_key = {"authorization": f"Bearer {token}"}
        with kubernetes.client.ApiClient(conf) as sa_client:
            review = kubernetes.client.AuthenticationV1Api(sa_client).create_self_subject_review(
                {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            )
            assert review.status.user_info.username == "system:serviceaccount:default:robot"


def test_a_token_for_another_audience_does_not_open_the_api(cluster: Cluster, admin: Path) -> None:
    k = ("--kubeconfig", str(admin))
    kubectl(*k, "create", "serviceaccount", "vault-reader")
    token = kubectl(*k, "create", "token", "vault-reader", "--audience", "vault").stdout.strip()
    assert api(cluster, "/version", token=token)[0] == 401
    # ... but a review for that audience accepts it, as a vault server would ask.
    body = {"spec": {"token": token, "audiences": ["vault"]}}
    code, review = api(cluster, "/apis/authentication.k8s.io/v1/tokenreviews", body)
    assert code == 201 and review["status"]["audiences"] == ["vault"]
    body = {"spec": {"token": token}}
    code, review = api(cluster, "/apis/authentication.k8s.io/v1/tokenreviews", body)
    assert review["status"]["authenticated"] is False
    assert "token audiences" in review["status"]["error"]


def test_an_expired_token_is_refused(cluster: Cluster, admin: Path) -> None:
    assert cluster.pki is not None
    kubectl("--kubeconfig", str(admin), "create", "serviceaccount", "old")
    sa = yaml.safe_load(
        kubectl("--kubeconfig", str(admin), "get", "sa", "old", "-o", "yaml").stdout
    )
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "system:serviceaccount:default:old",
        "aud": [ISSUER],
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "kubernetes.io": {
            "namespace": "default",
            "serviceaccount": {"name": "old", "uid": sa["metadata"]["uid"]},
        },
    }
    expired = sign(claims, load_signing_key(cluster.pki / "sa.key"))
    assert api(cluster, "/version", token=expired)[0] == 401
    code, review = api(
        cluster, "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": expired}}
    )
    assert code == 201
    assert review["status"]["error"] == "[invalid bearer token, service account token has expired]"
    # The same claims, fresh, work: expiry was the only fault.
    claims["exp"] = now + 600
    fresh = sign(claims, load_signing_key(cluster.pki / "sa.key"))
    assert api(cluster, "/version", token=fresh)[0] == 200
    # Signed by another key: refused.
    from skiff.pki import new_key

    forged = sign(claims, new_key())
    assert api(cluster, "/version", token=forged)[0] == 401


def test_a_pod_bound_token_dies_with_its_pod(cluster: Cluster, admin: Path) -> None:
    k = ("--kubeconfig", str(admin))
    kubectl(*k, "create", "serviceaccount", "worker")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder"},
        "spec": {"serviceAccountName": "worker", "containers": [{"name": "c", "image": "x"}]},
    }
    subprocess.run(
        ["kubectl", *k, "create", "-f", "-"], input=json.dumps(pod), text=True, check=True
    )
    bound = ("--bound-object-kind", "Pod", "--bound-object-name", "holder")
    token = kubectl(*k, "create", "token", "worker", *bound).stdout.strip()
    got = whoami(as_token(cluster, token, "auth", "whoami", "-o", "json"))
    assert got["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    # Another account cannot be bound to this pod.
    wrong = kubectl(*k, "create", "token", "robot", *bound, check=False)
    assert wrong.returncode != 0
    assert 'cannot bind token for serviceaccount "robot" to pod running with different ' in (
        wrong.stderr
    )
    kubectl(*k, "delete", "pod", "holder", "--wait=true")
    wait_until(
        lambda: api(cluster, "/version", token=token)[0] == 401,
        timeout=30,  # the apiserver trusts an authenticated token for 10 s
        what="the bound token refused",
    )


def test_token_requests_are_validated(cluster: Cluster, admin: Path) -> None:
    k = ("--kubeconfig", str(admin))
    short = kubectl(*k, "create", "token", "robot", "--duration=5m", check=False)
    assert short.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than " in (
        short.stderr
    )
    missing = kubectl(*k, "create", "token", "nobody", check=False)
    assert 'serviceaccounts "nobody" not found' in missing.stderr
    long = kubectl(*k, "create", "token", "robot", "--duration=2h", "-o", "json")
    status = json.loads(long.stdout)["status"]
    left = dt.datetime.fromisoformat(status["expirationTimestamp"]) - dt.datetime.now(dt.UTC)
    assert 7100 < left.total_seconds() <= 7200


def test_bootstrap_tokens(cluster: Cluster, admin: Path) -> None:
    with official_client(admin) as c:
        core = kubernetes.client.CoreV1Api(c)
        core.create_namespaced_secret(
            "kube-system", token_secret("abcdef.0123456789abcdef", ttl=dt.timedelta(hours=1))
        )
        expired = token_secret(
            "zzzzzz.0123456789abcdef",
            ttl=dt.timedelta(hours=1),
            now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2),
        )
        core.create_namespaced_secret("kube-system", expired)
    got = whoami(as_token(cluster, "abcdef.0123456789abcdef", "auth", "whoami", "-o", "json"))
    assert got["username"] == "system:bootstrap:abcdef"
    assert got["groups"] == [
        "system:bootstrappers",
        "system:bootstrappers:kubeadm:default-node-token",
        "system:authenticated",
    ]
    for bad in ("abcdef.0123456789abcdee", "zzzzzz.0123456789abcdef"):
        assert api(cluster, "/version", token=bad)[0] == 401


def test_without_anonymous_auth_no_credentials_is_401(cluster: Cluster) -> None:
    index = len(cluster.apiservers)
    cluster.start_apiserver(pump=False, env={"SKIFF_ANONYMOUS_AUTH": "false"})
    try:
        assert cluster.pki is not None
        context = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{cluster.url_of(index)}/version", context=context)
        assert e.value.code == 401
        assert json.loads(e.value.read())["reason"] == "Unauthorized"
        with official_client(cluster.kubeconfig(index)) as c:
            kubernetes.client.CoreV1Api(c).list_namespace()
    finally:
        cluster.apiservers[index].stop()


def test_reviews_only_answer_create(cluster: Cluster) -> None:
    code, body = api(cluster, "/apis/authentication.k8s.io/v1/tokenreviews")
    assert code == 405 and body["reason"] == "MethodNotAllowed"
    code, body = api(cluster, "/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {}})
    assert code == 400
    assert body["message"] == "token is required for TokenReview in authentication"


def test_etcd_takes_only_clients_with_its_certificates(cluster: Cluster) -> None:
    assert cluster.pki is not None
    e = cluster.pki / "etcd"
    base = ["etcdctl", f"--endpoints=https://127.0.0.1:{cluster.etcd_port}", "--dial-timeout=3s"]
    query = ["get", "/registry/core/namespaces/", "--prefix", "--keys-only"]

    def etcdctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args, *query], capture_output=True, text=True, timeout=30)

    holder = etcdctl(
        f"--cacert={e / 'ca.crt'}",
        f"--cert={cluster.pki / 'apiserver-etcd-client.crt'}",
        f"--key={cluster.pki / 'apiserver-etcd-client.key'}",
    )
    assert holder.returncode == 0 and "/registry/core/namespaces/kube-system" in holder.stdout
    assert etcdctl(f"--cacert={e / 'ca.crt'}").returncode != 0  # no client certificate
    # A certificate of the cluster's CA (not etcd's) is no key to etcd either.
    admin = cluster.user_certificate("kubernetes-admin", ("system:masters",))
    wrong = etcdctl(f"--cacert={e / 'ca.crt'}", f"--cert={admin[0]}", f"--key={admin[1]}")
    assert wrong.returncode != 0


async def test_only_the_event_pump_publishes_watch_events(cluster: Cluster, admin: Path) -> None:
    import asyncio

    import nats

    from skiff.client.rest import ApiClient

    assert cluster.pki is not None
    n = cluster.pki / "nats"

    def tls(who: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(n / "ca.crt"))
        if who:
            ctx.load_cert_chain(n / f"{who}.crt", n / f"{who}.key")
        return ctx

    # No client certificate: no connection at all.
    with pytest.raises(Exception):  # noqa: B017 - the TLS alert surfaces as ssl or nats errors
        await nats.connect(
            cluster.nats_url, tls=tls(None), allow_reconnect=False, connect_timeout=3
        )
    async with ApiClient.from_kubeconfig(str(admin)) as client:
        seen: list[str] = []

        async def watch() -> None:
            async for _type, obj in client.watch("configmaps", "default"):
                seen.append(obj["metadata"]["name"])

        watching = asyncio.create_task(watch())
        await asyncio.sleep(1)
        errors: list[str] = []

        async def on_error(e: Exception) -> None:
            errors.append(str(e))

        # A watch cache's identity may read the stream, not write to it: a forged event
        # is refused by NATS and never reaches a watcher.
        reader = await nats.connect(cluster.nats_url, tls=tls("watch-cache"), error_cb=on_error)
        forged = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"forged"}}'
        headers = {
            "Skiff-Rev": "999999",
            "Skiff-Key": "/registry/core/configmaps/default/forged",
            "Skiff-Type": "PUT",
        }
        await reader.publish("skiff.events.core.configmaps", forged, headers=headers)
        await reader.flush()
        await client.create("configmaps", {"metadata": {"name": "real"}}, "default")
        for _ in range(50):
            if "real" in seen:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        watching.cancel()
        await reader.close()
        assert "real" in seen and "forged" not in seen
        assert any("permissions violation" in e for e in errors), errors
