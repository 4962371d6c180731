"""Admission webhooks in the request path (``make bench``): ConfigMap create latency (p50,
p99) and rate with one mutating webhook (a JSON patch adding a label) and one validating
webhook (allows) in the path, beside the same creates with no webhook in the same run
(the baseline).

Each round starts a fresh etcd, NATS and apiserver (``tests/e2e/cluster.py``) and a
webhook server in its own process (HTTPS on loopback, ``services/apiserver/tests/
webhookserver.py``), then runs ``--creates`` creates with 32 concurrent keep-alive
clients without webhooks and with them, alternating the order between rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "bench"))

from run import RawHttp, machine, pct, pooled, write_result  # noqa: E402

from cluster import start_cluster  # noqa: E402

NS = "bench"
CONC = 32
ADMISSION = "/apis/admissionregistration.k8s.io/v1"
SERVER = """
import asyncio, json, sys
sys.path.insert(0, sys.argv[1])
from webhookserver import WebhookServer, allow, patch_answer
LABEL = [{"op": "add", "path": "/metadata/labels/webhook", "value": "seen"}]
def answer(path, review):
    return patch_answer(review, LABEL) if path.startswith("/mutate") else allow(review)
async def main():
    async with WebhookServer(answer) as s:
        print(json.dumps({"port": s.port, "ca": s.ca_bundle}), flush=True)
        await asyncio.Event().wait()
asyncio.run(main())
"""


def _configuration(kind: str, path: str, port: int, ca: str) -> dict:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": kind,
        "metadata": {"name": "bench"},
        "webhooks": [
            {
                "name": f"{path.strip('/')}.bench.skiff.io",
                "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["configmaps"]}],
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
            }
        ],
    }  # fmt: skip


def configmap(name: str) -> dict:
    return {"metadata": {"name": name, "labels": {"app": "bench"}}, "data": {"a": "x" * 256}}


async def _creates(clients: list[RawHttp], prefix: str, total: int) -> dict:
    async def one(cl: RawHttp, i: int) -> None:
        body = orjson.dumps(configmap(f"{prefix}-{i:05}"))
        code, out = await cl.request("POST", f"/api/v1/namespaces/{NS}/configmaps", body)
        if code != 201:
            raise RuntimeError(f"create {i}: {code} {out[:300]!r}")

    wall, lat = await pooled(clients, total, one)
    return {
        "per_s": round(total / wall),
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
    }


async def _configure(admin: RawHttp, port: int, ca: str, on: bool) -> None:
    for kind, plural, path in (
        ("MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "/mutate"),
        ("ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "/validate"),
    ):
        if on:
            code, out = await admin.request(
                "POST", f"{ADMISSION}/{plural}", orjson.dumps(_configuration(kind, path, port, ca))
            )
        else:
            code, out = await admin.request("DELETE", f"{ADMISSION}/{plural}/bench")
        assert code in (200, 201), out
    for i in range(100):  # until the apiserver's watch cache has them (or has not)
        code, out = await admin.request(
            "POST", f"/api/v1/namespaces/{NS}/configmaps?dryRun=All",
            orjson.dumps(configmap(f"probe-{i}")),
        )  # fmt: skip
        assert code == 201, out
        if (b'"webhook":"seen"' in out) == on:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("the webhooks did not take effect")


async def _round(total: int, hooks_first: bool, port: int, ca: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-webhooks-") as tmp:
        c = start_cluster(Path(tmp))
        try:
            admin = RawHttp(c.url)
            await admin.request(
                "POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}})
            )
            clients = [RawHttp(c.url) for _ in range(CONC)]
            out = {}
            for with_hooks in (True, False) if hooks_first else (False, True):
                label = "webhooks" if with_hooks else "none"
                if with_hooks:
                    await _configure(admin, port, ca, True)
                out[label] = await _creates(clients, label, total)
                if with_hooks:
                    await _configure(admin, port, ca, False)
            out["p99_ratio"] = round(out["webhooks"]["p99_ms"] / out["none"]["p99_ms"], 2)
            out["rate_ratio"] = round(out["webhooks"]["per_s"] / out["none"]["per_s"], 2)
            for cl in clients:
                cl.close()
            admin.close()
            return out
        finally:
            c.stop()


async def run(args: argparse.Namespace, port: int, ca: str) -> dict:
    results: dict = {"machine": machine(), "date": time.strftime("%F %T"),
                     "creates": args.creates}  # fmt: skip
    for r in range(args.rounds):
        results[f"round_{r + 1}"] = await _round(args.creates, r % 2 == 0, port, ca)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--creates", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "webhooks.json"))
    args = p.parse_args()
    helpers = str(ROOT / "services" / "apiserver" / "tests")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, helpers], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        started = json.loads(server.stdout.readline())
        write_result(args.out, asyncio.run(run(args, started["port"], started["ca"])))
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
