"""Custom resources (``make bench``): creates/s of a custom resource whose CRD has a schema
of realistic size (about 40 properties, nested objects, a list-map, patterns, ranges,
defaults) and two ``x-kubernetes-validations`` rules, beside ConfigMap creates of the
same byte size in the same run (the baseline: the same store path without a schema).

Each round starts a fresh etcd, NATS and apiserver (``tests/e2e/cluster.py``), installs
the CRD, waits until it is Established, then runs ``--creates`` ConfigMap creates and as
many custom-resource creates with 32 concurrent keep-alive clients, alternating order
between rounds to see the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
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
GROUP = "bench.skiff.io"


def _port() -> dict:
    return {
        "type": "object",
        "required": ["name", "port"],
        "properties": {
            "name": {"type": "string", "maxLength": 15},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "protocol": {"type": "string", "enum": ["TCP", "UDP", "SCTP"], "default": "TCP"},
        },
    }


SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["image", "replicas"],
            "x-kubernetes-validations": [
                {
                    "rule": "self.minReplicas <= self.replicas",
                    "message": "replicas must not be below minReplicas",
                },
                {"rule": "self.ports.all(p, p.port != 22)", "message": "port 22 is reserved"},
            ],
            "properties": {
                "image": {"type": "string", "pattern": "^[a-z0-9./:-]+$", "maxLength": 255},
                "replicas": {"type": "integer", "minimum": 0, "maximum": 1000},
                "minReplicas": {"type": "integer", "minimum": 0, "default": 0},
                "paused": {"type": "boolean", "default": False},
                "strategy": {
                    "type": "string",
                    "enum": ["Recreate", "Rolling"],
                    "default": "Rolling",
                },
                "resources": {
                    "type": "object",
                    "properties": {
                        "cpu": {"x-kubernetes-int-or-string": True},
                        "memory": {"x-kubernetes-int-or-string": True},
                    },
                },
                "ports": {
                    "type": "array",
                    "maxItems": 16,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": _port(),
                },
                "env": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 1024},
                },
                "schedule": {
                    "type": "object",
                    "properties": {
                        "cron": {"type": "string", "pattern": r"^(\S+\s+){4}\S+$"},
                        "timeZone": {"type": "string"},
                        "suspend": {"type": "boolean"},
                    },
                },
                "owner": {
                    "type": "object",
                    "properties": {
                        "team": {"type": "string", "minLength": 1},
                        "email": {"type": "string", "format": "email"},
                        "tier": {"type": "integer", "minimum": 1, "maximum": 3},
                    },
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "readyReplicas": {"type": "integer"},
                "phase": {"type": "string"},
                "conditions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string"},
                            "status": {"type": "string"},
                            "reason": {"type": "string"},
                            "message": {"type": "string"},
                            "lastTransitionTime": {"type": "string", "format": "date-time"},
                        },
                    },
                },
            },
        },
    },
}

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"apps.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "apps", "kind": "App"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": SCHEMA},
                "subresources": {"status": {}},
            }
        ],
    },
}


def app(name: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "App",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {
            "image": "registry.example.com/team/app:1.2.3",
            "replicas": 3,
            "minReplicas": 1,
            "resources": {"cpu": "500m", "memory": "256Mi"},
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
            "env": {"MODE": "bench", "LOG_LEVEL": "info"},
            "schedule": {"cron": "0 * * * *", "timeZone": "UTC"},
            "owner": {"team": "platform", "email": "platform@example.com", "tier": 2},
        },
    }


def configmap(name: str, size: int) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"payload": "x" * size},
    }


async def _creates(clients: list[RawHttp], path: str, make, total: int) -> dict:  # type: ignore[no-untyped-def]
    async def one(cl: RawHttp, i: int) -> None:
        code, body = await cl.request("POST", path, orjson.dumps(make(i)))
        if code != 201:
            raise RuntimeError(f"create {i}: {code} {body[:300]!r}")

    wall, lat = await pooled(clients, total, one)
    return {
        "per_s": round(total / wall),
        "p50_ms": round(pct(lat, 50) * 1000, 1),
        "p99_ms": round(pct(lat, 99) * 1000, 1),
    }


async def _round(total: int, crs_first: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="skiff-bench-crds-") as tmp:
        c = start_cluster(Path(tmp))
        try:
            admin = RawHttp(c.url)
            await admin.request(
                "POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": NS}})
            )
            code, body = await admin.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", orjson.dumps(CRD)
            )
            assert code == 201, body
            for _ in range(200):
                code, _ = await admin.request("GET", f"/apis/{GROUP}/v1/namespaces/{NS}/apps")
                if code == 200:
                    break
                await asyncio.sleep(0.05)
            size = len(orjson.dumps(app("app-00000")["spec"]))
            clients = [RawHttp(c.url) for _ in range(CONC)]
            runs = [
                ("custom", f"/apis/{GROUP}/v1/namespaces/{NS}/apps", lambda i: app(f"app-{i:05}")),
                (
                    "configmap",
                    f"/api/v1/namespaces/{NS}/configmaps",
                    lambda i: configmap(f"cm-{i:05}", size),
                ),
            ]
            out = {}
            for label, path, make in runs if crs_first else reversed(runs):
                out[label] = await _creates(clients, path, make, total)
            out["ratio"] = round(out["custom"]["per_s"] / out["configmap"]["per_s"], 2)
            for cl in clients:
                cl.close()
            admin.close()
            return out
        finally:
            c.stop()


async def run(args: argparse.Namespace) -> dict:
    results: dict = {
        "machine": machine(),
        "date": time.strftime("%F %T"),
        "creates": args.creates,
    }
    for r in range(args.rounds):
        results[f"round_{r + 1}"] = await _round(args.creates, crs_first=r % 2 == 0)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--creates", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "crds.json"))
    args = p.parse_args()
    write_result(args.out, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
