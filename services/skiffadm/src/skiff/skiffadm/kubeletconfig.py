"""The kubelets' shared configuration, as kubeadm keeps it: init writes the
``kube-system/kubelet-config`` ConfigMap (a ``KubeletConfiguration`` under the key
``kubelet``) with the RBAC that lets nodes and bootstrap-token holders read it, and
``skiffadm join`` reads it with its token, so a joining kubelet gets the cluster's DNS
address and domain rather than a default (a cluster with another Service range)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml

from skiff.addons import apply
from skiff.bootstrap import DEFAULT_GROUP
from skiff.client.rest import ApiClient

NAME = "kubelet-config"
NAMESPACE = "kube-system"
RBAC = "rbac.authorization.k8s.io"
PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"


def kubelet_configuration(cluster_dns: str, cluster_domain: str = "cluster.local") -> dict:  # type: ignore[type-arg]
    """The parts of kubelet.config.k8s.io/v1beta1 KubeletConfiguration Skiff's kubelet uses."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "clusterDNS": [cluster_dns],
        "clusterDomain": cluster_domain,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True}},
        "authorization": {"mode": "Webhook"},
        "rotateCertificates": True,
        "serverTLSBootstrap": True,
    }


def objects(cluster_dns: str, cluster_domain: str = "cluster.local") -> list[dict[str, Any]]:
    """The ConfigMap, and kubeadm's ``kubeadm:kubelet-config`` Role and RoleBinding."""
    data = yaml.safe_dump(kubelet_configuration(cluster_dns, cluster_domain), sort_keys=False)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "data": {"kubelet": data},
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "Role",
            "metadata": {"name": "kubeadm:kubelet-config", "namespace": NAMESPACE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "resourceNames": [NAME],
                    "verbs": ["get"],
                }
            ],
        },
        {
            "apiVersion": f"{RBAC}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "kubeadm:kubelet-config", "namespace": NAMESPACE},
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "kubeadm:kubelet-config"},
            "subjects": [
                {"apiGroup": RBAC, "kind": "Group", "name": "system:nodes"},
                {"apiGroup": RBAC, "kind": "Group", "name": DEFAULT_GROUP},
            ],
        },
    ]


async def upload(
    client: ApiClient, cluster_dns: str, cluster_domain: str = "cluster.local"
) -> list[str]:
    """init's ``upload-config kubelet``; kubeadm's line."""
    for obj in objects(cluster_dns, cluster_domain):
        await apply(client, obj, "skiffadm")
    return [
        f'[kubelet] Creating a ConfigMap "{NAME}" in namespace {NAMESPACE} with the '
        "configuration for the kubelets in the cluster"
    ]


def fetch(server: str, ca: Path, token: str, timeout: float = 10.0) -> dict[str, Any] | None:
    """The cluster's KubeletConfiguration, read with the bootstrap token over TLS verified
    against the discovered CA; None when the cluster has none (made without init)."""
    context = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=context, timeout=timeout) as http:
        resp = http.get(f"{server}{PATH}", headers={"Authorization": f"Bearer {token}"})
    if resp.status_code in (403, 404):
        return None
    resp.raise_for_status()
    config = yaml.safe_load(resp.json().get("data", {}).get("kubelet") or "{}")
    return config if isinstance(config, dict) else None
