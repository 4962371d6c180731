"""``python -m skiff.addons``: install the cluster's add-ons, as ``kubeadm init`` installs
kube-proxy and a user then ``kubectl apply``s the network add-on.

It writes the ``kube-system/kube-proxy`` ConfigMap (``kubeconfig.conf`` naming the control
plane's own address, ``--control-plane-endpoint``) and the ``kube-system/skiff-dns`` one
(``--dns-upstream``), then server-side applies every
document of the given manifests (field manager ``skiff-addons``), so running it again
changes only what the files changed. The compose deployment runs it once at ``up``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from skiff.api.resources import REGISTRY
from skiff.client.rest import ApiClient

MANAGER = "skiff-addons"


SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def proxy_config_map(endpoint: str) -> dict[str, Any]:
    """The kube-proxy ConfigMap: a kubeconfig for the control plane at ``endpoint``; for an
    ``https`` one, as kubeadm writes it: the pod's service-account token and CA."""
    cluster: dict[str, Any] = {"server": endpoint}
    users: list[dict[str, Any]] = []
    context: dict[str, Any] = {"cluster": "default", "namespace": "default"}
    if endpoint.startswith("https://"):
        cluster["certificate-authority"] = f"{SA_DIR}/ca.crt"
        users = [{"name": "default", "user": {"tokenFile": f"{SA_DIR}/token"}}]
        context["user"] = "default"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "default", "cluster": cluster}],
        "contexts": [{"name": "default", "context": context}],
        "current-context": "default",
        "users": users,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "kube-proxy",
            "namespace": "kube-system",
            "labels": {"app": "kube-proxy"},
        },
        "data": {"kubeconfig.conf": yaml.safe_dump(kubeconfig, sort_keys=False)},
    }


def dns_config_map(upstream: str) -> dict[str, Any]:
    """The skiff-dns ConfigMap: where names outside the cluster go ("" : the node's
    resolvers), as CoreDNS's Corefile ConfigMap holds its ``forward``."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "skiff-dns", "namespace": "kube-system"},
        "data": {"upstream": upstream},
    }


def documents(path: Path) -> list[dict[str, Any]]:
    """The objects of a manifest (empty documents skipped)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


async def apply(client: ApiClient, obj: dict[str, Any], manager: str = MANAGER) -> str:
    """Server-side apply one object (as ``manager``); ``kind/name`` as kubectl prints it."""
    group, _, version = obj["apiVersion"].rpartition("/")
    info = REGISTRY.by_gvk(group, version, obj["kind"])
    if info is None:
        raise ValueError(f"no resource for {obj['apiVersion']} {obj['kind']}")
    meta = obj["metadata"]
    namespace = (meta.get("namespace") or "default") if info.namespaced else None
    await client.patch(
        info, meta["name"], obj, namespace, type="apply", field_manager=manager, force=True
    )
    return f"{info.plural}{'.' + info.group if info.group else ''}/{meta['name']}"


async def wait_ready(client: ApiClient, timeout: float) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            await client.get("namespaces", "kube-system")
            return
        except Exception:  # not up yet, or kube-system not created yet
            if time.monotonic() > end:
                raise
            await asyncio.sleep(1)


async def run(a: argparse.Namespace) -> None:
    if a.kubeconfig:
        client = ApiClient.from_kubeconfig(a.kubeconfig, user_agent=MANAGER)
    else:
        client = ApiClient(a.server, user_agent=MANAGER)
    async with client:
        await wait_ready(client, a.timeout)
        objects = [proxy_config_map(a.control_plane_endpoint)] if a.control_plane_endpoint else []
        if a.dns_upstream is not None:
            objects.append(dns_config_map(a.dns_upstream))
        for path in a.files:
            objects.extend(documents(path))
        kinds = {k.strip() for k in a.kinds.split(",") if k.strip()}
        for obj in objects:
            if not kinds or obj.get("kind") in kinds:
                print(f"{await apply(client, obj)} applied", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m skiff.addons", description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", help="the apiserver to install them through")
    where.add_argument("--kubeconfig", help="... or the kubeconfig naming it and the credentials")
    p.add_argument(
        "--kinds",
        default="",
        help="apply only documents of these kinds, comma-separated (e.g. the RBAC ones)",
    )
    p.add_argument(
        "--control-plane-endpoint",
        default="",
        help="the apiserver address written into the kube-proxy ConfigMap (none: no ConfigMap)",
    )
    p.add_argument(
        "--dns-upstream",
        default=None,
        help="write the skiff-dns ConfigMap: upstream resolvers, host[:port] comma-separated "
        "(empty: the nodes' own)",
    )
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the apiserver")
    p.add_argument("files", nargs="*", type=Path, help="manifests to apply")
    try:
        asyncio.run(run(p.parse_args(argv)))
    except Exception as e:  # a clear line for the deployment's log, not a traceback
        print(f"skiff.addons: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
