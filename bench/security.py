"""The cost of security (``make bench``): the same requests against an apiserver serving
plain HTTP without authentication or authorization, and against one serving HTTPS with
authentication and ``Node,RBAC`` authorization, in the same run (alternating, to see the
machine's noise).

Each round starts a fresh etcd, NATS and apiserver (``tests/e2e/cluster.py``) and runs
with 32 concurrent keep-alive clients: ``--creates`` pod creates, then as many pod GETs.
On the secure apiserver the clients are a user with a client certificate and a
service account with a bound token, neither in ``system:masters`` (which would skip
RBAC): a Role in the namespace lets them create and get pods, so every request pays for
the TLS record layer, the authenticator (x509, or the JWT's RS256 signature and the
account's lookup) and RBAC's walk of the bindings. The TLS handshake is paid once per
connection, as clients keep connections alive.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from run import RawHttp, machine, pct, pod, pooled, write_result  # noqa: E402

from cluster import Cluster, start_cluster  # noqa: E402
from skiff.client.rest import ApiClient  # noqa: E402

NS = "bench"
CONC = 32


async def _setup_secure(c: Cluster) -> str:
    """The namespace, a Role for pods, the users bound to it; the account's token."""
    async with c.client() as admin:
        await admin.create("namespaces", {"metadata": {"name": NS}})
        await admin.create("serviceaccounts", {"metadata": {"name": "bench"}}, NS)
        await admin.create(
            "roles.rbac.authorization.k8s.io",
            {
                "metadata": {"name": "pods"},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get"]}],
            },
            NS,
        )
        await admin.create(
            "rolebindings.rbac.authorization.k8s.io",
            {
                "metadata": {"name": "pods"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "pods",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench"},
                    {"kind": "ServiceAccount", "name": "bench", "namespace": NS},
                ],
            },
            NS,
        )
        answer = await admin.create_subresource(
            "serviceaccounts", "bench", "token", {"spec": {"expirationSeconds": 3600}}, NS
        )
    return str(answer["status"]["token"])


async def _load(clients: list[RawHttp], total: int, offset: int) -> dict:
    failures = 0

    async def create(cl: RawHttp, i: int) -> None:
        nonlocal failures
        body = orjson.dumps(pod(f"p{offset + i}"))
        status, _ = await cl.request("POST", f"/api/v1/namespaces/{NS}/pods", body)
        failures += status != 201

    async def get(cl: RawHttp, i: int) -> None:
        nonlocal failures
        status, _ = await cl.request("GET", f"/api/v1/namespaces/{NS}/pods/p{offset + i}")
        failures += status != 200

    out = {}
    for name, fn in (("creates", create), ("gets", get)):
        wall, lat = await pooled(clients, total, fn)
        out[name] = {
            "per_s": total / wall,
            "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3,
        }
    out["failures"] = failures
    for cl in clients:
        cl.close()
    return out


async def round_plain(total: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-sec-") as tmp:
        c = start_cluster(Path(tmp))
        try:
            async with ApiClient(c.url) as admin:
                await admin.create("namespaces", {"metadata": {"name": NS}})
            return await _load([RawHttp(c.url) for _ in range(CONC)], total, 0)
        finally:
            c.stop()


async def round_secure(total: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-sec-") as tmp:
        c = start_cluster(Path(tmp), secure=True)
        try:
            token = await _setup_secure(c)
            assert c.pki is not None
            cert = ssl.create_default_context(cafile=str(c.pki / "ca.crt"))
            cert.load_cert_chain(*c.user_certificate("bench"))
            plain_ca = ssl.create_default_context(cafile=str(c.pki / "ca.crt"))
            x509 = await _load([RawHttp(c.url, ssl=cert) for _ in range(CONC)], total, 0)
            bearer = f"Authorization: Bearer {token}\r\n"
            tokens = await _load(
                [RawHttp(c.url, ssl=plain_ca, headers=bearer) for _ in range(CONC)], total, total
            )
            return {"x509": x509, "token": tokens}
        finally:
            c.stop()


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "machine": machine(),
        "date": time.strftime("%F %T"),
        "requests_per_kind": args.requests,
        "rounds": [],
    }
    for r in range(args.rounds):
        print(f"round {r + 1}: plain ...", flush=True)
        plain = await round_plain(args.requests)
        print(f"round {r + 1}: TLS + authentication + Node,RBAC ...", flush=True)
        secure = await round_secure(args.requests)
        results["rounds"].append({"plain": plain, "secure": secure})
    for kind in ("creates", "gets"):
        for who in ("x509", "token"):
            ratios = [
                rd["secure"][who][kind]["per_s"] / rd["plain"][kind]["per_s"]
                for rd in results["rounds"]
            ]
            results[f"{kind}_{who}_vs_plain"] = ratios
    return results


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=3000, help="creates, then as many GETs")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "security.json"))
    args = p.parse_args()
    write_result(args.out, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
