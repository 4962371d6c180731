"""Publish a DNS server that runs next to the node rather than in a pod (``make up`` runs
skiff-dns as a process, as it runs the proxy) as the cluster's ``kube-system/kube-dns``
Service: the tenth address of the service range (10.96.0.10, as kubeadm's), port 53 over
UDP and TCP, and an EndpointSlice to the server's address and port.

The address pods reach the node at is its pod bridge's gateway (the first address of its
``spec.podCIDR``), so ``--node`` waits for the node IPAM controller to assign one.

    python -m skiff.dns.publish --kubeconfig K --node NAME --port 1053
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import time
from typing import Any

from skiff.api.endpointslices import MANAGED_BY_LABEL, SERVICE_NAME_LABEL
from skiff.api.errors import ApiError
from skiff.api.timestamps import parse_time, rfc3339
from skiff.client.rest import ApiClient
from skiff.log import get_logger

log = get_logger(__name__)

NAMESPACE, NAME = "kube-system", "kube-dns"
MANAGED_BY = "skiff-dns"
HEARTBEAT = "dns.skiff.io/heartbeat"
"""Annotation each published server renews on its own EndpointSlice."""


def service(cluster_ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "skiff-dns"},
        },
        "spec": {
            "clusterIP": cluster_ip,
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": port},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": port},
            ],
        },
    }


def endpoint_slice(address: str, port: int, name: str = f"{NAME}-node") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "labels": {
                SERVICE_NAME_LABEL: NAME,
                MANAGED_BY_LABEL: MANAGED_BY,
            },
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "dns", "port": port, "protocol": "UDP"},
            {"name": "dns-tcp", "port": port, "protocol": "TCP"},
        ],
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
    }


async def _apply(api: ApiClient, res: str, obj: dict[str, Any]) -> None:
    name = obj["metadata"]["name"]
    try:
        current = await api.get(res, name, NAMESPACE)
    except ApiError as e:
        if e.code != 404:
            raise
        await api.create(res, obj, NAMESPACE)
        return
    obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
    if res == "services":  # the cluster IP cannot change; keep what was allocated
        obj["spec"]["clusterIP"] = current["spec"].get("clusterIP")
    await api.update(res, obj, NAMESPACE)


async def node_gateway(api: ApiClient, node: str, timeout: float = 60.0) -> str:
    """The first address of the node's pod CIDR, once it has one."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                cidr = (await api.get("nodes", node)).get("spec", {}).get("podCIDR")
            except ApiError as e:
                if e.code != 404:
                    raise
                cidr = None
            if cidr:
                return str(next(ipaddress.ip_network(cidr, strict=False).hosts()))
            await asyncio.sleep(0.5)


async def publish(
    api: ApiClient, address: str, port: int, cluster_ip: str, slice_name: str = f"{NAME}-node"
) -> None:
    """The kube-dns Service, and one EndpointSlice (``slice_name``) to ``address:port``."""
    await _apply(api, "services", service(cluster_ip, port))
    await _apply(api, "endpointslices", endpoint_slice(address, port, slice_name))


async def keep_published(
    api: ApiClient,
    address: str,
    port: int,
    cluster_ip: str,
    slice_name: str,
    *,
    period: float = 5.0,
    stale_after: float = 15.0,
) -> None:
    """Publish, then renew this server's heartbeat every ``period`` seconds and delete the
    slices of servers whose heartbeat is older than ``stale_after`` (a replica that was
    killed cannot take its own slice back; the survivors do, so the Service stops sending
    queries to it and the proxies clear their UDP entries to it)."""
    while True:
        try:
            es = endpoint_slice(address, port, slice_name)
            es["metadata"]["annotations"] = {HEARTBEAT: rfc3339(time.time())}
            await _apply(api, "services", service(cluster_ip, port))
            await _apply(api, "endpointslices", es)
            await _remove_stale(api, slice_name, stale_after)
        except ApiError as e:
            log.warning("publishing kube-dns failed; retrying", error=e.message)
        await asyncio.sleep(period)


async def _remove_stale(api: ApiClient, mine: str, stale_after: float) -> None:
    items, _ = await api.list_all(
        "endpointslices",
        NAMESPACE,
        label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
    )
    now = time.time()
    for es in items:
        meta = es.get("metadata") or {}
        beat = parse_time((meta.get("annotations") or {}).get(HEARTBEAT))
        if meta.get("name") == mine or beat is None or now - beat <= stale_after:
            continue
        log.warning("removing a DNS server that stopped renewing", slice=meta.get("name"))
        await unpublish(api, meta["name"])


async def unpublish(api: ApiClient, slice_name: str) -> None:
    """Take one server's EndpointSlice back (it is stopping)."""
    try:
        await api.delete("endpointslices", slice_name, NAMESPACE)
    except ApiError as e:
        if e.code != 404:
            raise


async def _main(a: argparse.Namespace) -> None:
    if a.server:
        api = ApiClient(a.server, user_agent="skiff-dns-publish")
    else:
        api = ApiClient.from_kubeconfig(a.kubeconfig, user_agent="skiff-dns-publish")
    async with api:
        address = a.address or await node_gateway(api, a.node)
        await publish(api, address, a.port, a.cluster_ip)
        print(f"kube-system/kube-dns {a.cluster_ip}:53 -> {address}:{a.port}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m skiff.dns.publish", description=__doc__)
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--server", default=os.environ.get("SKIFF_SERVER"))
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--address", help="the DNS server's address, as pods reach it")
    target.add_argument("--node", help="use this node's pod gateway address")
    p.add_argument("--port", type=int, default=53)
    p.add_argument("--cluster-ip", default="10.96.0.10")
    asyncio.run(_main(p.parse_args(argv)))


if __name__ == "__main__":
    main()
