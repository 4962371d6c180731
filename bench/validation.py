"""Kubernetes' semantic validation (``make bench``): the cost of the registry's
per-kind rules (kube's ``validation`` packages) for realistic objects, beside the schema
check every create already pays (decoding against the OpenAPI definitions: types and
unknown fields), in the same process and run. In-process, no cluster: what validation
adds to each create on the apiserver's CPU.

Objects: a Deployment with a two-container pod template (ports, env, probes, resources,
volumes, affinity, topology spread), a Service with three ports, a PersistentVolumeClaim,
a ClusterRole with six rules, a Secret of type kubernetes.io/tls.
"""

from __future__ import annotations

import argparse
import base64
import copy
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run import machine, write_result  # noqa: E402

from skiff.api.defaults import apply_defaults  # noqa: E402
from skiff.api.resources import REGISTRY  # noqa: E402
from skiff.apiserver.registry import strategy_for  # noqa: E402

CONTAINER = {
    "name": "app", "image": "registry.example.com/team/app:1.2.3",
    "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
    "env": [{"name": "MODE", "value": "bench"}, {"name": "POD", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}],
    "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                  "limits": {"cpu": "1", "memory": "256Mi"}},
    "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 5},
    "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 10},
    "volumeMounts": [{"name": "config", "mountPath": "/etc/app"},
                     {"name": "data", "mountPath": "/data"}],
    "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]}},
}  # fmt: skip
OBJECTS: dict[tuple[str, str], dict[str, Any]] = {
    ("apps", "deployments"): {"metadata": {"name": "web", "namespace": "bench"}, "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                                 "maxUnavailable": 0}},
        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
            "containers": [CONTAINER, {**CONTAINER, "name": "sidecar", "ports": []}],
            "volumes": [{"name": "config", "configMap": {"name": "web"}},
                        {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                 "labelSelector": {"matchLabels": {"app": "web"}}}}]}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                           "whenUnsatisfiable": "ScheduleAnyway",
                                           "labelSelector": {"matchLabels": {"app": "web"}}}],
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "web",
                             "effect": "NoSchedule"}]}}}},
    ("", "services"): {"metadata": {"name": "web", "namespace": "bench"}, "spec": {
        "selector": {"app": "web"}, "type": "NodePort", "ports": [
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "metrics", "port": 9090, "protocol": "TCP"}]}},
    ("", "persistentvolumeclaims"): {"metadata": {"name": "data", "namespace": "bench"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                 "resources": {"requests": {"storage": "10Gi"}}}},
    ("rbac.authorization.k8s.io", "clusterroles"): {"metadata": {"name": "app"}, "rules": [
        {"apiGroups": [""], "resources": [r], "verbs": ["get", "list", "watch"]}
        for r in ("pods", "services", "configmaps", "secrets", "endpoints", "events")]},
    ("", "secrets"): {"metadata": {"name": "tls", "namespace": "bench"},
        "type": "kubernetes.io/tls", "data": {"tls.crt": base64.b64encode(b"c" * 2048).decode(),
                                              "tls.key": base64.b64encode(b"k" * 1700).decode()}},
}  # fmt: skip


def _per_call_us(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def run(n: int) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "calls": n, "kinds": {}}
    for (group, plural), body in OBJECTS.items():
        info = next(r for r in REGISTRY.resources if (r.group, r.plural) == (group, plural))
        obj = copy.deepcopy({"apiVersion": info.api_version, "kind": info.kind, **body})
        apply_defaults(info, obj, create=True)
        strategy = strategy_for(info)
        causes = strategy.validate(obj)
        assert not causes, (plural, causes)
        strategy.decode_fields(obj)  # compiles the schema once
        schema_us = _per_call_us(lambda s=strategy, o=obj: s.decode_fields(o), n)
        rules_us = _per_call_us(lambda s=strategy, o=obj: s.validate(o), n)
        results["kinds"][plural] = {
            "schema_check_us": round(schema_us, 1),
            "kube_rules_us": round(rules_us, 1),
            "ratio": round(rules_us / schema_us, 2),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    write_result(ROOT / "bench" / "results" / "validation.json", run(args.calls))


if __name__ == "__main__":
    main()
