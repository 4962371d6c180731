"""``skiffadm init phase addon``: the essential add-ons, as kubeadm installs kube-proxy and
CoreDNS: Skiff's Service proxy (a host-network DaemonSet that reads the ``kube-proxy``
ConfigMap's kubeconfig: this control plane's address, the pod's token and CA) and the
cluster DNS (the ``skiff-dns`` Deployment behind ``kube-system/kube-dns`` on the Service
range's tenth address); and, as the seed's init installs it where kubeadm leaves it to the
user, the pod network add-on (``skiff-network``: each node's CNI configuration for its pod
range, routes to the other nodes' ranges, NetworkPolicies). The manifests are the
project's ``deploy/`` files, adjusted to this cluster (pod range, DNS address, bridge, CNI
folders), and server-side applied, so running the phase again changes only what changed."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from skiff.addons import apply, dns_config_map, documents, proxy_config_map
from skiff.client.rest import ApiClient

ADDONS = ("kube-proxy", "dns", "network")
MANAGER = "skiffadm"


def _deploy_dir() -> Path:
    """The repository's ``deploy/`` above this file (a source checkout); else ``deploy``
    in the working folder (an installed package has no manifests: ``--addons-dir``)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "deploy" / "kube-proxy.yaml").is_file():
            return parent / "deploy"
    return Path("deploy")


DEFAULT_DIR = _deploy_dir()


class AddonError(Exception):
    """The add-ons cannot be installed (their manifests are missing)."""


def dns_address(service_cidr: str) -> str:
    """The cluster DNS's Service address, as kubeadm picks it: the range's tenth."""
    return str(ipaddress.ip_network(service_cidr, strict=False)[10])


def _manifest(folder: Path, name: str) -> list[dict[str, Any]]:
    path = folder / name
    if not path.is_file():
        raise AddonError(f"the add-on manifest {path} is missing (--addons-dir names the folder)")
    return documents(path)


def proxy_objects(folder: Path, endpoint: str, pod_subnet: str) -> list[dict[str, Any]]:
    """The kube-proxy ConfigMap, then ``kube-proxy.yaml`` with this cluster's pod range."""
    objects = [proxy_config_map(endpoint)]
    for doc in _manifest(folder, "kube-proxy.yaml"):
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "DaemonSet":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                c["args"] = [a for a in c.get("args", []) if not a.startswith("--cluster-cidr")]
                c["args"].append(f"--cluster-cidr={pod_subnet}")
        objects.append(doc)
    return objects


def dns_objects(folder: Path, cluster_dns: str, upstream: str) -> list[dict[str, Any]]:
    """The skiff-dns ConfigMap (``upstream``: "" for the nodes' resolvers), then
    ``dns.yaml`` with the kube-dns Service on ``cluster_dns`` (the kubelets' --cluster-dns)."""
    objects = [dns_config_map(upstream)]
    for doc in _manifest(folder, "dns.yaml"):
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "Service" and doc["metadata"]["name"] == "kube-dns":
            doc["spec"]["clusterIP"] = cluster_dns
        objects.append(doc)
    return objects


def network_objects(
    folder: Path, *, pod_subnet: str, bridge: str, cni_conf_dir: Path, cni_data_dir: Path
) -> list[dict[str, Any]]:
    """``network.yaml`` with this cluster's pod range and bridge, writing the CNI
    configuration where the kubelets read it (``cni_conf_dir``) and keeping the address
    allocations under ``cni_data_dir`` (host folders, mounted at their own paths: the
    configuration names them for the plugins, which run on the host)."""
    flags = {
        "--cni-conf-dir": str(cni_conf_dir),
        "--cni-ipam-dir": str(cni_data_dir / "networks"),
        "--bridge": bridge,
        "--cluster-cidr": pod_subnet,
    }
    folders = {"cni-conf": str(cni_conf_dir), "cni-data": str(cni_data_dir)}
    objects = []
    for doc in _manifest(folder, "network.yaml"):
        doc = copy.deepcopy(doc)
        if doc.get("kind") == "DaemonSet":
            pod = doc["spec"]["template"]["spec"]
            for c in pod["containers"]:
                args = [a for a in c.get("args", []) if a.partition("=")[0] not in flags]
                c["args"] = args + [f"{k}={v}" for k, v in flags.items()]
                for m in c.get("volumeMounts", []):
                    m["mountPath"] = folders.get(m["name"], m["mountPath"])
            for v in pod.get("volumes", []):
                if v["name"] in folders:
                    v["hostPath"]["path"] = folders[v["name"]]
        objects.append(doc)
    return objects


async def install(
    client: ApiClient,
    which: Sequence[str],
    *,
    folder: Path,
    endpoint: str,
    pod_subnet: str,
    cluster_dns: str,
    dns_upstream: str = "",
    bridge: str = "skiff0",
    cni_conf_dir: Path = Path("/etc/cni/net.d"),
    cni_data_dir: Path = Path("/var/lib/cni"),
) -> list[str]:
    """Apply the named add-ons (``ADDONS``); kubeadm's lines."""
    unknown = set(which) - set(ADDONS)
    if unknown:
        raise AddonError(f"unknown add-ons {sorted(unknown)}; the add-ons: {', '.join(ADDONS)}")
    out = []
    # kubeadm's order: DNS first (its pods wait for the proxy), then the proxy.
    if "dns" in which:
        for obj in dns_objects(folder, cluster_dns, dns_upstream):
            await apply(client, obj, manager=MANAGER)
        out.append("[addons] Applied essential addon: skiff-dns (the cluster DNS)")
    if "kube-proxy" in which:
        for obj in proxy_objects(folder, endpoint, pod_subnet):
            await apply(client, obj, manager=MANAGER)
        out.append("[addons] Applied essential addon: kube-proxy")
    if "network" in which:
        # It reaches the control plane through the kube-proxy ConfigMap's kubeconfig.
        network = network_objects(
            folder, pod_subnet=pod_subnet, bridge=bridge, cni_conf_dir=cni_conf_dir,
            cni_data_dir=cni_data_dir,
        )  # fmt: skip
        # (Applied with the proxy above when both are installed.)
        shared = [] if "kube-proxy" in which else [proxy_config_map(endpoint)]
        for obj in [*shared, *network]:
            await apply(client, obj, manager=MANAGER)
        out.append("[addons] Applied the pod network add-on: skiff-network")
    return out
